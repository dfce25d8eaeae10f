"""Iterative stylisation of a video with temporal consistency (Ruder, Dosovitskiy & Brox 2016).

Each frame is optimised like a photo (the Gatys objective of impasto.training.iterative.optimize), with
two changes that carry the previous frame's result forward:

1. *initialisation*: frame t starts from frame t-1's result warped to t by the input video's
   optical flow (the fresh content frame where the flow is unreliable), so the optimiser settles
   in the same optimum instead of a new one each frame;
2. a *temporal loss*, w * mean(m * (x - warp(out_{t-1}))^2), that pulls the frame toward the warped
   previous result on pixels the flow marks reliable (m: forward-backward consistency; occluded
   and newly visible regions are left to the style and content terms).

The first frame gets more iterations (it starts from the content); later frames need fewer.
Frames stream in and out (impasto.video): memory holds one frame and the previous result.
`--no-temporal` optimises each frame on its own, for comparison (it flickers).
"""

from __future__ import annotations

from typing import Callable, Optional, Sequence

import numpy as np
import torch

from impasto import color, images
from impasto.errors import ImpastoError
from impasto.models.tensors import to_tensor
from impasto.video.flow import FlowEstimator
from impasto.video.frames import VideoResult, process_video
from impasto.video.warp import warp

from .optimize import OptimizeConfig, build_objective, initial_image, optimize_pixels

# Temporal weight per unit of content weight. The temporal term is a mean squared pixel
# difference (0..1 scale), the content term a mean squared VGG activation difference, which is
# about 1e2..1e4 times larger for the same visual change; 200 ties reliable pixels firmly to the
# warped previous frame without freezing newly visible content (Ruder et al. used 2e2 as well,
# against a content weight of 1 with their normalisation).
DEFAULT_TEMPORAL_PER_CONTENT = 200.0


class TemporalLoss(torch.nn.Module):
    """w * mean over pixels of mask * (x - target)^2; target and mask are fixed per frame."""

    layers = ()
    on_pixels = True

    def __init__(self, weight: float):
        super().__init__()
        self.weight = weight
        self.target: Optional[torch.Tensor] = None
        self.mask: Optional[torch.Tensor] = None

    def set_target(self, target: np.ndarray, mask: np.ndarray) -> None:
        self.target = to_tensor(target)
        self.mask = torch.from_numpy(np.ascontiguousarray(mask, dtype=np.float32))[None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        diff = (x.float() - self.target) ** 2 * self.mask
        return self.weight * diff.mean()


def optimize_frame(objective, init: torch.Tensor, iterations: int, optimizer: str, lr: float, precision: str,
                   on_step=None):
    """One frame's optimisation: the shared loop, with a strong-Wolfe line search for L-BFGS.
    Without one the third loss evaluation overshoots by 10-20x (2.3e3 -> 3e4 measured on a 64 px
    frame), which throws the warm start from the previous frame away and costs the temporal
    consistency most of its effect (flicker 0.036 instead of 0.0025 on the test clip at 10
    iterations a frame). `iterations` counts loss evaluations, as in optimize_pixels."""
    return optimize_pixels(objective, init, iterations, optimizer, lr, precision, on_step,
                           line_search="strong_wolfe" if optimizer == "lbfgs" else None)


class FramePainter:
    """Stateful painter for process_video: optimises each frame, carrying the previous result."""

    def __init__(self, styles: Sequence[np.ndarray], config: OptimizeConfig,
                 style_weights: Optional[Sequence[float]] = None, temporal: bool = True,
                 temporal_weight: Optional[float] = None, first_iterations: Optional[int] = None,
                 flow_method: str = "dis", objective=None):
        """`objective`: an Objective with its style targets already set (e.g. a fast model's
        training objective, for `impasto compare`); default: built from `config` and `styles`."""
        if not styles:
            raise ImpastoError("at least one style image is needed")
        if temporal_weight is not None and temporal_weight < 0:
            raise ImpastoError("the temporal weight must not be negative")
        self.config = config
        self.temporal = temporal
        self.weight = (temporal_weight if temporal_weight is not None
                       else DEFAULT_TEMPORAL_PER_CONTENT * max(config.content_weight, 1e-3))
        self.first_iterations = first_iterations if first_iterations is not None else 2 * config.iterations
        torch.manual_seed(config.seed)
        self.objective = objective if objective is not None else build_objective(config)
        self.temporal_loss = TemporalLoss(self.weight)
        self.temporal_objective = self.objective.with_terms(temporal=self.temporal_loss)
        self.styles = list(styles)
        self.style_weights = style_weights
        self.estimator = FlowEstimator(flow_method)
        self.prev_in: Optional[np.ndarray] = None
        self.prev_out: Optional[np.ndarray] = None
        self.targets_set = objective is not None
        self.index = 0
        self.last_terms: dict = {}
        self.interrupted = False
        self.report_status: Optional[Callable[[str], None]] = None   # set by process_video

    def _set_style(self, frame: np.ndarray) -> None:
        c = self.config
        styles = self.styles
        if c.preserve_color == "histogram":
            styles = [color.match_color_histogram(s, frame) for s in styles]
        elif c.preserve_color == "luminance":
            styles = [color.luminance(s) for s in styles]
        side = max(16, round(max(frame.shape[:2]) * c.style_scale))
        self.objective.set_targets(None, [to_tensor(images.resize(s, side)) for s in styles], self.style_weights)
        self.targets_set = True

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        c = self.config
        if not self.targets_set:
            self._set_style(frame)
        content = color.luminance(frame) if c.preserve_color == "luminance" else frame
        self.objective.set_targets(to_tensor(content))
        h, w = frame.shape[:2]
        use_prev = self.temporal and self.prev_out is not None
        if use_prev:
            pair = self.estimator.pair(self.prev_in, frame)
            warped = warp(self.prev_out, pair.flow)
            m = pair.mask[..., None]
            init = m * warped + (1 - m) * content
            iterations = c.iterations
            self.temporal_loss.set_target(warped, pair.mask)
            objective = self.temporal_objective
        else:
            init = initial_image(c, content, self.styles[0], (w, h))
            iterations = self.first_iterations if self.index == 0 else c.iterations
            objective = self.objective

        def on_step(step, x, row, n=iterations):
            if self.report_status is not None:
                self.report_status(f"iteration {step}/{n} loss {row['total']:.4g}")
        result = optimize_frame(objective, to_tensor(init), iterations, c.optimizer, c.learning_rate, c.precision,
                                on_step)
        self.interrupted = result.interrupted
        if result.history:
            self.last_terms = {k: v for k, v in result.history[-1].items() if k != "seconds"}
        out = result.image
        if c.preserve_color == "luminance":
            out = color.keep_colors(out, frame)
        self.prev_in, self.prev_out = frame, out
        self.index += 1
        if result.interrupted:
            raise KeyboardInterrupt
        return out


def stylize_video(source, output, styles: Sequence[np.ndarray], config: OptimizeConfig,
                  style_weights: Optional[Sequence[float]] = None, temporal: bool = True,
                  temporal_weight: Optional[float] = None, first_iterations: Optional[int] = None,
                  flow_method: Optional[str] = None, measure: bool = True,
                  progress: bool = True, max_frames: Optional[int] = None, objective=None,
                  on_frame=None) -> VideoResult:
    """Optimise every frame of `source` (longest side config.size) into `output`."""
    painter = FramePainter(styles, config, style_weights, temporal, temporal_weight, first_iterations,
                           flow_method or "dis", objective)
    return process_video(source, output, painter, max_side=config.sizes()[-1], smoother=None, measure=measure,
                         progress=progress, label="optimize video", on_frame=on_frame, max_frames=max_frames)
