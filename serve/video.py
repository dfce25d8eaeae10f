"""Fast stylisation of videos with temporal smoothing. No torch: onnxruntime/OpenVINO + numpy +
OpenCV + PyAV.

Painted frame by frame, a video flickers: the network answers tiny changes between frames
(noise, a pixel of motion) with visibly different brush strokes. The smoothing follows Ruder,
Dosovitskiy & Brox (2016), applied at inference: the previous *output* frame is warped to the
current one by the input video's optical flow and blended into the fresh stylisation where the
flow is reliable (not occluded, no motion boundary),

    out_t = s_t + strength * m_t * (warp(out_{t-1}) - s_t),

so stable regions keep their strokes and newly visible regions take the fresh ones. `strength`
0 is plain per-frame output; values near 1 trail (ghost) on fast motion. The flicker metric
(`impasto.serve.flow.temporal_error`) is measured on the way with an independent, more accurate
flow and reported for the output and, with smoothing on, for the per-frame stylisation too.

Frames stream from the reader to the writer: memory holds a handful of frames whatever the length.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Optional

from impasto.errors import ImpastoError
from impasto.options import integer, number

if TYPE_CHECKING:  # numpy, PyAV and OpenCV load on first use: the CLI registers options from here
    import numpy as np

DEFAULT_STRENGTH = 0.6
SMOOTHING_FLOW = ("dis-fast", 256)   # method, working size: ~10 ms a frame pair at 512 px
METRIC_FLOW = ("dis", None)          # the flicker metric: full-size DIS, independent of smoothing

Painter = Callable[["np.ndarray"], "np.ndarray"]


def is_video(path) -> bool:
    """True when `path` names a video file (see impasto.video.is_video)."""
    from impasto import video as vio
    return vio.is_video(path)


def add_video_arguments(parser: argparse.ArgumentParser, iterative: bool = False) -> None:
    """The video options of `impasto stylize` (fast) and `impasto optimize` (iterative)."""
    g = parser.add_argument_group("video (when the input is a video: mp4, mov, mkv, webm, avi, animated gif)")
    g.add_argument("--no-temporal", dest="temporal", action="store_false",
                   help="plain per-frame stylisation (it flickers), no temporal consistency")
    if iterative:
        g.add_argument("--temporal-strength", type=number(0), default=None, metavar="W",
                       help="weight of the temporal loss that ties each frame to the warped previous "
                            "result on non-occluded pixels (default: 200 x the content weight)")
        g.add_argument("--first-frame-iterations", type=integer(0, 1_000_000), default=None, metavar="N",
                       help="iterations for the first frame (default: 2x --iterations; later frames "
                            "start from the warped previous result and need fewer)")
    else:
        g.add_argument("--temporal-strength", type=number(0, 1), default=DEFAULT_STRENGTH, metavar="S",
                       help=f"0..1: how much of the warped previous frame is kept where the motion is "
                            f"reliable (default {DEFAULT_STRENGTH}; higher is steadier but trails on fast motion)")
    g.add_argument("--flow", choices=["dis", "dis-fast", "farneback"], default=None,
                   help="optical flow method for the temporal consistency (default: dis-fast at 256 px "
                        "for the fast path, dis for the iterative path)")
    g.add_argument("--max-frames", type=integer(1), default=None, metavar="N",
                   help="only the first N frames (a quick preview; the audio is cut to match)")
    g.add_argument("--no-flicker", dest="measure_flicker", action="store_false",
                   help="skip measuring the flicker metric (saves a flow computation per frame)")


class TemporalSmoother:
    """The inference-time consistency step: call with each input frame and its stylisation, in
    order; returns the frame to write. Keeps one input and one output frame between calls."""

    def __init__(self, strength: float = DEFAULT_STRENGTH, estimator=None, feather: int = 5):
        from . import flow
        if not (0.0 <= strength <= 1.0):
            raise ImpastoError(f"temporal strength must be between 0 and 1, not {strength}")
        self.strength = strength
        self.estimator = estimator or flow.FlowEstimator(*SMOOTHING_FLOW)
        self.feather = feather
        self.prev_in: Optional[np.ndarray] = None    # the previous input, as the flow takes it
        self.prev_shape: Optional[tuple] = None
        self.prev_out: Optional[np.ndarray] = None
        self.reliable: list[float] = []

    def reset(self) -> None:
        self.prev_in = self.prev_out = None

    def __call__(self, frame: np.ndarray, stylised: np.ndarray) -> np.ndarray:
        from . import flow
        import cv2
        out = stylised
        prepared = self.estimator.prepare(frame)
        if self.prev_in is not None and self.strength > 0 and self.prev_shape == frame.shape:
            pair = self.estimator.pair_prepared(self.prev_in, prepared, frame.shape)
            self.reliable.append(pair.reliable_fraction)
            mask = pair.mask
            if self.feather:
                # Soft edges: a hard mask would print the occlusion outline into the frame.
                mask = cv2.GaussianBlur(mask, (0, 0), self.feather / 2) * mask
            warped = flow.warp(self.prev_out, pair.flow)
            weight = cv2.merge([mask * self.strength] * 3)
            out = cv2.add(stylised, cv2.multiply(weight, cv2.subtract(warped, stylised)))
        self.prev_in, self.prev_shape, self.prev_out = prepared, frame.shape, out
        return out


class FlickerTracker:
    """Measures the flicker of the written frames (and of the per-frame stylisation, when the
    two differ) with an independent full-size flow; its time is kept apart from the work's."""

    def __init__(self, enabled: bool = True):
        from . import flow
        self.enabled = enabled
        self.seconds = 0.0
        if enabled:
            self.estimator = flow.FlowEstimator(*METRIC_FLOW)
            self.out, self.raw = flow.FlickerMeter(), flow.FlickerMeter()
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
    def flicker(self) -> Optional[float]:
        return self.out.value if self.enabled and self.out.errors else None

    @property
    def flicker_raw(self) -> Optional[float]:
        return self.raw.value if self.enabled and self.raw.errors else None


@dataclass
class VideoResult:
    output: str
    frames: int
    width: int
    height: int
    fps: float
    seconds: float                     # the whole run, measurement excluded
    paint_seconds: float               # in the painter (network or optimiser)
    smooth_seconds: float              # in the temporal smoothing (flow, warp, blend)
    metric_seconds: float              # measuring flicker (not part of `seconds`)
    flicker: Optional[float]           # temporal warping error of the output
    flicker_raw: Optional[float]       # of the per-frame stylisation (when smoothing was on)
    temporal: bool
    audio: bool
    warning: Optional[str] = None
    interrupted: bool = False          # stopped by Ctrl-C: the output holds the frames done so far
    flicker_per_pair: list = field(default_factory=list)   # the output's error for frames (1, 2, ...)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        text = (f"wrote {self.output} ({self.frames} frames {self.width}x{self.height} at {self.fps:.3g} fps"
                f"{', audio kept' if self.audio else ''}; {self.seconds:.1f} s, {self.frames_per_second:.2f} "
                f"frames/s)")
        if self.flicker is not None:
            text += f"\nflicker (temporal warping error, lower is steadier): {self.flicker:.5f}"
            if self.flicker_raw is not None and self.flicker > 0:
                text += (f"; per-frame stylisation would be {self.flicker_raw:.5f} "
                         f"({self.flicker_raw / self.flicker:.1f}x more)")
        return text


def process_video(source, output, paint: Painter, max_side: Optional[int] = None,
                  smoother: Optional[TemporalSmoother] = None, measure: bool = True,
                  progress: bool = True, label: str = "stylize",
                  on_frame: Optional[Callable[[int, np.ndarray, np.ndarray], None]] = None,
                  max_frames: Optional[int] = None) -> VideoResult:
    """Stream `source` through `paint` (RGB float frame -> same-size RGB float frame), the
    optional smoother, into `output`; keeps timestamps and audio; measures flicker.
    `on_frame(index, input, output)` sees each frame as written (e.g. to score it)."""
    import numpy as np

    from impasto import video as vio
    vio.check_output(output)
    t0 = time.perf_counter()
    paint_s = smooth_s = 0.0
    interrupted = False
    tracker = FlickerTracker(measure)
    with vio.VideoReader(source, max_side) as reader:
        info = reader.info
        total = min(info.frames, max_frames) if max_frames and info.frames else (max_frames or info.frames)
        bar = vio.FrameProgress(total, label, progress)
        if hasattr(paint, "report_status"):   # a slow painter (the optimiser) shows its steps
            paint.report_status = bar.status
        try:
            with vio.VideoWriter(output, info, size=reader.size, audio_from=source) as writer:
                for frame in reader:
                    if max_frames and frame.index >= max_frames:
                        writer.end_audio_with_video()   # a preview: the audio stops with it
                        break
                    t = time.perf_counter()
                    try:
                        raw = np.asarray(paint(frame.image), dtype=np.float32)
                    except KeyboardInterrupt:
                        if writer.count == 0:
                            raise
                        interrupted = True  # keep what is done: a shorter, complete video
                        writer.end_audio_with_video()
                        break
                    paint_s += time.perf_counter() - t
                    if raw.shape != frame.image.shape:
                        raise ImpastoError(f"the painter returned a {raw.shape} frame for a {frame.image.shape} one")
                    out = raw
                    if smoother is not None:
                        t = time.perf_counter()
                        out = smoother(frame.image, raw)
                        smooth_s += time.perf_counter() - t
                    writer.write(out, frame)
                    tracker.add(frame.image, out, raw if smoother is not None else None)
                    if on_frame is not None:
                        on_frame(frame.index, frame.image, out)
                    done = frame.index + 1
                    elapsed = time.perf_counter() - t0 - tracker.seconds
                    status = f"flicker {tracker.out.value:.5f}" if measure and tracker.out.errors else ""
                    bar.update(done, done / elapsed if elapsed > 0 else 0.0, status)
                audio = writer._audio is not None and writer._audio.out_stream is not None
            count = writer.count
        finally:
            bar.close()
        warning = reader.warning
    seconds = time.perf_counter() - t0 - tracker.seconds
    width, height = reader.size
    return VideoResult(str(output), count, width, height, float(info.fps), seconds, paint_s, smooth_s,
                       tracker.seconds, tracker.flicker, tracker.flicker_raw, smoother is not None, audio, warning,
                       interrupted, list(tracker.out.errors) if measure else [])


def stylize_video(source, output, engine, options=None, max_side: Optional[int] = None,
                  temporal: bool = True, strength: float = DEFAULT_STRENGTH, flow_method: Optional[str] = None,
                  measure: bool = True, progress: bool = True, max_frames: Optional[int] = None,
                  on_frame=None) -> VideoResult:
    """The fast path on a video: each frame through an exported network (`engine`, from
    impasto.serve.runtime.load_engine, or any callable NCHW -> NCHW), with temporal smoothing."""
    from . import flow
    from .stylize import Options, stylize_array
    options = options or Options()
    if not (0.0 <= strength <= 1.0):
        raise ImpastoError(f"--temporal-strength must be between 0 and 1, not {strength}")

    def paint(image: np.ndarray) -> np.ndarray:
        return stylize_array(engine, image, options)

    smoother = None
    if temporal and strength > 0:
        method, side = SMOOTHING_FLOW
        smoother = TemporalSmoother(strength, flow.FlowEstimator(flow_method or method, side))
    return process_video(source, output, paint, max_side, smoother, measure, progress, "stylize video",
                         on_frame=on_frame, max_frames=max_frames)


def report(result: VideoResult) -> int:
    """Print the summary; the exit code (130 when stopped early)."""
    if result.warning:
        print(f"warning: {result.warning}", file=sys.stderr)
    if result.interrupted:
        print(f"stopped by Ctrl-C after {result.frames} frames; the video holds those frames")
    print(result.summary())
    return 130 if result.interrupted else 0


def run_stylize(args) -> int:
    """`impasto stylize VIDEO -o OUT.mp4`: the stylize command's video branch."""
    from pathlib import Path

    from impasto import video as vio
    from . import zoo
    from .runtime import load_engine
    from .stylize import Options

    out = Path(args.output)
    if out.is_dir() or out.suffix.lower() not in vio.CONTAINERS:
        raise ImpastoError(f"{out}: for a video input, -o must be a video file ("
                           + ", ".join(vio.VIDEO_EXTENSIONS) + ")")
    if args.size is not None and args.size < 16:
        raise ImpastoError(f"--size must be at least 16 px, not {args.size}")
    options = Options(strength=args.strength, preserve_color=args.preserve_color, tile=args.tile,
                      overlap=args.overlap, margin=args.edge_margin).check()
    info = vio.probe(args.input)  # a clear error for a broken file before the model loads
    model = zoo.resolve_style(args.style, args.models)
    engine = load_engine(model, args.backend)
    if not args.quiet:
        print(f"{args.input}: {info.describe()}; style {model.stem} ({engine.describe()}), "
              + ("temporal smoothing " + f"{args.temporal_strength:g}" if args.temporal else "no temporal smoothing"))
    result = stylize_video(args.input, out, engine, options, max_side=args.size, temporal=args.temporal,
                           strength=args.temporal_strength, flow_method=args.flow,
                           measure=args.measure_flicker, progress=not args.quiet, max_frames=args.max_frames)
    return report(result)
