"""What the loss network keeps at each depth: rebuild an image from one layer's features
(content) or one layer's Gram matrix (style), starting from noise (Gatys et al. 2016, figure 1).

How the figure comes out as in the paper (issue 14: the deep layers were noise): fp32; L-BFGS
with its line search; average pooling, as Gatys et al. used (max pooling leaves a checkerboard
of high frequencies that the deep layers do not see); coarse to fine (half size, then full size:
the deep layers constrain only coarse structure, the half-size pass settles it before the fine
pixels); and a light total-variation prior (the deep layers are blind to pixel noise, so nothing
else removes the noise they start from).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from impasto import images
from impasto.errors import ImpastoError
from impasto.models.losses import ContentLoss, StyleLoss, TVLoss
from impasto.models.objective import Objective
from impasto.models.tensors import to_tensor
from impasto.models.weights import load_vgg_weights

from .optimize import optimize_pixels

DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
ITERATIONS = 100          # per scale
TV_WEIGHT = 20.0          # mean-normalised TV (the content term at the noise start: ~1e2)


def reconstruct(image: np.ndarray, layer: str, what: str = "content", iterations: int = ITERATIONS,
                vgg_weights: str | None = None, precision: str = "fp32", seed: int = 0, weights=None,
                tv_weight: float = TV_WEIGHT, pooling: str = "avg", coarse_to_fine: bool = True,
                log=None) -> np.ndarray:
    """The image rebuilt from `layer`'s features or Gram matrix of `image`, from uniform noise;
    `iterations` L-BFGS evaluations per scale (half size, then full size with coarse_to_fine)."""
    if what not in ("content", "style"):
        raise ImpastoError(f"--what must be content or style, not {what!r}")
    weights = weights or load_vgg_weights(vgg_weights)
    h, w = image.shape[:2]
    sizes = [(max(16, w // 2), max(16, h // 2)), (w, h)] if coarse_to_fine and min(h, w) >= 64 else [(w, h)]
    gen = torch.Generator().manual_seed(seed)
    x = None
    for size in sizes:
        target = to_tensor(images.resize_to(image, size))
        term = ContentLoss([layer]) if what == "content" else StyleLoss([layer], gram_norm="pixels")
        objective = Objective(weights, {what: term, "tv": TVLoss(tv_weight) if tv_weight > 0 else None},
                              pooling=pooling)
        objective.set_targets(target, [target])
        init = torch.rand(target.shape, generator=gen) if x is None else to_tensor(images.resize_to(x, size))
        x = optimize_pixels(objective, init, iterations, "lbfgs", 1.0, precision, log=log).image
    return x


def _label(tile: np.ndarray, text: str) -> Image.Image:
    img = Image.fromarray((np.clip(tile, 0, 1) * 255).astype(np.uint8))
    canvas = Image.new("RGB", (img.width, img.height + 16), "white")
    canvas.paste(img, (0, 16))
    ImageDraw.Draw(canvas).text((3, 2), text, fill="black")
    return canvas


def _fit(picture: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The centre crop of `picture` with the aspect of `shape` (h, w), resized to it."""
    h, w = picture.shape[:2]
    th, tw = shape
    if w * th > h * tw:      # too wide
        cw = max(1, round(h * tw / th))
        picture = picture[:, (w - cw) // 2:(w - cw) // 2 + cw]
    else:
        ch = max(1, round(w * th / tw))
        picture = picture[(h - ch) // 2:(h - ch) // 2 + ch]
    return images.resize_to(picture, (tw, th))


def reconstruction_grid(image: np.ndarray, layers: Sequence[str] = DEFAULT_LAYERS,
                        whats: Sequence[str] = ("content", "style"), iterations: int = ITERATIONS,
                        vgg_weights: str | None = None, precision: str = "fp32", weights=None,
                        style_image: np.ndarray | None = None, progress=None, **options) -> Image.Image:
    """Rows: content / style reconstructions; columns: layers; the original image first.
    `style_image`: the style row rebuilds this one (a painting, as in the paper), else `image`.
    `options`: tv_weight, pooling, coarse_to_fine (see reconstruct)."""
    weights = weights or load_vgg_weights(vgg_weights)
    rows = []
    for what in whats:
        source = style_image if (what == "style" and style_image is not None) else image
        source = _fit(source, image.shape[:2]) if source is not image else source
        tiles = [_label(source, "original")]
        for layer in layers:
            if progress:
                progress(f"{what} {layer}")
            tiles.append(_label(reconstruct(source, layer, what, iterations, precision=precision, weights=weights,
                                            **options), f"{what} {layer}"))
        rows.append(tiles)
    tw, th = rows[0][0].size
    grid = Image.new("RGB", (tw * len(rows[0]), th * len(rows)), "white")
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            grid.paste(tile, (c * tw, r * th))
    return grid
