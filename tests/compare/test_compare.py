"""impasto compare / explore: the report end to end on tiny inputs, with real VGG weights, a real
(tiny, untrained) slim network exported to ONNX and run by onnxruntime, and real photos."""

from __future__ import annotations

import csv
import json
import math
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from impasto import images
from impasto.cli import main
from impasto.errors import ImpastoError

SIZE = 64
# Deliberately not the training module's defaults: the report must read them from the card.
TRAINED_WITH = {"content_weight": 2.0, "style_weight": 7.0, "tv_weight": 0.5, "style_size": 64,
                "content_layers": ["relu2_2"], "style_layers": ["relu1_2", "relu2_2", "relu3_3"]}


def _export_tiny(path: Path, style_image: Path, weights_path: str, name: str) -> Path:
    import torch
    from impasto.export.onnx_export import export_onnx
    from impasto.models.transformer import TransformerNet
    from impasto.models.zoo.card import card_from_meta, write_card
    torch.manual_seed(0)
    net = TransformerNet("slim").eval()
    export_onnx(net, path, style=name, arch="slim", sample_hw=(64, 64))
    model = dict(TRAINED_WITH, style_image=str(style_image), style_name=name, arch="slim",
                 vgg_weights=weights_path)
    meta = {"style": name, "arch": "slim", "style_image": str(style_image), "steps": 0, "config": {"model": model},
            "loss_weights": {"content": model["content_weight"], "style": model["style_weight"],
                             "tv": model["tv_weight"], "histogram": 0.0}}
    write_card(path.with_suffix(".json"), card_from_meta(meta), merge_nested=True)
    return path


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory, data, weights_path):
    folder = tmp_path_factory.mktemp("zoo")
    style = data / "style" / "candy.jpg"
    main_model = _export_tiny(folder / "candy.onnx", style, weights_path, "candy")
    # The second model to compare: the project's fp16 variant of the same network (one export
    # is slow enough on a shared 2-core machine).
    from impasto.export.onnx_export import to_fp16
    other = to_fp16(main_model, folder / "candy_fp16.onnx")
    return folder, main_model, other


@pytest.fixture(scope="module")
def report(tiny_models, data, tmp_path_factory, weights_path):
    folder, model, other = tiny_models
    out = tmp_path_factory.mktemp("report")
    photos = [data / "content" / "tubingen.jpg", data / "content" / "golden_gate.jpg"]
    rc = main(["compare", "--style", str(model), "--model", str(other), "--content", *map(str, photos),
               "-o", str(out), "--size", str(SIZE), "--iterations", "4", "--snapshots", "0,2,4",
               "--speed-sizes", "48,64", "--speed-iterations", "4,20", "--speed-measure", "2",
               "--fast-repeats", "1", "--precision", "fp32", "--quiet"])
    assert rc == 0
    return out, photos


def test_html_references_existing_images_and_plots(report):
    out, photos = report
    page = (out / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert refs
    for ref in refs:
        assert not ref.startswith(("/", "http:", "https:", "file:")), f"not a relative link: {ref}"
        assert (out / ref).is_file(), f"{ref} is referenced but missing"
    pngs = [r for r in refs if r.endswith(".png")]
    assert sum(r.startswith("plots/loss_") for r in set(pngs)) == len(photos)     # a loss plot per photo
    assert "plots/grid.png" in refs
    for slug in ("tubingen", "golden_gate"):                                       # content | fast x2 | snapshots
        for name in ("content", "fast_candy", "fast_candy_fp16", "iter_0000", "iter_0002", "iter_0004"):
            assert f"images/{slug}/{name}.png" in refs
    assert "worth N iterations" in page and "extrapolated" in page


def test_csv_columns_present_and_numbers_finite(report):
    out, photos = report
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    from impasto.compare.photo import METRIC_COLUMNS
    assert tuple(rows[0].keys()) == METRIC_COLUMNS
    # per photo: the photo itself, two fast models, snapshots 0, 2, 4
    assert len(rows) == len(photos) * (1 + 2 + 3)
    for r in rows:
        for k in ("seconds", "total", "content", "style", "tv", "ssim", "color_distance"):
            assert math.isfinite(float(r[k])), (r["method"], k, r[k])
        assert -1.0 <= float(r["ssim"]) <= 1.0
    content_rows = [r for r in rows if r["method"] == "content"]
    assert all(float(r["ssim"]) == pytest.approx(1.0) for r in content_rows)
    assert all(float(r["content"]) == pytest.approx(0.0, abs=1e-9) for r in content_rows)
    data = json.loads((out / "metrics.json").read_text())
    for p in data["photos"]:
        assert len(p["curve"]) == 5                       # iterations 0..4
        assert all(math.isfinite(r["total"]) for r in p["curve"])
        # iteration 0 is the photo itself (fp32 run: the same number as its metrics row)
        assert p["curve"][0]["total"] == pytest.approx(p["content"]["total"], rel=1e-5)
    speed = {r["size"]: r for r in data["speed"]}
    assert set(speed) == {48, 64}
    assert speed[64]["source[20]"] == "extrapolated" and speed[48]["source[4]"] == "extrapolated"
    assert "measured_s[4]" in speed[64] and "measured_s[4]" not in speed[48]   # the full runs' own time
    for r in speed.values():
        assert all(math.isfinite(v) and v > 0 for k, v in r.items() if k.startswith(("fast_ms", "iterative_s")))


def test_fast_loss_in_report_equals_direct_computation(report, tiny_models, data, weights_path):
    """Rebuild the training objective by hand from the same numbers, run the ONNX model with a
    fresh onnxruntime session, and compute the loss directly with the loss module."""
    import torch
    from impasto.models.tensors import to_tensor
    from impasto.serve.runtime import OrtEngine
    from impasto.serve.stylize import run_network
    from impasto.training.fast.module import build_perceptual_loss, load_style_image

    out, photos = report
    _, model, _ = tiny_models
    loss = build_perceptual_loss(weights_path, TRAINED_WITH["content_weight"], TRAINED_WITH["style_weight"],
                                 TRAINED_WITH["tv_weight"], 0.0, TRAINED_WITH["content_layers"],
                                 TRAINED_WITH["style_layers"])
    loss.set_targets(styles=[load_style_image(str(data / "style" / "candy.jpg"), TRAINED_WITH["style_size"])])
    metrics = json.loads((out / "metrics.json").read_text())
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    page = (out / "index.html").read_text()
    engine = OrtEngine(model)
    for photo_path, p in zip(photos, metrics["photos"]):
        photo = images.load(photo_path, max_side=SIZE)
        y = run_network(engine, photo)
        with torch.no_grad():
            total, terms = loss(to_tensor(y), content=to_tensor(photo))
        reported = p["fast"]["candy"]["metrics"]
        assert reported["total"] == pytest.approx(float(total), rel=1e-5)
        for k, v in terms.items():
            assert reported[k] == pytest.approx(float(v), rel=1e-5, abs=1e-9)
        csv_total = next(float(r["total"]) for r in rows if r["photo"] == photo_path.name and r["method"] == "fast:candy")
        assert csv_total == pytest.approx(float(total), rel=1e-5)
        assert f"{float(total):.4g}" in page
        # and "worth N" is consistent with the curve
        n = p["fast"]["candy"]["worth_iterations"]
        curve = [r["total"] for r in p["curve"]]
        if n is None:
            assert min(curve) > float(total) * (1 - 1e-6)
        else:
            assert curve[n] <= p["fast"]["candy"]["total_run_precision"] and all(
                c > p["fast"]["candy"]["total_run_precision"] for c in curve[:n])


def test_metrics_ssim_and_colour_distance():
    from impasto.compare.metrics import color_distance, ssim
    rng = np.random.default_rng(0)
    a = rng.random((40, 50, 3)).astype(np.float32)
    smooth = images.resize_to(images.resize_to(a, (10, 8)), (50, 40))
    assert ssim(a, a) == pytest.approx(1.0)
    assert ssim(a, smooth) < 0.5
    assert color_distance(a, a) == pytest.approx(0.0, abs=1e-9)
    red = np.zeros_like(a)
    red[..., 0] = 1
    assert color_distance(a, red) > color_distance(a, a[::-1]) + 10
    with pytest.raises(ImpastoError):
        ssim(a, a[:20])


def explore_tiny(data, out, style: str, rows: str, cols: str):
    """`impasto explore` at 40 px, one iteration per cell: (exit code, the cells' JSON)."""
    rc = main(["explore", "--content", str(data / "content" / "tubingen.jpg"),
               "--style", str(data / "style" / style), "-o", str(out), "--size", "40",
               "--iterations", "1", "--rows", rows, "--cols", cols, "--precision", "fp32", "--quiet"])
    return rc, json.loads((out.parent / f"{out.stem}_cells" / "cells.json").read_text())


def test_explore_grid_has_one_cell_per_combination(data, tmp_path, weights_path):
    out = tmp_path / "grid.png"
    rc, cells = explore_tiny(data, out, "starry_night.jpg", "ratio=1e-4,1e-3", "tv_weight=0,10,100")
    assert rc == 0 and out.is_file()
    assert cells["rows"] == {"option": "ratio", "values": [1e-4, 1e-3]}
    assert cells["cols"]["option"] == "tv_weight"
    assert [len(r) for r in cells["cells"]] == [3, 3]
    assert len(list((tmp_path / "grid_cells").glob("r*_c*.png"))) == 6
    assert "tv" not in cells["cells"][0][0]["terms"] and "tv" in cells["cells"][0][1]["terms"]
    from PIL import Image
    w, h = Image.open(out).size
    assert w > h  # 3 columns, 2 rows


def test_explore_sweeps_the_sliced_wasserstein_weight_and_names_its_term(data, tmp_path, weights_path):
    from impasto.compare.explore import _caption
    rc, cells = explore_tiny(data, tmp_path / "swd.png", "candy.jpg", "ratio=1e-4", "swd=0,10")
    assert rc == 0 and cells["cols"]["option"] == "swd_weight"
    assert "swd" not in cells["cells"][0][0]["terms"] and cells["cells"][0][1]["terms"]["swd"] > 0
    assert _caption(12.0, {"style": 1.0, "swd": 2.0, "total": 3.0}) == "12 s, s 1, w 2"


def test_algorithm_figure_with_fast_column(tiny_models, data, tmp_path, weights_path):
    folder, _, _ = tiny_models
    out = tmp_path / "methods.png"
    rc = main(["compare", "--algorithms", "--content", str(data / "content" / "tubingen.jpg"),
               "--style", str(data / "style" / "candy.jpg"), str(data / "style" / "the_wave.jpg"),
               "--models", str(folder), "--methods", "gatys", "mrf", "fast", "-o", str(out),
               "--size", "64", "--iterations", "2", "--precision", "fp32", "--quiet"])
    assert rc == 0 and out.is_file()
    cells = json.loads((tmp_path / "methods_cells" / "cells.json").read_text())
    assert [[c["method"] for c in r["cells"]] for r in cells["rows"]] == [["gatys", "mrf", "fast"]] * 2
    fast_candy, fast_wave = cells["rows"][0]["cells"][2], cells["rows"][1]["cells"][2]
    assert fast_candy["image"] and fast_candy["own_terms"]["model"] == "candy.onnx"
    assert fast_wave["image"] is None                   # no fast model for the_wave in that folder
    for r in cells["rows"]:
        for c in r["cells"]:
            if c["image"]:
                assert all(math.isfinite(v) for v in c["gatys_terms"].values())


@pytest.mark.parametrize("argv, message", [
    (["explore", "--content", "X", "--style", "Y", "-o", "g.png", "--rows", "nonsense=1,2"], "cannot sweep"),
    (["explore", "--content", "X", "--style", "Y", "-o", "g.png", "--cols", "tv_weight=a,b"], "bad value"),
    (["explore", "--content", "X", "--style", "Y", "-o", "g.png", "--rows", "tv_weight"], "NAME=V1"),
    (["explore", "--content", "X", "--style", "Y", "-o", "g.txt"], "extension"),
    (["compare", "--style", "no_such_style", "--content", "X", "-o", "r"], "unknown style"),
    (["compare", "--style", "candy", "--content", "X", "-o", "r", "--snapshots", "1,x"], "whole numbers"),
    (["compare", "--algorithms", "--content", "X", "--style", "Y", "-o", "f.png"], "no such file"),
])
def test_bad_options_exit_2_with_a_clear_message(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("IMPASTO_MODELS", str(tmp_path))
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


@pytest.mark.slow
def test_bad_option_from_the_real_command_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "impasto.cli", "compare", "--style", "x.onnx", "--content",
                           str(tmp_path), "-o", str(tmp_path / "r"), "--size", "20"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "--size must be at least 32" in proc.stderr and "Traceback" not in proc.stderr


def test_speed_extrapolates_from_the_steady_state():
    """Issue 14: the first iterations pay one-off costs; extrapolating them made the table ~20x
    too slow. The per-iteration cost is the median of the later steps."""
    from impasto.compare.photo import steady_per_iteration
    cumulative = [3.0, 4.5, 4.6, 4.7, 4.8, 4.9, 5.0, 5.1, 5.2]
    assert steady_per_iteration(cumulative) == pytest.approx(0.1)


def test_compare_measures_one_style_of_a_multi_style_model(data, tmp_path, weights_path, capsys):
    """--blend NAME: the named style's row of the style weights and its own painting, not the
    first style's; without it the error lists the styles."""
    import torch
    from helpers import make_multi_checkpoint
    from impasto.export.onnx_export import export_onnx
    from impasto.export.pipeline import load_checkpoint
    from impasto.models.tensors import to_tensor
    from impasto.models.zoo.card import card_from_meta, write_card
    from impasto.serve.runtime import OrtEngine
    from impasto.serve.stylize import run_network
    from impasto.training.fast.module import build_perceptual_loss, load_style_image

    net, meta = load_checkpoint(make_multi_checkpoint(tmp_path / "duo.pt", ("red", "blue")), style="duo")
    model = tmp_path / "duo.onnx"
    export_onnx(net, model, style="duo", arch="slim", styles=meta["styles"])
    paintings = [str(data / "style" / "candy.jpg"), str(data / "style" / "udnie.jpg")]
    write_card(model.with_suffix(".json"), {**card_from_meta(meta), "loss_weights": {
        "content": 2.0, "style": 7.0, "tv": 0.5, "histogram": 0.0}, "config": {"model": dict(
            TRAINED_WITH, style_images=paintings, style_names=["red", "blue"], arch="slim", vgg_weights=weights_path)}})
    photo_path = data / "content" / "tubingen.jpg"
    argv = ["compare", "--style", str(model), "--content", str(photo_path), "-o", str(tmp_path / "r"),
            "--size", str(SIZE), "--iterations", "2", "--snapshots", "0,2", "--speed-sizes", "48",
            "--speed-iterations", "2", "--speed-measure", "2", "--fast-repeats", "1", "--precision", "fp32", "--quiet"]
    assert main(argv) == 2
    assert "paints 2 styles (red, blue): pick the one to compare with --blend NAME" in capsys.readouterr().err
    assert main(argv + ["--blend", "green"]) == 2
    assert main(argv + ["--blend", "blue"]) == 0
    reported = json.loads((tmp_path / "r" / "metrics.json").read_text())["photos"][0]["fast"]["blue"]["metrics"]

    photo = images.load(photo_path, max_side=SIZE)
    engine = OrtEngine(model)
    loss = build_perceptual_loss(weights_path, 2.0, 7.0, 0.5, 0.0, TRAINED_WITH["content_layers"],
                                 TRAINED_WITH["style_layers"])
    totals = {}
    for i, painting in enumerate(paintings):
        loss.set_targets(styles=[load_style_image(painting, TRAINED_WITH["style_size"])])
        for j in range(2):
            y = run_network(engine, photo, style_weights=np.eye(2, dtype=np.float32)[j])
            with torch.no_grad():
                totals[i, j] = float(loss(to_tensor(y), content=to_tensor(photo))[0])
    assert reported["total"] == pytest.approx(totals[1, 1], rel=1e-5)      # blue's output, udnie's Grams
    assert all(abs(reported["total"] - totals[k]) > 1e-3 * totals[k] for k in [(0, 0), (0, 1), (1, 0)])
