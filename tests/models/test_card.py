"""The model card, read and written in one place (impasto.models.zoo.card), and the small copy of
the painting each bundled style carries, so `impasto compare --style NAME` works anywhere."""

from __future__ import annotations

import json
import re

import pytest

from impasto import images
from impasto.errors import ImpastoError
from impasto.models.zoo.card import (STYLE_THUMBNAIL_SIDE, card_from_meta, load_card, read_card, style_thumbnail_path,
                                     write_card, write_style_thumbnail)
from impasto.serve import zoo

BUNDLED = [s for s in zoo.list_styles(zoo.bundled_dir()) if not s["styles"]]
BUNDLED_MULTI = [s for s in zoo.list_styles(zoo.bundled_dir()) if s["styles"]]


def test_write_card_merges_and_keeps_no_machine_paths(tmp_path):
    path = tmp_path / "candy.json"
    write_card(path, {"style": "candy", "quality": {"fp16": 0.01}, "photos": "/home/someone/photos"},
               file_names_only=True)
    write_card(path, {"steps": 800, "quality": {"lbfgs": 40}}, merge_nested=True)
    card = json.loads(path.read_text())
    assert card == {"style": "candy", "quality": {"fp16": 0.01, "lbfgs": 40}, "photos": "photos", "steps": 800}
    write_card(path, {"quality": {"int8": 0.1}})                 # export's fresh numbers replace
    assert json.loads(path.read_text())["quality"] == {"int8": 0.1}
    path.write_text("{not json")
    with pytest.raises(ImpastoError, match="not valid JSON"):
        write_card(path, {"style": "x"})
    assert "error" in read_card(tmp_path / "candy.onnx")


def test_card_from_meta_keeps_file_names_only():
    card = card_from_meta({"style": "candy", "style_image": "../shared/data/style/candy.jpg", "vgg": "/w/vgg.h5",
                           "checkpoint": "/abs/last.ckpt", "not_a_card_field": 1})
    assert card == {"style": "candy", "style_image": "candy.jpg", "vgg": "vgg.h5"}


def test_style_thumbnail_is_small_and_never_upscaled(tmp_path, data):
    big = write_style_thumbnail(data / "style" / "candy.jpg", tmp_path / "candy.onnx")
    assert big == tmp_path / "candy.style.jpg"
    assert max(images.load(big).shape[:2]) == STYLE_THUMBNAIL_SIDE
    small_src = tmp_path / "small.png"
    images.save(images.load(data / "style" / "candy.jpg", max_side=100), small_src)
    small = write_style_thumbnail(small_src, tmp_path / "small.onnx")
    assert max(images.load(small).shape[:2]) == 100


@pytest.mark.parametrize("style", BUNDLED, ids=lambda s: s["name"])
def test_every_bundled_style_carries_its_painting(style):
    thumb = style_thumbnail_path(style["path"])
    assert thumb.is_file() and style["card"].get("style_thumbnail") == thumb.name
    assert max(images.load(thumb).shape[:2]) <= STYLE_THUMBNAIL_SIDE
    assert load_card(style["path"])["style"] == style["name"]


@pytest.mark.parametrize("model", BUNDLED_MULTI, ids=lambda s: s["name"])
def test_every_bundled_multi_style_model_shows_and_measures_each_style(model):
    """Its sheet (every painting above the photo in its style) and held-out numbers per style."""
    card = model["card"]
    sheet = images.load(zoo.bundled_dir() / card["sheet"])
    assert sheet.shape[1] > len(card["styles"]) * sheet.shape[0] // 2     # a column per style, and the blend
    per_style = card["quality"]["style_quality"]["per_style"]
    assert list(per_style) == card["styles"] and all(0 < r["style_reduction"] < 1 for r in per_style.values())


def test_compare_finds_the_painting_outside_the_checkout(tmp_path, monkeypatch):
    """The card's style image is `../shared/data/style/candy.jpg`, relative to the checkout: from
    anywhere else, compare falls back to the bundled copy."""
    from impasto.compare.objective import find_style_image, training_params
    model = zoo.resolve_style("candy")
    card = load_card(model)
    monkeypatch.chdir(tmp_path)
    found = find_style_image(training_params(card), card, model=model)
    assert found == style_thumbnail_path(model)
    with pytest.raises(ImpastoError, match="pass --style-image"):
        find_style_image(training_params(card), card)
    for video in zoo.bundled_dir().glob("*" + zoo.VIDEO_SUFFIX):   # it shares its photo network's copy
        card = load_card(video)
        photo = video.with_name(video.name.replace(zoo.VIDEO_SUFFIX, ".onnx"))
        assert find_style_image(training_params(card), card, model=video) == style_thumbnail_path(photo)


def test_the_bundled_card_page_says_what_the_cards_say():
    """models/zoo/README.md is written from the JSON cards; a card changed without rewriting the
    page (python -m impasto.models.zoo.card_page) would leave it telling old numbers."""
    from impasto.models.zoo import card_page
    page = (card_page.HERE / card_page.PAGE).read_text()
    assert page == card_page.render(), "run: python -m impasto.models.zoo.card_page"
    for name in ("candy", "mosaic", "starry_night", "udnie"):
        assert f"## {name}" in page and "style reduction, held-out | **" in page
    for target in re.findall(r'(?:src="|\]\()([^")]+)', page):   # every picture it shows exists
        assert (card_page.HERE / target).is_file(), target


def test_the_card_page_command_writes_nothing_for_help_or_a_missing_folder(tmp_path, monkeypatch, capsys):
    from impasto.models.zoo import card_page
    monkeypatch.chdir(tmp_path)
    assert card_page.main(["--help"]) == 0 and "FOLDER/README.md" in capsys.readouterr().out
    assert card_page.main(["--bogus"]) == 2
    assert card_page.main(["nope"]) == 2 and "no such folder" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_the_card_page_shows_a_style_s_video_network_beside_its_photo_network(tmp_path):
    from impasto.models.zoo import card_page
    flicker = lambda pan, parallax: {"flicker": {"clips": {"pan": {"per frame": {"abs": pan}},  # noqa: E731
                                                           "parallax": {"per frame": {"abs": parallax}}}}}
    photo = {"style": "candy", "arch": "slim", "parameters": 62812,
             "quality": {"style_quality": {"style_reduction": 0.625}, **flicker(5.0, 15.0)}}
    video = {"style": "candy", "arch": "slim", "parameters": 62812,
             "quality": {"style_quality": {"style_reduction": 0.58}, **flicker(2.5, 9.0)}}
    (tmp_path / "candy.json").write_text(json.dumps(photo))
    page = card_page.render(tmp_path)
    assert "Video network" not in page
    (tmp_path / "candy.video.json").write_text(json.dumps(video))
    page = card_page.render(tmp_path)
    assert page.count("## candy") == 1 and "Video network" in page   # in candy's section, not one of its own
    assert "| per-frame flicker, pan clip (abs, 0-255) | 5.00 | **2.50** (0.50x) |" in page
    assert "| per-frame flicker, parallax clip (abs, 0-255) | 15.00 | **9.00** (0.60x) |" in page
    assert "| style reduction, held-out | 62.5% | 58.0% |" in page
    assert "| network | slim | slim |" in page


def test_the_card_page_shows_worth_n_under_each_start_it_was_measured_from(tmp_path):
    from impasto.models.zoo import card_page
    measured = lambda *hits: {"lbfgs_iterations_matched_median": sorted(hits)[1], "size": 256,  # noqa: E731
                              "photos": [{"lbfgs_iterations_matched": h} for h in hits]}
    card = {"style": "candy", "arch": "slim", "parameters": 62812,
            "quality": {"fast_vs_iterative": measured(8, 12, 22)}}
    (tmp_path / "candy.json").write_text(json.dumps(card))
    page = card_page.render(tmp_path)
    assert ("| worth L-BFGS iterations from the photo (median) | **12** (8, 12, 22; "
            "3 held-out photos at 256 px) |") in page
    assert "from noise" not in page
    card["quality"]["fast_vs_iterative_from_noise"] = measured(37, 45, 50)
    (tmp_path / "candy.json").write_text(json.dumps(card))
    page = card_page.render(tmp_path)
    assert ("| worth L-BFGS iterations from noise, Johnson's protocol (median) | **45** (37, 45, 50; "
            "3 held-out photos at 256 px) |") in page


def _page_of_two_stages(tmp_path, steps: int, second: dict) -> str:
    """The card page of a two-stage card whose second stage adds `second` to the first."""
    from impasto.models.zoo import card_page
    stage = {"steps": steps, "style_weight": 3000.0, "config_hash": "abc", "image_size": 256}
    card = {"style": "candy", "arch": "slim", "parameters": 62812,
            "compute": {"steps": 2 * steps, "images_seen": 8 * steps, "hours": 0.5, "device": "cpu",
                        "stages": [stage, {**stage, **second}]}}
    (tmp_path / "candy.json").write_text(json.dumps(card))
    return card_page.render(tmp_path)


def test_a_stage_row_names_the_histogram_loss_it_trained_with(tmp_path):
    page = _page_of_two_stages(tmp_path, 500, {"histogram_weight": 1.0})
    assert "| stage 1 | 500 steps at style weight 3000, 256 px crops, config `abc` |" in page
    assert "| stage 2 | 500 steps at style weight 3000, histogram weight 1, 256 px crops, config `abc` |" in page


def test_a_stage_row_names_its_batch_when_the_card_records_it(tmp_path):
    page = _page_of_two_stages(tmp_path, 600, {"batch_size": 8})
    assert "| stage 1 | 600 steps at style weight 3000, 256 px crops, config `abc` |" in page
    assert "| stage 2 | 600 steps at style weight 3000, 256 px crops at batch 8, config `abc` |" in page


def test_a_stage_row_says_where_the_network_was_grown_and_its_gradients_clipped(tmp_path):
    page = _page_of_two_stages(tmp_path, 500, {"arch": "slim_coarse", "gradient_clip_val": 20000.0})
    assert "| stage 1 | 500 steps at style weight 3000, 256 px crops, config `abc` |" in page
    assert ("| stage 2 | 500 steps at style weight 3000, 256 px crops, gradients clipped at a norm of 20000, "
            "the network grown to slim_coarse from the stage before, config `abc` |") in page


def test_a_stage_row_says_when_it_trained_on_the_raw_gram_loss(tmp_path):
    page = _page_of_two_stages(tmp_path, 500, {"style_relative": False})
    assert "| stage 1 | 500 steps at style weight 3000, 256 px crops, config `abc` |" in page
    assert "| stage 2 | 500 steps at style weight 3000 (raw Gram loss, not relative), 256 px crops, config `abc` |" in page


# The architectures within the latency bar (no slower than multistyle26 at 512 px, both on OpenVINO
# bf16) on every CPU measured: slim_wide is 1.04-1.07x on an AMX Xeon (docs/training.md).
WITHIN_LATENCY_BAR = {"slim", "slim_coarse"}


def test_the_bundled_default_is_the_best_held_out_painter_within_the_latency_bar():
    """The default style is what a new user sees first (`make demo`, the web page): of the bundled
    single-style networks fast enough to be the default, the one with the highest held-out style
    reduction in its card."""
    def reduction(style):
        return style["card"]["quality"]["style_quality"]["style_reduction"]
    fast = [s for s in BUNDLED if s["card"]["arch"] in WITHIN_LATENCY_BAR]
    assert fast, "no bundled network is within the latency bar"
    assert zoo.default_style(zoo.bundled_dir()) == max(fast, key=reduction)["name"]
