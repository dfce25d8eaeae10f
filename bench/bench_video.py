"""Fast-path video: frames per second at 512 px with and without temporal smoothing, and the
flicker metric (temporal warping error on non-occluded pixels, mean absolute and squared) of
both, in one run. bench_flicker.py measures flicker with the true motion instead of a flow.

Target (issues 7 and 16): smoothing costs at most 30% of the throughput (fps ratio >= 0.7) and
at least halves the mean absolute flicker (ratio >= 2).

The clip is synthesised from a real photo (a camera panning and zooming a few pixels a frame,
with sensor-like noise), written as H.264 and read back, so decoding, flow, the network and
encoding are all real. Timed runs skip the flicker measurement; one further run measures it
(with an independent full-size DIS flow). Runs alternate plain/smoothed and the best of each
is kept (the machines are noisy; ratios hold better than absolute figures).

    python bench/bench_video.py                         # the default bundled style, if any
    python bench/bench_video.py --model style.onnx --frames 48 --size 512
    python bench/bench_video.py --arch johnson slim     # randomly initialised networks
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("IMPASTO_SHARED", HERE.parent.parent / "shared")) / "data"


def synth_clip(path: Path, photo: np.ndarray, frames: int, width: int, height: int, fps: int = 24) -> Path:
    import cv2

    from impasto import video
    rng = np.random.default_rng(0)
    ph, pw = photo.shape[:2]
    info = video.VideoInfo(str(path), width, height, Fraction(fps), frames, None, "h264", Fraction(1, fps))
    with video.VideoWriter(path, info, crf=12) as writer:
        for i in range(frames):
            z = 1.0 + 0.004 * i
            cx, cy = pw * 0.5 + 2.0 * i, ph * 0.5 + 0.6 * i
            m = np.array([[1 / z, 0, cx - width / 2 / z], [0, 1 / z, cy - height / 2 / z]], np.float32)
            frame = cv2.warpAffine(photo, m, (width, height), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
            writer.write(np.clip(frame + rng.normal(0, 0.01, frame.shape), 0, 1).astype(np.float32))
    return path


def random_model(arch: str, folder: Path) -> Path:
    import torch

    from impasto.export.onnx_export import export_onnx
    from impasto.models.transformer import TransformerNet
    torch.manual_seed(0)
    return export_onnx(TransformerNet(arch), folder / f"random_{arch}.onnx", style=f"random_{arch}")


def bench(model: Path, clip: Path, out_dir: Path, backend: str, strength: float, repeats: int) -> dict:
    from impasto.serve.runtime import load_engine
    from impasto.serve.video import stylize_video

    engine = load_engine(model, backend)
    engine(np.zeros((1, 3, 64, 64), np.float32))  # warm up
    best = {"plain": 0.0, "smooth": 0.0}
    parts = {}
    for _ in range(repeats):
        for mode in ("plain", "smooth"):
            r = stylize_video(clip, out_dir / f"{mode}.mp4", engine, temporal=mode == "smooth", strength=strength,
                              measure=False, progress=False)
            if r.frames_per_second > best[mode]:
                best[mode] = r.frames_per_second
                parts[mode] = (r.paint_seconds / r.frames, r.smooth_seconds / r.frames, r.seconds / r.frames)
    measured = stylize_video(clip, out_dir / "measured.mp4", engine, strength=strength, progress=False)
    return {"model": model.name, "engine": engine.describe(), "fps_plain": best["plain"], "fps_smooth": best["smooth"],
            "flicker_plain": measured.flicker_raw, "flicker_smooth": measured.flicker, "parts": parts,
            "frames": measured.frames, "size": (measured.width, measured.height)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="a .onnx file or bundled style name (repeatable)")
    p.add_argument("--arch", nargs="*", default=None,
                   help="randomly initialised networks to export and time (default: johnson and slim when "
                        "no --model is given and no style is bundled)")
    p.add_argument("--size", type=int, default=512, help="longest side of the frames (default 512)")
    p.add_argument("--frames", type=int, default=24)
    p.add_argument("--strength", type=float, default=None, help="temporal strength (default: the CLI's)")
    p.add_argument("--backend", default="auto")
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--photo", default=str(DATA / "content" / "tubingen.jpg"))
    args = p.parse_args(argv)

    from impasto import images
    from impasto.serve import video as sv
    from impasto.serve import zoo

    strength = sv.DEFAULT_STRENGTH if args.strength is None else args.strength
    work = Path(tempfile.mkdtemp(prefix="bench_video_"))
    models: list[Path] = []
    for m in args.model or []:
        models.append(zoo.resolve_style(m))
    if args.arch is None and not models:
        try:
            models.append(zoo.resolve_style(None))
        except Exception:
            args.arch = ["johnson", "slim"]
    for arch in args.arch or []:
        models.append(random_model(arch, work))

    photo = images.load(args.photo, max_side=max(args.size * 2, 1024))
    width, height = args.size, round(args.size * 3 / 4) // 2 * 2
    clip = synth_clip(work / "clip.mp4", photo, args.frames, width, height)
    print(f"clip: {args.frames} frames {width}x{height} (synthetic pan + zoom of {Path(args.photo).name}); "
          f"temporal strength {strength:g}; {os.cpu_count()} CPUs")
    header = (f"{'model':<22} {'engine':<20} {'fps plain':>9} {'fps smooth':>10} {'fps ratio':>9} "
              f"{'flicker plain':>13} {'flicker smooth':>14} {'ratio abs':>9} {'ratio sq':>8}")
    print(header)
    print("-" * len(header))
    ok = True
    for model in models:
        r = bench(model, clip, work, args.backend, strength, args.repeats)
        fps_ratio = r["fps_smooth"] / r["fps_plain"]
        plain, smooth = r["flicker_plain"], r["flicker_smooth"]
        ratio_abs, ratio_sq = plain.abs / smooth.abs, plain.sq / smooth.sq
        ok &= fps_ratio >= 0.7 and ratio_abs >= 2
        print(f"{r['model']:<22} {r['engine']:<20} {r['fps_plain']:9.2f} {r['fps_smooth']:10.2f} {fps_ratio:9.2f} "
              f"{plain.abs:13.3f} {smooth.abs:14.3f} {ratio_abs:9.2f} {ratio_sq:8.2f}")
        for mode, (paint, smooth, total) in r["parts"].items():
            print(f"    {mode:<6} per frame: network+pre/post {paint * 1000:6.1f} ms, smoothing {smooth * 1000:5.1f} ms, "
                  f"decode/encode/other {(total - paint - smooth) * 1000:5.1f} ms")
    print("flicker: mean absolute change between frames once the flow is undone, 0-255 levels")
    print("target: fps ratio >= 0.70 and abs flicker ratio >= 2: " + ("met" if ok else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
