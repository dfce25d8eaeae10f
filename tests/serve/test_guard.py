"""The server under hostile clients (issue 15): slow headers and bodies, connection floods, huge
form values, decompression bombs, each against a real `impasto serve` process on loopback with
every loop bounded in count and time. The load figures live in bench/bench_hostile.py. Nothing
here asserts a time: waits are deadlines that fail a test only when something hangs."""

from __future__ import annotations

import contextlib

import io
import socket
import time
from pathlib import Path

import httpx
import pytest
from PIL import Image

from helpers import Server, cli, one_line_error
from test_server import assert_healthy, post
from impasto.errors import ImpastoError
from impasto.serve.guard import PixelBudget


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
    with contextlib.suppress(ConnectionResetError, socket.timeout):  # closed or silent: judged below
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    if not data.startswith(b"HTTP/1.1 "):
        return None
    return int(data.split()[1])


def _assert_all_timed_out(server, socks: list[socket.socket]) -> None:
    """Every slow connection got 408, and the server still answers."""
    statuses = [_read_status(s) for s in socks]
    for s in socks:
        s.close()
    assert statuses == [408] * len(socks), statuses
    assert_healthy(server)


@pytest.mark.slow
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
    _assert_all_timed_out(guarded, socks)


@pytest.mark.slow
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


@pytest.mark.slow
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
    _assert_all_timed_out(guarded, socks)


@pytest.mark.slow
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
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(guarded.url + "/healthz", timeout=5).status_code == 200:
                break
        time.sleep(0.1)
    assert_healthy(guarded)


@pytest.mark.slow
def test_huge_form_values_are_not_echoed(guarded, photo):
    big = "x" * (1024 * 1024)
    for form, status in (({"format": big}, 422), ({"style": big}, 400), ({"size": big}, 422),
                         ({"strength": big}, 422)):
        r = post(guarded, photo, **form)
        assert r.status_code == status, (list(form), r.status_code)
        assert len(r.content) < 2000, (list(form), len(r.content))
        assert r.json()["error"]


@pytest.mark.slow
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
    budget = PixelBudget(100)
    with budget.take(60):
        with pytest.raises(ImpastoError) as exc:
            budget.take(41)
        assert exc.value.status == 503
        with budget.take(40):
            assert budget.in_use == 100
    assert budget.in_use == 0


@pytest.mark.slow
def test_serve_rejects_bad_numbers_in_one_line():
    for args in (["--port", "70000"], ["--port", "-1"], ["--workers", "0"], ["--timeout", "nan"],
                 ["--queue", "-1"], ["--max-connections", "0"], ["--header-timeout", "0"]):
        line = one_line_error(cli("serve", *args, timeout=60))
        assert args[0] in line, line
