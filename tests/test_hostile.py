"""The hostile corpus (issue 15): what an attacker and a careless user try, kept as regression tests.

Cheap cases run here: the server ones against a real `impasto serve` process on loopback, with
every loop bounded in count and time; the CLI ones as real subprocesses. The load, slowloris
and decompression-bomb figures (many clients, peak memory) live in bench/bench_hostile.py.
Nothing here asserts a time: waits are deadlines that fail a test only when something hangs.
"""

from __future__ import annotations

import csv
import io
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from test_export import style_models  # noqa: F401  (fixture)
from test_server import Server, assert_healthy, post

REPO = Path(__file__).resolve().parents[1]


def cli(*args, timeout=300, **kw):
    return subprocess.run([sys.executable, "-m", "impasto.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, **kw)


def one_line_error(r, rc: int = 2) -> str:
    assert r.returncode == rc, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "error:" in lines[0]
    return lines[0]


def png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def photo(data) -> bytes:
    return (data / "content" / "golden_gate.jpg").read_bytes()


@pytest.fixture(scope="module")
def bomb() -> bytes:
    """A 6000x6000 flat PNG: ~100 kB on the wire, 36 megapixels (under the 40 MP canvas limit)."""
    return png_bytes(Image.new("RGB", (6000, 6000), (200, 120, 40)))


# ============================================================================ server

@pytest.fixture(scope="module")
def guarded(style_models):
    """Short timeouts and a small connection cap, so each case stays small; one worker, no queue."""
    s = Server(style_models, "--header-timeout", "1", "--body-timeout", "2", "--max-connections", "24",
               "--workers", "1", "--queue", "0", "--max-body-mb", "2")
    yield s
    s.stop()


def _connect(server) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=15)
    return sock


def _read_status(sock: socket.socket) -> int | None:
    """The status code of what the server sends before closing (None: closed without a word)."""
    data = b""
    try:
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    except (ConnectionResetError, socket.timeout):
        pass
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data.split()[1])


def test_slow_headers_get_408_and_never_starve_healthz(guarded):
    socks = []
    for _ in range(12):  # slowloris: a request line and one header, then nothing more
        s = _connect(guarded)
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        socks.append(s)
    for _ in range(5):  # the server answers everyone else meanwhile
        assert_healthy(guarded)
    for s in socks:  # one more header line, as a slowloris does: it must not reset the clock
        s.sendall(b"X-a: b\r\n")
    statuses = [_read_status(s) for s in socks]
    for s in socks:
        s.close()
    assert statuses == [408] * len(socks), statuses
    assert_healthy(guarded)


def test_keep_alive_connection_is_timed_out_between_requests(guarded):
    s = _connect(guarded)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert _read_status(s) == 200
    s.sendall(b"GET /healthz HTTP/1.1\r\n")  # the next request trickles: 408 too
    # the first response may still be in the buffer; read until the connection closes
    data, deadline = b"", time.monotonic() + 15
    while time.monotonic() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    assert b"HTTP/1.1 408" in data, data[-300:]


def test_slow_bodies_get_408_and_hold_no_inference_slot(guarded, photo):
    socks = []
    for _ in range(8):  # Content-Length promises 100 kB; 100 bytes come
        s = _connect(guarded)
        s.sendall(b"POST /stylize HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=zz\r\n"
                  b"Content-Length: 100000\r\n\r\n" + b"--zz\r\n" + b"x" * 94)
        socks.append(s)
    # with one worker and no queue, a real request still gets through: the slow bodies hold
    # connections, not the inference slot
    r = post(guarded, photo, size=64)
    assert r.status_code == 200, r.text
    assert_healthy(guarded)
    statuses = [_read_status(s) for s in socks]
    for s in socks:
        s.close()
    assert statuses == [408] * len(socks), statuses
    assert_healthy(guarded)


def test_connections_past_the_cap_get_503_and_the_server_recovers(guarded):
    socks = [_connect(guarded) for _ in range(30)]  # the cap is 24
    for s in socks:
        s.settimeout(5)
    refused = []
    for s in socks[24:]:
        refused.append(_read_status(s))
    for s in socks:
        s.close()
    assert refused.count(503) >= 5, refused
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the closed sockets leave the server's set
        try:
            if httpx.get(guarded.url + "/healthz", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    assert_healthy(guarded)


def test_huge_form_values_are_not_echoed(guarded, photo):
    big = "x" * (1024 * 1024)
    for form, status in (({"format": big}, 422), ({"style": big}, 400), ({"size": big}, 422),
                         ({"strength": big}, 422)):
        r = post(guarded, photo, **form)
        assert r.status_code == status, (list(form), r.status_code)
        assert len(r.content) < 2000, (list(form), len(r.content))
        assert r.json()["error"]


def test_bomb_is_shrunk_in_8_bit(guarded, bomb):
    def peak_mb() -> float:
        for line in Path(f"/proc/{guarded.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        pytest.skip("no /proc")
    before = peak_mb()
    r = post(guarded, bomb, "bomb.png", size=64, format="png")
    assert r.status_code == 200, r.text
    assert r.headers["X-Image-Size"] == "64x64"
    # a float32 copy of the canvas alone is 432 MB; the 8-bit decode is 108 MB
    assert peak_mb() - before < 350, (before, peak_mb())


def test_pixel_budget_refuses_past_the_bound():
    from impasto.errors import ImpastoError
    from impasto.serve.guard import PixelBudget
    budget = PixelBudget(100)
    with budget.take(60):
        with pytest.raises(ImpastoError) as exc:
            budget.take(41)
        assert exc.value.status == 503
        with budget.take(40):
            assert budget.in_use == 100
    assert budget.in_use == 0


def test_serve_rejects_bad_numbers_in_one_line():
    for args in (["--port", "70000"], ["--port", "-1"], ["--workers", "0"], ["--timeout", "nan"],
                 ["--queue", "-1"], ["--max-connections", "0"], ["--header-timeout", "0"]):
        line = one_line_error(cli("serve", *args, timeout=60))
        assert args[0] in line, line


# ============================================================================ CLI options

def test_optimize_numbers_are_range_checked_at_parse_time(tmp_path):
    base = ["optimize", "--content", "c.png", "--style", "s.png", "-o", str(tmp_path / "o.png")]
    cases = [["--lr", "nan"], ["--lr", "-1"], ["--lr", "inf"], ["--scales", "-1"], ["--scales", "0"],
             ["--scales", "8"], ["--style-scale", "0"], ["--style-scale", "-1"],
             ["--content-weight", "nan"], ["--style-weight", "-1"], ["--tv-weight", "inf"],
             ["--intensity", "-1"], ["--intensity", "0"], ["--iterations", "-5"], ["--size", "0"],
             ["--size", "100000"], ["--seed", "-1"], ["--snapshot-every", "-2"],
             ["--style-weights", "nan"], ["--histogram-weight", "-3"], ["--mrf-weight", "nan"],
             ["--patch-grid", "0"], ["--mask-threshold", "2"], ["--max-output-megapixels", "0"],
             ["--lr", "x" * 100000]]
    for case in cases:
        line = one_line_error(cli(*base, *case, timeout=60))
        assert case[0] in line and len(line) < 600, line
    assert not (tmp_path / "o.png").exists()


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


def test_optimize_size_over_the_pixel_limit(data, tmp_path, weights_path):
    out = tmp_path / "o.png"
    line = one_line_error(cli("optimize", "--content", str(data / "content" / "tubingen.jpg"), "--style",
                              str(data / "style" / "candy.jpg"), "--size", "20000", "-o", str(out)))
    assert "--max-output-megapixels" in line
    assert not out.exists()


def test_a_text_file_as_style_gives_one_line(data, tmp_path):
    for backend in ("auto", "openvino", "ort"):
        line = one_line_error(cli("stylize", str(data / "content" / "beach.jpg"), "--style", "/etc/passwd",
                                  "--backend", backend, "-o", str(tmp_path / "o.png")))
        assert "not an ONNX model" in line


def test_second_ctrl_c_during_optimize_prints_no_traceback(data, tmp_path, weights_path):
    out = tmp_path / "out.png"
    proc = subprocess.Popen(
        [sys.executable, "-m", "impasto.cli", "optimize", "--content", str(data / "content" / "tubingen.jpg"),
         "--style", str(data / "style" / "candy.jpg"), "--size", "64", "--iterations", "100000",
         "--snapshot-every", "1", "--snapshot-dir", str(tmp_path / "snaps"), "-o", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
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
    assert proc.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr, stderr[-2000:]


# ============================================================================ files

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


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def test_outputs_honour_the_umask(style_models, data, tmp_path):
    for mask, expected in ((0o022, 0o644), (0o077, 0o600), (0o002, 0o664)):
        out = tmp_path / f"out_{mask:03o}.png"
        r = cli("stylize", str(data / "content" / "beach.jpg"), "--models", str(style_models), "--size", "48",
                "-o", str(out), preexec_fn=lambda m=mask: os.umask(m))
        assert r.returncode == 0, r.stderr
        assert _mode(out) == expected, (oct(mask), oct(_mode(out)))
    assert not list(tmp_path.glob(".*.part"))


def test_save_is_atomic_and_leaves_no_part_file(tmp_path):
    from impasto import images
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


def test_load_shrinks_in_8_bit_and_matches_the_float_path(tmp_path):
    """images.load with max_side decodes big images at reduced size; the result stays the same
    picture as a full-size float resize would give."""
    from impasto import images
    rng = np.random.default_rng(1)
    base = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(base).resize((1200, 900), Image.BICUBIC)
    for name, kw in (("p.png", {}), ("j.jpg", {"quality": 95})):
        img.save(tmp_path / name, **kw)
        small = images.load(tmp_path / name, max_side=100)
        full = images.resize(images.load(tmp_path / name), 100)
        assert small.shape == full.shape == (75, 100, 3)
        assert np.abs(small - full).mean() < 0.02, name


# ============================================================================ training metrics

def test_resume_keeps_every_metrics_row_once(data, tmp_path, weights_path):
    """Kill a training run (SIGKILL), resume it, resume the finished run again: every step's
    training row is in csv/metrics.csv exactly once."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted((data / "coco_sample").glob("*.jpg"))[:10]:
        (photos / p.name).write_bytes(p.read_bytes())
    run = tmp_path / "run"

    def args(steps, *extra):
        return ["train", "--model.style_image", str(data / "style" / "candy.jpg"), "--model.style_name", "tiny",
                "--model.style_size", "64", "--data.source", str(photos), "--data.holdout", "2",
                "--data.image_size", "64", "--data.batch_size", "2", "--trainer.max_steps", str(steps),
                "--trainer.precision", "32-true", "--trainer.val_check_interval", "4",
                "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
                "--trainer.enable_model_summary", "false", "--run_dir", str(run), "--save_every_n_steps", "3",
                "--threads", "1", *extra]

    def steps() -> list[int]:
        path = run / "csv" / "metrics.csv"
        if not path.exists():
            return []
        return [int(r["step"]) for r in csv.DictReader(open(path)) if r.get("train/loss")]

    proc = subprocess.Popen([sys.executable, "-m", "impasto.cli", *args(1000)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "checkpoints" / "last.ckpt").exists() and max(steps(), default=0) >= 7:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    proc.kill()
    proc.wait(60)
    proc.stderr.close()
    logged = steps()
    assert len(logged) == len(set(logged)) and max(logged) >= 7

    env = {**os.environ, "HF_DATASETS_OFFLINE": "1"}
    r = cli(*args(14, "--resume", "last"), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(steps()) == list(range(14)), steps()
    r = cli(*args(14, "--resume", "last"), env=env)  # resuming a finished run keeps the history
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(steps()) == list(range(14)), steps()
