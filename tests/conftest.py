"""Shared fixtures: real VGG weights (no network), real images from ../shared/data."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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
    from impasto.models import load_vgg_weights
    return load_vgg_weights(weights_path)


@pytest.fixture(scope="session")
def data() -> Path:
    return _require(DATA, "shared test images")
