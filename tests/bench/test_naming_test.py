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
    """candy's network, one item of each condition for three viewers, at 64 px and 30 L-BFGS
    iterations."""
    root = tmp_path_factory.mktemp("naming")
    photos = root / "photos"
    photos.mkdir()
    for name in ("chicago.jpg", "tubingen.jpg", "stata.jpg"):
        shutil.copy(data / "content" / name, photos / name)
    bench = _bench()
    items = bench.prepare(root / "test", [CANDY], photos, data / "style", per_style=1, grades=1,
                          iterative=1, size=64, seed=3, iterations=30, viewers=3)
    return bench, root / "test", photos, items


def _sheets(out: Path) -> list[Path]:
    return sorted(out.glob("viewer_*/answers.txt"))


def test_a_paintings_crops_stand_in_the_line_up_once(data):
    names = [p.name for p in _bench().lineup(data / "style")]
    assert "starry_night.jpg" in names and "rain-princess.jpg" in names and "the_wave.jpg" in names
    assert not any("crop" in n for n in names)
    assert len(names) == len(list((data / "style").iterdir())) - 3


def test_each_viewer_sees_the_painting_once_and_no_folder_names_it(prepared, data):
    bench, out, _, items = prepared
    n = len(bench.lineup(data / "style"))
    assert sorted(p.name for p in out.iterdir()) == ["key.json", "viewer_1", "viewer_2", "viewer_3"]
    shown = []
    for viewer in sorted(out.glob("viewer_*")):
        assert sorted(p.name for p in viewer.iterdir()) == ["INSTRUCTIONS.md", "answers.txt", "items", "lineup",
                                                           "lineup.png"]
        [item] = sorted(p.name for p in (viewer / "items").iterdir())   # candy once per viewer
        shown.append(item)
        assert (viewer / "answers.txt").read_text() == f"{item[:-4]}: \n"
        assert sorted(p.name for p in (viewer / "lineup").iterdir()) == [f"{k:02d}.png" for k in range(1, n + 1)]
        text = (viewer / "INSTRUCTIONS.md").read_text() + (viewer / "answers.txt").read_text()
        assert "candy" not in text.lower() and "grade" not in text and "iterative" not in text
    assert sorted(shown) == ["item_1.png", "item_2.png", "item_3.png"]
    assert sorted(it["condition"] for it in items) == ["fast", "grade", "iterative"]
    key = json.loads((out / "key.json").read_text())
    assert key["lineup"][str(items[0]["answer"])] == "candy.jpg"      # the key, not the viewer, knows


def test_more_items_of_a_painting_than_viewers_is_refused_and_one_viewer_sees_all():
    bench = _bench()
    items = [{"painting": "candy.jpg", "condition": c} for c in ("fast", "fast", "grade")]
    with pytest.raises(ImpastoError, match="candy.jpg: 3 items for 2 viewers"):
        bench.deal(items, 2)
    assert bench.deal(items, 1) == [items]
    hands = bench.deal(items + [{"painting": "udnie.jpg", "condition": c} for c in ("fast", "grade", "iterative")], 3)
    assert [sorted(it["painting"] for it in h) for h in hands] == [["candy.jpg", "udnie.jpg"]] * 3
    assert [it["condition"] for it in hands[0]] == ["fast", "iterative"]   # conditions rotate


def test_photos_smaller_than_the_items_are_left_out(tmp_path, data):
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(data / "content" / "towers.jpg", photos)                     # 256 px
    with pytest.raises(ImpastoError, match="no photo of 512 px or more"):
        _bench().prepare(tmp_path / "out", [CANDY], photos, data / "style", per_style=1, grades=0,
                         iterative=0, size=512, seed=0)


def test_each_item_is_what_the_key_says(prepared, data):
    """The fast item is candy's network on its photo; the grade has the painting's colour
    distribution and the photo's shapes; L-BFGS moved the photo."""
    bench, out, photos, items = prepared
    by = {it["condition"]: it for it in items}
    shown = {c: images.load(str(out / it["viewer"] / "items" / f"{it['item']}.png")) for c, it in by.items()}
    photo = {c: images.load(str(photos / it["photo"]), max_side=64) for c, it in by.items()}
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


def test_the_sheets_are_pooled_and_guesses_counted_apart(prepared):
    bench, out, _, items = prepared
    key = json.loads((out / "key.json").read_text())
    wrong = next(n for n in key["lineup"] if key["lineup"][n] != "candy.jpg")
    cond = {it["condition"]: it for it in items}
    fill = {"fast": "none  # a photo", "grade": f"{cond['grade']['answer']:02d}?# the colours",
            "iterative": f"{cond['iterative']['answer']}"}
    for c, it in cond.items():
        (out / it["viewer"] / "answers.txt").write_text(f"# viewer's sheet\n{it['item']}: {fill[c]}\n")
    result = bench.score(key, bench.read_answers(_sheets(out), key))
    assert result["conditions"]["fast"] == {"named": 0, "sure": 0, "items": 1, "share": 0.0}
    assert result["conditions"]["grade"] == {"named": 1, "sure": 0, "items": 1, "share": 1.0}
    assert result["conditions"]["iterative"] == {"named": 1, "sure": 1, "items": 1, "share": 1.0}
    assert result["styles"]["fast:candy"]["named"] == 0
    run = subprocess.run([sys.executable, str(REPO / "bench" / "naming_test.py"), "score", str(out),
                          *map(str, _sheets(out)), "--json", str(out / "score.json")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "fast: named 0/1 (0%), 0 of them sure" in run.stdout
    assert json.loads((out / "score.json").read_text())["conditions"] == result["conditions"]
    (out / "score.json").unlink()
    for it in items:
        (out / it["viewer"] / "answers.txt").write_text(f"{it['item']}: {wrong}\n")
    result = bench.score(key, bench.read_answers(_sheets(out), key))
    assert all(r["named"] == 0 for r in result["conditions"].values())


@pytest.mark.parametrize("text, message", [
    ("item_1: 1\nitem_2: 1\n", "no answer for item_3"),
    ("item_1: 1\nitem_2: 999\nitem_3: 1\n", "999 is not a painting's number"),
    ("item_1: 1\nitem_2:\nitem_3: 1\n", "nothing is not a painting's number"),
    ("item_1: 1\nitem 2 is candy\nitem_3: 1\n", ":2: expected 'item_NN"),
    ("item_1: 1\nitem_9: 1\nitem_3: 1\n", ":2: expected 'item_NN"),
    ("item_1: 1\nitem_2: 1\nitem_3: 1\nitem_1: 2?\n", ":4: item_1 answered twice"),
])
def test_an_answer_sheet_it_cannot_read_is_refused_by_line(prepared, tmp_path, text, message):
    bench, out, _, _ = prepared
    key = json.loads((out / "key.json").read_text())
    sheet = tmp_path / "answers.txt"
    sheet.write_text(text)
    with pytest.raises(ImpastoError, match=message):
        bench.read_answers([sheet], key)


def test_the_command_refuses_to_paint_over_a_test_in_one_line(prepared):
    _, out, _, _ = prepared
    run = subprocess.run([sys.executable, str(REPO / "bench" / "naming_test.py"), "prepare", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert run.stderr.strip() == f"naming_test: {out}: not empty; prepare writes a new test"


@pytest.mark.parametrize("option", [["--viewers", "0"], ["--per-style", "-1"], ["--size", "8"],
                                    ["--per-style", "0", "--grades", "0", "--iterative", "0"]])
def test_bad_options_are_refused_in_one_line_before_anything_is_written(tmp_path, option):
    run = subprocess.run([sys.executable, str(REPO / "bench" / "naming_test.py"), "prepare",
                          str(tmp_path / "out"), *option], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert run.stderr.startswith("naming_test: --viewers, --size (16 or more)")
    assert not (tmp_path / "out").exists()
