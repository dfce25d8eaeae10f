"""From a training checkpoint to a bundled style: ONNX + parity report + variants + card + preview.

`export_style` is what `impasto export` runs: export (atomic), check parity against PyTorch on
random and real photos, make fp16 and int8 variants, measure each backend's speed and its quality
against onnxruntime fp32, render a preview, and merge it all into the model card (JSON) next to the
model, keeping whatever the training side already wrote there.
"""

from __future__ import annotations

import math
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from impasto import images
from impasto.errors import ImpastoError
from impasto.files import atomic_write_bytes
from impasto.models.zoo.card import card_from_meta, write_card, write_style_thumbnail
from impasto.serve.runtime import OpenVinoEngine, OrtEngine, cpu_has_bf16, openvino_available
from impasto.serve.stylize import run_network
from impasto.serve.zoo import spatial_path
from impasto.training.fast.checkpoint import load_fast_checkpoint
from impasto.video.synthetic import cover

from .onnx_export import (DEFAULT_OPSET, calibration_batches, export_onnx, parity,
                          sha256, to_fp16, to_int8)


# ----------------------------------------------------------------------------- checkpoints

def load_checkpoint(path: str | os.PathLike, arch: str | None = None, style: str | None = None):
    """(net, meta) from a checkpoint written by `impasto train`; `arch` and `style` override its meta."""
    path = Path(path)
    if not path.is_file():
        raise ImpastoError(f"{path}: no such checkpoint")
    net, meta = load_fast_checkpoint(path)
    meta = dict(meta or {})
    if arch:
        meta["arch"] = arch
    meta.setdefault("arch", getattr(net, "arch_name", "johnson"))
    meta["style"] = style or meta.get("style") or path.parent.name or path.stem
    return net.eval(), meta


# ----------------------------------------------------------------------------- measuring

def _median_ms(fn, x, repeats: int) -> float:
    fn(x)  # warm-up: the first runs allocate, and OpenVINO compiles a static-shape model
    fn(x)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn(x)
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def measure_backends(files: dict[str, Path], photos: Sequence[np.ndarray], size: int = 512,
                     repeats: int = 3, threads: int | None = None) -> dict:
    """Latency at size x size and quality against onnxruntime fp32 on real photos, per backend.

    files: {"fp32": path, "fp16": path, "int8": path}. OpenVINO (fp32, and bf16 when the CPU has
    it) runs the fp32 file, as the runtime does."""
    engines = {"onnxruntime-fp32": lambda: OrtEngine(files["fp32"], threads)}
    if "fp16" in files:
        engines["onnxruntime-fp16"] = lambda: OrtEngine(files["fp16"], threads)
    if "int8" in files:
        engines["onnxruntime-int8"] = lambda: OrtEngine(files["int8"], threads)
    if openvino_available():
        engines["openvino-fp32"] = lambda: OpenVinoEngine(files["fp32"], "fp32", threads)
        if cpu_has_bf16():
            engines["openvino-bf16"] = lambda: OpenVinoEngine(files["fp32"], "bf16", threads)
    x = np.random.default_rng(0).random((1, 3, size, size), dtype=np.float32)
    reference = None
    report = {}
    for name, make in engines.items():
        eng = make()
        outs = [run_network(eng, p) for p in photos]
        if reference is None:
            reference = outs
        diffs = [np.abs(o - r) for o, r in zip(outs, reference)]
        report[name] = {
            "latency_ms": round(_median_ms(eng, x, repeats), 1),
            "mean_abs_diff_vs_fp32": float(np.mean([d.mean() for d in diffs])) * 255,
            "max_abs_diff_vs_fp32": float(max(d.max() for d in diffs)) * 255,
            "psnr_db_vs_fp32": min(_psnr(o, r) for o, r in zip(outs, reference)),
        }
        for k in ("mean_abs_diff_vs_fp32", "max_abs_diff_vs_fp32"):
            report[name][k] = round(report[name][k], 3)
        psnr = report[name]["psnr_db_vs_fp32"]
        report[name]["psnr_db_vs_fp32"] = None if math.isinf(psnr) else round(psnr, 2)
        if "file" not in report[name]:
            key = name.split("-")[1] if name.startswith("onnxruntime") else "fp32"
            report[name]["file"] = Path(files[key]).name
    report["_conditions"] = {"size": f"{size}x{size}", "repeats": repeats, "statistic": "median",
                             "quality_photos": len(photos), "units": "diff in 0..255 levels"}
    return report


def render_preview(onnx_path, photo: np.ndarray, out: Path) -> Path:
    y = run_network(OrtEngine(onnx_path), photo)
    atomic_write_bytes(out, images.encode(y, "PNG"))
    return out


def render_style_sheet(onnx_path, photo: np.ndarray, paintings: Sequence[Path | None], out: Path) -> str:
    """A multi-style model's sheet: one column per style, its painting above the photo in that
    style, and a last column with the photo above a 50/50 blend of the first two styles. Returns
    the caption. A painting that is not at hand leaves its tile grey."""
    engine = OrtEngine(onnx_path)
    h, w = photo.shape[:2]
    count = len(engine.styles)
    columns = []
    for i, painting in enumerate(paintings):
        at_hand = painting and Path(painting).is_file()
        top = cover(images.load(painting, max_side=2 * max(h, w)), w, h) if at_hand else np.full_like(photo, .5)
        one_hot = np.eye(count, dtype=np.float32)[i]
        columns.append(np.concatenate([top, run_network(engine, photo, style_weights=one_hot)]))
    blend = np.zeros(count, np.float32)
    blend[:2] = 0.5
    columns.append(np.concatenate([photo, run_network(engine, photo, style_weights=blend)]))
    gap = np.ones((2 * h, 4, 3), np.float32)
    atomic_write_bytes(out, images.encode(np.concatenate([c for col in columns for c in (col, gap)][:-1], axis=1),
                                          "JPEG", quality=88))
    return (f"Top: the paintings ({', '.join(engine.styles)}) and the photo. Bottom: the photo in each style, "
            f"one pass each, and last a 50/50 blend of {engine.styles[0]} and {engine.styles[1]}." if count > 1 else "")


# ----------------------------------------------------------------------------- the export

def _real_photos(paths: Sequence[Path], size: int) -> list[np.ndarray]:
    return [images.load(p, max_side=size) for p in paths]


def _export_checked(net, output: Path, meta: dict, opset: int, real: Sequence[np.ndarray], log,
                    spatial: bool = False) -> dict:
    """Export, then check onnxruntime against PyTorch (random and real inputs); refuse a broken file."""
    t0 = time.perf_counter()
    export_onnx(net, output, style=meta["style"], arch=meta["arch"], config_hash=str(meta.get("config_hash", "")),
                opset=opset, styles=meta.get("styles") or (), spatial=spatial,
                extra_meta={"edge_margin": meta["edge_margin"]} if meta.get("edge_margin") is not None else None)
    log(f"exported {output} ({output.stat().st_size / 1e6:.1f} MB, opset {opset}) "
        f"in {time.perf_counter() - t0:.1f} s")
    par = parity(net, output, real)
    for kind, r in par.items():
        log(f"parity vs PyTorch on {r['cases']} {kind} input(s): max abs diff {r['max_abs_diff']:.2e}, "
            f"mean {r['mean_abs_diff']:.2e}")
    worst = max(r["max_abs_diff"] for r in par.values())
    if worst > 1e-3:
        raise ImpastoError(f"ONNX output differs from PyTorch by up to {worst:.3g}: export is broken")
    return par


def export_style(checkpoint, output, *, style: str | None = None, arch: str | None = None,
                 photos: Sequence[Path] = (), calibration: Sequence[Path] = (),
                 variants: bool = True, keep_variants: bool = False, card: Path | None = None,
                 preview_photo: Path | None = None, measure_size: int = 512, repeats: int = 3,
                 opset: int = DEFAULT_OPSET, edge_margin: int | None = None, log=print) -> dict:
    """The whole export; returns the report that is also merged into the card. `edge_margin`:
    the reflected margin the network needs (px), stored in the model for the runtime."""
    output = Path(output)
    if output.suffix != ".onnx":
        raise ImpastoError(f"{output}: the output file must end in .onnx")
    net, meta = load_checkpoint(checkpoint, arch, style)
    styles = list(meta.get("styles") or [])
    real = _real_photos(photos, 256)
    if edge_margin is not None:
        meta = {**meta, "edge_margin": edge_margin}
    par = _export_checked(net, output, meta, opset, real, log)
    training_half = card_from_meta(meta)
    inputs = "float32 NCHW RGB 0..1, dynamic N/H/W"
    if styles:
        inputs += f"; style_weights float32 (N, {len(styles)}): the mix of {', '.join(styles)}"
    report = {**training_half, "style": meta["style"], "arch": meta["arch"],
              "onnx": {"file": output.name, "opset": opset, "bytes": output.stat().st_size,
                       "sha256": sha256(output), "inputs": inputs,
                       "parity_vs_pytorch": par}}
    if edge_margin is not None:
        report["edge_margin"] = edge_margin
    if styles:   # the per-pixel variant (spatial blending), next to it
        spatial = spatial_path(output)
        spatial_parity = _export_checked(net, spatial, meta, opset, real, log, spatial=True)
        report["onnx"]["spatial"] = {"file": spatial.name, "sha256": sha256(spatial),
                                     "inputs": f"style_weights float32 (N, {len(styles)}, H, W), per pixel",
                                     "parity_vs_pytorch": spatial_parity}
    if variants:
        vdir = output.parent if keep_variants else Path(tempfile.mkdtemp(prefix="impasto-variants-"))
        files = {"fp32": output}
        files["fp16"] = to_fp16(output, vdir / f"{output.stem}.fp16.onnx")
        cal = calibration_batches(calibration or photos, 256)
        files["int8"] = to_int8(output, vdir / f"{output.stem}.int8.onnx", cal)
        log(f"variants: fp16 {files['fp16'].stat().st_size / 1e6:.1f} MB, "
            f"int8 {files['int8'].stat().st_size / 1e6:.1f} MB (calibrated on {len(cal)} photos)")
        quality = _real_photos(photos, measure_size) if photos else real
        backends = measure_backends(files, quality, measure_size, repeats)
        for name, r in backends.items():
            if not name.startswith("_"):
                log(f"  {name:18s} {r['latency_ms']:8.1f} ms at {measure_size}px   "
                    f"vs fp32: mean {r['mean_abs_diff_vs_fp32']:.2f}/255, PSNR {r['psnr_db_vs_fp32']} dB")
        report["backends"] = backends
        if not keep_variants:
            for f in (files["fp16"], files["int8"]):
                f.unlink(missing_ok=True)
            os.rmdir(vdir)
    if preview_photo:
        prev = render_preview(output, images.load(preview_photo, max_side=384), output.with_suffix(".png"))
        report["preview"] = prev.name
        log(f"preview {prev}")
    if preview_photo and len(styles) > 1:   # every style on one photo, and a blend
        sheet = output.with_suffix(".sheet.jpg")
        report["sheet_caption"] = render_style_sheet(output, images.load(preview_photo, max_side=192),
                                                     [Path(p) for p in meta.get("style_images") or []], sheet)
        report["sheet"] = sheet.name
        log(f"style sheet {sheet}")
    style_image = Path(str(meta.get("style_image") or ""))
    if style_image.is_file():   # compare needs the painting wherever the model goes
        thumb = write_style_thumbnail(style_image, output)
        report["style_thumbnail"] = thumb.name
        log(f"style thumbnail {thumb}")
    if card:
        write_card(Path(card), report, file_names_only=True)
        log(f"model card {card}")
    return report
