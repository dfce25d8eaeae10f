"""Command-line options under careless and hostile values (issue 15): every number range-checked
at parse time with one line and exit 2, the output pixel limit, a non-ONNX --style, and a second
Ctrl-C while a stopped run writes. Each case is a real `impasto` subprocess."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO, cli, default_sigint, one_line_error
from impasto.commands.options import integer, megapixels, number


def test_checked_numbers_name_their_range():
    assert integer(16, 64)("16") == 16 and number(gt=0)("0.5") == 0.5
    assert megapixels("1.5") == 1_500_000
    for parse, text in ((integer(16, 64), "8"), (integer(0), "1.5"), (number(gt=0), "0"), (number(0, 1), "nan"),
                        (number(), "inf"), (number(0, lt=1), "1")):
        with pytest.raises(argparse.ArgumentTypeError):
            parse(text)


@pytest.mark.slow
def test_optimize_numbers_are_range_checked_at_parse_time(tmp_path):
    base = ["optimize", "--content", "c.png", "--style", "s.png", "-o", str(tmp_path / "o.png")]
    cases = [["--lr", "nan"], ["--lr", "-1"], ["--lr", "inf"], ["--scales", "-1"], ["--scales", "0"],
             ["--scales", "8"], ["--style-scale", "0"], ["--style-scale", "-1"],
             ["--content-weight", "nan"], ["--style-weight", "-1"], ["--tv-weight", "inf"],
             ["--intensity", "-1"], ["--intensity", "0"], ["--iterations", "-5"], ["--size", "0"],
             ["--size", "100000"], ["--seed", "-1"], ["--snapshot-every", "-2"],
             ["--style-weights", "nan"], ["--histogram-weight", "-3"], ["--mrf-weight", "nan"],
             ["--patch-grid", "0"], ["--mask-threshold", "2"], ["--max-output-megapixels", "0"],
             ["--style-pyramid", "0"], ["--style-pyramid", "9"], ["--lr", "x" * 100000]]
    for case in cases:
        line = one_line_error(cli(*base, *case, timeout=60))
        assert case[0] in line and len(line) < 600, line
    assert not (tmp_path / "o.png").exists()


@pytest.mark.slow
def test_stylize_size_and_numbers_are_bounded(style_models, data, tmp_path):
    photo = str(data / "content" / "beach.jpg")
    out = str(tmp_path / "o.png")
    for case in (["--size", "100000"], ["--size", "8"], ["--strength", "nan"], ["--tile", "-1"],
                 ["--overlap", "-5"], ["--max-output-megapixels", "-1"]):
        line = one_line_error(cli("stylize", photo, "--models", str(style_models), *case, "-o", out))
        assert case[0] in line, line
    # within the side limit, over the pixel limit: refused before any work, with the way out
    line = one_line_error(cli("stylize", photo, "--models", str(style_models), "--size", "30000", "-o", out))
    assert "megapixels" in line and "--max-output-megapixels" in line
    assert not Path(out).exists()
    r = cli("stylize", photo, "--models", str(style_models), "--size", "300", "--max-output-megapixels",
            "0.05", "-o", out)
    one_line_error(r)
    r = cli("stylize", photo, "--models", str(style_models), "--size", "200", "--max-output-megapixels",
            "0.05", "-o", out)
    assert r.returncode == 0, r.stderr


@pytest.mark.slow
def test_optimize_size_over_the_pixel_limit(data, tmp_path, weights_path):
    out = tmp_path / "o.png"
    line = one_line_error(cli("optimize", "--content", str(data / "content" / "tubingen.jpg"), "--style",
                              str(data / "style" / "candy.jpg"), "--size", "20000", "-o", str(out)))
    assert "--max-output-megapixels" in line
    assert not out.exists()


@pytest.mark.slow
def test_a_text_file_as_style_gives_one_line(data, tmp_path):
    for backend in ("auto", "openvino", "ort"):
        line = one_line_error(cli("stylize", str(data / "content" / "beach.jpg"), "--style", "/etc/passwd",
                                  "--backend", backend, "-o", str(tmp_path / "o.png")))
        assert "not an ONNX model" in line


@pytest.mark.slow
def test_second_ctrl_c_during_optimize_prints_no_traceback(data, tmp_path, weights_path):
    out = tmp_path / "out.png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "impasto.cli", "optimize", "--content", str(data / "content" / "tubingen.jpg"),
         "--style", str(data / "style" / "candy.jpg"), "--size", "64", "--iterations", "100000",
         "--snapshot-every", "1", "--snapshot-dir", str(tmp_path / "snaps"), "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO, preexec_fn=default_sigint)
    try:
        deadline = time.monotonic() + 180
        while not list((tmp_path / "snaps").glob("*.png")) and time.monotonic() < deadline:
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        for _ in range(400):  # Ctrl-C again and again, until the process has gone (bounded)
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGINT)
            time.sleep(0.02)
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:   # a failed test must not leave a 100000-iteration run behind
            proc.kill()
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]
