"""`impasto compare` on a video: the four runs (fast and iterative, per frame and temporal)."""

from __future__ import annotations

import numpy as np
import pytest

from impasto import video

from helpers import FPS


@pytest.mark.slow
def test_compare_on_a_video_reports_flicker_speed_and_loss_for_each_run(tmp_path, clip, weights_path, data,
                                                                         one_thread):
    import csv
    import json
    import re

    from impasto.cli import main
    from impasto.serve.runtime import load_engine
    from impasto.serve.stylize import run_network
    from impasto.serve.zoo import resolve_style, video_model
    from impasto.compare.metrics import evaluate
    from impasto.compare.objective import build_fast_objective, training_params
    from impasto.models.zoo.card import load_card
    out = tmp_path / "report"
    style = data / "style" / "candy.jpg"
    code = main(["compare", "--style", "candy", "--content", str(clip), "-o", str(out), "--size", "64",
                 "--max-frames", "5", "--iterations", "5", "--first-frame-iterations", "8",
                 "--style-image", str(style), "--vgg-weights", weights_path, "--quiet"])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    runs = {r["name"]: r for r in report["runs"]}
    assert list(runs) == ["fast, per frame", "fast + temporal", "iterative, per frame", "iterative + temporal"]
    for r in runs.values():
        info = video.probe(out / r["file"])
        assert (r["frames"], info.width, info.height, info.fps) == (5, r["width"], r["height"], FPS)
        assert len(r["flicker_per_pair"]) == 4 and len(r["loss_per_frame"]) == 5 and r["frames_per_second"] > 0
        for way in ("abs", "sq"):
            assert r["flicker"][way] == pytest.approx(np.mean([f[way] for f in r["flicker_per_pair"]]))
    # Temporal consistency shows in the numbers, for both paths, both ways.
    for way in ("abs", "sq"):
        assert runs["fast + temporal"]["flicker"][way] * 2 < runs["fast, per frame"]["flicker"][way]
        assert runs["iterative + temporal"]["flicker"][way] * 1.5 < runs["iterative, per frame"]["flicker"][way]
        assert 0 < report["input_flicker"][way] < runs["fast, per frame"]["flicker"][way]

    # The loss of a frame is the fast model's objective on it, computed directly; the fast model is
    # the one `impasto stylize` paints videos with (candy's video network when it is bundled).
    model = video_model(resolve_style("candy"))
    assert report["model"]["file"] == model.name
    objective = build_fast_objective(training_params(load_card(model)), style, weights_path)
    first = next(iter(video.read_frames(clip, 64)))
    direct = evaluate(objective.loss, run_network(load_engine(model, "ort"), first), first)
    assert runs["fast, per frame"]["loss_per_frame"][0]["total"] == pytest.approx(direct["total"], rel=1e-3)

    page = (out / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {r["file"] for r in runs.values()} <= set(refs) and "plots/video.png" in refs
    for ref in refs:
        assert (out / ref).is_file(), f"{ref} is referenced but missing"
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 5 and all(np.isfinite(float(r["total"])) for r in rows)


@pytest.mark.parametrize("extra, message", [
    (["--max-frames", "1"], "at least 2"),
    (["--temporal-strength", "1.5"], "--temporal-strength"),
    (["--model", "other.onnx"], "one fast model"),
])
def test_compare_video_bad_options_exit_2(tmp_path, clip, capsys, extra, message):
    from impasto.cli import main
    try:
        code = main(["compare", "--style", "candy", "--content", str(clip), "-o", str(tmp_path / "r"), *extra])
    except SystemExit as exc:  # refused at parse time by a range-checked option type
        code = exc.code
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
