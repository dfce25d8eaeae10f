"""What the loss network keeps at each depth: rebuild an image from one layer's features
(content) or one layer's Gram matrix (style), starting from noise (Gatys et al., figure 1)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw

from impasto.errors import ImpastoError
from impasto.models.losses import ContentLoss, StyleLoss
from impasto.models.objective import Objective
from impasto.models.tensors import to_tensor
from impasto.models.weights import load_vgg_weights

from .optimize import optimize_pixels

DEFAULT_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def reconstruct(image: np.ndarray, layer: str, what: str = "content", iterations: int = 200,
                vgg_weights: str | None = None, precision: str = "bf16", seed: int = 0, weights=None) -> np.ndarray:
    if what not in ("content", "style"):
        raise ImpastoError(f"--what must be content or style, not {what!r}")
    weights = weights or load_vgg_weights(vgg_weights)
    term = ContentLoss([layer]) if what == "content" else StyleLoss([layer], gram_norm="pixels")
    objective = Objective(weights, {what: term})
    target = to_tensor(image)
    objective.set_targets(target, [target])
    gen = torch.Generator().manual_seed(seed)
    init = torch.rand(target.shape, generator=gen)
    return optimize_pixels(objective, init, iterations, "lbfgs", 1.0, precision).image


def _label(tile: np.ndarray, text: str) -> Image.Image:
    img = Image.fromarray((np.clip(tile, 0, 1) * 255).astype(np.uint8))
    canvas = Image.new("RGB", (img.width, img.height + 16), "white")
    canvas.paste(img, (0, 16))
    ImageDraw.Draw(canvas).text((3, 2), text, fill="black")
    return canvas


def reconstruction_grid(image: np.ndarray, layers: Sequence[str] = DEFAULT_LAYERS,
                        whats: Sequence[str] = ("content", "style"), iterations: int = 200,
                        vgg_weights: str | None = None, precision: str = "bf16", weights=None) -> Image.Image:
    """Rows: content / style reconstructions; columns: layers; the original image first."""
    weights = weights or load_vgg_weights(vgg_weights)
    rows = []
    for what in whats:
        tiles = [_label(image, "original")]
        tiles += [_label(reconstruct(image, layer, what, iterations, precision=precision, weights=weights),
                         f"{what} {layer}") for layer in layers]
        rows.append(tiles)
    tw, th = rows[0][0].size
    grid = Image.new("RGB", (tw * len(rows[0]), th * len(rows)), "white")
    for r, tiles in enumerate(rows):
        for c, tile in enumerate(tiles):
            grid.paste(tile, (c * tw, r * th))
    return grid
