"""Iterative stylisation (Gatys et al. 2016): optimise the pixels of one image against the
perceptual objective of a frozen VGG.

`optimize_pixels` is the generic loop (any objective: the semantic modes reuse it);
`stylize` wires the classic objective, colour preservation, coarse-to-fine scales and snapshots.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn, TimeRemainingColumn

from impasto import color, images
from impasto.errors import ImpastoError
from impasto.hardware import auto_precision
from impasto.models.losses import (GATYS_CONTENT, GATYS_STYLE, ContentLoss, HistogramLoss, MRFLoss,
                                   SlicedWassersteinLoss, StyleLoss, TVLoss, gram_pyramid)
from impasto.models.objective import Objective
from impasto.models.tensors import to_array, to_tensor
from impasto.models.weights import load_vgg_weights


ObjectiveFn = Callable[[torch.Tensor], "tuple[torch.Tensor, dict[str, torch.Tensor]]"]


# Loss scales (issue 14). "mean" (the default): every term is a mean (content: MSE of the
# activations; style: MSE of the Gram entries; TV: mean squared neighbour difference; histogram:
# MSE to the remapped activations), so a weight means the same at any image size. "paper": the
# sums as Gatys et al. / Johnson et al. / Risser et al. write them: content sum/(2 N D), style
# sum over the Gram entries/(2 N^2), TV the sum over pixels of squared neighbour differences (its
# effect grows with the pixel count), histogram sum/(2 N^2 D) (normalised like the Gram term), so
# that the classic sweeps (TV 0, 0.001, 0.01; histogram 0, 100, 500) mean what they meant there.
LOSS_SCALES = ("mean", "paper")
DEFAULT_TV_WEIGHT = {"mean": 1.0, "paper": 2e-6}   # paper: a sum; at 512 px ~ mean 1

# Gram matrices normalised by C*H*W are C times smaller than by H*W, their squared error C^2
# times; over the Gatys layers (C = 64..512) the style term comes out ~1e4 times smaller at the
# same weight (measured on 4 photos x 4 styles: 7.8e3..1.2e4), which gave back the photo. The
# chw style term is multiplied by this, so --style-weight means the same balance under both
# normalisations (chw still weighs the deep, wide layers less).
CHW_BALANCE = 1e4


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
    style_weight: float = 1e-4              # the same balance under both --gram-norm (CHW_BALANCE)
    tv_weight: Optional[float] = None       # default: 1 (loss_scale mean), 2e-6 (paper: a sum)
    histogram_weight: float = 0.0
    mrf_weight: float = 0.0
    swd_weight: float = 0.0                 # sliced Wasserstein term, on the style layers
    content_layers: Sequence[str] = GATYS_CONTENT
    style_layers: Sequence[str] = GATYS_STYLE
    style_layer_weights: Optional[Sequence[float]] = None
    histogram_layers: Sequence[str] = ("relu1_1", "relu4_1")
    mrf_layers: Sequence[str] = ("relu3_1", "relu4_1")
    content_normalize: str = "mean"         # mean | gatys
    gram_norm: str = "pixels"               # pixels | chw
    loss_scale: str = "mean"                # mean | paper (see LOSS_SCALES)
    intensity: float = 1.0                  # scales the style Grams: >1 stronger texture
    style_pyramid: int = 1                  # the Gram term also on the images pooled by 2, 4, ... (levels)
    pooling: str = "max"                    # max | avg (Gatys used avg)
    preserve_color: Optional[str] = None    # None | luminance | histogram
    precision: str = field(default_factory=auto_precision)  # bf16 | fp32 (auto: bf16 where the CPU has bf16 units)
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
        if self.loss_scale not in LOSS_SCALES:
            raise ImpastoError(f"loss scale must be one of {', '.join(LOSS_SCALES)}, not {self.loss_scale!r}")
        if self.tv_weight is None:
            self.tv_weight = DEFAULT_TV_WEIGHT[self.loss_scale]
        if self.style_pyramid < 1:
            raise ImpastoError(f"style pyramid counts levels, 1 or more; got {self.style_pyramid}")
        if self.iterations < 0 or self.size < 16:
            raise ImpastoError("iterations must be >= 0 and size >= 16 pixels")
        for name in ("content_weight", "style_weight", "tv_weight", "histogram_weight", "mrf_weight",
                     "swd_weight"):
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
    final: dict = field(default_factory=dict)            # the terms of the returned (best) image
    backoffs: int = 0                                     # times the guard restored the best image


def build_objective(config: OptimizeConfig, weights=None) -> Objective:
    """The classic objective from a config: each term only when its weight is positive."""
    weights = weights or load_vgg_weights(config.vgg_weights, config.vgg_arch)
    c = config
    paper = c.loss_scale == "paper"
    style_weight = c.style_weight * (CHW_BALANCE if c.gram_norm == "chw" else 1.0)
    level = lambda scale: StyleLoss(c.style_layers, style_weight, c.style_layer_weights, c.gram_norm,
                                    c.intensity, "paper" if paper else "mean", scale=scale)
    return Objective(
        weights,
        content=ContentLoss(c.content_layers, c.content_weight, "gatys" if paper else c.content_normalize)
        if c.content_weight > 0 else None,
        **(gram_pyramid(level, c.style_pyramid) if c.style_weight > 0 else {}),
        tv=TVLoss(c.tv_weight, "sum" if paper else "mean") if c.tv_weight > 0 else None,
        histogram=HistogramLoss(c.histogram_layers, c.histogram_weight, reduction="paper" if paper else "mean")
        if c.histogram_weight > 0 else None,
        mrf=MRFLoss(c.mrf_layers, c.mrf_weight) if c.mrf_weight > 0 else None,
        # fixed directions: L-BFGS's line search needs the same function at every call
        swd=SlicedWassersteinLoss(c.style_layers, c.swd_weight, fresh=False, seed=c.seed)
        if c.swd_weight > 0 else None,
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


# The guard of optimize_pixels: a loss above the best image's by more than this fraction
# (fixed-step L-BFGS, Adam), or this many such evaluations in a row (L-BFGS with a line search,
# whose trial points may legitimately overshoot), restores the best image, resets the
# optimiser's history and halves the step.
RISE_TOLERANCE = 0.1
STALL_EVALUATIONS = 12
MAX_BACKOFFS = 6


class _BackOff(Exception):
    """Raised inside the loss closure to leave the optimiser's step when the loss rises."""


class _Clamp01(torch.autograd.Function):
    """clamp(x, 0, 1) whose gradient also flows at the bounds themselves (torch's clamp gives 0
    there, which froze every saturated pixel of a photo: its exact 0s and 1s)."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad * ((x >= 0) & (x <= 1)).to(grad.dtype)


def box_penalty(x: torch.Tensor) -> torch.Tensor:
    """Squared distance of the pixels outside [0, 1] to the box, summed: it pulls pixels that a
    step pushed out of range back in (the objective sees the clamped image, so it gives them no
    gradient), and keeps the objective a fixed function of the pixels, as a line search needs."""
    return (x - x.clamp(0, 1)).pow(2).sum()


def optimize_pixels(objective: ObjectiveFn, init: torch.Tensor, iterations: int, optimizer: str = "lbfgs",
                    lr: float = 1.0, precision: str = "auto",
                    on_step: Optional[Callable[[int, torch.Tensor, dict], None]] = None,
                    line_search: Optional[str] = "strong_wolfe",
                    log: Optional[Callable[[str], None]] = None) -> OptimizeResult:
    """Minimise objective(image) over the pixels of `init`, `iterations` loss evaluations.

    Robust by construction (issue 14), at any objective scale and precision:
    - L-BFGS runs with a strong-Wolfe line search by default: the step adapts to the objective
      (a fixed step of 1 under bf16 overshot to colour noise). `line_search=None` gives the
      classic fixed step `lr`.
    - The optimiser's state (pixels, gradients, L-BFGS history) is fp32; bf16 autocast covers only
      the VGG passes, and the losses are reduced in fp32.
    - The objective sees the pixels clamped to [0, 1], plus a penalty on the part outside, so the
      function the optimiser minimises is the one of the image it returns.
    - A guard keeps the best image seen; when the loss rises (see RISE_TOLERANCE) it restores
      that image, resets the optimiser's history, halves the step and says so through `log`
      (default: standard error). The result is always the best image seen; its terms are
      `result.final`, and `result.backoffs` counts the back-offs.
    Ctrl-C stops early and returns what was reached (result.interrupted).
    """
    log = log if log is not None else (lambda m: print(m, file=sys.stderr))
    x = init.detach().float().clone().clamp_(0, 1).requires_grad_(True)
    history: list[dict] = []
    start = time.perf_counter()
    precision = auto_precision(precision)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")
    penalty_weight = None     # set from the first loss: the box penalty on the objective's scale
    # the best image by its own loss (`total`, of the clamped pixels: what the caller gets); rises
    # are judged on what the optimiser minimises (`f`: total + box penalty)
    best = {"total": math.inf, "f": math.inf, "x": x.detach().clone(), "row": None, "since": 0}
    state = {"lr": lr, "mode": "fixed" if (optimizer != "lbfgs" or line_search is None) else "search"}

    def evaluate() -> torch.Tensor:
        nonlocal penalty_weight
        if len(history) >= iterations:      # the budget is spent inside a line search: stop it
            raise _BackOff("budget")
        opt.zero_grad(set_to_none=True)
        with autocast:
            total, terms = objective(_Clamp01.apply(x))
        total = total.float()
        if penalty_weight is None:
            penalty_weight = max(float(total.detach()), 1e-12) * 100.0 / x.numel()
        f = total + penalty_weight * box_penalty(x)
        f.backward()
        row = {k: float(v.detach()) for k, v in terms.items()}
        row["total"] = float(total.detach())
        row["seconds"] = time.perf_counter() - start
        history.append(row)
        value = float(f.detach())
        if not math.isfinite(value):
            raise FloatingPointError("the loss became NaN/inf; lower the weights")
        rose = value > best["f"] * (1 + RISE_TOLERANCE) + 1e-12
        best["f"] = min(best["f"], value)
        if row["total"] < best["total"]:
            best.update(total=row["total"], row=row)
            best["x"].copy_(x.detach())
        best["since"] = best["since"] + 1 if rose else 0
        row["best"] = best["row"]["total"]
        if on_step is not None:
            on_step(len(history), x, row)
        if state["mode"] == "fixed" and rose:
            raise _BackOff(f"loss rose to {value:.4g} from a best of {best['f']:.4g}")
        if state["mode"] == "search" and best["since"] >= STALL_EVALUATIONS:
            raise _BackOff(f"the line search found only higher losses for {STALL_EVALUATIONS} evaluations "
                           f"(best {best['f']:.4g})")
        return f

    def make_optimizer():
        if optimizer == "lbfgs":
            n = max(iterations, 1)
            return torch.optim.LBFGS([x], lr=state["lr"], max_iter=n, max_eval=2 * n, tolerance_grad=1e-9,
                                     tolerance_change=1e-12, history_size=50, line_search_fn=line_search)
        return torch.optim.Adam([x], lr=state["lr"])

    opt = make_optimizer()
    interrupted = False
    backoffs = 0
    try:
        while len(history) < iterations:
            done = len(history)
            try:
                opt.step(evaluate)     # L-BFGS: many evaluations; Adam: one
            except _BackOff as why:
                if len(history) >= iterations:
                    break
                backoffs += 1
                with torch.no_grad():
                    x.copy_(best["x"])
                state["lr"] *= 0.5
                log(f"impasto: {why}; back to the best image, optimiser history reset, "
                    f"step {state['lr'] * 2:.3g} -> {state['lr']:.3g}")
                best["since"], best["f"] = 0, math.inf    # the restored image sets the new reference
                if backoffs >= MAX_BACKOFFS:
                    log("impasto: the loss keeps rising; stopping at the best image")
                    break
                opt = make_optimizer()
                continue
            if optimizer == "lbfgs" and len(history) == done:    # L-BFGS stopped on a flat loss
                break
    except KeyboardInterrupt:
        interrupted = True
    with torch.no_grad():
        if best["row"] is not None:
            x.copy_(best["x"])
        x.clamp_(0, 1)
    result = OptimizeResult(to_array(x), history[:iterations] if iterations else history, len(history),
                            interrupted, time.perf_counter() - start)
    result.final = best["row"] or {}
    result.backoffs = backoffs
    return result


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
    total_seconds, total_iters, backoffs = 0.0, 0, 0
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
        backoffs += result.backoffs
        total_seconds += result.seconds
        total_iters += result.iterations
        if result.interrupted:
            break
    image = result.image
    if config.preserve_color == "luminance":
        image = color.keep_colors(image, original)
    return OptimizeResult(image, history, total_iters, result.interrupted, total_seconds, result.final, backoffs)
