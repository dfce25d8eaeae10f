"""bench/style_quality.py holds every network to its original painting."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

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
    [(name, painting, weights)] = list(bench.styles_of(net, {}, []))
    assert (name, weights) == ("net", None)
    assert painting == data / "style" / "candy.jpg"


def test_a_network_that_names_no_painting_falls_back_to_the_thumbnail_beside_it(tmp_path):
    """A card-less ONNX without impasto metadata: the thumbnail beside it is all there is."""
    import onnx
    model = onnx.load(str(REPO / "models" / "zoo" / "candy.onnx"))
    del model.metadata_props[:]
    onnx.save(model, str(tmp_path / "mystery.onnx"))
    shutil.copy(REPO / "models" / "zoo" / "candy.style.jpg", tmp_path / "mystery.style.jpg")
    [(_, painting, _)] = list(_bench().styles_of(tmp_path / "mystery.onnx", {}, []))
    assert painting == tmp_path / "mystery.style.jpg"


def test_the_mirrored_figure_holds_the_mirrored_painting_of_the_mirrored_photo(data, weights_path):
    """In the mirror, a painting, photo and output that are their own mirrors score as they do
    plainly; an output made of one diagonal's stripes scores differently, since the HED VGG's
    filters are not exact mirror pairs."""
    import numpy as np
    from impasto import images
    bench = _bench()
    painting = images.load(str(data / "style" / "starry_night.jpg"), max_side=96)
    photo = images.load(str(data / "content" / "chicago.jpg"), max_side=96)
    symmetric = lambda a: (a + a[:, ::-1]) / 2               # noqa: E731
    q = bench.StyleQuality(symmetric(painting), weights_path)
    twin = q.mirrored(symmetric(painting))
    same_photo, same_out = symmetric(photo), symmetric(photo[::-1])
    plain = q.score(same_photo, same_out)["style_reduction"]
    assert twin.score(bench._mirror(same_photo), bench._mirror(same_out))["style_reduction"] == \
        pytest.approx(plain, abs=1e-4)
    q = bench.StyleQuality(painting, weights_path)
    twin = q.mirrored(painting)
    i, j = np.indices(photo.shape[:2])
    stripes = (0.5 + 0.4 * np.sin((i + j) * 0.9))[..., None] * photo.astype(np.float32)
    gap = twin.score(bench._mirror(photo), bench._mirror(stripes))["style_reduction"] - \
        q.score(photo, stripes)["style_reduction"]
    assert abs(gap) > 0.1       # 72 points for these stripes
