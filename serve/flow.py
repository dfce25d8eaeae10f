"""Optical flow between video frames, occlusions, warping, and the flicker metric. numpy + OpenCV.

Conventions (all arrays HxW[xC] float32):
- `flow_back(prev, cur)` is the *backward* flow of frame t: for each pixel x of frame t, the
  displacement to where it was in frame t-1, so `warp(image_{t-1}, flow)` lines t-1 up with t.
- A reliability mask is 1 where frame t's pixel is visible in t-1 and the flow is trusted, 0
  where it is occluded (or dis-occluded), at a motion boundary, or came from outside the frame.
  Found as in Ruder, Dosovitskiy & Brox 2016 ("Artistic style transfer for videos"): the forward
  flow at the warped position must undo the backward flow,
      |f(x + b(x)) + b(x)|^2 <= 0.01 (|f(x + b(x))|^2 + |b(x)|^2) + 0.5,
  and the backward flow must be smooth there, |grad b|^2 <= 0.01 |b|^2 + 0.002.
- The temporal (warping) error of a sequence of outputs is the mean over consecutive pairs of
  the mean squared difference between out_t and warp(out_{t-1}), on reliable pixels only,
  with the flow of the *input* video (so it measures the output's flicker, not the scene's
  motion). 0 for a perfectly consistent video; per-frame stylisation of a still scene scores
  the noise of the network's response to tiny changes.

Flow comes from OpenCV's DIS (Kroeger et al. 2016), or Farneback, on grayscale frames.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional, Sequence

import numpy as np

from impasto.errors import ImpastoError

METHODS = ("dis", "dis-fast", "farneback")


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - a dependency
        raise ImpastoError("optical flow needs OpenCV: pip install opencv-python-headless") from None
    return cv2


def gray(image: np.ndarray) -> np.ndarray:
    """HxWx3 float 0..1 (or uint8) -> HxW uint8 luminance, the input the flow methods take."""
    cv2 = _cv2()
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)
    if image.dtype != np.uint8:
        image = cv2.convertScaleAbs(image, alpha=255.0)  # rounds and saturates to 0..255
    return image


class FlowEstimator:
    """Dense optical flow between two grayscale frames, `method` one of METHODS.

    `max_side` computes the flow on frames shrunk to that longest side and scales it back up
    (flow is smooth, so this loses little and saves most of the time on big frames).
    """

    def __init__(self, method: str = "dis", max_side: Optional[int] = None, threads: Optional[int] = None):
        if method not in METHODS:
            raise ImpastoError(f"unknown flow method {method!r}; choose from {', '.join(METHODS)}")
        cv2 = _cv2()
        if threads:
            cv2.setNumThreads(int(threads))
        self.method, self.max_side = method, max_side
        if method.startswith("dis"):
            preset = cv2.DISOPTICAL_FLOW_PRESET_FAST if method == "dis-fast" else cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
            self.dis = cv2.DISOpticalFlow_create(preset)

    def _calc(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.method.startswith("dis"):
            return self.dis.calc(a, b, None)
        return _cv2().calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.1, 0)

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """The frame as the flow method takes it: shrunk to the working size (before the gray
        conversion, which is then cheap), grayscale uint8. Keep it to reuse for the next pair."""
        cv2 = _cv2()
        h, w = frame.shape[:2]
        if self.max_side and max(h, w) > self.max_side:
            scale = self.max_side / max(h, w)
            size = (max(8, round(w * scale)), max(8, round(h * scale)))
            frame = cv2.resize(np.ascontiguousarray(frame), size, interpolation=cv2.INTER_AREA)
        return gray(frame)

    def _shrink(self, *frames: np.ndarray) -> tuple[list[np.ndarray], float]:
        grays = [self.prepare(f) for f in frames]
        return grays, grays[0].shape[0] / frames[0].shape[0]

    @staticmethod
    def _grow(field: np.ndarray, h: int, w: int, is_flow: bool) -> np.ndarray:
        cv2 = _cv2()
        sh, sw = field.shape[:2]
        if (sh, sw) == (h, w):
            return field
        out = cv2.resize(field, (w, h), interpolation=cv2.INTER_LINEAR)
        if is_flow:
            out[..., 0] *= w / sw
            out[..., 1] *= h / sh
        return out

    def __call__(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Flow f with a(x) ~ b(x + f(x)), HxWx2 float32 (dx, dy) in pixels of a."""
        h, w = a.shape[:2]
        (sa, sb), _ = self._shrink(a, b)
        return self._grow(self._calc(sa, sb), h, w, True).astype(np.float32, copy=False)

    def pair(self, prev: np.ndarray, cur: np.ndarray) -> "FlowPair":
        """Backward flow of `cur` and its reliability (forward-backward check), both computed at
        the estimator's working size and scaled up to the frame's."""
        return self.pair_prepared(self.prepare(prev), self.prepare(cur), cur.shape[:2])

    def pair_prepared(self, gp: np.ndarray, gc: np.ndarray, shape: tuple[int, int]) -> "FlowPair":
        """`pair` on frames already through `prepare`; `shape` is the full frame's (h, w)."""
        h, w = shape[:2]
        backward = self._calc(gc, gp)
        forward = self._calc(gp, gc)
        mask = reliability(backward, forward)
        return FlowPair(self._grow(backward, h, w, True).astype(np.float32, copy=False),
                        (self._grow(mask, h, w, False) > 0.5).astype(np.float32))


_GRIDS: dict = {}


def _grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    key = (h, w)
    if key not in _GRIDS:
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        _GRIDS[key] = (xs, ys)
    return _GRIDS[key]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `image` at x + flow(x) (bilinear, edges replicated): with a backward flow of frame
    t this moves frame t-1's content to where it is in frame t."""
    cv2 = _cv2()
    h, w = flow.shape[:2]
    xs, ys = _grid(h, w)
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), xs + flow[..., 0], ys + flow[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)


def reliability(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """1 where the backward flow of frame t is trusted, 0 at occlusions, motion boundaries and
    pixels that come from outside frame t-1 (HxW float32). See the module notes."""
    cv2 = _cv2()
    h, w = backward.shape[:2]
    xs, ys = _grid(h, w)
    fwd_at = warp(forward, backward)
    fx, fy = fwd_at[..., 0], fwd_at[..., 1]
    bx, by = backward[..., 0], backward[..., 1]
    round_trip = (fx + bx) ** 2 + (fy + by) ** 2
    occluded = round_trip > 0.01 * (fx ** 2 + fy ** 2 + bx ** 2 + by ** 2) + 0.5
    gx = cv2.Sobel(backward, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(backward, cv2.CV_32F, 0, 1, ksize=1)
    grad = (gx ** 2 + gy ** 2).sum(axis=2) * 0.25   # ksize=1 Sobel is a central difference x2
    boundary = grad > 0.01 * (bx ** 2 + by ** 2) + 0.002
    px, py = xs + bx, ys + by
    outside = (px < 0) | (px > w - 1) | (py < 0) | (py > h - 1)
    return (~(occluded | boundary | outside)).astype(np.float32)


@dataclass
class FlowPair:
    """What links frame t to t-1: the backward flow and its reliability mask."""
    flow: np.ndarray
    mask: np.ndarray

    @property
    def reliable_fraction(self) -> float:
        return float(self.mask.mean())


def flow_pair(prev: np.ndarray, cur: np.ndarray, estimator: Optional[FlowEstimator] = None) -> FlowPair:
    """Backward flow of `cur` and its reliability, from the forward-backward check."""
    return (estimator or FlowEstimator()).pair(prev, cur)


def pair_error(prev_out: np.ndarray, out: np.ndarray, pair: FlowPair) -> float:
    """Mean squared difference between `out` and `prev_out` warped to it, on reliable pixels."""
    diff = (out.astype(np.float32) - warp(prev_out, pair.flow)) ** 2
    weight = pair.mask[..., None] if diff.ndim == 3 else pair.mask
    total = float(weight.sum()) * (diff.shape[2] if diff.ndim == 3 else 1)
    if total == 0:
        return 0.0
    return float((diff * weight).sum() / total)


def temporal_error(frames: Sequence[np.ndarray], flows: Optional[Sequence] = None,
                   occlusions: Optional[Sequence[np.ndarray]] = None,
                   inputs: Optional[Sequence[np.ndarray]] = None,
                   estimator: Optional[FlowEstimator] = None) -> float:
    """The flicker metric: mean temporal warping error of consecutive `frames` (outputs).

    The flow linking frame i to i-1 (i = 1..n-1) is given either as `flows` (n-1 FlowPairs, or
    n-1 backward flow arrays with `occlusions` = n-1 reliability masks, 1 = reliable), or computed
    from `inputs` (the input video's frames, same size as the outputs). Lower is steadier.
    """
    frames = list(frames)
    if len(frames) < 2:
        return 0.0
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
    return float(np.mean([pair_error(frames[i - 1], frames[i], pairs[i - 1]) for i in range(1, len(frames))]))


class FlickerMeter:
    """The flicker metric accumulated frame by frame (bounded memory): feed each output frame
    with the FlowPair that links its input to the previous input (None for the first)."""

    def __init__(self):
        self.errors: list[float] = []
        self.prev: Optional[np.ndarray] = None

    def add(self, out: np.ndarray, pair: Optional[FlowPair]) -> None:
        if self.prev is not None and pair is not None:
            self.errors.append(pair_error(self.prev, out, pair))
        self.prev = out

    @property
    def value(self) -> float:
        return float(np.mean(self.errors)) if self.errors else 0.0


def video_temporal_error(inputs: Iterable[np.ndarray], outputs: Iterable[np.ndarray],
                         estimator: Optional[FlowEstimator] = None) -> float:
    """The flicker metric of an output video against its input video, streamed: both iterables
    yield frames in order (e.g. impasto.video.read_frames); inputs are resized to the outputs'
    size when they differ. For `impasto compare` and benchmarks."""
    cv2 = _cv2()
    estimator = estimator or FlowEstimator()
    meter = FlickerMeter()
    prev_in = None
    n_in = n_out = 0
    for frame_in, frame_out in zip(inputs, outputs):
        n_in += 1
        n_out += 1
        if frame_in.shape[:2] != frame_out.shape[:2]:
            frame_in = cv2.resize(frame_in, (frame_out.shape[1], frame_out.shape[0]), interpolation=cv2.INTER_AREA)
        pair = flow_pair(prev_in, frame_in, estimator) if prev_in is not None else None
        meter.add(frame_out, pair)
        prev_in = frame_in
    return meter.value
