"""Hostile load on `impasto serve` (issue 15): slowloris, slow bodies, decompression bombs, a burst.

The server runs in its own process on loopback with its default options but --body-timeout 15,
and this process attacks it. Every phase is bounded in count and time. Figures are printed with
the issue's targets, never asserted (bench/, not tests/):

1. slowloris: N connections that send a header line every 2 s. Meanwhile /healthz and a real
   /stylize are asked once a second; target: all 200. The slow connections must end in 408.
2. slow bodies: N uploads that declare a Content-Length and send 100 bytes; same probes.
3. bombs: 64 concurrent uploads of a 6000x6000 flat PNG (~100 kB) asked at size=64; the server's
   RSS is sampled every 20 ms. Targets: peak <= idle + 1 GB; back within 100 MB of idle after.
4. burst: 64 concurrent real photos; target: only 200 and 503 (with Retry-After).

    .venv/bin/python bench/bench_hostile.py [--connections 150] [--phase-seconds 20]
        [--bombs 64] [--server-args '--workers 2']
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_load import SHARED, ensure_models, serving  # noqa: E402


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def bomb_png() -> bytes:
    from PIL import Image
    buf = io.BytesIO()
    Image.new("RGB", (6000, 6000), (200, 120, 40)).save(buf, "PNG")
    return buf.getvalue()


def photo_jpeg(side: int = 512) -> bytes:
    from PIL import Image
    img = Image.open(sorted((SHARED / "data" / "content").glob("*.jpg"))[0]).convert("RGB")
    img.thumbnail((side, side))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90)
    return buf.getvalue()


async def _status_of(reader) -> int | None:
    try:
        line = await reader.readline()
    except (ConnectionError, OSError):
        return None
    parts = line.split()
    return int(parts[1]) if len(parts) > 1 and parts[0].startswith(b"HTTP/") else None


async def slow_client(port: int, body: bool, stop: float) -> tuple[int | None, float]:
    """One slowloris (header line every 2 s) or slow body (100 bytes of a promised 1 MB).
    Returns (status the server answered, seconds until it answered or closed)."""
    t0 = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return -1, 0.0
    try:
        if body:
            writer.write(b"POST /stylize HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=z\r\n"
                         b"Content-Length: 1000000\r\n\r\n--z\r\n" + b"x" * 95)
        else:
            writer.write(b"POST /stylize HTTP/1.1\r\nHost: x\r\n")
        await writer.drain()
        read = asyncio.ensure_future(_status_of(reader))
        i = 0
        while not read.done() and time.perf_counter() < stop:
            await asyncio.wait([read], timeout=2)
            if not read.done() and not body:
                i += 1
                try:
                    writer.write(f"X-Slow-{i}: {i}\r\n".encode())
                    await writer.drain()
                except (ConnectionError, OSError):
                    break
        status = await asyncio.wait_for(read, 5)
        return status, time.perf_counter() - t0
    except (asyncio.TimeoutError, ConnectionError, OSError):
        return None, time.perf_counter() - t0
    finally:
        writer.close()


async def probes(url: str, photo: bytes, stop: float) -> dict:
    import httpx
    codes: dict = {"healthz": {}, "stylize": {}}
    async with httpx.AsyncClient(timeout=60) as client:
        while time.perf_counter() < stop:
            t = time.perf_counter()
            for name, call in (("healthz", lambda: client.get(url + "/healthz")),
                               ("stylize", lambda: client.post(url + "/stylize", data={"size": "256"},
                                                               files={"file": ("p.jpg", photo, "image/jpeg")}))):
                try:
                    code = (await call()).status_code
                except httpx.HTTPError as exc:
                    code = type(exc).__name__
                codes[name][code] = codes[name].get(code, 0) + 1
            await asyncio.sleep(max(0.0, 1.0 - (time.perf_counter() - t)))
    return codes


async def slow_phase(url: str, port: int, photo: bytes, n: int, seconds: float, body: bool) -> None:
    stop = time.perf_counter() + seconds
    clients = [asyncio.ensure_future(slow_client(port, body, stop)) for _ in range(n)]
    await asyncio.sleep(0.5)  # all connected before the probes start
    seen = await probes(url, photo, stop)
    results = await asyncio.gather(*clients)
    outcome: dict = {}
    for status, _ in results:
        outcome[status] = outcome.get(status, 0) + 1
    cut = sorted(s for st, s in results if st == 408)
    what = "slow bodies (100 B of 1 MB)" if body else "slowloris (a header line / 2 s)"
    ok = all(k == 200 for part in seen.values() for k in part)
    print(f"\n{what}: {n} connections for {seconds:g} s")
    print(f"  probes while attacked: /healthz {seen['healthz']}, /stylize {seen['stylize']} -> "
          f"{'MET' if ok else 'MISSED'} (target: all 200)")
    print(f"  slow connections ended with: {outcome}" +
          (f"; cut after {cut[0]:.1f}-{cut[-1]:.1f} s" if cut else ""))


async def bomb_phase(url: str, pid: int, n: int, seconds: float) -> None:
    import httpx
    data = bomb_png()
    idle = rss_mb(pid)
    peak = idle
    done = asyncio.Event()

    async def sample():
        nonlocal peak
        while not done.is_set():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.02)
    codes: dict = {}
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=seconds, limits=limits) as client:
        async def one():
            try:
                r = await client.post(url + "/stylize", data={"size": "64", "format": "png"},
                                      files={"file": ("bomb.png", data, "image/png")})
                code = r.status_code
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            codes[code] = codes.get(code, 0) + 1
        sampler = asyncio.ensure_future(sample())
        t0 = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        wall = time.perf_counter() - t0
        done.set()
        await sampler
    settle = time.perf_counter() + 10
    after = rss_mb(pid)
    while time.perf_counter() < settle and after - idle > 100:
        await asyncio.sleep(0.5)
        after = rss_mb(pid)
    print(f"\nbombs: {n} concurrent 6000x6000 flat PNGs ({len(data) / 1e3:.0f} kB each) at size=64, {wall:.1f} s")
    print(f"  answers: {codes}")
    print(f"  RSS idle {idle:.0f} MB, peak {peak:.0f} MB (+{peak - idle:.0f}) -> "
          f"{'MET' if peak - idle <= 1024 else 'MISSED'} (target <= +1024 MB)")
    print(f"  RSS after {after:.0f} MB (+{after - idle:.0f}) -> {'MET' if after - idle <= 100 else 'MISSED'} "
          f"(target <= +100 MB)")


async def burst_phase(url: str, photo: bytes, n: int, seconds: float) -> None:
    import httpx
    codes: dict = {}
    retry_after = True
    limits = httpx.Limits(max_connections=n, max_keepalive_connections=n)
    async with httpx.AsyncClient(timeout=seconds, limits=limits) as client:
        async def one():
            nonlocal retry_after
            try:
                r = await client.post(url + "/stylize", data={"size": "512"},
                                      files={"file": ("p.jpg", photo, "image/jpeg")})
                code = r.status_code
                if code == 503 and "Retry-After" not in r.headers:
                    retry_after = False
            except httpx.HTTPError as exc:
                code = type(exc).__name__
            codes[code] = codes.get(code, 0) + 1
        await asyncio.gather(*(one() for _ in range(n)))
    ok = set(codes) <= {200, 503} and retry_after
    print(f"\nburst: {n} concurrent 512 px photos: {codes} -> {'MET' if ok else 'MISSED'} "
          "(target: only 200 and 503 with Retry-After)")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="folder of STYLE.onnx (default: the bundled zoo)")
    ap.add_argument("--connections", type=int, default=150, help="slow connections (default 150)")
    ap.add_argument("--phase-seconds", type=float, default=20, help="length of each slow phase")
    ap.add_argument("--bombs", type=int, default=64, help="concurrent bomb uploads (default 64)")
    ap.add_argument("--burst", type=int, default=64, help="concurrent real photos (default 64)")
    ap.add_argument("--server-args", default="--body-timeout 15",
                    help="extra `impasto serve` options (default: '--body-timeout 15', so that the slow "
                         "bodies are cut within a phase; the header timeout is the default 10 s)")
    args = ap.parse_args(argv)

    import httpx
    models = ensure_models(args.models)
    with serving(models, args.server_args, "impasto-hostile-") as (server, url, cmd):
        port = int(url.rsplit(":", 1)[1])
        photo = photo_jpeg()
        httpx.post(url + "/stylize", data={"size": "256"}, files={"file": ("p.jpg", photo, "image/jpeg")},
                   timeout=120)  # warm
        print(f"server: {' '.join(cmd[2:])} (pid {server.pid})")
        asyncio.run(slow_phase(url, port, photo, args.connections, args.phase_seconds, body=False))
        asyncio.run(slow_phase(url, port, photo, args.connections, args.phase_seconds, body=True))
        asyncio.run(bomb_phase(url, server.pid, args.bombs, 300))
        asyncio.run(burst_phase(url, photo, args.burst, 300))
        print(f"\nserver healthy at the end: {httpx.get(url + '/healthz', timeout=10).status_code == 200}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
