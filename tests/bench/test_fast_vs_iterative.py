"""bench/fast_vs_iterative.py measures a bundled network, which ships without its checkpoint."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

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
