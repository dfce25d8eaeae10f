"""Export a trained TransformerNet to ONNX, check it against PyTorch, and make fp16/int8 variants.

The exported graph takes `input` (N, 3, H, W) float32 RGB in 0..1 with dynamic batch, height and
width, and returns `output` of the same shape in 0..1. A multi-style network takes a second input,
`style_weights`: (N, S) float32, one mix of its S styles per image (a one-hot row is one style),
or, in its spatial variant (`spatial=True`), (N, S, H, W): one mix per pixel of the input. The
two are separate graphs because the per-pixel one resizes the map to every norm layer, work the
plain blend should not pay for. Facts a runtime needs (style, architecture,
input range, the pad multiple, the training config hash) ride along as ONNX metadata properties,
so a bare .onnx file is self-describing. Every file is written atomically: a crash never leaves a
half-written model where a server would load it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                      quantize_static)
from onnxruntime.transformers.float16 import convert_float_to_float16

from impasto import __version__, images
from impasto.errors import ImpastoError
from impasto.files import atomic_write_bytes
from impasto.models.transformer import MultiStyleTransformerNet

# Opset 21 (ONNX 1.16): the newest that the oldest onnxruntime this package allows (1.18) runs,
# so an exported file loads everywhere impasto installs (and in Triton releases that bundle
# onnxruntime 1.18 or newer).
# Exports at 22 and 23 were checked here too (`--opset`).
DEFAULT_OPSET = 21
INPUT_NAME, OUTPUT_NAME = "input", "output"
STYLE_INPUT_NAME = "style_weights"
META_PREFIX = "impasto."


# ----------------------------------------------------------------------------- files

def save_model(model, path: str | os.PathLike) -> Path:
    """Serialise an onnx.ModelProto atomically (these models are far below the 2 GB protobuf cap)."""
    return atomic_write_bytes(path, model.SerializeToString())


def sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


# ----------------------------------------------------------------------------- metadata

def set_metadata(model, meta: dict) -> None:
    existing = {p.key: p for p in model.metadata_props}
    for key, value in meta.items():
        key = key if key.startswith(META_PREFIX) else META_PREFIX + key
        prop = existing.get(key)
        if prop is None:
            prop = model.metadata_props.add()
            prop.key = key
        prop.value = str(value)


def read_metadata(path_or_model) -> dict:
    """The impasto.* metadata of an ONNX file, without the prefix."""
    model = path_or_model if hasattr(path_or_model, "graph") else onnx.load(str(path_or_model),
                                                                           load_external_data=False)
    return {p.key[len(META_PREFIX):]: p.value for p in model.metadata_props
            if p.key.startswith(META_PREFIX)}


# ----------------------------------------------------------------------------- export

def export_onnx(net, path: str | os.PathLike, *, style: str, arch: str | None = None,
                config_hash: str = "", extra_meta: dict | None = None,
                opset: int = DEFAULT_OPSET, sample_hw: tuple[int, int] = (128, 128),
                verbose: bool = False, styles: Sequence[str] = (), spatial: bool = False) -> Path:
    """Trace `net` with torch.export (dynamic batch/H/W) and write an ONNX file atomically.

    A MultiStyleTransformerNet gets the `style_weights` input: (N, S), or with `spatial`
    (N, S, H, W) at the input's size; `styles` names its S styles in order (metadata)."""

    net = net.eval()
    arch = arch or getattr(net, "arch_name", "custom")
    x = torch.rand(1, 3, *sample_hw)
    batch, height, width = (torch.export.Dim(n) for n in ("batch", "height", "width"))
    args, names, dynamic = (x,), [INPUT_NAME], {"x": {0: batch, 2: height, 3: width}}
    multi = isinstance(net, MultiStyleTransformerNet)
    if multi:
        count = net.num_styles
        styles = list(styles) or [f"style{i}" for i in range(count)]
        if len(styles) != count:
            raise ImpastoError(f"{len(styles)} style names for a network with {count} styles")
        w = torch.full((1, count, *sample_hw) if spatial else (1, count), 1.0 / count)
        args, names = (x, w), [INPUT_NAME, STYLE_INPUT_NAME]
        dynamic["style_weights"] = {0: batch, 2: height, 3: width} if spatial else {0: batch}
    elif spatial:
        raise ImpastoError("only a multi-style network has a spatial (per-pixel style weights) variant")
    sink = io.StringIO()
    with warnings.catch_warnings(), torch.no_grad(), contextlib.redirect_stdout(sink), \
            contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            net, args, input_names=names, output_names=[OUTPUT_NAME],
            dynamic_shapes=dynamic, dynamo=True, opset_version=opset, verbose=False)
    if verbose:
        print(sink.getvalue(), end="")
    model = program.model_proto
    _name_every_tensor(model, net)
    onnx.checker.check_model(model)
    model.producer_name = "impasto"
    model.doc_string = f"impasto fast style network: style {style}, architecture {arch}"
    spec = net.describe() if hasattr(net, "describe") else {}
    set_metadata(model, {
        "style": style,
        "arch": arch,
        "input": f"{INPUT_NAME}: float32 NCHW RGB in [0, 1], dynamic N/H/W",
        "output": f"{OUTPUT_NAME}: float32 NCHW RGB in [0, 1], same H/W as the input",
        "input_range": "0,1",
        "pad_multiple": "4",
        "config_hash": config_hash or "",
        "parameters": spec.get("parameters", ""),
        "impasto_version": __version__,
        **({"styles": ",".join(styles), "spatial": str(spatial).lower(),
            STYLE_INPUT_NAME: (f"{STYLE_INPUT_NAME}: float32 (N, {len(styles)}, H, W), per pixel, the input's H/W"
                               if spatial else f"{STYLE_INPUT_NAME}: float32 (N, {len(styles)}), one mix per image")
            + "; non-negative, summing to 1 over the styles"} if multi else {}),
        **(extra_meta or {}),
    })
    return save_model(model, path)


def _name_every_tensor(model, net) -> None:
    """Keep each of the network's tensors as an initializer under its torch name, so training can
    continue from the file (`init_from`). The exporter folds equal constants into one: a network
    as built (norms at one, biases and a grown branch's zero conv at zero) loses most names. Those
    come back as unused initializers, which the runtimes drop when they load the file."""
    have = {t.name for t in model.graph.initializer}
    model.graph.initializer.extend(
        onnx.numpy_helper.from_array(t.detach().float().numpy(), name)
        for name, t in net.state_dict().items() if name not in have)


# ----------------------------------------------------------------------------- parity

def _ort_session(path, threads: int | None = None):
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _pad4(arr: np.ndarray) -> np.ndarray:
    h, w = arr.shape[:2]
    return np.pad(arr, ((0, (-h) % 4), (0, (-w) % 4), (0, 0)), mode="reflect")


def parity(net, onnx_path, images: Sequence[np.ndarray] = (), random_shapes: Iterable = (
        (1, 64, 64), (2, 96, 128), (1, 75, 101)), seed: int = 0) -> dict:
    """Max and mean absolute difference between PyTorch and onnxruntime outputs (0..1 scale).

    Random inputs exercise dynamic batch and odd sizes; `images` (HxWx3 float 0..1) are real photos.
    """
    sess = _ort_session(onnx_path)
    rng = np.random.default_rng(seed)
    cases = [("random", rng.random((n, 3, h, w), dtype=np.float32)) for n, h, w in random_shapes]
    cases += [("image", np.ascontiguousarray(_pad4(im).transpose(2, 0, 1)[None], dtype=np.float32))
              for im in images]
    report: dict = {}
    net = net.eval()
    if isinstance(net, MultiStyleTransformerNet):
        cases = [(kind, x, _random_style_weights(sess, x, rng)) for kind, x in cases]
    else:
        cases = [(kind, x, None) for kind, x in cases]
    # One thread: a parity check needs no speed, and OpenMP's spinning threads slow to a crawl
    # when the cores are shared (measured here: 2.8 s vs 0.02 s for a small batch).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return _parity_cases(net, sess, cases, report)
    finally:
        torch.set_num_threads(threads)


def _random_style_weights(sess, x: np.ndarray, rng) -> np.ndarray:
    """Random mixes for a multi-style model: one per image, or a smooth one per pixel."""
    second = sess.get_inputs()[1]
    count = second.shape[1]
    n, _, h, w = x.shape
    if len(second.shape) == 2:
        return rng.dirichlet(np.ones(count), size=n).astype(np.float32)
    ramp = np.linspace(0.0, 1.0, w, dtype=np.float32)[None, None, None, :] * np.ones((n, count, h, w), np.float32)
    mix = rng.random((n, count, 1, 1), dtype=np.float32) + ramp * rng.random((n, count, 1, 1), dtype=np.float32)
    return mix / mix.sum(1, keepdims=True)


def _parity_cases(net, sess, cases, report: dict) -> dict:
    for kind, x, weights in cases:
        with torch.no_grad():
            if weights is None:
                ref = net(torch.from_numpy(x)).numpy()
            else:
                ref = net(torch.from_numpy(x), torch.from_numpy(weights)).numpy()
        feed = {INPUT_NAME: x} if weights is None else {INPUT_NAME: x, STYLE_INPUT_NAME: weights}
        out = sess.run(None, feed)[0]
        if out.shape != ref.shape:
            raise ImpastoError(f"ONNX output shape {out.shape} differs from PyTorch's {ref.shape}")
        d = np.abs(out.astype(np.float64) - ref)
        r = report.setdefault(kind, {"cases": 0, "max_abs_diff": 0.0, "mean_abs_diff": 0.0, "_sum": 0.0,
                                     "_n": 0})
        r["cases"] += 1
        r["max_abs_diff"] = max(r["max_abs_diff"], float(d.max()))
        r["_sum"] += float(d.sum())
        r["_n"] += d.size
    for r in report.values():
        r["mean_abs_diff"] = r.pop("_sum") / max(r.pop("_n"), 1)
    return report


# ----------------------------------------------------------------------------- variants

def to_fp16(src, dst) -> Path:
    """fp16 weights and activations; the graph keeps float32 input/output so callers don't change."""
    model = onnx.load(str(src))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        half = convert_float_to_float16(model, keep_io_types=True)
    _unique_node_names(half)
    set_metadata(half, {"precision": "fp16"})
    return save_model(half, dst)


def _unique_node_names(model) -> None:
    """Repair two quirks of the fp16 converter on shared initialisers (the Resize scales used by
    both upsampling stages): it emits the same Cast twice, with one node name and one output name.
    Drop the exact duplicates and make the remaining node names unique, as ONNX requires."""
    produced: dict = {}
    keep = []
    for node in model.graph.node:
        sig = (node.op_type, tuple(node.input), tuple(a.SerializeToString() for a in node.attribute))
        if node.output and all(o in produced for o in node.output):
            if all(produced[o] == sig for o in node.output):
                continue
        for o in node.output:
            produced[o] = sig
        keep.append(node)
    if len(keep) != len(model.graph.node):
        del model.graph.node[:]
        model.graph.node.extend(keep)
    seen: set = set()
    for i, node in enumerate(model.graph.node):
        if node.name in seen or not node.name:
            node.name = f"{node.name or node.op_type}_{i}"
        seen.add(node.name)


def calibration_batches(paths: Sequence[str | os.PathLike], size: int = 256, limit: int = 16):
    """Calibration inputs for static int8 quantisation: real photos, longest side `size`, /4-padded."""
    out = []
    for p in list(paths)[:limit]:
        try:
            arr = images.load(p, max_side=size)
        except ImpastoError:
            continue
        out.append(np.ascontiguousarray(_pad4(arr).transpose(2, 0, 1)[None], dtype=np.float32))
    if not out:
        raise ImpastoError("no readable calibration photos for int8 quantisation")
    return out


def to_int8(src, dst, calibration: Sequence[np.ndarray]) -> Path:
    """Static int8 quantisation (QDQ, per-channel weights) calibrated on real photos."""

    inputs = [i.name for i in onnx.load(str(src), load_external_data=False).graph.input]
    count = len(read_metadata(src).get("styles", "").split(","))

    class Reader(CalibrationDataReader):
        """Real photos; a multi-style model sees each style in turn (one-hot), so every style's
        activation ranges count."""

        def __init__(self):
            self.it = enumerate(calibration)

        def get_next(self):
            i, x = next(self.it, (None, None))
            if x is None:
                return None
            if STYLE_INPUT_NAME not in inputs:
                return {INPUT_NAME: x}
            w = np.zeros((x.shape[0], count), np.float32)
            w[:, i % count] = 1.0
            return {INPUT_NAME: x, STYLE_INPUT_NAME: w}

    dst = Path(dst)
    logging.getLogger().setLevel(logging.ERROR)  # the quantiser logs advice at WARNING on root
    with tempfile.TemporaryDirectory(dir=dst.parent if dst.parent.exists() else None) as tmp:
        tmp_out = Path(tmp) / "int8.onnx"
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            quantize_static(str(src), str(tmp_out), Reader(), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8,
                            weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod.MinMax,
                            op_types_to_quantize=["Conv"])
        model = onnx.load(str(tmp_out))
    set_metadata(model, {"precision": "int8"})
    return save_model(model, dst)
