"""Shared fixtures: real VGG weights (no network), real images from ../shared/data, and a folder of\nexported style networks with cards and previews (`style_models`)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from helpers import make_checkpoint, photos_in

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
