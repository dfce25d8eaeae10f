"""What the fast-training tests run in: real VGG weights, no dataset downloads, the repository
root as the working folder (the configs' relative paths)."""

from __future__ import annotations

import pytest

from helpers import REPO


@pytest.fixture
def training_env(weights_path, monkeypatch):
    monkeypatch.setenv("IMPASTO_VGG_WEIGHTS", weights_path)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.chdir(REPO)
