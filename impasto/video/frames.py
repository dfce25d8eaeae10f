"""The frame loop every video path shares: read, paint, (smooth), write, measure flicker.

Frames stream from the reader to the writer: memory holds a handful of frames whatever the length.
The painter is any callable RGB float frame -> same-size RGB float frame: an exported network (the
fast path, `impasto.serve.video`) or the pixel optimiser (`impasto.training.iterative.video`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from impasto.errors import ImpastoError

from .flicker import Flicker, FlickerTracker
from .io import FrameProgress, VideoReader, VideoWriter, check_output

Painter = Callable[[np.ndarray], np.ndarray]
Smoother = Callable[[np.ndarray, np.ndarray], np.ndarray]   # (input frame, stylised) -> frame to write


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
    flicker: Optional[Flicker]         # temporal warping error of the output, abs and squared
    flicker_raw: Optional[Flicker]     # of the per-frame stylisation (when smoothing was on)
    temporal: bool
    audio: bool
    warning: Optional[str] = None
    interrupted: bool = False          # stopped by Ctrl-C: the output holds the frames done so far
    flicker_per_pair: list = field(default_factory=list)   # the output's Flicker for frames (1, 2, ...)

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        text = (f"wrote {self.output} ({self.frames} frames {self.width}x{self.height} at {self.fps:.3g} fps"
                f"{', audio kept' if self.audio else ''}; {self.seconds:.1f} s, {self.frames_per_second:.2f} "
                f"frames/s)")
        if self.flicker is not None:
            text += f"\nflicker (frame-to-frame change, 0-255 levels, lower is steadier): {self.flicker}"
            if self.flicker_raw is not None:
                text += (f"; per frame it would be {self.flicker_raw} "
                         f"({self.flicker.times(self.flicker_raw)})")
        return text


def process_video(source, output, paint: Painter, max_side: Optional[int] = None,
                  smoother: Optional[Smoother] = None, measure: bool = True,
                  progress: bool = True, label: str = "stylize",
                  on_frame: Optional[Callable[[int, np.ndarray, np.ndarray], None]] = None,
                  max_frames: Optional[int] = None) -> VideoResult:
    """Stream `source` through `paint` (RGB float frame -> same-size RGB float frame), the
    optional smoother, into `output`; keeps timestamps and audio; measures flicker.
    `on_frame(index, input, output)` sees each frame as written (e.g. to score it)."""
    check_output(output)
    t0 = time.perf_counter()
    paint_s = smooth_s = 0.0
    interrupted = False
    tracker = FlickerTracker(measure)
    with VideoReader(source, max_side) as reader:
        info = reader.info
        total = min(info.frames, max_frames) if max_frames and info.frames else (max_frames or info.frames)
        bar = FrameProgress(total, label, progress)
        if hasattr(paint, "report_status"):   # a slow painter (the optimiser) shows its steps
            paint.report_status = bar.status
        try:
            with VideoWriter(output, info, size=reader.size, audio_from=source) as writer:
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
                    status = f"flicker {tracker.out.value.abs:.3g}" if measure and tracker.out.errors else ""
                    bar.update(done, done / elapsed if elapsed > 0 else 0.0, status)
                audio = writer.copies_audio
            count = writer.count
        finally:
            bar.close()
        warning = reader.warning
    seconds = time.perf_counter() - t0 - tracker.seconds
    width, height = reader.size
    return VideoResult(str(output), count, width, height, float(info.fps), seconds, paint_s, smooth_s,
                       tracker.seconds, tracker.flicker, tracker.flicker_raw, smoother is not None, audio, warning,
                       interrupted, list(tracker.out.errors) if measure else [])
