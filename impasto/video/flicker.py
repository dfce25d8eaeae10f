"""The flicker metric: the temporal warping error of a sequence of output frames, two ways.

For each consecutive pair, the difference between out_t and warp(out_{t-1}) on reliable pixels
only, with the flow of the *input* video (so it measures the output's flicker, not the scene's
motion), averaged over the pairs, in 0-255 levels:
- `abs`, the mean absolute difference: what a viewer sees, in grey levels;
- `sq`, the mean squared difference (the warping error of Lai et al. 2018). It weighs big jumps
  more, so it flatters a smoother that turns a few large changes into many small ones.
0 for a perfectly consistent video; per-frame stylisation of a still scene scores the noise of the
network's response to tiny changes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import cv2
import numpy as np

from impasto.errors import ImpastoError

from .flow import FlowEstimator, FlowPair, flow_pair
from .warp import warp

METRIC_FLOW = ("dis", None)          # the flicker metric: full-size DIS, independent of smoothing


LEVELS = 255.0                       # flicker is reported in 0-255 grey levels


@dataclass(frozen=True)
class Flicker:
    """Flicker both ways, in 0-255 levels: mean absolute and mean squared difference."""
    abs: float
    sq: float

    def __str__(self) -> str:
        return f"{self.abs:.3g} abs, {self.sq:.3g} squared"

    def times(self, other: "Flicker") -> str:
        """How many times `other` is this, both ways: "2.6x abs, 7.1x squared"."""
        return f"{_ratio(other.abs, self.abs)} abs, {_ratio(other.sq, self.sq)} squared"

    @staticmethod
    def mean(values: Sequence["Flicker"]) -> "Flicker":
        if not values:
            return Flicker(0.0, 0.0)
        return Flicker(float(np.mean([v.abs for v in values])), float(np.mean([v.sq for v in values])))


def _ratio(a: float, b: float) -> str:
    return f"{a / b:.2g}x" if b > 0 else "-"


def pair_error(prev_out: np.ndarray, out: np.ndarray, pair: FlowPair,
               region: Optional[np.ndarray] = None) -> Flicker:
    """The difference between `out` and `prev_out` warped to it, on reliable pixels (and inside
    `region`, an HxW bool, when given)."""
    diff = np.abs(out.astype(np.float32) - warp(prev_out, pair.flow)) * LEVELS
    weight = pair.mask if region is None else pair.mask * region
    if diff.ndim == 3:
        weight = weight[..., None]
    total = float(weight.sum()) * (diff.shape[2] if diff.ndim == 3 else 1)
    if total == 0:
        return Flicker(0.0, 0.0)
    return Flicker(float((diff * weight).sum() / total), float((diff * diff * weight).sum() / total))


def temporal_error(frames: Sequence[np.ndarray], flows: Optional[Sequence] = None,
                   occlusions: Optional[Sequence[np.ndarray]] = None,
                   inputs: Optional[Sequence[np.ndarray]] = None,
                   estimator: Optional[FlowEstimator] = None,
                   regions: Optional[Sequence[np.ndarray]] = None) -> Flicker:
    """The flicker metric: mean temporal warping error of consecutive `frames` (outputs).

    The flow linking frame i to i-1 (i = 1..n-1) is given either as `flows` (n-1 FlowPairs, or
    n-1 backward flow arrays with `occlusions` = n-1 reliability masks, 1 = reliable), or computed
    from `inputs` (the input video's frames, same size as the outputs). `regions` (n-1 HxW bool
    masks) limits each pair to a region. Lower is steadier.
    """
    frames = list(frames)
    if len(frames) < 2:
        return Flicker(0.0, 0.0)
    if flows is None:
        if inputs is None:
            raise ImpastoError("temporal_error needs the flows or the input frames")
        inputs = list(inputs)
        if len(inputs) != len(frames):
            raise ImpastoError(f"{len(inputs)} input frames for {len(frames)} output frames")
        estimator = estimator or FlowEstimator()
        pairs = [flow_pair(inputs[i - 1], inputs[i], estimator) for i in range(1, len(inputs))]
    else:
        flows = list(flows)
        if len(flows) != len(frames) - 1:
            raise ImpastoError(f"{len(flows)} flows for {len(frames)} frames; need one per consecutive pair")
        if flows and isinstance(flows[0], FlowPair):
            pairs = flows
        else:
            masks = list(occlusions) if occlusions is not None else [np.ones(f.shape[:2], np.float32) for f in flows]
            pairs = [FlowPair(np.asarray(f, np.float32), np.asarray(m, np.float32)) for f, m in zip(flows, masks)]
    regions = list(regions) if regions is not None else [None] * len(pairs)
    return Flicker.mean([pair_error(frames[i - 1], frames[i], pairs[i - 1], regions[i - 1])
                         for i in range(1, len(frames))])


class FlickerMeter:
    """The flicker metric accumulated frame by frame (bounded memory): feed each output frame
    with the FlowPair that links its input to the previous input (None for the first)."""

    def __init__(self):
        self.errors: list[Flicker] = []
        self.prev: Optional[np.ndarray] = None

    def add(self, out: np.ndarray, pair: Optional[FlowPair]) -> None:
        if self.prev is not None and pair is not None:
            self.errors.append(pair_error(self.prev, out, pair))
        self.prev = out

    @property
    def value(self) -> Flicker:
        return Flicker.mean(self.errors)


def video_temporal_error(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray],
                         estimator: Optional[FlowEstimator] = None) -> Flicker:
    """The flicker metric of an output video against its input video, streamed: both iterables
    yield frames in order (e.g. impasto.video.read_frames); inputs are resized to the outputs'
    size when they differ. For `impasto compare` and benchmarks."""
    estimator = estimator or FlowEstimator()
    meter = FlickerMeter()
    prev_in = None
    for frame_in, frame_out in zip(inputs, outputs):
        if frame_in.shape[:2] != frame_out.shape[:2]:
            frame_in = cv2.resize(frame_in, (frame_out.shape[1], frame_out.shape[0]), interpolation=cv2.INTER_AREA)
        pair = flow_pair(prev_in, frame_in, estimator) if prev_in is not None else None
        meter.add(frame_out, pair)
        prev_in = frame_in
    return meter.value


class FlickerTracker:
    """Measures the flicker of the written frames (and of the per-frame stylisation, when the
    two differ) with an independent full-size flow; its time is kept apart from the work's."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self.seconds = 0.0
        if enabled:
            self.estimator = FlowEstimator(*METRIC_FLOW)
            self.out, self.raw = FlickerMeter(), FlickerMeter()
            self.prev_in = None

    def add(self, frame: np.ndarray, out: np.ndarray, raw: Optional[np.ndarray] = None) -> None:
        if not self.enabled:
            return
        t = time.perf_counter()
        pair = self.estimator.pair(self.prev_in, frame) if self.prev_in is not None else None
        self.out.add(out, pair)
        if raw is not None:
            self.raw.add(raw, pair)
        self.prev_in = frame
        self.seconds += time.perf_counter() - t

    @property
    def flicker(self) -> Optional[Flicker]:
        return self.out.value if self.enabled and self.out.errors else None

    @property
    def flicker_raw(self) -> Optional[Flicker]:
        return self.raw.value if self.enabled and self.raw.errors else None
