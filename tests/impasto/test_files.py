"""Output files (issue 15): written atomically with the umask honoured and no `.part` left behind,
through symlinks, and never over an input unless --overwrite-input."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers import cli, one_line_error
from impasto import images


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@pytest.mark.slow
def test_outputs_never_replace_inputs_unless_asked(style_models, data, tmp_path):
    photo = tmp_path / "a.jpg"
    photo.write_bytes((data / "content" / "beach.jpg").read_bytes())
    before = photo.read_bytes()
    models = ["--models", str(style_models)]
    line = one_line_error(cli("stylize", str(photo), *models, "--size", "64", "-o", str(photo)))
    assert "--overwrite-input" in line
    # the same file by another name: ./, a symlink, a hard link
    (tmp_path / "link.jpg").symlink_to(photo)
    os.link(photo, tmp_path / "hard.jpg")
    for other in (tmp_path / "." / "a.jpg", tmp_path / "link.jpg", tmp_path / "hard.jpg"):
        one_line_error(cli("stylize", str(photo), *models, "--size", "64", "-o", str(other)))
    # a folder written into itself would replace its photos
    folder = tmp_path / "photos"
    folder.mkdir()
    Image.new("RGB", (40, 30), "red").save(folder / "x.png")
    one_line_error(cli("stylize", str(folder), *models, "-o", str(folder)))
    assert photo.read_bytes() == before
    r = cli("stylize", str(photo), *models, "--size", "64", "--overwrite-input", "-o", str(photo))
    assert r.returncode == 0, r.stderr
    assert photo.read_bytes() != before and Image.open(photo).size[0] == 64


@pytest.mark.slow
def test_optimize_refuses_to_replace_content_or_style(data, tmp_path, weights_path):
    content, style = tmp_path / "c.png", tmp_path / "s.png"
    Image.open(data / "content" / "tubingen.jpg").convert("RGB").resize((48, 36)).save(content)
    Image.open(data / "style" / "candy.jpg").convert("RGB").resize((48, 48)).save(style)
    saved = content.read_bytes(), style.read_bytes()
    for target in (content, style):
        line = one_line_error(cli("optimize", "--content", str(content), "--style", str(style), "--size", "32",
                                  "--iterations", "1", "-o", str(target)))
        assert "--overwrite-input" in line
    assert (content.read_bytes(), style.read_bytes()) == saved


@pytest.mark.slow
def test_outputs_honour_the_umask(style_models, data, tmp_path):
    for mask, expected in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        out = tmp_path / f"out_{mask:03o}.png"
        r = cli("stylize", str(data / "content" / "beach.jpg"), "--models", str(style_models), "--size", "48",
                "-o", str(out), preexec_fn=lambda m=mask: os.umask(m))
        assert r.returncode == 0, r.stderr
        assert _mode(out) == expected, (oct(mask), oct(_mode(out)))
    assert not list(tmp_path.glob(".*.part"))


def test_save_is_atomic_and_leaves_no_part_file(tmp_path):
    arr = np.random.default_rng(0).random((8, 8, 3), dtype=np.float32)
    old = os.umask(0o027)
    try:
        images.save(arr, tmp_path / "a.png")
    finally:
        os.umask(old)
    assert _mode(tmp_path / "a.png") == 0o640
    (tmp_path / "dir.png").mkdir()  # the rename fails: no .part file may stay behind
    with pytest.raises(OSError):
        images.save(arr, tmp_path / "dir.png")
    with pytest.raises(Exception):  # an encoder failure: nothing is written at all
        images.save(np.zeros((0, 0, 3), np.float32), tmp_path / "b.png")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "dir.png"]


@pytest.mark.slow
def test_output_symlink_is_written_through(style_models, data, tmp_path):
    real = tmp_path / "real" / "result.png"
    real.parent.mkdir()
    Image.new("RGB", (4, 4), "blue").save(real)
    link = tmp_path / "link.png"
    link.symlink_to(real)
    r = cli("stylize", str(data / "content" / "beach.jpg"), "--models", str(style_models), "--size", "48",
            "-o", str(link))
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and os.readlink(link) == str(real)
    assert max(Image.open(real).size) == 48
    assert not list(real.parent.glob(".*.part")) and not list(tmp_path.glob(".*.part"))
    dangling = tmp_path / "dangling.png"  # a link to a file not there yet: the file is created
    dangling.symlink_to(tmp_path / "real" / "new.png")
    r = cli("stylize", str(data / "content" / "beach.jpg"), "--models", str(style_models), "--size", "48",
            "-o", str(dangling))
    assert r.returncode == 0, r.stderr
    assert dangling.is_symlink() and (tmp_path / "real" / "new.png").is_file()
