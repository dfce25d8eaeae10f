"""Semantic maps: colour-coded label images and the masks made from them.

A semantic map is an image painted with a few flat colours, one per label (sky, water, rock...).
Real maps are anti-aliased along their edges and often JPEG-damaged, so `snap_map` first finds the
small palette of colours that cover the image, then gives every pixel the label of its palette
colour; pixels far from every palette colour (blended edges) take the label of the nearest clean
pixel. An image that no small palette explains (a photo) is refused with a clear error.

Labels are matched between a content map and a style map by colour (`match_labels`); a label on
one side only is reported with a `SemanticWarning` and gets a defined behaviour (see there).
`layer_masks` brings masks to each VGG layer's resolution with the network's own 2x2/stride-2
pooling, so a mask cell lines up with the feature cell it weighs.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence, Union

import numpy as np

from impasto import images
from impasto.errors import ImpastoError


# Palette search: colours are binned (8 levels per channel step) and a bin is a palette candidate
# when it holds at least MIN_FRACTION of the pixels; candidates closer than MERGE_DISTANCE (RGB,
# 0..255, Euclidean) are one label. A pixel within CLEAN_DISTANCE of its palette colour is clean;
# a map must have at least MIN_CLEAN of its pixels clean (flat colours), a photo never does.
MIN_FRACTION = 0.0015
MERGE_DISTANCE = 48.0
CLEAN_DISTANCE = 12.0
MIN_CLEAN = 0.92
# ...and at most MAX_SHADING of its horizontally neighbouring pixel pairs may differ slightly
# (summed |dRGB| in 1..24): flat maps have ~1% such pairs (JPEG ringing), photos 10-80% (shading).
MAX_SHADING = 0.08
MAX_LABELS = 32
# Two maps' colours within this distance are the same label.
MATCH_DISTANCE = 48.0


class SemanticWarning(UserWarning):
    """A map problem that has a defined fallback (a label on one side only, a tiny region)."""


@dataclass
class SemanticMap:
    """labels: (H, W) int64 in 0..K-1; palette: (K, 3) uint8 RGB colour of each label."""

    labels: np.ndarray
    palette: np.ndarray
    name: str = "map"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height), as in images.resize_to."""
        return self.labels.shape[1], self.labels.shape[0]

    @property
    def num_labels(self) -> int:
        return len(self.palette)

    def fractions(self) -> np.ndarray:
        return np.bincount(self.labels.ravel(), minlength=self.num_labels) / self.labels.size

    def resized(self, size: tuple[int, int]) -> "SemanticMap":
        return SemanticMap(resize_labels(self.labels, size), self.palette, self.name)

    def one_hot(self, labels: Optional[Sequence[int]] = None) -> np.ndarray:
        """(K, H, W) float32 0/1 masks, one per label (or per listed label, in that order)."""
        labels = range(self.num_labels) if labels is None else labels
        return np.stack([(self.labels == k) for k in labels]).astype(np.float32)

    def to_rgb(self) -> np.ndarray:
        return self.palette[self.labels].astype(np.float32) / 255.0


def hex_colour(rgb: Iterable[int]) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in rgb)


def parse_colour(text: str) -> np.ndarray:
    """'#ff331f', 'ff331f' or '255,51,31' -> uint8 RGB."""
    t = text.strip().lstrip("#")
    try:
        if "," in t:
            vals = [int(v) for v in t.split(",")]
        else:
            if len(t) != 6:
                raise ValueError
            vals = [int(t[i:i + 2], 16) for i in (0, 2, 4)]
        if len(vals) != 3 or not all(0 <= v <= 255 for v in vals):
            raise ValueError
    except ValueError:
        raise ImpastoError(f"{text!r} is not a colour; write it as #rrggbb or r,g,b") from None
    return np.array(vals, dtype=np.uint8)


def _distances(px: np.ndarray, palette: np.ndarray) -> np.ndarray:
    """(N, 3) x (K, 3) -> (N, K) Euclidean distances in 0..255 units."""
    d = px[:, None, :].astype(np.float32) - palette[None, :, :].astype(np.float32)
    return np.sqrt((d * d).sum(-1))


def _fill_from_neighbours(labels: np.ndarray, clean: np.ndarray, fallback: np.ndarray) -> np.ndarray:
    """Give every unclean pixel the label of a clean neighbour, growing inward from clean pixels
    (edges of anti-aliasing are a few pixels wide); what is never reached keeps `fallback`."""
    labels = labels.copy()
    known = clean.copy()
    for _ in range(64):
        if known.all():
            break
        grown = known.copy()
        for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
            src_known = np.roll(known, (dy, dx), axis=(0, 1))
            src_lab = np.roll(labels, (dy, dx), axis=(0, 1))
            # np.roll wraps around: forbid taking labels across the image border
            if dy == 1:
                src_known[0, :] = False
            elif dy == -1:
                src_known[-1, :] = False
            if dx == 1:
                src_known[:, 0] = False
            elif dx == -1:
                src_known[:, -1] = False
            take = ~grown & src_known
            labels[take] = src_lab[take]
            grown |= take
        if (grown == known).all():
            break
        known = grown
    labels[~known] = fallback[~known]
    return labels


def snap_map(rgb: np.ndarray, name: str = "map", max_labels: int = MAX_LABELS) -> SemanticMap:
    """Colour-coded image (H, W, 3; uint8 or float 0..1) -> SemanticMap with a small palette.

    Raises ImpastoError when the image is not a map: more than `max_labels` colours cover it,
    or its pixels are not mostly flat palette colours (a photo, a painting, a gradient).
    """
    a = np.asarray(rgb)
    if a.dtype != np.uint8:
        a = np.clip(np.asarray(a, dtype=np.float32) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ImpastoError(f"{name}: a semantic map must be an RGB image")
    h, w = a.shape[:2]
    px = a.reshape(-1, 3)
    n = len(px)
    q = px.astype(np.int64) >> 3
    key = (q[:, 0] << 10) | (q[:, 1] << 5) | q[:, 2]
    counts = np.bincount(key, minlength=1 << 15)
    cand = np.flatnonzero(counts >= max(1, MIN_FRACTION * n))
    cand = cand[np.argsort(-counts[cand])]
    palette: list[np.ndarray] = []
    for k in cand[: 4 * max_labels + 64]:
        colour = np.median(px[key == k], axis=0).round().astype(np.uint8)  # the flat colour of the bin
        if palette and _distances(colour[None], np.array(palette)).min() < MERGE_DISTANCE:
            continue
        palette.append(colour)
    hint = ("a semantic map is painted with a few flat colours (one per region); "
            "this looks like a photo or a painting. Did you swap an image and its map?")
    if not palette:
        raise ImpastoError(f"{name}: no colour covers a noticeable part of the image; {hint}")
    pal = np.array(palette, dtype=np.uint8)
    dist = np.empty((n, len(pal)), dtype=np.float32)
    for start in range(0, n, 1 << 18):  # bounded memory for big maps
        dist[start:start + (1 << 18)] = _distances(px[start:start + (1 << 18)], pal)
    nearest = dist.argmin(1)
    clean = dist[np.arange(n), nearest] <= CLEAN_DISTANCE
    clean_fraction = float(clean.mean())
    if len(pal) > max_labels:
        raise ImpastoError(f"{name}: {len(pal)} distinct colour regions, more than the {max_labels} "
                           f"labels a map may have; {hint}")
    diff = np.abs(np.diff(a.astype(np.int16), axis=1)).sum(2)
    shading = float(((diff > 0) & (diff <= 24)).mean()) if w > 1 else 0.0
    if shading > MAX_SHADING:
        raise ImpastoError(f"{name}: {shading:.0%} of neighbouring pixels differ by small shades "
                           f"(a map has flat colours, at most {MAX_SHADING:.0%}); {hint}")
    if clean_fraction < MIN_CLEAN:
        raise ImpastoError(f"{name}: only {clean_fraction:.0%} of its pixels are flat label colours "
                           f"(a map needs {MIN_CLEAN:.0%}); {hint}")
    labels = _fill_from_neighbours(nearest.reshape(h, w), clean.reshape(h, w), nearest.reshape(h, w))
    # drop palette entries that ended up with no pixel, keep label ids dense
    used = np.flatnonzero(np.bincount(labels.ravel(), minlength=len(pal)))
    remap = np.full(len(pal), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    return SemanticMap(remap[labels].astype(np.int64), pal[used], name)


def load_map(source: Union[str, os.PathLike, np.ndarray], size: Optional[tuple[int, int]] = None,
             name: Optional[str] = None) -> SemanticMap:
    """Read and snap a map; `size` (width, height) resizes it with nearest neighbour (labels never
    blend). A map whose aspect ratio differs from its image's by more than 2% gets a warning."""
    if isinstance(source, np.ndarray):
        m = snap_map(source, name or "map")
    else:
        name = name or os.path.basename(str(source))
        arr = images.load(source, name=name)
        m = snap_map(arr, name)
    if size is not None and m.size != tuple(size):
        (w0, h0), (w1, h1) = m.size, size
        if abs((w0 / h0) / (w1 / h1) - 1) > 0.02:
            warnings.warn(f"{m.name}: map is {w0}x{h0} but its image is {w1}x{h1} (different shape); "
                          "stretching the map to the image", SemanticWarning, stacklevel=2)
        m = m.resized(size)
    return m


def resize_labels(labels: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of a label image to (width, height), sampling cell centres."""
    h0, w0 = labels.shape
    w1, h1 = size
    if (w1, h1) == (w0, h0):
        return labels
    ys = np.minimum(((np.arange(h1) + 0.5) * h0 / h1).astype(np.int64), h0 - 1)
    xs = np.minimum(((np.arange(w1) + 0.5) * w0 / w1).astype(np.int64), w0 - 1)
    return labels[ys[:, None], xs[None, :]]


@dataclass
class LabelMatch:
    """Labels matched by colour between a content map and one or more style maps.

    colours: (R, 3) colour of each matched region (content side).
    content: (R,) content label index of each region.
    style: R lists of (style image index, style label index or None for the whole image).
    """

    colours: np.ndarray
    content: list[int]
    style: list[list[tuple[int, Optional[int]]]]

    def __len__(self) -> int:
        return len(self.content)


def match_labels(content: SemanticMap, styles: Sequence[Optional[SemanticMap]],
                 unmatched: str = "global", labels: Optional[Sequence[str]] = None) -> LabelMatch:
    """Pair each content label with the style regions of the same colour.

    A content label found in several style maps takes all of them (their statistics are blended).
    Defined behaviour for one-sided labels, each with a SemanticWarning:
      - content label found in no style map: `unmatched="global"` styles it with the whole of the
        style image(s) (the classic un-guided transfer), `"skip"` leaves it to the content loss
        alone, `"error"` refuses;
      - style label found nowhere in the content: unused.
    A style image without a map (None) counts as one region covering it all, matching every label.
    `labels` (colours) restricts the styled regions to these; the others are left out (skipped).
    """
    if unmatched not in ("global", "skip", "error"):
        raise ImpastoError(f"unmatched must be global, skip or error, not {unmatched!r}")
    wanted = None
    if labels:
        wanted = [parse_colour(c) for c in labels]
        for c, col in zip(labels, wanted):
            if _distances(col[None], content.palette).min() > MATCH_DISTANCE:
                raise ImpastoError(f"label {c} is not a colour of {content.name} (its colours: "
                                   + ", ".join(hex_colour(p) for p in content.palette) + ")")
    frac = content.fractions()
    colours, cont, sty = [], [], []
    used_style: list[set[int]] = [set() for _ in styles]
    for k, col in enumerate(content.palette):
        if wanted is not None and _distances(col[None], np.array(wanted)).min() > MATCH_DISTANCE:
            continue
        targets: list[tuple[int, Optional[int]]] = []
        for s, smap in enumerate(styles):
            if smap is None:
                targets.append((s, None))
                continue
            d = _distances(col[None], smap.palette)[0]
            j = int(d.argmin())
            if d[j] <= MATCH_DISTANCE:
                targets.append((s, j))
                used_style[s].add(j)
        if not targets:
            where = f"{hex_colour(col)} ({frac[k]:.0%} of {content.name})"
            if unmatched == "error":
                raise ImpastoError(f"content label {where} has no region of that colour in any style map")
            if unmatched == "skip":
                warnings.warn(f"content label {where} is in no style map: left unstyled (content only)",
                              SemanticWarning, stacklevel=2)
                continue
            warnings.warn(f"content label {where} is in no style map: styled with the whole style image",
                          SemanticWarning, stacklevel=2)
            targets = [(s, None) for s in range(len(styles))]
        colours.append(col)
        cont.append(k)
        sty.append(targets)
    for s, smap in enumerate(styles):
        if smap is None:
            continue
        for j in range(smap.num_labels):
            if j not in used_style[s]:
                warnings.warn(f"style label {hex_colour(smap.palette[j])} ({smap.fractions()[j]:.0%} of "
                              f"{smap.name}) is in no content region: unused", SemanticWarning, stacklevel=2)
    if not cont:
        raise ImpastoError(f"no label of {content.name} matches the style map(s) by colour")
    return LabelMatch(np.array(colours, dtype=np.uint8), cont, sty)


def mask_from_image(source: Union[str, os.PathLike, np.ndarray], size: tuple[int, int],
                    name: Optional[str] = None) -> np.ndarray:
    """A grey-level mask file -> (H, W) float32 in 0..1 at `size`: white = 1 (style here), black = 0.
    Grey values are kept (gradient masks). Bilinear resize (values, not labels)."""
    if isinstance(source, np.ndarray):
        arr, name = source, name or "mask"
    else:
        name = name or os.path.basename(str(source))
        arr = images.load(source, name=name)
    if arr.ndim == 3:
        spread = float(np.abs(arr - arr.mean(2, keepdims=True)).mean())
        if spread > 0.08:
            raise ImpastoError(f"{name}: a mask is a grey-level image (white = styled, black = not); "
                               "this one is coloured. For colour-coded regions use a map (--content-map)")
        arr = arr.mean(2)
    arr = images.resize_to(arr[..., None].astype(np.float32), size)[..., 0]
    return np.clip(arr, 0, 1).astype(np.float32)
