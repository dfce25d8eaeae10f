"""Iterative stylisation (Gatys et al. 2016): optimise the pixels of one image against the
perceptual objective of a frozen VGG.

`optimize_pixels` is the generic loop (any objective: the semantic modes reuse it);
`stylize` wires the classic objective, colour preservation, coarse-to-fine scales and snapshots.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

from impasto import color, images
from impasto.errors import ImpastoError
from impasto.models.losses import (GATYS_CONTENT, GATYS_STYLE, ContentLoss, HistogramLoss, MRFLoss, StyleLoss,
                                   TVLoss)
from impasto.models.objective import Objective
from impasto.models.tensors import to_array, to_tensor
from impasto.models.weights import load_vgg_weights


ObjectiveFn = Callable[[torch.Tensor], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


@dataclass
class OptimizeConfig:
    iterations: int = 300                   # per scale
    optimizer: str = "lbfgs"                # lbfgs | adam
    lr: Optional[float] = None              # default: 1.0 for L-BFGS, 0.02 for Adam
    init: str = "content"                   # content | noise | style | path to an image
    size: int = 512                         # longest side of the output
    scales: Sequence[int] = ()              # coarse-to-fine sizes, e.g. (256, 512); the last is the output
    style_scale: float = 1.0                # style image size relative to the output size
    content_weight: float = 1.0
    style_weight: float = 1e-4
    tv_weight: float = 1.0
    histogram_weight: float = 0.0
    mrf_weight: float = 0.0
    content_layers: Sequence[str] = GATYS_CONTENT
    style_layers: Sequence[str] = GATYS_STYLE
    style_layer_weights: Optional[Sequence[float]] = None
    histogram_layers: Sequence[str] = ("relu1_1", "relu4_1")
    mrf_layers: Sequence[str] = ("relu3_1", "relu4_1")
    content_normalize: str = "mean"         # mean | gatys
    gram_norm: str = "pixels"               # pixels | chw
    intensity: float = 1.0                  # scales the style Grams: >1 stronger texture
    pooling: str = "max"                    # max | avg (Gatys used avg)
    preserve_color: Optional[str] = None    # None | luminance | histogram
    precision: str = "bf16"                 # bf16 | fp32
    seed: int = 0
    snapshot_every: int = 0
    snapshot_dir: Optional[str] = None
    vgg_weights: Optional[str] = None       # path | "torchvision" | None (IMPASTO_VGG_WEIGHTS)
    vgg_arch: str = "vgg19"                 # for torchvision weights; files carry their own

    def __post_init__(self):
        if self.optimizer not in ("lbfgs", "adam"):
            raise ImpastoError(f"optimizer must be lbfgs or adam, not {self.optimizer!r}")
        if self.precision not in ("bf16", "fp32"):
            raise ImpastoError(f"precision must be bf16 or fp32, not {self.precision!r}")
        if self.preserve_color not in (None, "luminance", "histogram"):
            raise ImpastoError(f"preserve_color must be luminance or histogram, not {self.preserve_color!r}")
        if self.iterations < 0 or self.size < 16:
            raise ImpastoError("iterations must be >= 0 and size >= 16 pixels")
        for name in ("content_weight", "style_weight", "tv_weight", "histogram_weight", "mrf_weight"):
            if getattr(self, name) < 0:
                raise ImpastoError(f"{name.replace('_', '-')} must not be negative")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (1.0 if self.optimizer == "lbfgs" else 0.02)

    def sizes(self) -> list[int]:
        return [int(s) for s in self.scales] or [self.size]


@dataclass
class OptimizeResult:
    image: np.ndarray
    history: list[dict] = field(default_factory=list)   # one row per iteration: loss terms, seconds
    iterations: int = 0
    interrupted: bool = False
    seconds: float = 0.0


def build_objective(config: OptimizeConfig, weights=None) -> Objective:
    """The classic objective from a config: each term only when its weight is positive."""
    weights = weights or load_vgg_weights(config.vgg_weights, config.vgg_arch)
    c = config
    return Objective(
        weights,
        content=ContentLoss(c.content_layers, c.content_weight, c.content_normalize) if c.content_weight > 0 else None,
        style=StyleLoss(c.style_layers, c.style_weight, c.style_layer_weights, c.gram_norm, c.intensity)
        if c.style_weight > 0 else None,
        tv=TVLoss(c.tv_weight) if c.tv_weight > 0 else None,
        histogram=HistogramLoss(c.histogram_layers, c.histogram_weight) if c.histogram_weight > 0 else None,
        mrf=MRFLoss(c.mrf_layers, c.mrf_weight) if c.mrf_weight > 0 else None,
        pooling=c.pooling,
    )


class Progress:
    """A rich progress bar showing the loss terms; silent when disabled."""

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        self.bar = RichProgress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), TextColumn("{task.fields[terms]}"), transient=False)
        self.bar.start()
        self.task = self.bar.add_task(label, total=total, terms="")

    def update(self, terms: dict[str, float]) -> None:
        if self.enabled:
            text = " ".join(f"{k} {v:.3g}" for k, v in terms.items())
            self.bar.update(self.task, advance=1, terms=text)

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()


def optimize_pixels(objective: ObjectiveFn, init: torch.Tensor, iterations: int, optimizer: str = "lbfgs",
                    lr: float = 1.0, precision: str = "bf16",
                    on_step: Optional[Callable[[int, torch.Tensor, dict], None]] = None,
                    line_search: Optional[str] = None) -> OptimizeResult:
    """Minimise objective(image) over the pixels of `init`, `iterations` loss evaluations.

    bf16 autocast covers the VGG passes; losses are reduced in fp32 so L-BFGS sees exact
    numbers. Ctrl-C stops early and returns what was reached (result.interrupted).
    `line_search="strong_wolfe"` keeps L-BFGS from overshooting a warm start (video frames); the
    pixels are then clamped only at the end, since clamping inside a line search breaks it.
    """
    x = init.detach().clone().clamp_(0, 1).requires_grad_(True)
    history: list[dict] = []
    start = time.perf_counter()
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")

    def evaluate() -> torch.Tensor:
        opt.zero_grad(set_to_none=True)
        if line_search is None:
            with torch.no_grad():
                x.clamp_(0, 1)
        with autocast:
            total, terms = objective(x)
        total.backward()
        row = {k: float(v.detach()) for k, v in terms.items()}
        row["total"] = float(total.detach())
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        if not math.isfinite(row["total"]):
            raise FloatingPointError("the loss became NaN/inf; lower the learning rate or the weights")
        if on_step is not None:
            on_step(len(history), x, row)
        return total

    if optimizer == "lbfgs":
        opt = torch.optim.LBFGS([x], lr=lr, max_iter=max(iterations, 1), max_eval=max(iterations, 1),
                                tolerance_grad=1e-9, tolerance_change=1e-12, history_size=50,
                                line_search_fn=line_search)
    else:
        opt = torch.optim.Adam([x], lr=lr)
    interrupted = False
    try:
        if iterations > 0:
            if optimizer == "lbfgs":
                opt.step(evaluate)
                while len(history) < iterations:  # L-BFGS may stop early on a flat loss
                    done = len(history)
                    opt.step(evaluate)
                    if len(history) == done:
                        break
            else:
                for _ in range(iterations):
                    opt.step(evaluate)
    except KeyboardInterrupt:
        interrupted = True
    with torch.no_grad():
        x.clamp_(0, 1)
    return OptimizeResult(to_array(x), history[:iterations] if iterations else history, len(history),
                          interrupted, time.perf_counter() - start)


def initial_image(config: OptimizeConfig, content: np.ndarray, style: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    if config.init == "content":
        return images.resize_to(content, (w, h))
    if config.init == "style":
        return images.resize_to(style, (w, h))
    if config.init == "noise":
        rng = np.random.default_rng(config.seed)
        return rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    return images.resize_to(images.load(config.init), (w, h))


def _snapshot_saver(config: OptimizeConfig, scale_index: int, n_scales: int):
    if not (config.snapshot_every and config.snapshot_dir):
        return None
    folder = Path(config.snapshot_dir)
    folder.mkdir(parents=True, exist_ok=True)

    def save(step: int, x: torch.Tensor, row: dict) -> None:
        if step % config.snapshot_every == 0:
            tag = f"s{scale_index}_" if n_scales > 1 else ""
            images.save(to_array(x), folder / f"{tag}iter_{step:05d}.png")
    return save


def stylize(content: np.ndarray, styles: Sequence[np.ndarray], config: OptimizeConfig,
            style_weights: Optional[Sequence[float]] = None, progress: bool = False,
            objective: Optional[Objective] = None) -> OptimizeResult:
    """Paint `content` in the style of `styles` (RGB float arrays) by optimising its pixels."""
    if not styles:
        raise ImpastoError("at least one style image is needed")
    torch.manual_seed(config.seed)
    objective = objective or build_objective(config)
    original = content
    if config.preserve_color == "histogram":
        styles = [color.match_color_histogram(s, content) for s in styles]
    elif config.preserve_color == "luminance":
        content = color.luminance(content)
        styles = [color.luminance(s) for s in styles]

    sizes = config.sizes()
    result = None
    history: list[dict] = []
    total_seconds, total_iters = 0.0, 0
    for i, side in enumerate(sizes):
        scale_content = images.resize(content, side)
        h, w = scale_content.shape[:2]
        style_side = max(16, round(side * config.style_scale))
        scale_styles = [images.resize(s, style_side) for s in styles]
        objective.set_targets(to_tensor(scale_content), [to_tensor(s) for s in scale_styles], style_weights)
        if result is None:
            init = initial_image(config, content, styles[0], (w, h))
        else:
            init = images.resize_to(result.image, (w, h))
        bar = Progress(config.iterations, f"scale {side}px" if len(sizes) > 1 else "optimize", progress)
        saver = _snapshot_saver(config, i, len(sizes))

        def on_step(step, x, row, saver=saver):
            bar.update({k: v for k, v in row.items() if k != "seconds"})
            if saver:
                saver(step, x, row)
        try:
            result = optimize_pixels(lambda x: objective(x), to_tensor(init), config.iterations, config.optimizer,
                                     config.learning_rate, config.precision, on_step)
        finally:
            bar.close()
        history += [dict(row, scale=side) for row in result.history]
        total_seconds += result.seconds
        total_iters += result.iterations
        if result.interrupted:
            break
    image = result.image
    if config.preserve_color == "luminance":
        image = color.keep_colors(image, original)
    return OptimizeResult(image, history, total_iters, result.interrupted, total_seconds)
