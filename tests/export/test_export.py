"""ONNX export: dynamic shapes, metadata, parity with PyTorch on random and real photos, atomic
writes, fp16/int8 variants, the Triton repository, and `impasto export` end to end.

The `style_models` fixture (a folder of exported networks with cards and previews) that the
stylise, server and web-page tests share is in tests/conftest.py.
"""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest
import torch

from helpers import make_checkpoint, photos_in


@pytest.fixture(scope="module")
def slim_export(tmp_path_factory):
    import torch  # noqa: F401
    from impasto.export.onnx_export import export_onnx
    from impasto.export.pipeline import load_checkpoint
    d = tmp_path_factory.mktemp("export")
    net, meta = load_checkpoint(make_checkpoint(d / "slim.pt", "slim", "candy"))
    path = export_onnx(net, d / "candy.onnx", style="candy", arch="slim", config_hash="0123abcd")
    return net, path, d


def test_dynamic_shapes_and_metadata(slim_export):
    import onnx
    from impasto.export.onnx_export import read_metadata
    _, path, _ = slim_export
    model = onnx.load(str(path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims[1] == 3 and all(isinstance(d, str) and d for d in (dims[0], dims[2], dims[3])), dims
    assert model.opset_import[0].version >= 18
    meta = read_metadata(path)
    assert meta["style"] == "candy" and meta["arch"] == "slim" and meta["config_hash"] == "0123abcd"
    assert meta["input_range"] == "0,1" and meta["pad_multiple"] == "4"
    oct_mode = path.stat().st_mode & 0o777
    assert oct_mode & 0o044, f"exported model is not readable by others: {oct(oct_mode)}"


def test_parity_random_and_real_photos(slim_export, data):
    from impasto import images
    from impasto.export.onnx_export import parity
    net, path, _ = slim_export
    photos = [images.load(p, max_side=96) for p in photos_in(data)[:3]]
    report = parity(net, path, photos, random_shapes=((1, 64, 64), (3, 52, 76), (1, 37, 90)))
    print(json.dumps(report, indent=1))
    assert report["random"]["cases"] == 3 and report["image"]["cases"] == 3
    for r in report.values():
        assert r["max_abs_diff"] < 1e-4 and r["mean_abs_diff"] < 1e-5


@pytest.mark.parametrize("arch", ["johnson", "slim_dilated", "slim_skip", "slim_centred", "slim_coarse"])
def test_other_architectures_export_with_parity(tmp_path, arch):
    from impasto.export.onnx_export import export_onnx, parity
    from impasto.export.pipeline import load_checkpoint
    net, meta = load_checkpoint(make_checkpoint(tmp_path / "j.pt", arch, "wave"))
    with torch.no_grad():  # the convs as trained; norms and biases as built, which the exporter folds
        for p in net.parameters():               # into shared constants: their names must survive
            if p.dim() == 4:
                p.add_(0.01 * torch.randn_like(p))
    path = export_onnx(net, tmp_path / "wave.onnx", style="wave", arch=arch)
    report = parity(net, path, random_shapes=((2, 48, 68), (1, 130, 94)))
    assert report["random"]["max_abs_diff"] < 1e-4
    # training can continue from the export: every parameter is in it under its torch name
    from impasto.training.fast.checkpoint import load_fast_checkpoint
    again, _ = load_fast_checkpoint(path)
    x = torch.rand(1, 3, 40, 56)
    with torch.no_grad():
        assert torch.equal(again(x), net.eval()(x))


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    from impasto.files import atomic_write_bytes
    target = atomic_write_bytes(tmp_path / "m.onnx", b"old model")

    class Exploding:  # a write that fails half-way, like a crash or a full disk
        def __buffer__(self, flags):
            raise OSError("disk full")
    with pytest.raises((OSError, TypeError)):
        atomic_write_bytes(target, Exploding())
    assert target.read_bytes() == b"old model"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"], "a temporary file was left behind"


def test_fp16_and_int8_variants(slim_export, data):
    from impasto import images
    from impasto.export.onnx_export import calibration_batches, read_metadata, to_fp16, to_int8
    from impasto.serve.runtime import OrtEngine
    from impasto.serve.stylize import run_network
    _, path, d = slim_export
    half = to_fp16(path, d / "candy.fp16.onnx")
    cal = calibration_batches(photos_in(data)[:4], size=128)
    q = to_int8(path, d / "candy.int8.onnx", cal)
    assert read_metadata(half)["precision"] == "fp16" and read_metadata(q)["precision"] == "int8"
    assert half.stat().st_size < 0.7 * path.stat().st_size
    photo = images.load(photos_in(data)[-1], max_side=200)
    ref = run_network(OrtEngine(path), photo)
    for f, tol in ((half, 2 / 255), (q, 40 / 255)):
        out = run_network(OrtEngine(f), photo)
        assert out.shape == ref.shape
        diff = np.abs(out - ref).mean()
        print(f.name, "mean abs diff", diff * 255, "/255")
        assert 0 < diff < tol, (f.name, diff)


def test_cli_export_card_preview_triton(tmp_path, data, capsys):
    ckpt = make_checkpoint(tmp_path / "last.ckpt", "slim", "mosaic", vgg=str(tmp_path / "w" / "vgg16.h5"))
    card = tmp_path / "zoo" / "mosaic.json"
    card.parent.mkdir()
    card.write_text(json.dumps({"style": "mosaic", "trained_by": "the training side"}))
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in photos_in(data)[:1]:
        shutil.copy(p, photos / p.name)
    triton = tmp_path / "triton"
    from impasto.cli import main  # in-process: torch is loaded already, the CLI path is the same
    rc = main(["export", str(ckpt), "-o", str(tmp_path / "zoo" / "mosaic.onnx"), "--card", str(card),
               "--photos", str(photos), "--preview", str(photos_in(data)[0]), "--size", "128",
               "--repeats", "1", "--triton", str(triton), "--max-batch", "4"])
    out = capsys.readouterr().out
    print(out)
    assert rc == 0
    assert "parity vs PyTorch" in out
    c = json.loads(card.read_text())
    assert c["trained_by"] == "the training side", "export must keep what the training side wrote"
    assert c["vgg"] == "vgg16.h5" and str(tmp_path) not in card.read_text(), "machine paths in the card"
    assert c["onnx"]["file"] == "mosaic.onnx" and c["onnx"]["parity_vs_pytorch"]["image"]["cases"] == 1
    assert {"onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8"} <= set(c["backends"])
    assert all(v["latency_ms"] > 0 for k, v in c["backends"].items() if not k.startswith("_"))
    assert (tmp_path / "zoo" / "mosaic.png").stat().st_size > 1000 and c["preview"] == "mosaic.png"
    assert not list((tmp_path / "zoo").glob("*.fp16.onnx")), "variants are measured, not bundled"

    # Triton layout: DIR/<name>/config.pbtxt and DIR/<name>/1/model.onnx, config matching the graph.
    import onnx
    cfg = (triton / "mosaic" / "config.pbtxt").read_text()
    model = onnx.load(str(triton / "mosaic" / "1" / "model.onnx"))
    assert re.search(r'^name: "mosaic"$', cfg, re.M) and 'backend: "onnxruntime"' in cfg
    assert re.search(r"^max_batch_size: 4$", cfg, re.M)
    assert "dynamic_batching {" in cfg and "max_queue_delay_microseconds" in cfg
    assert f'name: "{model.graph.input[0].name}"' in cfg and f'name: "{model.graph.output[0].name}"' in cfg
    assert cfg.count("dims: [ 3, -1, -1 ]") == 2 and "TYPE_FP32" in cfg
    assert cfg.count("{") == cfg.count("}")


def test_cli_export_bad_checkpoint(tmp_path, capsys):
    from impasto.cli import main
    bad = tmp_path / "x.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", str(bad), "-o", str(tmp_path / "x.onnx")]) == 2
    assert "impasto export: error:" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()
