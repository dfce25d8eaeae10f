"""Flicker on clips with known motion: what a viewer sees, and where the temporal smoother loses.

Two clips made from shared photos (impasto.video.synthetic), so the true flow is exact:
- pan:      a camera pan, 4 px a frame (160x120, 16 frames by default);
- parallax: a far layer, a faster near band and an object crossing the other way in front (occlusions).

For each bundled network (or --model) it paints every frame, then measures flicker with the *true*
flow, both ways (0-255 levels: mean absolute and mean squared change once the motion is undone):
- per frame:        no smoothing;
- smoothed:         the CLI's smoother (DIS flow at its working size, its occlusion check, its blend);
- smoothed, true flow and true mask: the smoother given perfect motion, so what is left is the blend's.
Per-frame flicker is also split between a 16 px band along the frame's edges and the rest: a pan's
frames disagree most where content enters and leaves.
On the parallax clip it also measures the region the object covers now or a frame ago (where trails
would show): the smoothed error there against the per-frame one. Speed: frames/s of paint+smoother
against paint alone, in memory, in the same run.

Targets (issue 16): on the pan, smoothed abs flicker <= 0.5x per frame, at >= 0.7x its throughput;
on the parallax clip, error in the object's region <= 1.5x per frame.

    python bench/bench_flicker.py                     # the bundled styles
    python bench/bench_flicker.py --model runs/x.onnx --strength 0.6 0.8
    python bench/bench_flicker.py --model candy --model models/zoo/candy.video.onnx --card
        (--card: each model's per-frame and smoothed flicker go into its card, quality.flicker)
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from impasto import images
from impasto.models.zoo.card import card_path, write_card
from impasto.serve import video as sv
from impasto.serve.runtime import load_engine
from impasto.serve.stylize import stylize_array
from impasto.serve.zoo import list_styles, resolve_style
from impasto.video import synthetic
from impasto.video.flicker import Flicker, temporal_error
from impasto.video.flow import FlowPair

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
EDGE = 16   # px: the band along the frame's edges reported apart


def clips(data: Path, n: int) -> dict[str, synthetic.SyntheticClip]:
    load = lambda name: images.load(data / "content" / name, max_side=480)  # noqa: E731
    return {"pan": synthetic.pan(load("chicago.jpg"), n=n),
            "parallax": synthetic.parallax(load("tubingen.jpg"), load("golden_gate.jpg"), load("brad_pitt.jpg"), n=n)}


class TrueMotion:
    """Stands in for the smoother's flow estimator: hands it the clip's exact flows in order."""

    def __init__(self, pairs: list[FlowPair]):
        self.pairs, self.i = pairs, 0

    def prepare(self, frame):
        return frame

    def pair_prepared(self, prev, cur, shape):
        pair = self.pairs[self.i]
        self.i += 1
        return pair


def smooth(clip, raw, strength: float, estimator=None) -> tuple[list[np.ndarray], float]:
    smoother = sv.TemporalSmoother(strength, estimator)
    t = time.perf_counter()
    out = [smoother(frame, s) for frame, s in zip(clip.frames, raw)]
    return out, (time.perf_counter() - t) / len(out)


def measure(engine, clip, strengths) -> dict:
    t = time.perf_counter()
    raw = [stylize_array(engine, f) for f in clip.frames]
    paint_s = (time.perf_counter() - t) / len(raw)
    regions = clip.region(len(clip.covers[0]) - 1) if len(clip.covers[0]) > 1 else None
    score = lambda frames: (temporal_error(frames, clip.pairs),  # noqa: E731
                            temporal_error(frames, clip.pairs, regions=regions) if regions else None)
    rows = {"per frame": (*score(raw), 1.0)}
    # where it lives: the frame's edge band, where new content enters and old leaves, against the rest
    h, w = clip.frames[0].shape[:2]
    edge = np.ones((h, w), bool)
    edge[EDGE:h - EDGE, EDGE:w - EDGE] = False
    for label, where in ((f"per frame, {EDGE} px edges", edge), ("per frame, inside them", ~edge)):
        rows[label] = (temporal_error(raw, clip.pairs, regions=[where] * len(clip.pairs)), None, None)
    for strength in strengths:
        out, smooth_s = smooth(clip, raw, strength)
        rows[f"smoothed {strength:g}"] = (*score(out), paint_s / (paint_s + smooth_s))
        out, _ = smooth(clip, raw, strength, TrueMotion(clip.pairs))
        rows[f"smoothed {strength:g}, true flow"] = (*score(out), None)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", action="append", help="a .onnx file or bundled style name (repeatable; "
                   "default: every bundled style)")
    p.add_argument("--strength", type=float, nargs="+", default=[sv.DEFAULT_STRENGTH],
                   help=f"temporal strengths to try (default: the CLI's, {sv.DEFAULT_STRENGTH})")
    p.add_argument("--frames", type=int, default=16, help="frames a clip (default 16)")
    p.add_argument("--data", default=str(DATA), help="the shared data folder (default ../shared/data)")
    p.add_argument("--card", action="store_true", help="merge each model's figures into its card (quality.flicker)")
    args = p.parse_args(argv)

    models = [resolve_style(m) for m in args.model] if args.model else [s["path"] for s in list_styles()]
    made = clips(Path(args.data), args.frames)
    met = {strength: True for strength in args.strength}
    cards: dict = {model: {} for model in models}
    for name, clip in made.items():
        h, w = clip.frames[0].shape[:2]
        print(f"\n{name} clip: {len(clip.frames)} frames {w}x{h}; flicker with the true flow, 0-255 levels")
        print(f"{'model':<14} {'run':<26} {'abs':>6} {'sq':>7} {'abs/pf':>7} {'sq/pf':>6} {'speed':>6}"
              + (f" {'object region abs/pf':>21}" if name == "parallax" else ""))
        for model in models:
            engine = load_engine(model, "ort")
            rows = measure(engine, clip, args.strength)
            base, base_region, _ = rows["per frame"]
            cards[model][name] = {"frames": len(clip.frames), "size": [w, h], **{
                run: {"abs": round(f.abs, 3), "sq": round(f.sq, 2)} for run, (f, _, _) in rows.items()}}
            for run, (f, region, speed) in rows.items():
                line = (f"{model.stem:<14} {run:<26} {f.abs:6.3f} {f.sq:7.2f} {f.abs / base.abs:7.2f} "
                        f"{f.sq / base.sq:6.2f} {format(speed, '.2f') if speed else '-':>6}")
                if region is not None:
                    line += f" {region.abs / base_region.abs:21.2f}"
                print(line)
                if speed is not None and run != "per frame":
                    strength = float(run.split()[1])
                    met[strength] &= (f.abs <= 0.5 * base.abs and speed >= 0.7 if name == "pan"
                                      else region.abs <= 1.5 * base_region.abs)
    if args.card:
        for model, clips_measured in cards.items():
            write_card(card_path(model), {"quality": {"flicker": {
                "clips": clips_measured, "note": "0-255 levels, true motion undone; bench/bench_flicker.py"}}},
                merge_nested=True)
            print(f"merged into {card_path(model)}")
    print("\ntargets: pan abs <= 0.5x per frame at >= 0.7x speed; parallax object region <= 1.5x")
    for strength, ok in met.items():
        print(f"  strength {strength:g}: " + ("met" if ok else "NOT met"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
