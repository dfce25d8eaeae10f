"""The video options shared by `impasto stylize` (fast) and `impasto optimize` (iterative), and
the summary both print. Nothing here imports numpy, PyAV or OpenCV: the CLI builds its parser fast.
"""

from __future__ import annotations

import argparse
import sys

from .options import integer, number

DEFAULT_STRENGTH = 0.8   # impasto.serve.video.DEFAULT_STRENGTH (checked by a test; not imported: no numpy here)


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
                       help="0..1: how much of the warped previous frame is kept where the motion is "
                            "reliable (higher is steadier but trails on fast motion)")
        g.add_argument("--photo-network", action="store_true",
                       help="paint with the style's photo network even when a video network "
                            "(STYLE.video.onnx, trained to flicker less) lies beside it")
    g.add_argument("--flow", choices=["dis", "dis-fast", "farneback"], default=None,
                   help="optical flow method for the temporal consistency (default: dis-fast at 256 px "
                        "for the fast path, dis for the iterative path)")
    g.add_argument("--max-frames", type=integer(1), default=None, metavar="N",
                   help="only the first N frames (a quick preview; the audio is cut to match) (default: all)")
    g.add_argument("--no-flicker", dest="measure_flicker", action="store_false",
                   help="skip measuring the flicker metric (saves a flow computation per frame)")


def report(result) -> int:
    """Print the summary; the exit code (130 when stopped early)."""
    if result.warning:
        print(f"warning: {result.warning}", file=sys.stderr)
    if result.interrupted:
        print(f"stopped by Ctrl-C after {result.frames} frames; the video holds those frames")
    print(result.summary())
    return 130 if result.interrupted else 0
