"""One network, many styles: the two bars of issue 13, measured in one run.

    python bench/bench_multistyle.py [--minutes 4] [--init-from runs/base_slim/checkpoints/last.ckpt]
        [--multi runs/multi/checkpoints/last.ckpt] [--style ../shared/data/style/the_wave.jpg]
        [--photos 4] [--json out.json]

1. Latency at 512 px (onnxruntime fp32, the same run, interleaved, median): a multi-style slim
   network with --styles styles against the single-style slim network of the same width; the
   bar is a ratio within 1.2. The per-pixel (spatial) graph is timed too, and with
   --extra-blocks N the same multi-style network with N more residual blocks (what more depth,
   the cheapest capacity, would cost at inference).
2. Adding a style: the new style trained from scratch (a whole single-style network, from the
   base network as the recipe does) for --minutes of CPU time, against the same style added to a
   trained multi-style network (only its norm rows train) for a quarter of that. Both are scored
   on held-out photos by bench/style_quality.py's measure (Gram-distance reduction at Gatys'
   layers, not the training layers). The bar: the added style reaches >= 80% of the from-scratch
   reduction in <= 1/4 of its CPU time.

Without --multi, a multi-style network is trained first on --multi-styles for --multi-minutes;
without --init-from, a base network (content + pixel loss, configs/fast/base.yaml) for
--base-minutes. Those preparations are not part of either measured budget. CPU time is the
process's (time.process_time), so other jobs on the machine do not count against a run; one
torch thread throughout.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytorch_lightning as pl
import torch

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(Path(__file__).parent))

from style_quality import STYLE_SIDE, StyleQuality  # noqa: E402

from impasto import images  # noqa: E402
from impasto.export.onnx_export import export_onnx  # noqa: E402
from impasto.hardware import auto_trainer_precision  # noqa: E402
from impasto.models.tensors import to_array, to_tensor  # noqa: E402
from impasto.models.transformer import MultiStyleTransformerNet, TransformerNet  # noqa: E402
from impasto.serve.runtime import OrtEngine  # noqa: E402
from impasto.serve.zoo import spatial_path  # noqa: E402
from impasto.training.fast.checkpoint import load_fast_checkpoint  # noqa: E402
from impasto.training.fast.data import PhotoDataModule  # noqa: E402
from impasto.training.fast.module import FastStyleModule  # noqa: E402
from impasto.training.fast.multistyle import MultiStyleModule  # noqa: E402

# The bundled recipe (configs/fast/candy.yaml), at a crop size a short CPU run can afford.
RECIPE = dict(arch="slim", content_weight=1.0, style_weight=3000.0, style_relative=True, style_ramp_steps=0)


# ----------------------------------------------------------------------------- latency

def latency(styles: int, size: int, repeats: int, threads: int, folder: Path, extra_blocks: int = 0) -> dict:
    torch.manual_seed(0)
    single = export_onnx(TransformerNet("slim"), folder / "single.onnx", style="single")
    multi_net = MultiStyleTransformerNet("slim", styles)
    names = [f"s{i}" for i in range(styles)]
    multi = export_onnx(multi_net, folder / "multi.onnx", style="multi", styles=names)
    spatial = export_onnx(multi_net, spatial_path(multi), style="multi", styles=names, spatial=True)
    engines = {"single": OrtEngine(single, threads), "multi": OrtEngine(multi, threads),
               "spatial": OrtEngine(spatial, threads)}
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    mix = np.full((1, styles), 1.0 / styles, np.float32)
    feeds = {"single": None, "multi": mix,
             "spatial": np.broadcast_to(mix[:, :, None, None], (1, styles, size, size)).copy()}
    if extra_blocks:
        deeper = replace(multi_net.spec, res_blocks=multi_net.spec.res_blocks + extra_blocks)
        engines["deeper"] = OrtEngine(export_onnx(MultiStyleTransformerNet(deeper, styles), folder / "deeper.onnx",
                                                  style="multi", styles=names), threads)
        feeds["deeper"] = mix
    times: dict[str, list[float]] = {k: [] for k in engines}
    for name, eng in engines.items():   # warm-up
        eng(x, feeds[name])
    for _ in range(repeats):             # interleaved: the machine's load hits every engine alike
        for name, eng in engines.items():
            t = time.perf_counter()
            eng(x, feeds[name])
            times[name].append((time.perf_counter() - t) * 1000)
    ms = {k: statistics.median(v) for k, v in times.items()}
    result = {"size": size, "styles": styles, "threads": threads, "repeats": repeats,
              "single_ms": round(ms["single"], 1), "multi_ms": round(ms["multi"], 1),
              "spatial_ms": round(ms["spatial"], 1),
              "multi_over_single": round(ms["multi"] / ms["single"], 3),
              "spatial_over_single": round(ms["spatial"] / ms["single"], 3)}
    if extra_blocks:
        result |= {"extra_blocks": extra_blocks, "deeper_ms": round(ms["deeper"], 1),
                   "deeper_over_single": round(ms["deeper"] / ms["single"], 3)}
    return result


# ----------------------------------------------------------------------------- training on a CPU budget

class CpuBudget(pl.Callback):
    """Stops training before the process has spent more than `seconds` of CPU time in it (VGG
    targets excluded): it stops when the next step, as long as the last, would cross the budget."""

    def __init__(self, seconds: float):
        self.seconds, self.used, self._start = seconds, 0.0, None

    def on_train_start(self, trainer, pl_module):
        self._start = time.process_time()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        last, self.used = self.used, time.process_time() - self._start
        if self.used + (self.used - last) > self.seconds:
            trainer.should_stop = True


def train(module: pl.LightningModule, seconds: float, args, out: Path) -> tuple[Path, dict]:
    """Train within `seconds` of CPU and save the checkpoint; one kept from an earlier run with
    --workdir is reused (its budget and steps from the side file)."""
    info_file = out.with_suffix(".json")
    if out.exists() and info_file.exists() and out.name != "added.ckpt":
        return out, {**json.loads(info_file.read_text()), "reused": True}
    budget = CpuBudget(seconds)
    data = PhotoDataModule(str(args.source), holdout=8, image_size=args.crop, resize_size=args.crop * 2,
                           batch_size=args.batch, cache_images=True)
    trainer = pl.Trainer(max_steps=10 ** 7, callbacks=[budget], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         precision=auto_trainer_precision(False), default_root_dir=str(out.parent))
    trainer.fit(module, datamodule=data)
    trainer.save_checkpoint(out)
    info = {"cpu_s": round(budget.used, 1), "steps": int(trainer.global_step)}
    info_file.write_text(json.dumps(info) + "\n")
    return out, info


def score(net, style_path: Path, photos: list[np.ndarray], weights: torch.Tensor | None) -> float:
    quality = StyleQuality(images.load(str(style_path), max_side=STYLE_SIDE))
    reductions = []
    with torch.no_grad():
        for photo in photos:
            x = to_tensor(photo)
            y = net(x) if weights is None else net(x, weights)
            reductions.append(quality.score(photo, to_array(y))["style_reduction"])
    return statistics.mean(reductions)


def add_a_style(args, folder: Path) -> dict:
    base = args.init_from
    if not base:
        module = FastStyleModule(style_name="base", arch="slim", style_weight=0.0, pixel_weight=20000.0)
        base, info = train(module, args.base_minutes * 60, args, folder / "base.ckpt")
        print(f"base network: {info}", flush=True)
    multi = args.multi
    if not multi:
        styles = [SHARED / "data" / "style" / f"{n}.jpg" for n in args.multi_styles.split(",")]
        module = MultiStyleModule([str(p) for p in styles], init_from=str(base), style_size=args.style_size,
                                  lr=1e-3, **RECIPE)
        multi, info = train(module, args.multi_minutes * 60, args, folder / "multi.ckpt")
        print(f"multi-style network ({args.multi_styles}): {info}", flush=True)
    scratch_module = FastStyleModule(str(args.style), init_from=str(base), style_size=args.style_size, lr=1e-3,
                                     **RECIPE)
    scratch, scratch_info = train(scratch_module, args.minutes * 60, args, folder / "scratch.ckpt")
    print(f"from scratch: {scratch_info}", flush=True)
    added_module = MultiStyleModule([str(args.style)], add_to=str(multi), style_size=args.style_size,
                                    lr=args.norm_lr, **RECIPE)
    added, added_info = train(added_module, args.minutes * 60 / 4, args, folder / "added.ckpt")
    print(f"added to the multi-style network: {added_info}", flush=True)

    content = sorted(p for p in (SHARED / "data" / "content").iterdir() if p.suffix.lower() in (".jpg", ".png"))
    photos = [images.load(str(p), max_side=args.eval_size) for p in content[: args.photos]]
    scratch_net, _ = load_fast_checkpoint(scratch)
    added_net, meta = load_fast_checkpoint(added)
    one_hot = torch.zeros(1, added_net.num_styles)
    one_hot[0, -1] = 1.0
    base_net, _ = load_fast_checkpoint(base)
    r_base = score(base_net, args.style, photos, None)
    r_scratch = score(scratch_net, args.style, photos, None)
    r_added = score(added_net, args.style, photos, one_hot)
    return {"style": Path(args.style).stem, "photos": len(photos), "eval_size": args.eval_size,
            "base_reduction": round(r_base, 4),
            "scratch": {**scratch_info, "style_reduction": round(r_scratch, 4),
                        "trained_parameters": sum(p.numel() for p in scratch_net.parameters())},
            "added": {**added_info, "style_reduction": round(r_added, 4),
                      "trained_parameters": meta["trained_parameters"]},
            "reduction_ratio": round(r_added / r_scratch, 3) if r_scratch > 0 else None,
            "cpu_ratio": round(added_info["cpu_s"] / max(scratch_info["cpu_s"], 1e-9), 3),
            "bar": "added >= 0.8 x scratch reduction in <= 1/4 of its CPU time"}


def cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return "?"
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), "?")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=4.0,
                    help="CPU minutes of the from-scratch run; the added style gets a quarter (default: %(default)s)")
    ap.add_argument("--style", type=Path, default=SHARED / "data" / "style" / "the_wave.jpg",
                    help="the new style (default: %(default)s)")
    ap.add_argument("--init-from", default=None, help="a base network checkpoint (default: train one)")
    ap.add_argument("--base-minutes", type=float, default=1.0, help="CPU minutes of that base (default: %(default)s)")
    ap.add_argument("--multi", default=None, help="a trained multi-style checkpoint (default: train one)")
    ap.add_argument("--multi-styles", default="candy,udnie,mosaic",
                    help="styles of that multi-style network (default: %(default)s)")
    ap.add_argument("--multi-minutes", type=float, default=3.0, help="its CPU minutes (default: %(default)s)")
    ap.add_argument("--norm-lr", type=float, default=0.03,
                    help="learning rate of the added style's norm rows (default: %(default)s)")
    ap.add_argument("--source", type=Path, default=SHARED / "data" / "coco_sample",
                    help="training photos (default: %(default)s)")
    ap.add_argument("--crop", type=int, default=96, help="training crop, px (default: %(default)s)")
    ap.add_argument("--batch", type=int, default=4, help="batch size (default: %(default)s)")
    ap.add_argument("--style-size", type=int, default=256, help="painting's side for its Grams (default: %(default)s)")
    ap.add_argument("--photos", type=int, default=4, help="held-out photos scored (default: %(default)s)")
    ap.add_argument("--eval-size", type=int, default=256, help="their longest side (default: %(default)s)")
    ap.add_argument("--styles", type=int, default=8, help="styles of the latency network (default: %(default)s)")
    ap.add_argument("--size", type=int, default=512, help="latency image side (default: %(default)s)")
    ap.add_argument("--extra-blocks", type=int, default=0,
                    help="also time the multi-style network with this many more residual blocks (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per engine (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=1, help="torch / onnxruntime threads (default: %(default)s)")
    ap.add_argument("--skip-training", action="store_true", help="latency only")
    ap.add_argument("--workdir", type=Path, default=None,
                    help="keep the checkpoints here and reuse them on the next run (base, multi-style, "
                         "from scratch; the added style always trains again), e.g. to try another "
                         "--norm-lr on the same networks (default: a temporary folder)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    pl.seed_everything(0, verbose=False)
    results = {"cpu": cpu_model(), "norm_lr": a.norm_lr}
    with tempfile.TemporaryDirectory(prefix="impasto-multistyle-") as tmp:
        folder = a.workdir or Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        results["latency"] = lat = latency(a.styles, a.size, a.repeats, a.threads, folder, a.extra_blocks)
        print(f"latency at {a.size} px, onnxruntime fp32, {a.threads} thread(s): single {lat['single_ms']} ms, "
              f"{a.styles}-style {lat['multi_ms']} ms (x{lat['multi_over_single']}), per-pixel "
              f"{lat['spatial_ms']} ms (x{lat['spatial_over_single']}); bar x1.2", flush=True)
        if a.extra_blocks:
            print(f"with {a.extra_blocks} more residual block(s): {lat['deeper_ms']} ms "
                  f"(x{lat['deeper_over_single']})", flush=True)
        if not a.skip_training:
            results["add_a_style"] = add = add_a_style(a, folder)
            print(f"{add['style']} on {add['photos']} held-out photos: base network {add['base_reduction']:.1%}; "
                  f"from scratch {add['scratch']['style_reduction']:.1%} in {add['scratch']['cpu_s']} CPU s "
                  f"({add['scratch']['steps']} steps); added {add['added']['style_reduction']:.1%} in "
                  f"{add['added']['cpu_s']} CPU s ({add['added']['steps']} steps, "
                  f"{add['added']['trained_parameters']} parameters): {add['reduction_ratio']} of the "
                  f"reduction in {add['cpu_ratio']} of the time (bar: >= 0.8 in <= 0.25)", flush=True)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
