"""Fast against iterative, on the same photos and the same perceptual objective.

`compare` is what `impasto compare` runs. For a fast model (an exported ONNX file with its model
card) it rebuilds exactly the objective the model was trained with (the card's training config:
loss weights, VGG layers, the style image at its training size), then for each photo:

- runs the fast model once with onnxruntime (after one warm-up pass) and measures its loss;
- runs the iterative optimiser (L-BFGS, from the content photo) on that objective, recording the
  loss at every iteration and snapshots at chosen iterations;
- finds the first iteration whose loss is at most the fast model's: the fast model is "worth N
  iterations";
- measures per image: content, style and TV loss, SSIM to the content photo, and the colour
  distance to the style image (sliced Wasserstein distance between the pixel colours in CIELAB).

and a speed table: fast latency and iterative seconds for 100/300/500 iterations at 256, 512 and
1024 px. The iterative seconds at sizes other than the comparison size are extrapolated from a few
timed iterations (setup + the timed run + the remaining iterations at the steady-state cost);
the report says which figures are measured and which are extrapolated.

One iteration here is one evaluation of the objective (a VGG forward and backward pass), the unit
`optimize_pixels` counts; "iteration n" is the image after n updates (iteration 0 = the photo).
"""

from __future__ import annotations

import csv
import json
import os
import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from impasto import images
from impasto.errors import ImpastoError
from impasto.hardware import auto_precision
from impasto.models.tensors import to_array, to_tensor
from impasto.models.zoo.card import card_styles, load_card
from impasto.serve.runtime import load_engine
from impasto.serve.stylize import run_network
from impasto.training.iterative.optimize import optimize_pixels

from .metrics import color_distance, evaluate, json_default, machine, ssim, worth_iterations
from .objective import FastObjective, build_fast_objective, find_style_image, training_params
from .report import write_report

SNAPSHOTS = (0, 25, 50, 100, 200, 300, 500)
SPEED_SIZES = (256, 512, 1024)
SPEED_ITERATIONS = (100, 300, 500)
TERMS = ("content", "style", "tv", "histogram")


# =========================================================================== the runs

@dataclass
class CompareOptions:
    size: int = 512                              # longest side of the photos in the comparison
    iterations: int = 500                        # iterative run length per photo
    snapshots: Sequence[int] = SNAPSHOTS
    precision: str = field(default_factory=auto_precision)  # of the iterative runs (bf16 autocast or fp32)
    lr: float = 0.5                              # L-BFGS step (1.0 oscillates on the fast objectives; docs/compare.md)
    speed_sizes: Sequence[int] = SPEED_SIZES
    speed_iterations: Sequence[int] = SPEED_ITERATIONS
    speed_measure: int = 12                      # iterations timed per size for the speed table
    fast_repeats: int = 5                        # fast-model timings per size (median)
    backend: str = "ort"                         # fast-model engine: onnxruntime (the reference)
    threads: Optional[int] = None
    seed: int = 0

    def check(self) -> "CompareOptions":
        if self.size < 32:
            raise ImpastoError(f"--size must be at least 32 px, not {self.size}")
        if self.iterations < 1:
            raise ImpastoError(f"--iterations must be at least 1, not {self.iterations}")
        if self.precision not in ("bf16", "fp32"):
            raise ImpastoError(f"precision must be bf16 or fp32, not {self.precision!r}")
        if any(s < 0 for s in self.snapshots):
            raise ImpastoError("snapshot iterations must not be negative")
        if any(s < 32 for s in self.speed_sizes):
            raise ImpastoError("speed-table sizes must be at least 32 px")
        if any(n < 1 for n in self.speed_iterations):
            raise ImpastoError("speed-table iteration counts must be at least 1")
        if self.speed_measure < 2:
            raise ImpastoError("--speed-measure must be at least 2 iterations (the first one is a warm-up)")
        if self.fast_repeats < 1:
            raise ImpastoError("--fast-repeats must be at least 1")
        self.snapshots = sorted({int(s) for s in self.snapshots if s <= self.iterations} | {0, self.iterations})
        return self


@dataclass
class FastModel:
    name: str
    path: Path
    engine: object = field(repr=False, default=None)
    style_weights: Optional[np.ndarray] = field(repr=False, default=None)   # one style of a multi-style model


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return keep.strip("_") or "image"


def _time_fast(m: FastModel, photo: np.ndarray, repeats: int) -> tuple[np.ndarray, float]:
    """Output and median latency (s) of the fast model on one photo, after one warm-up pass."""
    out = run_network(m.engine, photo, style_weights=m.style_weights)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = run_network(m.engine, photo, style_weights=m.style_weights)
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def run_iterative(loss, photo: np.ndarray, iterations: int, snapshots: Sequence[int], precision: str,
                  lr: float = 1.0, log: Callable[[str], None] = print) -> dict:
    """L-BFGS from the photo on the objective (content target = the photo). Returns the loss
    curve (terms at iterations 0..iterations), cumulative seconds, setup time and snapshots."""

    t0 = time.perf_counter()
    content = to_tensor(photo)
    loss.set_targets(content=content)
    setup = time.perf_counter() - t0
    wanted = set(snapshots)
    shots: dict[int, np.ndarray] = {}
    step_every = max(1, iterations // 10)

    best = {"total": float("inf"), "image": None}

    def on_step(step: int, x: torch.Tensor, row: dict) -> None:
        n = step - 1                       # evaluation `step` sees the image after step-1 updates
        if row["total"] <= best["total"]:  # snapshots: the best image so far (a line search's
            best.update(total=row["total"], image=to_array(x))   # trial points may overshoot)
        if n in wanted:
            shots[n] = best["image"]
        if n % step_every == 0 or n == iterations:
            log(f"    iteration {n:4d}/{iterations}  loss {row['total']:.4g}  ({row['seconds']:.1f} s)")

    result = optimize_pixels(lambda x: loss(x), content, iterations + 1, "lbfgs", lr, precision, on_step,
                             log=log)
    if result.interrupted:
        raise KeyboardInterrupt
    history = result.history
    final = len(history) - 1
    if final not in shots:               # L-BFGS stopped early on a flat loss: the last image
        shots[final] = result.image
    return {"history": history, "setup_s": setup, "snapshots": shots, "iterations_run": final}


def steady_per_iteration(seconds: Sequence[float]) -> float:
    """Seconds per evaluation in the steady state: the median step of the later half of the
    cumulative times (the first evaluations pay one-off costs: allocations, kernel selection; the
    issue-14 table extrapolated those and came out 20x too slow)."""
    steps = np.diff(np.asarray(seconds, dtype=float))
    if len(steps) == 0:
        return float(seconds[0])
    return float(np.median(steps[len(steps) // 2:]))


def speed_table(objective: FastObjective, models: Sequence[FastModel], photo: np.ndarray,
                options: CompareOptions, measured: Optional[dict] = None,
                log: Callable[[str], None] = print) -> list[dict]:
    """Fast latency and iterative seconds per size. N iterations within the timed run are its own
    times ("measured"); beyond it, "extrapolated": the timed run's time + the steady-state cost
    of the remaining iterations. `measured`: {N: seconds} of the full runs at the comparison size;
    those are what the table reports there, and the extrapolation is checked against them
    (`check[N]` = extrapolated / full runs, logged)."""
    rows = []
    for side in options.speed_sizes:
        img = images.resize(photo, side)
        h, w = img.shape[:2]
        row = {"size": side, "width": w, "height": h}
        for m in models:
            _, latency = _time_fast(m, img, options.fast_repeats)
            row[f"fast_ms[{m.name}]"] = latency * 1000
        t0 = time.perf_counter()
        objective.loss.set_targets(content=to_tensor(img))
        setup = time.perf_counter() - t0
        k = options.speed_measure
        res = optimize_pixels(lambda x: objective.loss(x), to_tensor(img), k, "lbfgs", options.lr,
                              options.precision, log=lambda m: None)
        secs = [r["seconds"] for r in res.history]
        first = secs[0]
        per_iter = steady_per_iteration(secs)
        row.update({"setup_s": setup, "first_iteration_s": first, "per_iteration_s": per_iter,
                    "measured_iterations": len(secs)})
        main_ms = row[f"fast_ms[{models[0].name}]"]
        for n in options.speed_iterations:
            if n <= len(secs):
                est, source = setup + secs[n - 1], "measured"
            else:
                est, source = setup + secs[-1] + (n - len(secs)) * per_iter, "extrapolated"
            if measured and side == options.size and n in measured:
                row[f"measured_s[{n}]"] = measured[n]
                row[f"check[{n}]"] = est / measured[n]
                if not 0.8 <= est / measured[n] <= 1.25:
                    log(f"  speed at {side}px: the estimate for {n} iterations ({est:.1f} s) is "
                        f"{est / measured[n]:.2f}x the full runs' {measured[n]:.1f} s; the table shows the full runs")
                est, source = measured[n], "measured"
            row[f"iterative_s[{n}]"] = est
            row[f"source[{n}]"] = source
            row[f"speedup[{n}]"] = est / (main_ms / 1000)
        log(f"  speed at {side}px ({w}x{h}): fast {main_ms:.1f} ms, iterative {per_iter:.3f} s/iteration "
            f"(steady state of {len(secs)} timed iterations)")
        rows.append(row)
    return rows


def _image_metrics(objective: FastObjective, image: np.ndarray, photo: np.ndarray) -> dict:
    row = evaluate(objective.loss, image, photo, "fp32")
    row["ssim"] = ssim(image, photo)
    row["color_distance"] = color_distance(image, objective.style)
    return row


def compare(photos: Sequence[str | os.PathLike], model: str | os.PathLike, output_dir: str | os.PathLike,
            options: Optional[CompareOptions] = None, extra_models: Sequence[str | os.PathLike] = (),
            style_image: Optional[str | os.PathLike] = None, vgg_weights: Optional[str] = None,
            style_search: Sequence[Path] = (), log: Callable[[str], None] = print,
            style_name: Optional[str] = None) -> dict:
    """Run the whole comparison and write the report folder; returns the report's data.
    `style_name`: the style of a multi-style model to compare (its own painting and objective)."""
    options = (options or CompareOptions()).check()
    photos = [Path(p) for p in photos]
    if not photos:
        raise ImpastoError("no photos to compare on")
    out = Path(output_dir)
    model = Path(model)
    card = load_card(model)
    params = training_params(card)
    name = card.get("style") or model.stem
    styles = card_styles(card)
    if styles:
        if style_name not in styles:
            raise ImpastoError(f"{model.name} paints {len(styles)} styles ({', '.join(styles)}): "
                               "pick the one to compare with --blend NAME")
        name = style_name
        paintings = params.get("style_images") or card.get("style_images") or []   # config paths first
        params["style_image"] = paintings[styles.index(name)] if len(paintings) == len(styles) else f"{name}.jpg"
    elif style_name:
        raise ImpastoError(f"--blend picks a style of a multi-style model; {model.name} paints one")
    style_path = find_style_image(params, card, style_image, style_search, model)
    log(f"objective of {model.name}: content {params['content_weight']} on {', '.join(params['content_layers'])}, "
        f"style {params['style_weight']} on {', '.join(params['style_layers'])}, tv {params['tv_weight']}, "
        f"style image {style_path.name} at {params.get('style_size')} px")
    objective = build_fast_objective(params, style_path, vgg_weights)
    torch.manual_seed(options.seed)
    models = load_models(name, model, extra_models, options, style_name)

    out.mkdir(parents=True, exist_ok=True)
    results = []
    for i, photo_path in enumerate(photos):
        results.append(compare_photo(photo_path, (i, len(photos)), objective, models, options, out,
                                     {r["slug"] for r in results}, log))
    log("speed table")
    speed = speed_table(objective, models, images.load(photos[0]), options,
                        _measured_seconds(results, options), log)
    data = {
        "title": f"impasto compare: {models[0].name} fast model against the iterative optimiser",
        "created": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "model": {"name": models[0].name, "file": model.name, "card": {k: card.get(k) for k in
                  ("style", "arch", "steps", "wall_time_s", "parameters", "image_size", "config_hash")
                  if k in card}},
        "extra_models": [{"name": m.name, "file": m.path.name} for m in models[1:]],
        "models": [m.name for m in models],
        "backend": models[0].engine.describe() if hasattr(models[0].engine, "describe") else options.backend,
        "objective": objective.describe(),
        "options": {k: (list(v) if isinstance(v, (list, tuple)) else v) for k, v in asdict(options).items()},
        "machine": machine(),
        "photos": results,
        "speed": speed,
    }
    data["summary"] = _summary(data)
    write_metrics(data, out)
    write_report(data, out)
    return data


def load_models(name: str, model: Path, extra_models: Sequence[str | os.PathLike],
                options: CompareOptions, style_name: Optional[str] = None) -> list[FastModel]:
    """The model under test and the extra ones, uniquely named, their engines loaded; a
    multi-style model paints `style_name` (which it must have)."""
    models = [FastModel(name, model)]
    for extra in extra_models:
        p = Path(extra)
        if not p.is_file():
            raise ImpastoError(f"--model {extra}: no such file")
        models.append(FastModel(p.stem, p))
    names = [m.name for m in models]
    if len(set(names)) != len(names):
        for i, m in enumerate(models):
            m.name = f"{m.name}#{i}"
    for m in models:
        m.engine = load_engine(m.path, options.backend, options.threads)
        if m.engine.styles:
            if style_name not in m.engine.styles:
                raise ImpastoError(f"{m.path.name} paints {', '.join(m.engine.styles)}, not "
                                   f"{style_name or 'one style'} (--blend NAME picks a multi-style model's style)")
            m.style_weights = np.eye(len(m.engine.styles), dtype=np.float32)[m.engine.styles.index(style_name)]
    return models


def compare_photo(photo_path: Path, position: tuple[int, int], objective: FastObjective, models: Sequence[FastModel],
                  options: CompareOptions, out: Path, taken: set, log: Callable[[str], None]) -> dict:
    """One photo (`position`: its index and the photo count): each fast model once, the iterative
    run with its snapshots, and how many iterations each fast model is worth."""
    index, count = position
    photo = images.load(photo_path, max_side=options.size)
    slug = _slug(photo_path.stem)
    if slug in taken:
        slug = f"{slug}_{index}"
    folder = out / "images" / slug
    log(f"[{index + 1}/{count}] {photo_path.name} at {photo.shape[1]}x{photo.shape[0]}")
    files = {"content": _save(photo, folder / "content.png", out)}
    fast = {}
    for m in models:
        y, latency = _time_fast(m, photo, options.fast_repeats)
        metrics = _image_metrics(objective, y, photo)
        run_precision = evaluate(objective.loss, y, photo, options.precision)["total"] \
            if options.precision != "fp32" else metrics["total"]
        files[f"fast:{m.name}"] = _save(y, folder / f"fast_{_slug(m.name)}.png", out)
        fast[m.name] = {"seconds": latency, "metrics": metrics, "total_run_precision": run_precision}
        log(f"  fast {m.name}: {latency * 1000:.1f} ms, loss {metrics['total']:.4g}")
    run = run_iterative(objective.loss, photo, options.iterations, options.snapshots, options.precision,
                        options.lr, log=log)
    curve = [r["total"] for r in run["history"]]
    snaps = {}
    for n, img in sorted(run["snapshots"].items()):
        files[f"iter:{n}"] = _save(img, folder / f"iter_{n:04d}.png", out)
        m = _image_metrics(objective, img, photo)
        m["seconds"] = run["setup_s"] + run["history"][n]["seconds"]
        snaps[n] = m
    for name, f in fast.items():
        n = worth_iterations(curve, f["total_run_precision"])
        f["worth_iterations"] = n
        f["iterative_seconds_to_match"] = (run["setup_s"] + run["history"][n]["seconds"]) if n is not None else None
        f["speedup_at_match"] = (f["iterative_seconds_to_match"] / f["seconds"]) if n is not None else None
        log(f"  {name} is worth {n if n is not None else f'more than {len(curve) - 1}'} iterations")
    return {"photo": photo_path.name, "slug": slug, "width": photo.shape[1], "height": photo.shape[0],
            "files": files, "fast": fast, "snapshots": snaps, "content": _image_metrics(objective, photo, photo),
            "curve": [dict(r) for r in run["history"]],
            "setup_s": run["setup_s"], "iterations_run": run["iterations_run"]}


def _measured_seconds(results: list[dict], options: CompareOptions) -> dict:
    """{N: mean seconds to iteration N} over the photos' full runs, where every run reached N."""
    measured = {}
    for n in options.speed_iterations:
        vals = [r["setup_s"] + r["curve"][n]["seconds"] for r in results if n < len(r["curve"])]
        if vals and len(vals) == len(results):
            measured[n] = float(np.mean(vals))
    return measured


def _save(img: np.ndarray, path: Path, root: Path) -> str:
    images.save(img, path)
    return path.relative_to(root).as_posix()


def _summary(data: dict) -> dict:
    out = {}
    for name in data["models"]:
        worth = [r["fast"][name]["worth_iterations"] for r in data["photos"]]
        speedups = [r["fast"][name]["speedup_at_match"] for r in data["photos"]]
        found = [w for w in worth if w is not None]
        out[name] = {
            "worth_iterations": worth,
            "worth_iterations_median": statistics.median(found) if len(found) == len(worth) else None,
            "never_matched": sum(w is None for w in worth),
            "speedup_at_match": speedups,
            "fast_loss_mean": float(np.mean([r["fast"][name]["metrics"]["total"] for r in data["photos"]])),
        }
    return out


METRIC_COLUMNS = ("photo", "method", "iterations", "seconds", "total", "content", "style", "tv", "histogram",
                  "ssim", "color_distance")


def metric_rows(data: dict) -> list[dict]:
    """One row per photo and image: the photo itself, each fast model, each iterative snapshot."""
    rows = []

    def row(photo, method, iterations, seconds, m):
        r = {"photo": photo, "method": method, "iterations": iterations, "seconds": seconds}
        for k in METRIC_COLUMNS[4:]:
            r[k] = m.get(k, 0.0)
        return r

    for p in data["photos"]:
        rows.append(row(p["photo"], "content", 0, 0.0, p["content"]))
        for name, f in p["fast"].items():
            rows.append(row(p["photo"], f"fast:{name}", "", f["seconds"], f["metrics"]))
        for n, m in sorted(p["snapshots"].items()):
            rows.append(row(p["photo"], "iterative", n, m["seconds"], m))
    return rows


def write_metrics(data: dict, out: Path) -> None:
    rows = metric_rows(data)
    with open(out / "metrics.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=METRIC_COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()})
    slim = {k: v for k, v in data.items() if k != "photos"}
    slim["photos"] = [{k: v for k, v in p.items() if k != "files"} for p in data["photos"]]
    slim["metrics"] = rows
    (out / "metrics.json").write_text(json.dumps(slim, indent=1, default=json_default) + "\n")


