"""Blending a multi-style model's styles at inference, torch-free: the blend syntax and its
errors, a grey mask that picks the style per pixel, `impasto stylize --blend/--style-mask`,
`impasto styles MODEL`, and POST /stylize with a blend and a mask (a real server process)."""

from __future__ import annotations

import io

import httpx
import numpy as np
import pytest
from PIL import Image

from impasto import images
from impasto.errors import ImpastoError
from impasto.serve import blend
from impasto.serve.runtime import load_engine
from impasto.serve.stylize import Options, stylize_array

from helpers import Server, photos_in

STYLES = ["red", "blue", "green"]


def test_blend_text_gives_normalised_weights():
    np.testing.assert_allclose(blend.parse_blend("red:0.7,blue:0.3", STYLES), [0.7, 0.3, 0.0], rtol=1e-6)
    np.testing.assert_allclose(blend.parse_blend("red:3, green:1", STYLES), [0.75, 0.0, 0.25], rtol=1e-6)
    np.testing.assert_allclose(blend.parse_blend("blue", STYLES), [0, 1, 0])
    np.testing.assert_allclose(blend.parse_blend("red,blue", STYLES), [0.5, 0.5, 0])
    np.testing.assert_allclose(blend.parse_blend("red:0,blue:2", STYLES), [0, 1, 0])


@pytest.mark.parametrize("text, message", [
    ("candy:1", "unknown style 'candy'.*red, blue, green"),
    ("red:-0.5,blue:1", "must be a finite number >= 0"),
    ("red:0,blue:0", "all zero"),
    ("red:nan", "finite"),
    ("red:inf", "finite"),
    ("red:0.5,red:0.5", "twice"),
    ("red:x", "must be a number"),
    ("", "empty blend"),
    ("red:1:2", "must be a number"),
    ("red:1,,blue:1", "cannot read"),
])
def test_bad_blends_say_what_to_fix(text, message):
    with pytest.raises(ImpastoError, match=message):
        blend.parse_blend(text, STYLES)


def test_a_blend_needs_a_multi_style_model_and_a_mask_two_styles():
    with pytest.raises(ImpastoError, match="one style"):
        blend.parse_blend("red", [])
    assert blend.pair_for_mask("blue, red", STYLES) == (1, 0)
    for text in ("red", "red,blue,green", "red:0.5,blue:0.5", "red,red"):
        with pytest.raises(ImpastoError):
            blend.pair_for_mask(text, STYLES)
    with pytest.raises(ImpastoError, match="unknown style"):
        blend.pair_for_mask("red,candy", STYLES)


def halves_mask(h: int, w: int) -> np.ndarray:
    mask = np.zeros((h, w), np.float32)
    mask[:, : w // 2] = 1.0
    return mask


def test_mask_paints_the_first_style_where_white_and_the_second_where_black(multi_models, data):
    photo = images.load(photos_in(data)[1], max_side=160)
    h, w = photo.shape[:2]
    engine = load_engine(multi_models / "duo.onnx", "ort", threads=1)
    spatial = load_engine(multi_models / "duo.spatial.onnx", "ort", threads=1)
    assert engine.styles == spatial.styles == ["red", "blue"] and spatial.spatial
    red = stylize_array(engine, photo, style_weights=blend.parse_blend("red", engine.styles))
    blue = stylize_array(engine, photo, style_weights=blend.parse_blend("blue", engine.styles))
    mixed = stylize_array(spatial, photo, style_weights=blend.mask_weights(halves_mask(h, w), 0, 1, 2))
    band = w // 4   # away from the seam: the network's receptive field reaches across it
    left, right = np.s_[:, : w // 2 - band], np.s_[:, w // 2 + band:]
    apart = np.abs(red - blue)
    assert apart[left].mean() > 0.05, "the two styles must paint differently for this test to mean anything"
    assert np.abs(mixed - red)[left].mean() < 0.35 * np.abs(mixed - blue)[left].mean()
    assert np.abs(mixed - blue)[right].mean() < 0.35 * np.abs(mixed - red)[right].mean()
    # each half is normalised by its own statistics: it matches that half painted alone closely
    red_half = stylize_array(engine, photo[:, : w // 2], style_weights=blend.parse_blend("red", engine.styles))
    assert np.abs(mixed[:, : w // 2] - red_half)[left].mean() < 0.15 * apart[left].mean()
    # tiles carry their part of the mask: tiled, the left is still red and the right blue
    tiles = Options(tile=96, overlap=32)
    tiled = stylize_array(spatial, photo, tiles, style_weights=blend.mask_weights(halves_mask(h, w), 0, 1, 2))
    red_t, blue_t = (stylize_array(engine, photo, tiles, style_weights=blend.parse_blend(n, engine.styles))
                     for n in ("red", "blue"))
    assert np.abs(tiled - red_t)[left].mean() < 0.35 * np.abs(tiled - blue_t)[left].mean()
    assert np.abs(tiled - blue_t)[right].mean() < 0.35 * np.abs(tiled - red_t)[right].mean()


def test_mask_must_have_the_photos_proportions(tmp_path):
    Image.new("L", (200, 100), 255).save(tmp_path / "wide.png")
    Image.new("L", (100, 100), 255).save(tmp_path / "square.png")
    with pytest.raises(ImpastoError, match="200x100 px, the photo 60x60"):
        blend.load_mask(tmp_path / "wide.png", 60, 60)
    grey = blend.load_mask(tmp_path / "square.png", 60, 60)   # a scaled copy is fine
    assert grey.shape == (60, 60) and np.allclose(grey, 1.0, atol=1e-3)


# ----------------------------------------------------------------------------- the commands

@pytest.fixture()
def photo_file(data, tmp_path):
    path = tmp_path / "photo.png"
    images.save(images.load(photos_in(data)[1], max_side=96), path)
    return path


def run_cli(capsys, *argv):
    from impasto.cli import main
    rc = main(list(argv))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_stylize_blend_and_mask_from_the_command_line(multi_models, photo_file, tmp_path, capsys):
    duo = str(multi_models / "duo.onnx")
    rc, out, _ = run_cli(capsys, "stylize", str(photo_file), "--style", duo, "--blend", "red:0.7,blue:0.3",
                         "-o", str(tmp_path / "mix.png"))
    assert rc == 0 and "duo red:0.7,blue:0.3" in out
    rc, _, _ = run_cli(capsys, "stylize", str(photo_file), "--blend", "blue", "--models", str(multi_models),
                       "-o", str(tmp_path / "blue.png"))   # no --style: the model that has "blue"
    assert rc == 0
    w, h = Image.open(photo_file).size
    mask = tmp_path / "mask.png"
    Image.fromarray((halves_mask(h, w) * 255).astype(np.uint8)).save(mask)
    rc, _, _ = run_cli(capsys, "stylize", str(photo_file), "--style", duo, "--blend", "red,blue",
                       "--style-mask", str(mask), "-o", str(tmp_path / "halves.png"))
    assert rc == 0
    rc, _, _ = run_cli(capsys, "stylize", str(photo_file), "--style", "red:0.7,blue:0.3", "--models",
                       str(multi_models), "-o", str(tmp_path / "style_mix.png"))   # the mix as --style
    assert rc == 0
    results = {n: images.load(tmp_path / f"{n}.png") for n in ("mix", "blue", "halves", "style_mix")}
    assert all(r.shape == (h, w, 3) for r in results.values())
    assert np.abs(results["mix"] - results["blue"]).mean() > 0.01
    # the same mix of the same model (within the auto backend's bf16 rounding: 1/255 at most on average)
    assert np.abs(results["style_mix"] - results["mix"]).mean() < 1 / 255


@pytest.mark.parametrize("extra, message", [
    (["--blend", "candy:1"], "unknown style 'candy'"),
    (["--blend", "red:-1,blue:1"], ">= 0"),
    (["--blend", "red:0,blue:0"], "all zero"),
    (["--style-mask", "MASK"], "needs --blend"),
    (["--blend", "red,blue", "--style-mask", "WIDE"], "must have the photo's size"),
    (["--blend", "red:0.5,blue:0.5", "--style-mask", "MASK"], "two styles without weights"),
])
def test_stylize_bad_blends_exit_2_with_one_line(multi_models, photo_file, tmp_path, capsys, extra, message):
    w, h = Image.open(photo_file).size
    Image.new("L", (w, h), 128).save(tmp_path / "mask.png")
    Image.new("L", (w * 3, h), 128).save(tmp_path / "wide.png")
    extra = [str(tmp_path / "mask.png") if e == "MASK" else str(tmp_path / "wide.png") if e == "WIDE" else e
             for e in extra]
    rc, _, err = run_cli(capsys, "stylize", str(photo_file), "--style", str(multi_models / "duo.onnx"), *extra,
                         "-o", str(tmp_path / "out.png"))
    assert rc == 2 and message in err, err
    assert "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "out.png").exists()


def test_a_mix_given_as_style_and_as_blend_is_refused(multi_models, photo_file, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "stylize", str(photo_file), "--style", "red:0.7,blue:0.3", "--blend", "red",
                         "--models", str(multi_models), "-o", str(tmp_path / "out.png"))
    assert rc == 2 and "already a mix" in err and "Traceback" not in err
    assert not (tmp_path / "out.png").exists()


def test_blend_with_a_single_style_model_is_refused(multi_models, photo_file, tmp_path, capsys):
    rc, _, err = run_cli(capsys, "stylize", str(photo_file), "--style", str(multi_models / "alpha.onnx"),
                         "--blend", "alpha", "-o", str(tmp_path / "out.png"))
    assert rc == 2 and "multi-style model" in err


def test_styles_lists_the_styles_inside_a_model(multi_models, capsys):
    rc, out, _ = run_cli(capsys, "styles", "duo", "--models", str(multi_models))
    assert rc == 0 and out.split("\n")[1:3] == ["  red", "  blue"] and "duo.spatial.onnx" in out
    rc, out, _ = run_cli(capsys, "styles", "--models", str(multi_models), "--json")
    assert rc == 0 and '"styles": [\n        "red",\n        "blue"\n      ]' in out
    rc, out, _ = run_cli(capsys, "styles", "--models", str(multi_models))
    assert rc == 0 and "red, blue" in out
    rc, _, err = run_cli(capsys, "styles", "alpha", "--models", str(multi_models))
    assert rc == 2 and "single-style" in err


# ----------------------------------------------------------------------------- the server

@pytest.mark.slow
def test_server_paints_blends_and_masks_and_refuses_bad_ones(multi_models, data):
    server = Server(multi_models)
    try:
        styles = httpx.get(server.url + "/styles").json()["styles"]
        assert {s["name"]: s["styles"] for s in styles} == {"alpha": [], "duo": ["red", "blue"]}
        photo = images.encode(images.load(photos_in(data)[1], max_side=96), "PNG")
        w, h = Image.open(io.BytesIO(photo)).size

        def post(mask=None, **form):
            files = {"file": ("p.png", photo, "image/png")}
            if mask is not None:
                files["mask"] = ("m.png", mask, "image/png")
            return httpx.post(server.url + "/stylize", files=files, data=form, timeout=60)

        r = post(style="duo", blend="red:0.5,blue:0.5", format="png")
        assert r.status_code == 200 and r.headers["X-Blend"] == "red:0.50,blue:0.50", r.text
        r = post(blend="blue", format="png")   # no style: the model that has blue
        assert r.status_code == 200 and r.headers["X-Style"] == "duo"
        buf = io.BytesIO()
        Image.new("L", (w, h), 200).save(buf, "PNG")
        r = post(mask=buf.getvalue(), style="duo", blend="red,blue", format="png")
        assert r.status_code == 200 and r.headers["X-Blend"] == "mask:red,blue", r.text
        wide = io.BytesIO()
        Image.new("L", (w * 3, h), 200).save(wide, "PNG")
        for form, mask, status, message in [
            ({"style": "duo", "blend": "candy:1"}, None, 404, "unknown style"),
            ({"style": "duo", "blend": "red:-1"}, None, 400, ">= 0"),
            ({"style": "duo", "blend": "red:0,blue:0"}, None, 400, "all zero"),
            ({"style": "alpha", "blend": "alpha"}, None, 400, "multi-style"),
            ({"style": "duo", "blend": "red,blue"}, wide.getvalue(), 422, "photo's size"),
            ({"style": "duo"}, buf.getvalue(), 422, "needs blend"),
            ({"style": "duo", "blend": "x" * 3000}, None, 422, "blend"),
        ]:
            r = post(mask=mask, **form)
            assert r.status_code == status and message in r.json()["error"], (form, r.status_code, r.text)
        assert httpx.get(server.url + "/healthz").status_code == 200
    finally:
        server.stop()
