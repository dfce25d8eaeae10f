"""bench/naming_test.py: a blind test whose viewer's folder gives nothing away, scored against its key."""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from impasto import images
from impasto.errors import ImpastoError

REPO = Path(__file__).resolve().parents[2]
CANDY = REPO / "models" / "zoo" / "candy.onnx"


def _bench():
    spec = importlib.util.spec_from_file_location("naming_test", REPO / "bench" / "naming_test.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, data, weights_path):
    """candy's network, one item of each condition, at 64 px and 30 L-BFGS iterations."""
    root = tmp_path_factory.mktemp("naming")
    photos = root / "photos"
    photos.mkdir()
    for name in ("chicago.jpg", "tubingen.jpg", "stata.jpg"):
        shutil.copy(data / "content" / name, photos / name)
    bench = _bench()
    items = bench.prepare(root / "test", [CANDY], photos, data / "style", per_style=1, grades=1,
                          iterative=1, size=64, seed=3, iterations=30)
    return bench, root / "test", photos, items


def test_a_paintings_crops_stand_in_the_line_up_once(data):
    names = [p.name for p in _bench().lineup(data / "style")]
    assert "starry_night.jpg" in names and "rain-princess.jpg" in names and "the_wave.jpg" in names
    assert not any("crop" in n for n in names)
    assert len(names) == len(list((data / "style").iterdir())) - 3


def test_the_viewers_folder_names_no_painting(prepared, data):
    bench, out, _, items = prepared
    viewer = out / "viewer"
    assert sorted(p.name for p in viewer.iterdir()) == ["INSTRUCTIONS.md", "answers.txt", "items", "lineup", "lineup.png"]
    assert sorted(p.name for p in (viewer / "items").iterdir()) == ["item_1.png", "item_2.png", "item_3.png"]
    n = len(bench.lineup(data / "style"))
    assert sorted(p.name for p in (viewer / "lineup").iterdir()) == [f"{k:02d}.png" for k in range(1, n + 1)]
    text = (viewer / "INSTRUCTIONS.md").read_text() + (viewer / "answers.txt").read_text()
    assert "candy" not in text.lower() and "grade" not in text and "iterative" not in text
    assert sorted(it["condition"] for it in items) == ["fast", "grade", "iterative"]
    key = json.loads((out / "key.json").read_text())
    assert key["lineup"][str(items[0]["answer"])] == "candy.jpg"      # the key, not the viewer, knows


def test_each_item_is_what_the_key_says(prepared, data):
    """The fast item is candy's network on its photo; the grade has the painting's colour
    distribution and the photo's shapes; L-BFGS moved the photo."""
    bench, out, photos, items = prepared
    by = {it["condition"]: it for it in items}
    shown = {c: images.load(str(out / "viewer" / "items" / f"{it['item']}.png")) for c, it in by.items()}
    photo = {c: images.load(str(photos / it["photo"]), max_side=64) for c, it in by.items()}
    assert len({it["photo"] for it in items}) == 3                   # no photo shown twice
    fast = bench.stylize_array(bench.engine_for(str(CANDY)), photo["fast"])
    assert np.abs(shown["fast"] - fast).max() <= 1 / 255 + 1e-6
    painting = images.load(str(data / "style" / "candy.jpg"), max_side=512)
    quantiles = np.linspace(0.01, 0.99, 99)
    spread = lambda a: np.quantile(a.reshape(-1, 3), quantiles, axis=0)      # noqa: E731
    gap = lambda a: np.abs(spread(a) - spread(painting)).mean()              # noqa: E731
    assert gap(shown["grade"]) < 0.02 < 0.05 < gap(photo["grade"])           # the painting's colours now
    luma = lambda a: a @ np.array([0.299, 0.587, 0.114])                     # noqa: E731
    assert np.corrcoef(luma(shown["grade"]).ravel(), luma(photo["grade"]).ravel())[0, 1] > 0.8  # its shapes
    assert np.abs(shown["iterative"] - photo["iterative"]).mean() > 0.03


def test_scores_count_the_right_paintings_per_condition(prepared):
    bench, out, _, items = prepared
    key = json.loads((out / "key.json").read_text())
    wrong = next(n for n in key["lineup"] if key["lineup"][n] != "candy.jpg")
    answers = out / "answers.txt"
    right = {it["item"]: it["answer"] for it in items}
    fast = next(it["item"] for it in items if it["condition"] == "fast")
    answers.write_text("# a viewer's sheet; reasons after a '#'\n" + "".join(
        f"{i}: {'none' if i == fast else f'{n:02d}#the colours'}\n" for i, n in right.items()))
    result = bench.score(key, bench.read_answers(answers, key))
    assert result["conditions"]["fast"]["share"] == 0.0
    assert result["conditions"]["grade"]["share"] == result["conditions"]["iterative"]["share"] == 1.0
    assert result["styles"]["fast:candy"] == {"named": 0, "items": 1, "share": 0.0}
    answers.write_text("".join(f"{i}: {wrong}\n" for i in right))
    assert all(r["share"] == 0.0 for r in bench.score(key, bench.read_answers(answers, key))["conditions"].values())


@pytest.mark.parametrize("text, message", [
    ("item_1: 1\nitem_2: 1\n", "no answer for item_3"),
    ("item_1: 1\nitem_2: 999\nitem_3: 1\n", "999 is not a painting's number"),
    ("item_1: 1\nitem_2:\nitem_3: 1\n", "nothing is not a painting's number"),
    ("item_1: 1\nitem 2 is candy\nitem_3: 1\n", ":2: expected 'item_NN"),
    ("item_1: 1\nitem_9: 1\nitem_3: 1\n", ":2: expected 'item_NN"),
])
def test_an_answer_sheet_it_cannot_read_is_refused_by_line(prepared, tmp_path, text, message):
    bench, out, _, _ = prepared
    key = json.loads((out / "key.json").read_text())
    sheet = tmp_path / "answers.txt"
    sheet.write_text(text)
    with pytest.raises(ImpastoError, match=message):
        bench.read_answers(sheet, key)


def test_the_command_refuses_to_paint_over_a_test_in_one_line(prepared):
    _, out, _, _ = prepared
    run = subprocess.run([sys.executable, str(REPO / "bench" / "naming_test.py"), "prepare", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == f"naming_test: {out}: not empty; prepare writes a new test"
