"""Fast stylisation of videos with temporal smoothing. No torch: onnxruntime/OpenVINO + numpy +
OpenCV + PyAV.

Painted frame by frame, a video flickers: the network answers tiny changes between frames
(noise, a pixel of motion) with visibly different brush strokes. The smoothing follows Ruder,
Dosovitskiy & Brox (2016), applied at inference: the previous *output* frame is warped to the
current one by the input video's optical flow and blended into the fresh stylisation where the
flow is reliable (not occluded, no motion boundary),

    out_t = s_t + strength * m_t * (warp(out_{t-1}) - s_t),

so stable regions keep their strokes and newly visible regions take the fresh ones. `strength`
0 is plain per-frame output; values near 1 trail (ghost) on fast motion.

Where it loses (bench/bench_flicker.py, a pan with known motion): not in the flow (DIS is within
0.03 px of the truth there) nor in the occlusion check, but in the blend. Most of a network's
frame-to-frame change is slow and low-frequency (new content at the edges moves the instance-norm
statistics), not independent noise, and a recursive blend passes slow change through: with the
exact flow, strength 0.6 leaves 0.59x of the absolute flicker, 0.8 leaves 0.37x. Hence 0.8; the
network's own temporal training term (training/fast/temporal.py) attacks the cause. The flicker metric
(`impasto.video.flicker.temporal_error`) is measured on the way with an independent, more accurate
flow and reported for the output and, with smoothing on, for the per-frame stylisation too.
The frame loop itself is `impasto.video.frames.process_video`.
"""

from __future__ import annotations

from typing import Optional

import cv2
import numpy as np

from impasto.errors import ImpastoError
from impasto.video.flow import FlowEstimator
from impasto.video.frames import VideoResult, process_video
from impasto.video.warp import warp

from .stylize import Options, stylize_array

DEFAULT_STRENGTH = 0.8   # bench/bench_flicker.py: 0.6 leaves 0.64x of the flicker on a pan, 0.8 0.45x
SMOOTHING_FLOW = ("dis-fast", 256)   # method, working size: ~10 ms a frame pair at 512 px


class TemporalSmoother:
    """The inference-time consistency step: call with each input frame and its stylisation, in
    order; returns the frame to write. Keeps one input and one output frame between calls."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, estimator=None, feather: int = 5):
        if not (0.0 <= strength <= 1.0):
            raise ImpastoError(f"temporal strength must be between 0 and 1, not {strength}")
        self.strength = strength
        self.estimator = estimator or FlowEstimator(*SMOOTHING_FLOW)
        self.feather = feather
        self.prev_in: Optional[np.ndarray] = None    # the previous input, as the flow takes it
        self.prev_shape: Optional[tuple] = None
        self.prev_out: Optional[np.ndarray] = None
        self.reliable: list[float] = []

    def reset(self) -> None:
        self.prev_in = self.prev_out = None

    def __call__(self, frame: np.ndarray, stylised: np.ndarray) -> np.ndarray:
        out = stylised
        prepared = self.estimator.prepare(frame)
        if self.prev_in is not None and self.strength > 0 and self.prev_shape == frame.shape:
            pair = self.estimator.pair_prepared(self.prev_in, prepared, frame.shape)
            self.reliable.append(pair.reliable_fraction)
            mask = pair.mask
            if self.feather:
                # Soft edges: a hard mask would print the occlusion outline into the frame.
                mask = cv2.GaussianBlur(mask, (0, 0), self.feather / 2) * mask
            # stylised + strength * mask * (warped - stylised), in place: at 160x120 half the
            # time of cv2's three-channel merge, multiply and add, to the same bits
            out = warp(self.prev_out, pair.flow)
            out -= stylised
            out *= (mask * self.strength)[..., None]
            out += stylised
        self.prev_in, self.prev_shape, self.prev_out = prepared, frame.shape, out
        return out


def stylize_video(source, output, engine, options=None, max_side: Optional[int] = None,
                  temporal: bool = True, strength: float = DEFAULT_STRENGTH, flow_method: Optional[str] = None,
                  measure: bool = True, progress: bool = True, max_frames: Optional[int] = None,
                  on_frame=None) -> VideoResult:
    """The fast path on a video: each frame through an exported network (`engine`, from
    impasto.serve.runtime.load_engine, or any callable NCHW -> NCHW), with temporal smoothing."""
    options = options or Options()
    if not (0.0 <= strength <= 1.0):
        raise ImpastoError(f"--temporal-strength must be between 0 and 1, not {strength}")

    def paint(image: np.ndarray) -> np.ndarray:
        return stylize_array(engine, image, options)

    smoother = None
    if temporal and strength > 0:
        method, side = SMOOTHING_FLOW
        smoother = TemporalSmoother(strength, FlowEstimator(flow_method or method, side))
    return process_video(source, output, paint, max_side, smoother, measure, progress, "stylize video",
                         on_frame=on_frame, max_frames=max_frames)
