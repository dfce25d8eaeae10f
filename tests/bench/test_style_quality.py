"""bench/style_quality.py holds every network to its original painting."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _bench():
    spec = importlib.util.spec_from_file_location("style_quality", REPO / "bench" / "style_quality.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_network_exported_under_another_name_is_held_to_its_painting_not_the_thumbnail(tmp_path, data):
    """An export as net.onnx leaves net.style.jpg, a 512 px JPEG thumbnail, beside it and no card; the
    measure must still use the painting the ONNX metadata names."""
    net = tmp_path / "net.onnx"
    shutil.copy(REPO / "models" / "zoo" / "candy.onnx", net)
    shutil.copy(REPO / "models" / "zoo" / "candy.style.jpg", tmp_path / "net.style.jpg")
    bench = _bench()
    [(name, painting, weights)] = list(bench._styles_of(net, {}, []))
    assert (name, weights) == ("net", None)
    assert painting == data / "style" / "candy.jpg"


def test_a_network_that_names_no_painting_falls_back_to_the_thumbnail_beside_it(tmp_path):
    """A card-less ONNX without impasto metadata: the thumbnail beside it is all there is."""
    import onnx
    model = onnx.load(str(REPO / "models" / "zoo" / "candy.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "mystery.onnx"))
    shutil.copy(REPO / "models" / "zoo" / "candy.style.jpg", tmp_path / "mystery.style.jpg")
    [(_, painting, _)] = list(_bench()._styles_of(tmp_path / "mystery.onnx", {}, []))
    assert painting == tmp_path / "mystery.style.jpg"
