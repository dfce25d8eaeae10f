"""The model card: the JSON file next to each bundled style's `.onnx`, read and written here only.

A style in a model folder is `<name>.onnx` (the network), `<name>.json` (its card), `<name>.png`
(a preview) and `<name>.style.jpg` (a small copy of the painting it was trained on, so `impasto
compare` can rebuild the training objective anywhere). Training writes the training half of the
card (`card_from_meta`), export adds the ONNX facts, backends and preview (`write_card`), the
server and `impasto styles` read it (`read_card`), compare reads the training config back
(`load_card`, `training_config`).

numpy, Pillow and the standard library only: the server (no torch) imports this module.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from impasto import images
from impasto.errors import ImpastoError, shown
from impasto.files import atomic_write_bytes

CARD_SUFFIX = ".json"
PREVIEW_SUFFIX = ".png"
STYLE_THUMBNAIL_SUFFIX = ".style.jpg"
STYLE_THUMBNAIL_SIDE = 512       # px, longest side: above the style sizes the bundled styles trained at

# What `card_from_meta` keeps of a checkpoint's meta: what a person wants to know about a style.
TRAINING_FIELDS = ("style", "arch", "arch_spec", "parameters", "style_image", "steps", "images_seen", "device", "image_size",
                   "batch_size", "wall_time_s", "loss_terms", "val_loss_terms", "loss_weights", "vgg",
                   "config_hash", "config",
                   # a multi-style network: its styles in input order, their paintings, and what this run trained
                   "styles", "style_images", "trained_styles", "added_to", "trained_parameters")

# A style name (a model file's stem, or a style inside a multi-style model): a short lowercase
# identifier, so it can never name a path and reads the same in a URL, a form and a file name.
STYLE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


def check_style_names(names) -> list[str]:
    """The style names of a multi-style network: each a STYLE_NAME, none twice."""
    names = list(names)
    for n in names:
        if not isinstance(n, str) or not STYLE_NAME.fullmatch(n):
            raise ImpastoError(f"invalid style name {shown(n)}: use lowercase letters, digits, '_' and '-'")
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise ImpastoError(f"style names must differ; given more than once: {', '.join(twice)}")
    return names


def card_styles(card: dict) -> list[str]:
    """The styles inside a multi-style model, in the order of its style-weight input ([] for a
    single-style model)."""
    styles = card.get("styles")
    return list(styles) if isinstance(styles, list) else []


def card_path(onnx_path: str | os.PathLike) -> Path:
    return Path(onnx_path).with_suffix(CARD_SUFFIX)


def preview_path(onnx_path: str | os.PathLike) -> Path:
    return Path(onnx_path).with_suffix(PREVIEW_SUFFIX)


def style_thumbnail_path(onnx_path: str | os.PathLike) -> Path:
    p = Path(onnx_path)
    return p.with_name(p.stem + STYLE_THUMBNAIL_SUFFIX)


def read_card(onnx_path: str | os.PathLike) -> dict:
    """The card next to a model, for listing: {} when there is none, an `error` entry when it is
    unreadable (a listing shows the other styles all the same)."""
    path = card_path(onnx_path)
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            return {"error": f"unreadable model card {path.name}"}
    return {}


def load_card(onnx_path: str | os.PathLike) -> dict:
    """The card next to a model, required (compare rebuilds the training objective from it)."""
    path = card_path(onnx_path)
    if not path.is_file():
        raise ImpastoError(f"{onnx_path}: no model card {path.name} next to it; the comparison needs "
                           "the objective the model was trained with (write one with "
                           "`python -m impasto.training.fast CHECKPOINT CARD.json`)")
    try:
        return json.loads(path.read_text())
    except ValueError as exc:
        raise ImpastoError(f"{path}: model card is not valid JSON ({exc})") from None


def training_config(card: dict) -> dict:
    """The training module's arguments as the card records them (config.model)."""
    model_cfg = (card.get("config") or {}).get("model")
    if not isinstance(model_cfg, dict):
        raise ImpastoError(f"model card of {card.get('style', '?')!r} has no training config (config.model); "
                           "cannot rebuild the objective it was trained with")
    return model_cfg


def card_from_meta(meta: dict) -> dict:
    """The training half of a model card, from a checkpoint's meta."""
    card = {k: meta[k] for k in TRAINING_FIELDS if k in meta}
    if "style_image" in card:
        card["style_image"] = Path(card["style_image"]).name if card["style_image"] else ""
    if "style_images" in card:
        card["style_images"] = [Path(p).name for p in card["style_images"]]
    if card.get("added_to"):
        card["added_to"] = Path(card["added_to"]).name
    if card.get("vgg"):   # a file name, never a machine's absolute path
        card["vgg"] = Path(str(card["vgg"])).name
    if meta.get("checkpoint") and not Path(meta["checkpoint"]).is_absolute():
        card["training_checkpoint"] = meta["checkpoint"]
    return card


def no_machine_paths(value):
    """Cards ship with the package: an absolute path of the writing machine becomes its file name."""
    if isinstance(value, dict):
        return {k: no_machine_paths(v) for k, v in value.items()}
    if isinstance(value, list):
        return [no_machine_paths(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value) and len(value) < 4096:
        return Path(value).name
    return value


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, tuple):
        return list(o)
    if hasattr(o, "item") and hasattr(o, "tolist"):   # a tensor or numpy value, without importing torch
        return o.item() if getattr(o, "numel", lambda: o.size)() == 1 else o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_card(path: str | os.PathLike, updates: dict[str, Any], merge_nested: bool = False,
               file_names_only: bool = False) -> dict:
    """Merge `updates` into the card JSON at `path` (created if missing), atomically; returns it.

    Keys the card has that `updates` does not mention are kept, so training and export each add
    their own fields. `merge_nested` also merges dict values one level down (training's meta);
    without it a dict value replaces the old one (export's fresh measurements). `file_names_only`
    turns every absolute path in the card into its file name (export: the card ships with the
    package).
    """
    path = Path(path)
    card: dict[str, Any] = {}
    if path.exists():
        try:
            card = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ImpastoError(f"{path}: model card is not valid JSON ({exc}); fix or delete it") from None
    for key, value in updates.items():
        if merge_nested and isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    card = json.loads(json.dumps(card, default=_json_default))
    if file_names_only:
        card = no_machine_paths(card)
    atomic_write_bytes(path, (json.dumps(card, indent=2, sort_keys=False) + "\n").encode())
    return card


def write_style_thumbnail(style_image: str | os.PathLike, onnx_path: str | os.PathLike,
                          side: int = STYLE_THUMBNAIL_SIDE) -> Path:
    """A small JPEG of the painting next to the model, for compare outside the training checkout."""
    image = images.load(style_image)
    if max(image.shape[:2]) > side:   # never upscaled
        image = images.resize(image, side)
    return atomic_write_bytes(style_thumbnail_path(onnx_path), images.encode(image, "JPEG", quality=90))
