"""Style weights for a multi-style model, from what a person writes: a blend ("candy:0.7,udnie:0.3",
or one name for one style) and a grey mask that picks between two styles per pixel (white the
first, black the second: the fast counterpart of the iterative path's soft masks). numpy only.

A blend's weights are normalised to sum to 1: the network blends the styles' norm parameters,
and a mix outside their convex hull (weights summing to 2, say) is no style it was trained on.
"""

from __future__ import annotations

import math
import re

import numpy as np

from impasto import images
from impasto.errors import ImpastoError, shown

MAX_BLEND_TEXT = 2000
_TERM = re.compile(r"\s*([^:,\s]+)\s*(?::\s*([^,]*?)\s*)?$")


def blend_names(text: str) -> list[str]:
    """The style names a blend mentions, in order ('candy:0.7,udnie' -> ['candy', 'udnie'])."""
    return [t.split(":")[0].strip() for t in (text or "").split(",") if t.strip()]


def parse_blend(text: str, styles: list[str]) -> np.ndarray:
    """'candy:0.7,udnie:0.3' -> (S,) float32 weights over `styles`, summing to 1. A name without
    a weight counts 1 ('candy' is candy alone; 'candy,udnie' half each)."""
    if not styles:
        raise ImpastoError("this model paints one style; a blend needs a multi-style model "
                           "(see `impasto styles`)")
    if not isinstance(text, str) or not text.strip():
        raise ImpastoError("empty blend; write NAME:WEIGHT,NAME:WEIGHT (e.g. "
                           f"{styles[0]}:0.5,{styles[-1]}:0.5)")
    if len(text) > MAX_BLEND_TEXT:
        raise ImpastoError(f"the blend is {len(text)} characters long, over {MAX_BLEND_TEXT}")
    weights = np.zeros(len(styles), np.float64)
    seen: set[str] = set()
    for term in text.split(","):
        m = _TERM.fullmatch(term)
        if not m:
            raise ImpastoError(f"cannot read {shown(term.strip())} in the blend; write NAME:WEIGHT, "
                               "e.g. candy:0.7")
        name, value = m.group(1), m.group(2)
        if name not in styles:
            raise ImpastoError(f"unknown style {shown(name)} in the blend; this model has: {', '.join(styles)}", 404)
        if name in seen:
            raise ImpastoError(f"style {shown(name)} appears twice in the blend")
        seen.add(name)
        weights[styles.index(name)] = _weight(name, value)
    total = weights.sum()
    if total <= 0:
        raise ImpastoError("the blend's weights are all zero; give at least one style a positive weight")
    return (weights / total).astype(np.float32)


def _weight(name: str, value: str | None) -> float:
    if value is None:
        return 1.0
    try:
        w = float(value)
    except ValueError:
        raise ImpastoError(f"the weight of {shown(name)} must be a number, not {shown(value)}") from None
    if not math.isfinite(w) or w < 0:
        raise ImpastoError(f"the weight of {shown(name)} must be a finite number >= 0, not {shown(value)}")
    return w


def pair_for_mask(text: str, styles: list[str]) -> tuple[int, int]:
    """The two styles a mask picks between: 'candy,udnie' -> (index of candy, index of udnie)."""
    names = [t.strip() for t in (text or "").split(",") if t.strip()]
    if len(names) != 2 or any(":" in n for n in names):
        raise ImpastoError("with a style mask, the blend names two styles without weights: "
                           "FIRST,SECOND (white in the mask paints FIRST, black SECOND)")
    if names[0] == names[1]:
        raise ImpastoError("a style mask picks between two different styles")
    for n in names:
        if n not in styles:
            raise ImpastoError(f"unknown style {shown(n)}; this model has: {', '.join(styles)}", 404)
    return styles.index(names[0]), styles.index(names[1])


ASPECT_TOLERANCE = 0.02   # a mask drawn on a scaled copy of the photo rounds its sides


def load_mask(source, width: int, height: int, name: str = "style mask") -> np.ndarray:
    """A grey mask (HxW float 0..1, white = 1) for a photo being painted at width x height: drawn
    at the photo's size or a scaled copy of it (same proportions), resized to width x height."""
    arr = images.load(source, name=name)
    h, w = arr.shape[:2]
    if abs((w / h) / (width / height) - 1.0) > ASPECT_TOLERANCE:
        raise ImpastoError(f"the {name} is {w}x{h} px, the photo {width}x{height}: the mask must have the "
                           "photo's size (or its proportions)", 422)
    grey = arr.mean(axis=2)
    if (w, h) != (width, height):
        grey = images.resize_to(grey[..., None], (width, height))[..., 0]
    return grey


def mask_weights(mask: np.ndarray, first: int, second: int, count: int) -> np.ndarray:
    """(H, W, S) weights from an HxW mask: its value for `first`, the rest for `second`."""
    m = np.clip(mask.astype(np.float32), 0.0, 1.0)
    weights = np.zeros(m.shape + (count,), np.float32)
    weights[..., first] = m
    weights[..., second] += 1.0 - m
    return weights
