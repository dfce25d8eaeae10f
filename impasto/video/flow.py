"""Optical flow between video frames and its reliability (occlusions). numpy + OpenCV.

Conventions (all arrays HxW[xC] float32):
- `flow_back(prev, cur)` is the *backward* flow of frame t: for each pixel x of frame t, the
  displacement to where it was in frame t-1, so `warp(image_{t-1}, flow)` lines t-1 up with t.
- A reliability mask is 1 where frame t's pixel is visible in t-1 and the flow is trusted, 0
  where it is occluded (or dis-occluded), at a motion boundary, or came from outside the frame.
  Found as in Ruder, Dosovitskiy & Brox 2016 ("Artistic style transfer for videos"): the forward
  flow at the warped position must undo the backward flow,
      |f(x + b(x)) + b(x)|^2 <= 0.01 (|f(x + b(x))|^2 + |b(x)|^2) + 0.5,
  and the backward flow must be smooth there, |grad b|^2 <= 0.01 |b|^2 + 0.002.

Flow comes from OpenCV's DIS (Kroeger et al. 2016), or Farneback, on grayscale frames. Warping is
in `impasto.video.warp`, the flicker metric in `impasto.video.flicker`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import cv2
import numpy as np

from impasto.errors import ImpastoError

from .warp import grid, warp

METHODS = ("dis", "dis-fast", "farneback")


def gray(image: np.ndarray) -> np.ndarray:
    """HxWx3 float 0..1 (or uint8) -> HxW uint8 luminance, the input the flow methods take."""
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
        if threads:
            cv2.setNumThreads(int(threads))
        self.method, self.max_side = method, max_side
        if method.startswith("dis"):
            preset = cv2.DISOPTICAL_FLOW_PRESET_FAST if method == "dis-fast" else cv2.DISOPTICAL_FLOW_PRESET_MEDIUM
            self.dis = cv2.DISOpticalFlow_create(preset)

    def _calc(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        if self.method.startswith("dis"):
            return self.dis.calc(a, b, None)
        return cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 4, 15, 3, 5, 1.1, 0)

    def prepare(self, frame: np.ndarray) -> np.ndarray:
        """The frame as the flow method takes it: shrunk to the working size (before the gray
        conversion, which is then cheap), grayscale uint8. Keep it to reuse for the next pair."""
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


def reliability(backward: np.ndarray, forward: np.ndarray) -> np.ndarray:
    """1 where the backward flow of frame t is trusted, 0 at occlusions, motion boundaries and
    pixels that come from outside frame t-1 (HxW float32). See the module notes."""
    h, w = backward.shape[:2]
    xs, ys = grid(h, w)
    fwd_at = warp(forward, backward)
    fx, fy = fwd_at[..., 0], fwd_at[..., 1]
    bx, by = backward[..., 0], backward[..., 1]
    round_trip = (fx + bx) ** 2 + (fy + by) ** 2
    occluded = round_trip > 0.01 * (fx ** 2 + fy ** 2 + bx ** 2 + by ** 2) + 0.5
    gx = cv2.Sobel(backward, cv2.CV_32F, 1, 0, ksize=1)
    gy = cv2.Sobel(backward, cv2.CV_32F, 0, 1, ksize=1)
    square = gx * gx
    square += gy * gy
    # ksize=1 Sobel is a central difference x2; two channels added by hand: numpy's sum over a
    # last axis of 2 took as long as all the rest of this function at 160x120
    grad = (square[..., 0] + square[..., 1]) * 0.25
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
