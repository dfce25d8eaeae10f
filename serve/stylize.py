"""Stylise an image with an exported network: pad, tile, blend, keep colours. numpy only.

The network downsamples by 4, so each input is reflect-padded to a multiple of 4 and the output
cropped back. It also gets a reflected margin on every side, cropped away afterwards: the
networks' zero-padded convolutions paint bands along the image's edges (the bundled starry_night:
stripes 16 px deep along the top; zoo8: a yellow band 30 px wide down the left), and the margin
is where they land. It is EDGE_MARGIN pixels unless the model names its own (`impasto export
--edge-margin`, the ONNX metadata `impasto.edge_margin`).
Photos larger than `tile` pixels on a side are cut into overlapping tiles, each run on its own,
and blended back with linear (feathered) weights across the overlaps, so a 4000 px photo needs
the memory of one tile's activations (plus the output) and shows no seams.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from impasto.color import keep_colors
from impasto.errors import ImpastoError

DEFAULT_TILE = 1024
DEFAULT_OVERLAP = 128
EDGE_MARGIN = 16   # px; the stripe energy in starry_night's top rows: 4.8x the interior's at 0, 3.1x at 8, 1.1x at 16


@dataclass
class Options:
    strength: float = 1.0          # 0 = the photo, 1 = fully stylised
    preserve_color: bool = False   # keep the photo's colours, take the style's luminance
    tile: int = DEFAULT_TILE       # the longest side run in one pass; 0 disables tiling
    overlap: int = DEFAULT_OVERLAP
    margin: int | None = None      # reflected border run with the image and cropped away (None: the model's,
    #                                else EDGE_MARGIN); 0 is ~20% faster at 512 px

    def check(self) -> "Options":
        if not (0.0 <= self.strength <= 1.0) or math.isnan(self.strength):
            raise ImpastoError(f"strength must be between 0 and 1, not {self.strength}")
        if self.tile and self.tile < 64:
            raise ImpastoError(f"tile must be at least 64 px (or 0 for no tiling), not {self.tile}")
        if self.tile and not (0 <= self.overlap <= self.tile // 2):
            raise ImpastoError(f"overlap must be between 0 and tile/2, not {self.overlap}")
        if self.margin is not None and not 0 <= self.margin <= 256:
            raise ImpastoError(f"edge margin must be between 0 and 256 px, not {self.margin}")
        return self


def pad_to_multiple(arr: np.ndarray, multiple: int = 4) -> np.ndarray:
    """Reflect-pad an HxWx3 image on the bottom and right so both sides divide by `multiple`."""
    h, w = arr.shape[:2]
    ph, pw = (-h) % multiple, (-w) % multiple
    if not (ph or pw):
        return arr
    mode = "reflect" if h > ph and w > pw else "edge"
    return np.pad(arr, ((0, ph), (0, pw), (0, 0)), mode=mode)


def run_network(engine: Callable[..., np.ndarray], arr: np.ndarray,
                margin: int | None = None, style_weights: np.ndarray | None = None) -> np.ndarray:
    """One pass of the network on an HxWx3 float image; returns HxWx3 float in 0..1.

    `style_weights` (a multi-style model): (S,), one mix for the image, or (H, W, S), one mix
    per pixel; a map is padded exactly like the image, so every pixel keeps its own mix."""
    h, w = arr.shape[:2]
    per_pixel = style_weights is not None and style_weights.ndim == 3
    if per_pixel:
        if style_weights.shape[:2] != (h, w):
            raise ImpastoError(f"style weights of {style_weights.shape[1]}x{style_weights.shape[0]} px "
                               f"for an image of {w}x{h}")
        arr = np.concatenate([arr, style_weights], axis=2)   # padded together
    if margin is None:   # the model's own (a network with a wider edge band says so), else the default
        margin = getattr(engine, "edge_margin", None)
        margin = EDGE_MARGIN if margin is None else margin
    m = max(0, min(margin, h - 1, w - 1))   # a reflection cannot be wider than the image
    if m:
        arr = np.pad(arr, ((m, m), (m, m), (0, 0)), mode="reflect")
    x = np.ascontiguousarray(pad_to_multiple(arr).transpose(2, 0, 1)[None], dtype=np.float32)
    if per_pixel:
        x, weights = np.ascontiguousarray(x[:, :3]), np.ascontiguousarray(x[:, 3:])
        y = engine(x, weights)
    elif style_weights is not None:
        y = engine(x, np.asarray(style_weights, np.float32)[None])
    else:
        y = engine(x)
    y = y[0, :, m:m + h, m:m + w]
    return np.clip(y.transpose(1, 2, 0), 0.0, 1.0)


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    step = (length - tile) / (n - 1)
    return [round(i * step) for i in range(n)]


def tile_grid(h: int, w: int, tile: int, overlap: int) -> list[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) boxes of at most tile x tile covering the image, neighbours overlapping
    by at least `overlap` pixels."""
    ys, xs = _starts(h, tile, overlap), _starts(w, tile, overlap)
    return [(y, min(y + tile, h), x, min(x + tile, w)) for y in ys for x in xs]


def _ramp(length: int, lead: int, trail: int) -> np.ndarray:
    """1 inside, rising linearly over `lead` pixels at the start and falling over `trail` at the
    end (0 where the tile is not the only source, never exactly 0 so that weights never sum to 0)."""
    r = np.ones(length, np.float32)
    if lead:
        r[:lead] = (np.arange(lead, dtype=np.float32) + 0.5) / lead
    if trail:
        r[length - trail:] = np.minimum(r[length - trail:], ((np.arange(trail, dtype=np.float32) + 0.5)
                                                              / trail)[::-1])
    return r


def stylize_tiled(engine, arr: np.ndarray, tile: int, overlap: int, margin: int | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  style_weights: np.ndarray | None = None) -> np.ndarray:
    h, w = arr.shape[:2]
    boxes = tile_grid(h, w, tile, overlap)
    if len(boxes) == 1:
        return run_network(engine, arr, margin, style_weights)
    per_pixel = style_weights is not None and style_weights.ndim == 3
    out = np.zeros((h, w, 3), np.float32)
    weight = np.zeros((h, w, 1), np.float32)
    for i, (y0, y1, x0, x1) in enumerate(boxes):
        y = run_network(engine, arr[y0:y1, x0:x1], margin,
                        style_weights[y0:y1, x0:x1] if per_pixel else style_weights)
        # Feather only the sides that overlap a neighbour, across the whole shared band.
        top = max((b[1] - y0 for b in boxes if b[0] < y0 and b[1] > y0 and b[2] < x1 and b[3] > x0),
                  default=0)
        bottom = max((y1 - b[0] for b in boxes if b[0] > y0 and b[0] < y1 and b[2] < x1 and b[3] > x0),
                     default=0)
        left = max((b[3] - x0 for b in boxes if b[2] < x0 and b[3] > x0 and b[0] < y1 and b[1] > y0),
                   default=0)
        right = max((x1 - b[2] for b in boxes if b[2] > x0 and b[2] < x1 and b[0] < y1 and b[1] > y0),
                    default=0)
        wy = _ramp(y1 - y0, top, bottom)
        wx = _ramp(x1 - x0, left, right)
        wt = (wy[:, None] * wx[None, :])[..., None]
        out[y0:y1, x0:x1] += y * wt
        weight[y0:y1, x0:x1] += wt
        if progress:
            progress(i + 1, len(boxes))
    return out / weight


# ----------------------------------------------------------------------------- blending

def blend(stylised: np.ndarray, original: np.ndarray, strength: float) -> np.ndarray:
    if strength >= 1.0:
        return stylised
    return np.clip(strength * stylised + (1.0 - strength) * original, 0.0, 1.0)


MIN_SIDE = 8
MAX_ASPECT = 20.0


def check_dimensions(width: int, height: int) -> None:
    """Refuse images the network cannot paint meaningfully (a few pixels, or a sliver)."""
    if min(width, height) < MIN_SIDE:
        raise ImpastoError(f"image is {width}x{height} px; it needs at least {MIN_SIDE} px a side", 422)
    if max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImpastoError(f"image is {width}x{height} px; an aspect ratio over {MAX_ASPECT:g}:1 is "
                           "not supported (crop it first)", 422)


def stylize_array(engine, arr: np.ndarray, options: Options | None = None,
                  progress: Callable[[int, int], None] | None = None,
                  style_weights: np.ndarray | None = None) -> np.ndarray:
    """The whole fast path on an HxWx3 float image in 0..1. `style_weights`: a multi-style
    model's mix, (S,) or per pixel (H, W, S) (serve.blend makes them)."""
    options = (options or Options()).check()
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ImpastoError(f"expected an HxWx3 RGB image, got shape {arr.shape}")
    check_dimensions(arr.shape[1], arr.shape[0])
    if options.strength == 0.0:
        return arr.copy()
    if options.tile and max(arr.shape[:2]) > options.tile:
        out = stylize_tiled(engine, arr, options.tile, options.overlap, options.margin, progress, style_weights)
    else:
        out = run_network(engine, arr, options.margin, style_weights)
    if options.preserve_color:
        out = keep_colors(out, arr)
    return blend(out, arr, options.strength)
