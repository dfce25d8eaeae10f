"""The bundled styles: `<name>.onnx` + `<name>.json` (model card) + `<name>.png` (preview) in the
`impasto.models.zoo` package folder, or in any folder given by `IMPASTO_MODELS` / `--models`.

Located with importlib's spec machinery, which finds the folder without executing
`impasto.models.__init__` (that one imports torch, and this module must not).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
from pathlib import Path

from impasto.errors import ImpastoError, shown

STYLE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
DEFAULT_STYLE_ORDER = ("candy", "mosaic", "starry_night", "the_wave", "udnie", "composition_vii")


def bundled_dir() -> Path:
    spec = importlib.util.find_spec("impasto.models")
    if spec is None or not spec.submodule_search_locations:  # pragma: no cover - broken install
        raise ImpastoError("cannot locate the bundled models (impasto.models is not installed)")
    return Path(list(spec.submodule_search_locations)[0]) / "zoo"


def model_dir(folder: str | os.PathLike | None = None) -> Path:
    folder = folder or os.environ.get("IMPASTO_MODELS")
    return Path(folder) if folder else bundled_dir()


def _is_style_file(p: Path) -> bool:
    # `candy.onnx` is a style; `candy.fp16.onnx` / `candy.int8.onnx` are its variants.
    return p.suffix == ".onnx" and STYLE_NAME.fullmatch(p.stem) is not None


def read_card(onnx_path: Path) -> dict:
    card_path = onnx_path.with_suffix(".json")
    if card_path.is_file():
        try:
            return json.loads(card_path.read_text())
        except (OSError, ValueError):
            return {"error": f"unreadable model card {card_path.name}"}
    return {}


def list_styles(folder: str | os.PathLike | None = None) -> list[dict]:
    """[{name, path, card, preview}] for each style in the folder, the default style first."""
    root = model_dir(folder)
    if not root.is_dir():
        return []
    styles = []
    for p in sorted(root.iterdir()):
        if p.is_file() and _is_style_file(p):
            preview = p.with_suffix(".png")
            styles.append({"name": p.stem, "path": p, "card": read_card(p),
                           "preview": preview if preview.is_file() else None})
    order = {n: i for i, n in enumerate(DEFAULT_STYLE_ORDER)}
    styles.sort(key=lambda s: (not s["card"].get("default", False), order.get(s["name"], 99), s["name"]))
    return styles


def default_style(folder: str | os.PathLike | None = None) -> str:
    styles = list_styles(folder)
    if not styles:
        raise ImpastoError(f"no bundled styles in {model_dir(folder)}; pass --style model.onnx")
    return styles[0]["name"]


def check_style_name(name: str) -> str:
    """A style name is a short lowercase identifier: it can never name a path."""
    if not isinstance(name, str) or not STYLE_NAME.fullmatch(name):
        raise ImpastoError(f"invalid style name {shown(name)}: use lowercase letters, digits, '_' and '-'")
    return name


def resolve_style(style: str | None, folder: str | os.PathLike | None = None,
                  allow_paths: bool = True) -> Path:
    """A style name (bundled) or, when allowed (the CLI, not the server), a path to a .onnx file."""
    if not style:
        style = default_style(folder)
    if allow_paths and (style.endswith(".onnx") or os.sep in style or "/" in style):
        path = Path(style)
        if not path.is_file():
            raise ImpastoError(f"{style}: no such model file")
        return path
    check_style_name(style)
    root = model_dir(folder).resolve()
    path = (root / f"{style}.onnx").resolve()
    if path.parent != root or not path.is_file():
        names = ", ".join(s["name"] for s in list_styles(folder)) or "(none installed)"
        raise ImpastoError(f"unknown style {shown(style)}; available: {names}", 404)
    return path
