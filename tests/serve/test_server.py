"""The HTTP server as a real process on loopback, hit with a real HTTP client (httpx).

Good requests, then hostile ones (generated here): each must get a clear 4xx JSON error and leave
the server healthy. Also: the bounded queue answers 503 + Retry-After, metrics count what happened,
and SIGTERM lets an in-flight request finish before the process exits.
"""

from __future__ import annotations

import io
import os
import signal
import struct
import threading
import time
import zlib

import httpx
import numpy as np
import pytest
from PIL import Image

from helpers import Server

pytestmark = pytest.mark.slow   # a real server process (and, for the page, a browser)


@pytest.fixture(scope="module")
def server(style_models):
    # A small body limit so that the oversized-body case stays small.
    s = Server(style_models, "--max-body-mb", "2", "--workers", "2", "--queue", "4")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def photo(data) -> bytes:
    return (data / "content" / "golden_gate.jpg").read_bytes()


def post(server, content: bytes, filename="photo.jpg", timeout=60, **form):
    return httpx.post(server.url + "/stylize", files={"file": (filename, content, "application/octet-stream")},
                      data={k: str(v) for k, v in form.items()}, timeout=timeout)


def assert_healthy(server):
    r = httpx.get(server.url + "/healthz", timeout=10)
    assert r.status_code == 200 and r.json()["status"] == "ok", r.text


# ----------------------------------------------------------------------------- good requests

def test_styles_health_and_docs(server):
    r = httpx.get(server.url + "/styles")
    assert r.status_code == 200
    body = r.json()
    assert body["default"] == "alpha" and [s["name"] for s in body["styles"]] == ["alpha", "beta"]
    prev = httpx.get(server.url + body["styles"][0]["preview"])
    assert prev.status_code == 200 and prev.headers["content-type"] == "image/png"
    Image.open(io.BytesIO(prev.content)).verify()
    assert httpx.get(server.url + "/healthz").json()["styles"] == ["alpha", "beta"]  # loaded at start
    spec = httpx.get(server.url + "/openapi.json").json()
    assert "/stylize" in spec["paths"] and "/styles" in spec["paths"]
    assert httpx.get(server.url + "/docs").status_code == 200
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "<title>" in page.text


def test_stylize_jpeg_png_webp(server, photo):
    for fmt, pil in (("jpeg", "JPEG"), ("png", "PNG"), ("webp", "WEBP")):
        r = post(server, photo, style="beta", size=200, strength=0.8, format=fmt)
        assert r.status_code == 200, r.text
        img = Image.open(io.BytesIO(r.content))
        assert img.format == pil and max(img.size) == 200
        assert float(r.headers["X-Inference-Ms"]) > 0 and r.headers["X-Style"] == "beta"


def test_result_is_stylised_and_options_apply(server, photo):
    original = Image.open(io.BytesIO(photo)).convert("RGB")
    w, h = original.size
    ref = np.asarray(original.resize((160, round(160 * h / w)) if w >= h else (round(160 * w / h), 160),
                                     Image.LANCZOS), np.float32)

    def get(**form):
        r = post(server, photo, size=160, format="png", **form)
        assert r.status_code == 200, r.text
        return np.asarray(Image.open(io.BytesIO(r.content)).convert("RGB"), np.float32)
    full = get()
    assert full.shape == ref.shape
    assert np.abs(full - ref).mean() > 10, "the result looks like the photo: nothing was painted"
    none = get(strength=0)
    assert np.abs(none - ref).mean() < 2, "strength 0 must give the photo back"
    kept = get(preserve_color="true")

    def chroma(a):
        return a[..., 2] - a[..., 0], a[..., 0] - a[..., 1]
    d_full = sum(np.abs(x - y).mean() for x, y in zip(chroma(full), chroma(ref)))
    d_kept = sum(np.abs(x - y).mean() for x, y in zip(chroma(kept), chroma(ref)))
    assert d_kept < 0.5 * d_full, (d_kept, d_full)


def test_small_photo_is_not_upscaled(server, photo):
    small = Image.open(io.BytesIO(photo)).convert("RGB").resize((96, 64))
    buf = io.BytesIO()
    small.save(buf, "PNG")
    r = post(server, buf.getvalue(), "small.png", size=1024)
    assert r.status_code == 200 and r.headers["X-Image-Size"] == "96x64"


# ----------------------------------------------------------------------------- hostile inputs

def _png_declaring(width: int, height: int) -> bytes:
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + \
        chunk(b"IEND", b"")


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def hostile_inputs(photo: bytes) -> dict:
    rgb = Image.open(io.BytesIO(photo)).convert("RGB").resize((64, 48))
    frames = [Image.new("RGB", (32, 32), c) for c in ("red", "green", "blue")]
    return {
        "zero bytes": (b"", {}, 400),
        "text": (b"hello, this is not an image\n" * 10, {}, 415),
        "truncated jpeg": (photo[: len(photo) // 2], {}, 400),
        "png declaring 50000x50000": (_png_declaring(50000, 50000), {}, 413),
        "cmyk jpeg": (_encode(rgb.convert("CMYK"), "JPEG"), {}, 415),
        "16-bit png": (_encode(Image.fromarray(np.full((48, 64), 40000, np.uint16)), "PNG"), {}, 415),
        "animated gif": (_encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=100,
                                 loop=0), {}, 415),
        "1x1 png": (_encode(Image.new("RGB", (1, 1), "white"), "PNG"), {}, 422),
        "20000x10 png": (_encode(Image.new("RGB", (20000, 10), "white"), "PNG"), {}, 422),
        "unknown style": (photo, {"style": "no_such_style"}, 404),
        "path traversal style": (photo, {"style": "../../../etc/passwd"}, 400),
        "path traversal style, encoded": (photo, {"style": "..%2F..%2Fbeta"}, 400),
        "absolute path style": (photo, {"style": "/etc/passwd"}, 400),
        "bad strength": (photo, {"strength": "2"}, 422),
        "bad size": (photo, {"size": "100000"}, 422),
        "bad format": (photo, {"format": "exe"}, 422),
    }


def test_hostile_inputs_get_clear_4xx_and_server_stays_healthy(server, photo):
    for name, (content, form, status) in hostile_inputs(photo).items():
        r = post(server, content, **form)
        assert r.status_code == status, f"{name}: {r.status_code} {r.text}"
        assert r.headers["content-type"].startswith("application/json"), name
        err = r.json()["error"]
        assert isinstance(err, str) and len(err) > 10, f"{name}: unclear error {err!r}"
        assert_healthy(server)
    assert server.proc.poll() is None


def test_missing_file_field(server):
    r = httpx.post(server.url + "/stylize", data={"style": "alpha"})
    assert r.status_code == 422 and "file" in r.json()["error"]


def test_oversized_body_is_refused(server):
    big = os.urandom(3 * 1024 * 1024)  # over the 2 MB limit this server runs with
    r = post(server, big, "big.jpg")
    assert r.status_code == 413 and "limit" in r.json()["error"]

    def chunks():  # valid multipart, streamed without Content-Length: the limit must hold too
        yield (b'--zzz\r\nContent-Disposition: form-data; name="file"; filename="a.jpg"\r\n'
               b"Content-Type: image/jpeg\r\n\r\n")
        for _ in range(48):
            yield b"x" * 65536
        yield b"\r\n--zzz--\r\n"
    r = httpx.post(server.url + "/stylize", content=chunks(),
                   headers={"content-type": "multipart/form-data; boundary=zzz"}, timeout=30)
    assert r.status_code == 413
    assert_healthy(server)


def test_metrics_count_requests_errors_and_queue(server, photo):
    post(server, b"")
    post(server, photo, size=64)
    text = httpx.get(server.url + "/metrics").text
    assert "# TYPE impasto_requests_total counter" in text
    assert 'impasto_requests_total{route="/stylize",method="POST",status="200"}' in text
    assert 'impasto_errors_total{route="/stylize",status="400"}' in text
    assert 'impasto_request_duration_seconds_bucket{route="/stylize",le="+Inf"}' in text
    assert "impasto_queue_depth 0" in text and "impasto_inference_seconds_count" in text


def test_full_queue_answers_503_with_retry_after(style_models, photo):
    s = Server(style_models, "--workers", "1", "--queue", "1")
    try:
        results: list = []

        def hit():
            try:
                results.append(post(s, photo, size=768, timeout=120))
            except httpx.HTTPError as exc:  # pragma: no cover - reported below
                results.append(exc)
        threads = [threading.Thread(target=hit) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(getattr(r, "status_code", -1) for r in results)
        assert codes.count(200) >= 2 and codes.count(503) >= 1 and set(codes) <= {200, 503}, codes
        busy = next(r for r in results if r.status_code == 503)
        assert busy.headers["Retry-After"].isdigit() and "busy" in busy.json()["error"]
        assert "impasto_rejected_total" in httpx.get(s.url + "/metrics").text
        assert_healthy(s)
    finally:
        s.stop()


def test_sigterm_finishes_in_flight_request(style_models, photo):
    s = Server(style_models, "--workers", "1")
    result = {}

    def hit():
        result["r"] = post(s, photo, size=1024, format="png", timeout=120)
    t = threading.Thread(target=hit)
    t.start()
    deadline = time.time() + 30  # wait until the request is inside the server
    while time.time() < deadline and 'impasto_in_flight 1' not in httpx.get(s.url + "/metrics").text:
        time.sleep(0.01)
    s.proc.send_signal(signal.SIGTERM)
    t.join(120)
    code = s.proc.wait(60)
    s.log.close()
    assert result["r"].status_code == 200, "the in-flight request was dropped on shutdown"
    # uvicorn finishes the shutdown, then re-raises the signal it caught (the usual convention)
    assert code in (0, -signal.SIGTERM), s.output() if not s.log.closed else code


def test_binds_loopback_by_default():
    from impasto.cli import build_parser
    args = build_parser().parse_args(["serve"])
    assert args.host == "127.0.0.1"


def test_gate_timeout_and_service_function_without_http(style_models, photo):
    """The route's work is a plain function; the admission gate times out slow work."""
    import asyncio

    from impasto.serve import service
    from impasto.serve.app import Gate
    from impasto.serve.metrics import Registry
    styles = service.Styles(style_models, backend="ort")
    res = service.stylize_upload(photo, styles, style="alpha", size=64, out_format="png")
    assert res.media_type == "image/png" and max(res.width, res.height) == 64

    gate = Gate(1, 0, Registry())

    async def main():
        with pytest.raises(asyncio.TimeoutError):
            await gate.run(lambda: time.sleep(0.5), timeout=0.05)
        return await gate.run(lambda: 42, timeout=5)
    assert asyncio.run(main()) == 42
    gate.shutdown()
