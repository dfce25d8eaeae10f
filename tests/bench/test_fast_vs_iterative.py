"""bench/fast_vs_iterative.py measures a bundled network, which ships without its checkpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCH = REPO / "bench" / "fast_vs_iterative.py"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(BENCH), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=600)


def test_a_bundled_network_is_measured_on_the_objective_its_card_names(tmp_path, weights_path):
    """The .onnx holds the weights, the card beside it the objective: the bench reads both and
    scores the network on the card's loss weights against L-BFGS."""
    card = json.loads((REPO / "models" / "zoo" / "candy.json").read_text())
    done = _run("models/zoo/candy.onnx", "--photos", "1", "--size", "64", "--iterations", "4",
                "--precision", "fp32", "--threads", "1", "--init", "noise", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert f"candy ({card['arch']}, {card['steps']} steps)" in done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # the noise start's loss is far above what the network paints, on the card's weights
    assert result["start_loss"] > 2 * result["fast_loss"] > 0
    assert set(result["fast_terms"]) == {k for k, w in card["loss_weights"].items() if w and k != "temporal"}
    assert (tmp_path / f"candy_{Path(result['photo']).stem}.png").is_file()


def test_an_exported_network_without_its_card_is_refused_with_a_clear_message(tmp_path):
    net = tmp_path / "net.onnx"
    shutil.copy(REPO / "models" / "zoo" / "candy.onnx", net)
    done = _run(str(net), "--photos", "1", "--size", "64", "--iterations", "2")
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    assert "net.json beside it is missing; pass the training checkpoint instead" in done.stderr


def test_the_style_term_is_split_by_layer_for_the_network_and_for_lbfgs_where_it_matches(tmp_path, weights_path):
    """Where the worth is lost: each style layer's part of the term, for the network and for L-BFGS
    at the iteration that matches its total. The parts add up to the term."""
    card = json.loads((REPO / "models" / "zoo" / "candy.json").read_text())
    done = _run("models/zoo/candy.onnx", "--photos", "1", "--size", "64", "--iterations", "30",
                "--precision", "fp32", "--threads", "1", "--init", "photo", "--out", str(tmp_path))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    fast, lbfgs = result["fast_style_by_layer"], result["lbfgs_style_by_layer_at_match"]
    assert list(fast) == card["config"]["model"]["style_layers"]
    assert sum(fast.values()) == pytest.approx(result["fast_terms"]["style"], rel=1e-3)
    assert result["lbfgs_iterations_matched"] is not None and list(lbfgs) == list(fast)
    # two different images: L-BFGS from the photo has not yet matched the painting's finest layer
    assert lbfgs["relu1_1"] > 2 * fast["relu1_1"]
    assert f"style by layer, fast | L-BFGS at {result['lbfgs_iterations_matched']}:" in done.stdout


def test_a_network_validated_on_a_folder_of_its_own_is_measured_on_that_folder(tmp_path, data, weights_path):
    """A network trained from a pack (`impasto train-gpu`) trained on every photo of its source
    folder: its held-out photos are its val_source's, and a val_source that is not here is refused."""
    card = json.loads((REPO / "models" / "zoo" / "candy.json").read_text())
    train, held = tmp_path / "train", tmp_path / "held"
    photos = sorted((data / "coco_sample").glob("*.jpg"))
    for folder, chosen in ((train, photos[10:13]), (held, photos[20:22])):
        folder.mkdir()
        for p in chosen:
            shutil.copy(p, folder / p.name)
    card["config"]["data"].update(source=str(train), val_source=str(held), holdout=1)
    shutil.copy(REPO / "models" / "zoo" / "candy.onnx", tmp_path / "candy.onnx")
    (tmp_path / "candy.json").write_text(json.dumps(card))
    done = _run(str(tmp_path / "candy.onnx"), "--photos", "1", "--size", "64", "--iterations", "2",
                "--precision", "fp32", "--threads", "1", "--out", str(tmp_path / "out"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["photo"] == photos[20].name   # not train's first
    shutil.rmtree(held)
    done = _run(str(tmp_path / "candy.onnx"), "--photos", "1", "--size", "64", "--iterations", "2")
    assert done.returncode != 0 and "give --source" in done.stderr and "Traceback" not in done.stderr
