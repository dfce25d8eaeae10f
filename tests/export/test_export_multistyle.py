"""A multi-style network's export: the style_weights input (a mix per image, or per pixel in the
spatial variant next to it), parity with PyTorch, fp16/int8/OpenVINO, the card's style names and
the Triton repository's second input. Single-style files keep their one input."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from helpers import REPO, make_multi_checkpoint, photos_in


@pytest.fixture(scope="module")
def exported(tmp_path_factory, data):
    """`impasto export` of a two-style checkpoint, with a card, variants and a Triton repository."""
    from impasto.cli import main
    d = tmp_path_factory.mktemp("multi_export")
    ckpt = make_multi_checkpoint(d / "last.ckpt", ("red", "blue"))
    photos = d / "photos"
    photos.mkdir()
    shutil.copy(photos_in(data)[0], photos)
    rc = main(["export", str(ckpt), "-o", str(d / "zoo" / "duo.onnx"), "--card", str(d / "zoo" / "duo.json"),
               "--photos", str(photos), "--size", "128", "--repeats", "1", "--triton", str(d / "triton"),
               "--max-batch", "4", "--preview", str(photos_in(data)[0])])
    assert rc == 0
    return d


def test_export_writes_both_graphs_with_parity_and_the_style_names(exported):
    import onnx
    card = json.loads((exported / "zoo" / "duo.json").read_text())
    assert card["styles"] == ["red", "blue"] and card["style_images"] == ["red.jpg", "blue.jpg"]
    for key in ("parity_vs_pytorch",):
        assert card["onnx"][key]["image"]["max_abs_diff"] < 1e-4
        assert card["onnx"]["spatial"][key]["random"]["max_abs_diff"] < 1e-4
    assert {"onnxruntime-fp32", "onnxruntime-fp16", "onnxruntime-int8"} <= set(card["backends"])
    plain = onnx.load(str(exported / "zoo" / "duo.onnx"))
    spatial = onnx.load(str(exported / "zoo" / card["onnx"]["spatial"]["file"]))
    dims = [[d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in plain.graph.input]
    assert [i.name for i in plain.graph.input] == ["input", "style_weights"]
    assert dims[1][1] == 2 and len(dims[1]) == 2 and dims[1][0] == dims[0][0]   # (N, S), N shared
    sdims = [d.dim_param or d.dim_value for d in spatial.graph.input[1].type.tensor_type.shape.dim]
    assert len(sdims) == 4 and sdims[1] == 2
    meta = {p.key: p.value for p in plain.metadata_props}
    assert meta["impasto.styles"] == "red,blue" and meta["impasto.spatial"] == "false"


def test_export_draws_the_style_sheet(exported, data):
    """One column per style (painting above, the photo in that style below) and a 50/50 blend."""
    from impasto import images
    card = json.loads((exported / "zoo" / "duo.json").read_text())
    assert card["sheet"] == "duo.sheet.jpg" and "50/50 blend of red and blue" in card["sheet_caption"]
    sheet = images.load(exported / "zoo" / card["sheet"])
    h, w = images.load(photos_in(data)[0], max_side=192).shape[:2]
    assert sheet.shape[:2] == (2 * h, 3 * w + 2 * 4)
    tiles = [sheet[:, i * (w + 4):i * (w + 4) + w] for i in range(3)]
    assert abs(float(tiles[0][:h].mean()) - 0.5) < 0.02           # red.jpg is not at hand: a grey tile
    red, blue, blend = (t[h:] for t in tiles)
    assert np.abs(red - blue).mean() > 0.05                       # two styles, two paintings of the photo
    assert np.abs(blend - red).mean() > 0.02 and np.abs(blend - blue).mean() > 0.02


def test_triton_config_declares_the_style_weights(exported):
    import onnx
    cfg = (exported / "triton" / "multi" / "config.pbtxt").read_text()
    model = onnx.load(str(exported / "triton" / "multi" / "1" / "model.onnx"))
    assert [i.name for i in model.graph.input] == ["input", "style_weights"]
    assert re.search(r'name: "style_weights"\s+data_type: TYPE_FP32\s+dims: \[ 2 \]', cfg)
    assert 'key: "impasto.styles"' in cfg and 'string_value: "red,blue"' in cfg
    assert cfg.count("{") == cfg.count("}")


def test_runtimes_agree_on_blends_and_fp16_stays_close(exported, tmp_path):
    from impasto.export.onnx_export import to_fp16
    from impasto.serve.runtime import OpenVinoEngine, OrtEngine, openvino_available
    zoo = exported / "zoo"
    ort32 = OrtEngine(zoo / "duo.onnx", threads=1)
    assert ort32.styles == ["red", "blue"] and not ort32.spatial
    x = np.random.default_rng(0).random((2, 3, 64, 80), dtype=np.float32)
    w = np.array([[0.7, 0.3], [0.0, 1.0]], np.float32)
    ref = ort32(x, w)
    half = OrtEngine(to_fp16(zoo / "duo.onnx", tmp_path / "duo.fp16.onnx"), threads=1)
    assert half.styles == ["red", "blue"]
    assert np.abs(half(x, w) - ref).mean() < 2e-3
    spatial = OrtEngine(zoo / "duo.spatial.onnx", threads=1)
    assert spatial.spatial
    # a map that is the same mix everywhere gives the per-image result
    flat = np.broadcast_to(w[:, :, None, None], (2, 2, 64, 80)).copy()
    assert np.abs(spatial(x, flat) - ref).max() < 1e-4
    if openvino_available():
        ov = OpenVinoEngine(zoo / "duo.onnx", "fp32", threads=1)
        assert ov.styles == ["red", "blue"]
        assert np.abs(ov(x, w) - ref).max() < 1e-3
        ov_map = OpenVinoEngine(zoo / "duo.spatial.onnx", "fp32", threads=1)
        assert np.abs(ov_map(x, flat) - ref).max() < 1e-3


def test_single_style_models_keep_one_input(tmp_path):
    """The bundled networks load as before and refuse style weights with a clear message."""
    from impasto.errors import ImpastoError
    from impasto.serve.runtime import OrtEngine
    engine = OrtEngine(REPO / "models" / "zoo" / "candy.onnx", threads=1)
    assert engine.styles == [] and not engine.spatial
    x = np.zeros((1, 3, 32, 32), np.float32)
    assert engine(x).shape == x.shape
    with pytest.raises(ImpastoError, match="one style"):
        engine(x, np.ones((1, 2), np.float32))
