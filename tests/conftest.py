"""Shared fixtures: real VGG weights (no network), real images from ../shared/data, and a folder of\nexported style networks with cards and previews (`style_models`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import make_checkpoint, make_multi_checkpoint, photos_in, write_clip

from helpers import REPO
SHARED = Path(os.environ.get("IMPASTO_SHARED", REPO.parent / "shared"))
DATA = SHARED / "data"


def _require(path: Path, what: str) -> Path:
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"{what} missing at {path}")
        pytest.skip(f"{what} not available at {path}")
    return path


@pytest.fixture(scope="session")
def weights_path() -> str:
    env = os.environ.get("IMPASTO_VGG_WEIGHTS")
    path = Path(env) if env else SHARED / "weights" / "vgg16_hed_bsds500.weights.h5"
    path = str(_require(path, "VGG weights"))
    os.environ.setdefault("IMPASTO_VGG_WEIGHTS", path)  # for the CLI subprocesses the tests start
    return path


@pytest.fixture(scope="session")
def vgg_weights(weights_path):
    from impasto.models.weights import load_vgg_weights
    return load_vgg_weights(weights_path)


@pytest.fixture(scope="session")
def data() -> Path:
    return _require(DATA, "shared test images")


@pytest.fixture(scope="session")
def style_models(tmp_path_factory, data) -> Path:
    """models/: alpha.onnx (+ card, preview) and beta.onnx: two real exported networks."""
    root = tmp_path_factory.getbasetemp() / "style_models"
    if (root / "beta.json").exists():  # built already by another test module this session
        return root
    from impasto import images
    from impasto.export.onnx_export import export_onnx
    from impasto.export.pipeline import load_checkpoint, render_preview
    from impasto.models.zoo.card import write_card
    root.mkdir(parents=True, exist_ok=True)
    net, meta = load_checkpoint(make_checkpoint(root / "alpha.pt", "slim", "alpha"))
    export_onnx(net, root / "alpha.onnx", style="alpha", arch="slim")
    shutil.copy(root / "alpha.onnx", root / "beta.onnx")  # a second style name (one export is enough)
    for name in ("alpha", "beta"):
        render_preview(root / f"{name}.onnx", images.load(photos_in(data)[0], max_side=128), root / f"{name}.png")
        write_card(root / f"{name}.json", {"style": name, "arch": "slim", "steps": 0,
                                          "default": name == "alpha", "preview": f"{name}.png"})
    (root / "alpha.pt").unlink()
    return root


@pytest.fixture(scope="session")
def multi_models(tmp_path_factory, style_models, data) -> Path:
    """models/: duo.onnx, a two-style network (styles "red" and "blue", each with its own random
    norms, so they paint clearly differently) with its per-pixel variant duo.spatial.onnx, card
    and preview; and alpha.onnx (+ card, preview), a single-style network, beside it."""
    root = tmp_path_factory.getbasetemp() / "multi_models"
    if (root / "duo.json").exists():
        return root
    from impasto import images
    from impasto.export.onnx_export import export_onnx
    from impasto.export.pipeline import load_checkpoint, render_preview
    from impasto.models.zoo.card import card_from_meta, write_card
    from impasto.serve.zoo import spatial_path
    root.mkdir(parents=True, exist_ok=True)
    net, meta = load_checkpoint(make_multi_checkpoint(root / "duo.pt", ("red", "blue")), style="duo")
    for spatial in (False, True):
        export_onnx(net, spatial_path(root / "duo.onnx") if spatial else root / "duo.onnx", style="duo",
                    arch="slim", styles=meta["styles"], spatial=spatial)
    render_preview(root / "duo.onnx", images.load(photos_in(data)[0], max_side=128), root / "duo.png")
    write_card(root / "duo.json", {**card_from_meta(meta), "preview": "duo.png"})
    for suffix in (".onnx", ".json", ".png"):
        shutil.copy(style_models / f"alpha{suffix}", root / f"alpha{suffix}")
    (root / "duo.pt").unlink()
    return root


# ----------------------------------------------------------------------------- video

@pytest.fixture(scope="session")
def photo(data):
    """A real photo, 256 px: what the video clip is made of."""
    from impasto import images
    return images.load(data / "content" / "tubingen.jpg", max_side=256)


@pytest.fixture(scope="session")
def clip(tmp_path_factory, photo):
    """A short synthetic video (see helpers.write_clip)."""
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", photo)


@pytest.fixture(scope="session")
def pan_clip(data):
    """A 4 px a frame camera pan over a real photo, with its exact flows (impasto.video.synthetic)."""
    from impasto import images
    from impasto.video import synthetic
    return synthetic.pan(images.load(data / "content" / "chicago.jpg", max_side=320), n=10, width=128, height=96)


@pytest.fixture(scope="session")
def parallax_clip(data):
    """Two layers panning at different speeds and an object crossing in front: occlusions."""
    from impasto import images
    from impasto.video import synthetic
    load = lambda name: images.load(data / "content" / name, max_side=320)  # noqa: E731
    return synthetic.parallax(load("tubingen.jpg"), load("golden_gate.jpg"), load("brad_pitt.jpg"), n=12,
                              width=128, height=96)


@pytest.fixture(scope="session")
def bundled_engine():
    """The bundled candy network on onnxruntime: a trained network responds to motion as users see."""
    from impasto.serve.runtime import load_engine
    from impasto.serve.zoo import resolve_style
    return load_engine(resolve_style("candy"), "ort")


@pytest.fixture(scope="session")
def model(tmp_path_factory):
    """A randomly initialised slim transformer exported to ONNX: a real network for onnxruntime."""
    import torch
    from impasto.export.onnx_export import export_onnx
    from impasto.models.transformer import TransformerNet
    torch.manual_seed(0)
    return export_onnx(TransformerNet("slim"), tmp_path_factory.mktemp("model") / "random_slim.onnx",
                       style="random_slim")


@pytest.fixture(scope="session")
def engine(model):
    from impasto.serve.runtime import load_engine
    return load_engine(model, "ort")


@pytest.fixture
def one_thread():
    """Frames of 64 px gain nothing from threads, and on a busy 2-core machine OpenMP's
    spinning threads slow the optimiser down many times over; restored afterwards."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
