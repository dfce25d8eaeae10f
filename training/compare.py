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
measured iterations (setup + first iteration + (N-1) x the measured cost of one more iteration);
the report says which figures are measured and which are extrapolated.

One iteration here is one evaluation of the objective (a VGG forward and backward pass), the unit
`optimize_pixels` counts; "iteration n" is the image after n updates (iteration 0 = the photo).
"""

from __future__ import annotations

import csv
import inspect
import json
import math
import os
import platform
import statistics
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np

from impasto import images
from impasto.errors import ImpastoError

SNAPSHOTS = (0, 25, 50, 100, 200, 300, 500)
SPEED_SIZES = (256, 512, 1024)
SPEED_ITERATIONS = (100, 300, 500)
TERMS = ("content", "style", "tv", "histogram")


# =========================================================================== image metrics (numpy)

def _gaussian_kernel(sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def _filter2(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D array with the 1-D kernel k (both directions)."""
    n = len(k)
    h, w = img.shape
    rows = sum(k[i] * img[:, i:w - n + 1 + i] for i in range(n))
    return sum(k[i] * rows[i:h - n + 1 + i, :] for i in range(n))


def luma(arr: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB image in 0..1."""
    return arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004) of two RGB images' luma, in 0..1 units.

    Gaussian window sigma 1.5 (11 taps), K1 0.01, K2 0.03, data range 1: the constants of the
    paper and of scikit-image's `structural_similarity(gaussian_weights=True)`. 1 = identical.
    """
    if a.shape[:2] != b.shape[:2]:
        raise ImpastoError(f"SSIM needs images of the same size, not {a.shape[:2]} and {b.shape[:2]}")
    x, y = luma(a), luma(b)
    k = _gaussian_kernel()
    if min(x.shape) < len(k):
        raise ImpastoError(f"SSIM needs images of at least {len(k)} px a side")
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = _filter2(x, k), _filter2(y, k)
    sxx = _filter2(x * x, k) - mx * mx
    syy = _filter2(y * y, k) - my * my
    sxy = _filter2(x * y, k) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def rgb_to_lab(arr: np.ndarray) -> np.ndarray:
    """sRGB in 0..1 -> CIELAB (D65), L in 0..100."""
    rgb = arr[..., :3].astype(np.float64)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, projections: int = 64, quantiles: int = 256,
                       seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two point clouds (N, D) and (M, D).

    Each of `projections` fixed random unit directions gives two 1-D distributions; their W1
    distance is the mean absolute difference of their quantile functions (sampled at `quantiles`
    points). The result is the mean over directions, in the units of the points.
    """
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(projections, a.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    q = (np.arange(quantiles) + 0.5) / quantiles
    pa = np.quantile(a @ dirs.T, q, axis=0)
    pb = np.quantile(b @ dirs.T, q, axis=0)
    return float(np.abs(pa - pb).mean())


def color_distance(image: np.ndarray, style: np.ndarray) -> float:
    """How far an image's colour distribution is from the style image's: sliced Wasserstein-1
    distance between their pixel colours in CIELAB (about Delta-E units; 0 = same palette)."""
    return sliced_wasserstein(rgb_to_lab(image).reshape(-1, 3), rgb_to_lab(style).reshape(-1, 3))


# =========================================================================== the fast model's objective

def training_defaults() -> dict:
    """The fast training module's own defaults (what a config that leaves a key out trained with)."""
    from impasto.training.fast import FastStyleModule
    sig = inspect.signature(FastStyleModule.__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if k != "self" and p.default is not inspect.Parameter.empty}


def read_model_card(onnx_path: Path) -> dict:
    card_path = Path(onnx_path).with_suffix(".json")
    if not card_path.is_file():
        raise ImpastoError(f"{onnx_path}: no model card {card_path.name} next to it; the comparison needs "
                           "the objective the model was trained with (write one with "
                           "`python -m impasto.training.fast CHECKPOINT CARD.json`)")
    try:
        return json.loads(card_path.read_text())
    except ValueError as exc:
        raise ImpastoError(f"{card_path}: model card is not valid JSON ({exc})") from None


def training_params(card: dict) -> dict:
    """The hyper-parameters the fast model was trained with: the card's training config over the
    training module's defaults."""
    model_cfg = (card.get("config") or {}).get("model")
    if not isinstance(model_cfg, dict):
        raise ImpastoError(f"model card of {card.get('style', '?')!r} has no training config (config.model); "
                           "cannot rebuild the objective it was trained with")
    params = training_defaults()
    params.update({k: v for k, v in model_cfg.items() if v is not None or k in ("style_layer_weights",)})
    # The loss weights recorded by the module itself win (they are what it actually used).
    for key, value in (card.get("loss_weights") or {}).items():
        if f"{key}_weight" in params and value is not None:
            params[f"{key}_weight"] = value
    return params


def find_style_image(params: dict, card: dict, given: Optional[str | os.PathLike] = None,
                     search: Sequence[Path] = ()) -> Path:
    """The painting the model was trained on: `given`, else the config's path (relative to the
    working folder, as `impasto train` resolves it), else its file name in the search folders."""
    if given:
        p = Path(given)
        if not p.is_file():
            raise ImpastoError(f"--style-image {given}: no such file")
        return p
    recorded = params.get("style_image") or card.get("style_image")
    if not recorded:
        raise ImpastoError("the model card does not name its style image; pass --style-image")
    candidates = [Path(recorded)] + [Path(d) / Path(recorded).name for d in search]
    for c in candidates:
        if c.is_file():
            return c
    raise ImpastoError(f"style image {recorded!r} of this model not found (looked in: "
                       f"{', '.join(str(c.parent) for c in candidates)}); pass --style-image PATH")


@dataclass
class FastObjective:
    """The objective a fast model was trained with, targets set, ready to evaluate images."""
    loss: object                  # PerceptualLoss
    params: dict
    style_image: Path
    style: np.ndarray             # the style image as the objective sees it (at style_size)
    vgg: str

    def describe(self) -> dict:
        keys = ("content_weight", "style_weight", "tv_weight", "histogram_weight", "content_layers",
                "style_layers", "style_layer_weights", "style_size")
        d = {k: self.params.get(k) for k in keys}
        d["style_image"] = self.style_image.name
        d["vgg"] = self.vgg
        d["content_normalize"] = "mean"
        d["gram_norm"] = "chw"
        return d


def build_fast_objective(params: dict, style_image: Path, vgg_weights: Optional[str] = None) -> FastObjective:
    """Rebuild the training objective exactly as `FastStyleModule.prepare_loss` does."""
    import torch
    from impasto.models.tensors import to_array
    from impasto.training.fast import build_perceptual_loss, load_style_image

    vgg = vgg_weights or params.get("vgg_weights")
    loss = build_perceptual_loss(vgg, params["content_weight"], params["style_weight"], params["tv_weight"],
                                 params.get("histogram_weight", 0.0), params["content_layers"],
                                 params["style_layers"], params.get("style_layer_weights"),
                                 style_relative=params.get("style_relative", False))
    style = load_style_image(str(style_image), params.get("style_size"))
    with torch.autocast("cpu", enabled=False):
        loss.set_targets(styles=[style])
    loss.eval()
    return FastObjective(loss, params, Path(style_image), to_array(style), loss.weights_source.source)


def evaluate(loss, image: np.ndarray, content: np.ndarray, precision: str = "fp32") -> dict:
    """The objective's terms and total for `image` with `content` as the content target, as the
    training step computes them (`loss(y, content=x)`)."""
    import torch
    from impasto.models.tensors import to_tensor
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        total, terms = loss(to_tensor(image), content=to_tensor(content))
    row = {k: float(v) for k, v in terms.items()}
    row["total"] = float(total)
    return row


# =========================================================================== the runs

@dataclass
class CompareOptions:
    size: int = 512                              # longest side of the photos in the comparison
    iterations: int = 500                        # iterative run length per photo
    snapshots: Sequence[int] = SNAPSHOTS
    precision: str = "bf16"                      # of the iterative runs (bf16 autocast or fp32)
    lr: float = 0.5                              # L-BFGS step (1.0 oscillates on the fast objectives; docs/compare.md)
    speed_sizes: Sequence[int] = SPEED_SIZES
    speed_iterations: Sequence[int] = SPEED_ITERATIONS
    speed_measure: int = 4                       # iterations timed per size for the speed table
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


def _slug(name: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_" else "_" for c in name)
    return keep.strip("_") or "image"


def _time_fast(engine, photo: np.ndarray, repeats: int) -> tuple[np.ndarray, float]:
    """Output and median latency (s) of the fast model on one photo, after one warm-up pass."""
    from impasto.serve.stylize import run_network
    out = run_network(engine, photo)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        out = run_network(engine, photo)
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def worth_iterations(curve: Sequence[float], fast_loss: float) -> Optional[int]:
    """First iteration n whose loss is at most the fast model's (None: never within the run)."""
    for n, value in enumerate(curve):
        if value <= fast_loss:
            return n
    return None


def run_iterative(loss, photo: np.ndarray, iterations: int, snapshots: Sequence[int], precision: str,
                  lr: float = 1.0, log: Callable[[str], None] = print) -> dict:
    """L-BFGS from the photo on the objective (content target = the photo). Returns the loss
    curve (terms at iterations 0..iterations), cumulative seconds, setup time and snapshots."""
    import torch
    from impasto.models.tensors import to_array, to_tensor
    from impasto.training.optimize import optimize_pixels

    t0 = time.perf_counter()
    content = to_tensor(photo)
    loss.set_targets(content=content)
    setup = time.perf_counter() - t0
    wanted = set(snapshots)
    shots: dict[int, np.ndarray] = {}
    step_every = max(1, iterations // 10)

    def on_step(step: int, x: torch.Tensor, row: dict) -> None:
        n = step - 1                       # evaluation `step` sees the image after step-1 updates
        if n in wanted:
            shots[n] = to_array(x)
        if n % step_every == 0 or n == iterations:
            log(f"    iteration {n:4d}/{iterations}  loss {row['total']:.4g}  ({row['seconds']:.1f} s)")

    result = optimize_pixels(lambda x: loss(x), content, iterations + 1, "lbfgs", lr, precision, on_step)
    if result.interrupted:
        raise KeyboardInterrupt
    history = result.history
    final = len(history) - 1
    if final not in shots:               # L-BFGS stopped early on a flat loss: the last image
        shots[final] = result.image
    return {"history": history, "setup_s": setup, "snapshots": shots, "iterations_run": final}


def speed_table(objective: FastObjective, models: Sequence[FastModel], photo: np.ndarray,
                options: CompareOptions, measured: Optional[dict] = None,
                log: Callable[[str], None] = print) -> list[dict]:
    """Fast latency and iterative seconds per size, extrapolated from a few timed iterations.
    `measured`: {N: seconds} from the full runs at the comparison size, reported beside them."""
    from impasto.training.optimize import optimize_pixels
    from impasto.models.tensors import to_tensor
    rows = []
    for side in options.speed_sizes:
        img = images.resize(photo, side)
        h, w = img.shape[:2]
        row = {"size": side, "width": w, "height": h}
        for m in models:
            _, latency = _time_fast(m.engine, img, options.fast_repeats)
            row[f"fast_ms[{m.name}]"] = latency * 1000
        t0 = time.perf_counter()
        objective.loss.set_targets(content=to_tensor(img))
        setup = time.perf_counter() - t0
        k = options.speed_measure
        res = optimize_pixels(lambda x: objective.loss(x), to_tensor(img), k, "lbfgs", options.lr,
                              options.precision)
        secs = [r["seconds"] for r in res.history]
        first = secs[0]
        per_iter = (secs[-1] - secs[0]) / (len(secs) - 1) if len(secs) > 1 else first
        row.update({"setup_s": setup, "first_iteration_s": first, "per_iteration_s": per_iter,
                    "measured_iterations": len(secs)})
        main_ms = row[f"fast_ms[{models[0].name}]"]
        for n in options.speed_iterations:
            # Every size by the same method (the load on a shared machine changes between the
            # long runs and these timings); the long runs' own times are kept beside it.
            est = setup + first + (n - 1) * per_iter
            row[f"iterative_s[{n}]"] = est
            row[f"source[{n}]"] = "measured" if n <= len(secs) else "extrapolated"
            row[f"speedup[{n}]"] = est / (main_ms / 1000)
            if measured and side == options.size and n in measured:
                row[f"measured_s[{n}]"] = measured[n]
        log(f"  speed at {side}px ({w}x{h}): fast {main_ms:.1f} ms, iterative {per_iter:.3f} s/iteration "
            f"(measured over {len(secs) - 1} iterations after a warm-up one)")
        rows.append(row)
    return rows


def _machine() -> dict:
    import torch
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    return {"cpu": platform.processor() or platform.machine(), "cores": cores,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "load_average": [round(x, 2) for x in os.getloadavg()]}


def _image_metrics(objective: FastObjective, image: np.ndarray, photo: np.ndarray) -> dict:
    row = evaluate(objective.loss, image, photo, "fp32")
    row["ssim"] = ssim(image, photo)
    row["color_distance"] = color_distance(image, objective.style)
    return row


def compare(photos: Sequence[str | os.PathLike], model: str | os.PathLike, output_dir: str | os.PathLike,
            options: Optional[CompareOptions] = None, extra_models: Sequence[str | os.PathLike] = (),
            style_image: Optional[str | os.PathLike] = None, vgg_weights: Optional[str] = None,
            style_search: Sequence[Path] = (), log: Callable[[str], None] = print) -> dict:
    """Run the whole comparison and write the report folder; returns the report's data."""
    import torch
    from impasto.serve.runtime import load_engine

    options = (options or CompareOptions()).check()
    photos = [Path(p) for p in photos]
    if not photos:
        raise ImpastoError("no photos to compare on")
    out = Path(output_dir)
    model = Path(model)
    card = read_model_card(model)
    params = training_params(card)
    style_path = find_style_image(params, card, style_image, style_search)
    log(f"objective of {model.name}: content {params['content_weight']} on {', '.join(params['content_layers'])}, "
        f"style {params['style_weight']} on {', '.join(params['style_layers'])}, tv {params['tv_weight']}, "
        f"style image {style_path.name} at {params.get('style_size')} px")
    objective = build_fast_objective(params, style_path, vgg_weights)
    torch.manual_seed(options.seed)

    models = [FastModel(card.get("style") or model.stem, model)]
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

    out.mkdir(parents=True, exist_ok=True)
    results = []
    for i, photo_path in enumerate(photos):
        photo = images.load(photo_path, max_side=options.size)
        slug = _slug(photo_path.stem)
        if any(r["slug"] == slug for r in results):
            slug = f"{slug}_{i}"
        folder = out / "images" / slug
        log(f"[{i + 1}/{len(photos)}] {photo_path.name} at {photo.shape[1]}x{photo.shape[0]}")
        files = {"content": _save(photo, folder / "content.png", out)}
        fast = {}
        for m in models:
            y, latency = _time_fast(m.engine, photo, options.fast_repeats)
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
        content_metrics = _image_metrics(objective, photo, photo)
        results.append({"photo": photo_path.name, "slug": slug, "width": photo.shape[1], "height": photo.shape[0],
                        "files": files, "fast": fast, "snapshots": snaps, "content": content_metrics,
                        "curve": [{k: v for k, v in r.items()} for r in run["history"]],
                        "setup_s": run["setup_s"], "iterations_run": run["iterations_run"]})

    measured = {}
    for n in options.speed_iterations:
        vals = [r["setup_s"] + r["curve"][n]["seconds"] for r in results if n < len(r["curve"])]
        if vals and len(vals) == len(results):
            measured[n] = float(np.mean(vals))
    log("speed table")
    speed = speed_table(objective, models, images.load(photos[0]), options, measured, log)

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
        "machine": _machine(),
        "photos": results,
        "speed": speed,
    }
    data["summary"] = _summary(data)
    write_metrics(data, out)
    from .report import write_report
    write_report(data, out)
    return data


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
    (out / "metrics.json").write_text(json.dumps(slim, indent=1, default=_json_default) + "\n")


def _json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Fraction):            # a video's frame rate
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def fmt_float(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"
