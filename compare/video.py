"""`impasto compare` on a video: the fast network and the iterative optimiser on the same clip and
the same objective (the fast model's training objective), each with and without temporal
consistency, side by side.

For each of the four runs it measures what a video user weighs: flicker (the temporal warping
error of impasto.video.flicker, on the written frames, absolute and squared), speed (frames per second, scoring excluded)
and the objective's loss on every frame (is the steadier video still as stylised?). The input
video's own warping error is reported for scale: flow errors and camera noise keep it above zero,
and an output that follows the motion faithfully lands near it (below, where the style smooths
the noise away).
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from impasto import images
from impasto import video as vio
from impasto.errors import ImpastoError
from impasto.hardware import auto_precision
from impasto.models.zoo.card import load_card
from impasto.serve.runtime import load_engine
from impasto.serve.stylize import run_network
from impasto.serve.video import DEFAULT_STRENGTH, stylize_video as stylize_video_fast
from impasto.training.iterative.optimize import OptimizeConfig
from impasto.training.iterative.video import stylize_video as stylize_video_iterative
from impasto.video.flicker import METRIC_FLOW, Flicker, video_temporal_error
from impasto.video.flow import FlowEstimator

from .metrics import evaluate, json_default, machine
from .objective import FastObjective, build_fast_objective, find_style_image, training_params
from .report import write_video_report

# (method, temporal): the per-frame run of each method comes first, as the reference of its smoothed run.
RUNS = (("fast", False), ("fast", True), ("iterative", False), ("iterative", True))
TERMS = ("total", "content", "style", "tv", "histogram")


def run_name(method: str, temporal: bool) -> str:
    return f"{method} + temporal" if temporal else f"{method}, per frame"


def run_slug(method: str, temporal: bool) -> str:
    return f"{method}_temporal" if temporal else f"{method}_per_frame"


@dataclass
class VideoCompareOptions:
    size: int = 256                        # longest side of the frames
    max_frames: Optional[int] = 24         # the first N frames (None: the whole clip)
    iterations: int = 30                   # L-BFGS evaluations per frame after the first
    first_iterations: Optional[int] = None  # the first frame's (default: 2x iterations)
    precision: str = field(default_factory=auto_precision)  # of the iterative runs
    temporal_strength: Optional[float] = None  # fast path smoothing (default: impasto.serve.video's)
    temporal_weight: Optional[float] = None    # iterative temporal loss (default: training.video's)
    backend: str = "ort"
    threads: Optional[int] = None
    seed: int = 0
    progress: bool = True

    def check(self) -> "VideoCompareOptions":
        if self.size < 32:
            raise ImpastoError(f"--size must be at least 32 px, not {self.size}")
        if self.max_frames is not None and self.max_frames < 2:
            raise ImpastoError(f"--max-frames must be at least 2 (flicker is measured between frames), "
                               f"not {self.max_frames}")
        if self.iterations < 1:
            raise ImpastoError(f"--iterations must be at least 1, not {self.iterations}")
        if self.first_iterations is not None and self.first_iterations < 1:
            raise ImpastoError(f"--first-frame-iterations must be at least 1, not {self.first_iterations}")
        if self.precision not in ("bf16", "fp32"):
            raise ImpastoError(f"precision must be bf16 or fp32, not {self.precision!r}")
        if self.temporal_strength is not None and not 0 < self.temporal_strength <= 1:
            raise ImpastoError(f"--temporal-strength must be in (0, 1], not {self.temporal_strength}")
        if self.temporal_weight is not None and self.temporal_weight <= 0:
            raise ImpastoError(f"--temporal-weight must be positive, not {self.temporal_weight}")
        return self


class FrameScorer:
    """on_frame hook: the objective's terms for each written frame, and stills of the first and
    last frames. Keeps its own time so that the runs' speed excludes the scoring."""

    def __init__(self, objective: FastObjective, folder: Path, root: Path, keep_inputs: bool = False):
        self.objective, self.folder, self.root = objective, folder, root
        self.keep_inputs = keep_inputs
        self.scores: list[dict] = []
        self.seconds = 0.0
        self.stills: dict[str, str] = {}
        self.inputs: dict[str, str] = {}
        self._last: Optional[tuple] = None

    def __call__(self, index: int, frame: np.ndarray, out: np.ndarray) -> None:
        t = time.perf_counter()
        self.scores.append(evaluate(self.objective.loss, out, frame, "fp32"))
        if index == 0:
            self._still("first", frame, out)
        self._last = (frame, out)
        self.seconds += time.perf_counter() - t

    def _still(self, which: str, frame: np.ndarray, out: np.ndarray) -> None:
        path = self.folder / f"{which}.png"
        images.save(out, path)
        self.stills[which] = path.relative_to(self.root).as_posix()
        if self.keep_inputs:
            path = self.root / "stills" / "input" / f"{which}.png"
            images.save(frame, path)
            self.inputs[which] = path.relative_to(self.root).as_posix()

    def finish(self) -> None:
        if self._last is not None and len(self.scores) > 1:
            self._still("last", *self._last)


def input_flicker(source, size: int, max_frames: Optional[int]) -> Flicker:
    """The warping error of the input video itself (outputs = inputs), for scale."""
    def frames():
        return itertools.islice(vio.read_frames(source, size), max_frames)
    return video_temporal_error(frames(), frames(), FlowEstimator(*METRIC_FLOW))


def _run_fast(source, path: Path, engine, temporal: bool, options: VideoCompareOptions, on_frame):
    strength = options.temporal_strength if options.temporal_strength is not None else DEFAULT_STRENGTH
    return stylize_video_fast(source, path, engine, max_side=options.size, temporal=temporal, strength=strength,
                         progress=options.progress, max_frames=options.max_frames, on_frame=on_frame)


def _run_iterative(source, path: Path, objective: FastObjective, temporal: bool, options: VideoCompareOptions,
                   vgg_weights: Optional[str], on_frame):
    config = OptimizeConfig(iterations=options.iterations, size=options.size, precision=options.precision,
                            seed=options.seed, vgg_weights=vgg_weights)
    return stylize_video_iterative(source, path, [objective.style], config, temporal=temporal,
                         temporal_weight=options.temporal_weight, first_iterations=options.first_iterations,
                         progress=options.progress, max_frames=options.max_frames, objective=objective.loss,
                         on_frame=on_frame)


def compare_video(source: str | os.PathLike, model: str | os.PathLike, output_dir: str | os.PathLike,
                  options: Optional[VideoCompareOptions] = None, style_image: Optional[str | os.PathLike] = None,
                  vgg_weights: Optional[str] = None, style_search: Sequence[Path] = (),
                  log: Callable[[str], None] = print) -> dict:
    """Run the four stylisations of `source` and write the report folder; returns its data."""
    options = (options or VideoCompareOptions()).check()
    info = vio.probe(source)            # a clear error for a broken clip before anything loads
    model, out = Path(model), Path(output_dir)
    card = load_card(model)
    params = training_params(card)
    style_path = find_style_image(params, card, style_image, style_search, model)
    objective = build_fast_objective(params, style_path, vgg_weights)
    engine = load_engine(model, options.backend, options.threads)
    # Warm-up at the frames' size: a runtime's first pass at a new shape plans its memory, and
    # that would land on the first run's speed.
    run_network(engine, next(iter(vio.read_frames(source, options.size))))
    torch.manual_seed(options.seed)
    out.mkdir(parents=True, exist_ok=True)
    log(f"{Path(source).name}: {info.describe()}; comparing at {options.size} px, "
        + (f"first {options.max_frames} frames" if options.max_frames else "all frames"))

    runs, input_stills = [], {}
    for method, temporal in RUNS:
        name, slug = run_name(method, temporal), run_slug(method, temporal)
        log(f"{name} ...")
        scorer = FrameScorer(objective, out / "stills" / slug, out, keep_inputs=not runs)
        path = out / f"{slug}.mp4"
        if method == "fast":
            result = _run_fast(source, path, engine, temporal, options, scorer)
        else:
            result = _run_iterative(source, path, objective, temporal, options, vgg_weights, scorer)
        scorer.finish()
        if result.interrupted:
            raise KeyboardInterrupt
        if result.frames < 2 or result.flicker is None:
            raise ImpastoError(f"{source}: {result.frames} frame(s); flicker needs at least two")
        seconds = max(result.seconds - scorer.seconds, 1e-9)
        mean = {k: float(np.mean([s.get(k, 0.0) for s in scorer.scores])) for k in TERMS}
        runs.append({"name": name, "method": method, "temporal": temporal, "file": path.name,
                     "frames": result.frames, "width": result.width, "height": result.height,
                     "seconds": seconds, "frames_per_second": result.frames / seconds,
                     "flicker": asdict(result.flicker),
                     "flicker_per_pair": [asdict(f) for f in result.flicker_per_pair],
                     "loss": mean, "loss_per_frame": scorer.scores, "stills": scorer.stills})
        if scorer.inputs:
            input_stills = scorer.inputs
        log(f"  {result.frames} frames, {result.frames / seconds:.3g} frames/s, flicker {result.flicker}, "
            f"mean loss {mean['total']:.4g}")
    for r in runs:   # smoothing's effect: the same method's per-frame flicker over this run's
        plain = next(p for p in runs if p["method"] == r["method"] and not p["temporal"])
        r["flicker_reduction"] = {way: plain["flicker"][way] / r["flicker"][way] if r["flicker"][way] else None
                                  for way in ("abs", "sq")}

    data = {"title": f"{card.get('style') or model.stem} on {Path(source).name}: fast vs iterative, temporal "
                     "consistency",
            "created": time.strftime("%Y-%m-%d %H:%M"), "source": Path(source).name, "video": asdict(info),
            "model": {"file": model.name, "style": card.get("style"), "steps": card.get("steps")},
            "objective": objective.describe(), "options": asdict(options), "machine": machine(),
            "input_flicker": asdict(input_flicker(source, options.size, options.max_frames)),
            "input_stills": input_stills, "runs": runs}
    write_video_metrics(data, out)
    write_video_report(data, out)
    return data


METRIC_COLUMNS = ("run", "frame", "flicker_abs", "flicker_sq") + TERMS


def write_video_metrics(data: dict, out: Path) -> None:
    """metrics.csv (one row per run and frame; flicker links the frame to the previous one) and
    metrics.json (everything)."""
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        w.writeheader()
        for r in data["runs"]:
            for i, score in enumerate(r["loss_per_frame"]):
                pair = r["flicker_per_pair"][i - 1] if 0 < i <= len(r["flicker_per_pair"]) else {}
                w.writerow({"run": r["name"], "frame": i, "flicker_abs": pair.get("abs", ""),
                            "flicker_sq": pair.get("sq", ""),
                            **{k: f"{score.get(k, 0.0):.6g}" for k in TERMS}})
    (out / "metrics.json").write_text(json.dumps(data, indent=1, default=json_default) + "\n")
