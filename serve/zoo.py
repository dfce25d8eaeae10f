"""The styles the runtime can name: `<name>.onnx` + its model card, preview and painting (see
`impasto.models.zoo.card`) in the `impasto.models.zoo` package folder, or in any folder given by
`IMPASTO_MODELS` / `--models`. Torch-free, like all of `impasto.serve`.
"""

from __future__ import annotations

import os
from pathlib import Path

import impasto.models.zoo
from impasto.errors import ImpastoError, shown
from impasto.models.zoo.card import STYLE_NAME, card_styles, preview_path, read_card

SPATIAL_SUFFIX = ".spatial.onnx"   # a multi-style model's per-pixel variant, next to it
VIDEO_SUFFIX = ".video.onnx"       # a style's network trained for steady video (the temporal term), next to it
# starry_night leads (the default style): the best held-out painter of the bundled four, and within
# the latency bar against multistyle26 on an AMX CPU, where candy's wider network is not (docs/serving.md)
DEFAULT_STYLE_ORDER = ("starry_night", "candy", "mosaic", "the_wave", "udnie", "composition_vii")


def bundled_dir() -> Path:
    return Path(impasto.models.zoo.__file__).parent


def model_dir(folder: str | os.PathLike | None = None) -> Path:
    folder = folder or os.environ.get("IMPASTO_MODELS")
    return Path(folder) if folder else bundled_dir()


def _is_style_file(p: Path) -> bool:
    # `candy.onnx` is a style; `candy.fp16.onnx` / `candy.int8.onnx` / `multi.spatial.onnx` are variants.
    return p.suffix == ".onnx" and STYLE_NAME.fullmatch(p.stem) is not None


def list_styles(folder: str | os.PathLike | None = None) -> list[dict]:
    """[{name, path, card, preview}] for each style in the folder, the default style first."""
    root = model_dir(folder)
    if not root.is_dir():
        return []
    styles = []
    for p in sorted(root.iterdir()):
        if p.is_file() and _is_style_file(p):
            preview = preview_path(p)
            card = read_card(p)
            styles.append({"name": p.stem, "path": p, "card": card, "styles": card_styles(card),
                           "preview": preview if preview.is_file() else None,
                           "video": video_path(p) if video_path(p).is_file() else None})
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


def spatial_path(path: str | os.PathLike) -> Path:
    """Where the per-pixel variant of a multi-style model lives: `multi.onnx` -> `multi.spatial.onnx`."""
    path = Path(path)
    return path.with_name(path.stem + SPATIAL_SUFFIX)


def spatial_model(path: str | os.PathLike) -> Path:
    """The per-pixel variant of a multi-style model, which a style mask needs."""
    spatial = spatial_path(path)
    if not spatial.is_file():
        raise ImpastoError(f"{Path(path).name} has no per-pixel variant ({spatial.name}) for a style mask; "
                           "`impasto export` writes it for multi-style checkpoints")
    return spatial


def video_path(path: str | os.PathLike) -> Path:
    """Where a style's video network lives: `candy.onnx` -> `candy.video.onnx`."""
    path = Path(path)
    return path.with_name(path.stem + VIDEO_SUFFIX)


def video_model(path: str | os.PathLike) -> Path:
    """The network to paint a video with: the style's video network when one lies beside it
    (trained so that frame-by-frame painting flickers less: docs/video.md), else the style's own."""
    video = video_path(path)
    return video if video.is_file() else Path(path)


def model_with_styles(names: list[str], folder: str | os.PathLike | None = None) -> str:
    """The first multi-style model in the folder that holds every one of `names` (for a blend
    given without --style)."""
    multi = [s for s in list_styles(folder) if s["styles"]]
    for entry in multi:
        if all(n in entry["styles"] for n in names):
            return entry["name"]
    held = "; ".join(f"{s['name']}: {', '.join(s['styles'])}" for s in multi) or "none installed"
    raise ImpastoError(f"no multi-style model holds {', '.join(shown(n) for n in names)} "
                       f"(multi-style models: {held}); name one with --style", 404)
