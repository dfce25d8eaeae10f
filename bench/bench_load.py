"""Load test: `impasto serve` in its own process on loopback, hit by this process with 1, 4, 16 and
64 concurrent clients; throughput and p50/p95/p99 latency per level, errors counted, against the
offline throughput of the same work (decode + stylise + encode, `service.stylize_upload`) in one
process with no HTTP. Bounded by request count and time per level.

    .venv/bin/python bench/bench_load.py [--models DIR] [--style NAME] [--size 512]
        [--clients 1 4 16 64] [--requests 48] [--max-seconds 60]

Clients honour 503 + Retry-After (the server's deliberate back-pressure) by waiting and retrying;
those 503s are counted apart from other errors. Figures are printed, never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("IMPASTO_SHARED", REPO.parent / "shared"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ensure_models(folder: str | None) -> str | None:
    from impasto.serve import zoo
    if zoo.list_styles(folder):
        return folder
    print("no bundled models: serving a freshly initialised slim network (speed does not depend on weights)")
    tmp = Path(tempfile.mkdtemp(prefix="impasto-load-"))
    code = ("from impasto.export.onnx_export import export_onnx\n"
            "from impasto.models.transformer import TransformerNet\n"
            f"export_onnx(TransformerNet('slim'), {str(tmp / 'untrained.onnx')!r}, style='untrained', arch='slim')\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return str(tmp)


def payloads(size: int, n: int = 8) -> list[bytes]:
    """Real photos, pre-resized so that upload cost stays realistic (a phone photo resized client-side)."""
    from PIL import Image
    photos = sorted((SHARED / "data" / "content").glob("*.jpg"))[:n]
    out = []
    for p in photos:
        img = Image.open(p).convert("RGB")
        img.thumbnail((size, size))
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def offline(models: str, style: str | None, data: list[bytes], size: int, seconds: float, count: int) -> float:
    """Requests per second of the server's own work function, sequentially, in this process."""
    from impasto.serve import service
    styles = service.Styles(models)
    kw = dict(style=style, size=size, out_format="jpeg")
    for body in data + data:  # warm-up: each photo size twice (OpenVINO compiles repeated sizes)
        service.stylize_upload(body, styles, **kw)
    t0, done = time.perf_counter(), 0
    while done < count and time.perf_counter() - t0 < seconds:
        service.stylize_upload(data[done % len(data)], styles, **kw)
        done += 1
    return done / (time.perf_counter() - t0)


async def level(url: str, clients: int, data: list[bytes], form: dict, total: int, seconds: float) -> dict:
    import httpx
    latencies: list[float] = []
    codes: dict[int, int] = {}
    issued = 0
    deadline = time.perf_counter() + seconds
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=300) as client:
        async def worker(i: int):
            nonlocal issued
            while issued < total and time.perf_counter() < deadline:
                issued += 1
                body = data[issued % len(data)]
                t = time.perf_counter()
                while True:
                    try:
                        r = await client.post(url + "/stylize", files={"file": ("p.jpg", body, "image/jpeg")},
                                              data=form)
                        code = r.status_code
                    except httpx.HTTPError:
                        code = -1
                    codes[code] = codes.get(code, 0) + 1
                    if code == 503:  # deliberate back-pressure: wait as told, then retry
                        await asyncio.sleep(float(r.headers.get("Retry-After", "1")))
                        continue
                    break
                if code == 200:
                    latencies.append(time.perf_counter() - t)
        t0 = time.perf_counter()
        await asyncio.gather(*(worker(i) for i in range(clients)))
        wall = time.perf_counter() - t0
    lat = sorted(latencies)

    def pct(p):
        return lat[min(len(lat) - 1, int(round(p / 100 * (len(lat) - 1))))] * 1000 if lat else float("nan")
    return {"clients": clients, "ok": len(lat), "wall_s": wall, "rps": len(lat) / wall, "p50": pct(50),
            "p95": pct(95), "p99": pct(99), "codes": codes}



@contextlib.contextmanager
def serving(models, server_args: str, log_prefix: str):
    """A real `impasto serve` on a free loopback port, answering /healthz: (process, url, command).
    Stopped with SIGTERM (killed after 60 s) on the way out."""
    import httpx
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "impasto.cli", "serve", "--port", str(port)] + \
        (["--models", models] if models else []) + server_args.split()
    log = open(tempfile.mktemp(prefix=log_prefix, suffix=".log"), "w")
    server = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        else:
            sys.exit(f"server did not start; log in {log.name}")
        yield server, url, cmd
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(60)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", help="folder of STYLE.onnx (default: the bundled zoo)")
    ap.add_argument("--style", help="style to request (default: the server's default)")
    ap.add_argument("--size", type=int, default=512, help="longest side of the photos (default 512)")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--requests", type=int, default=48, help="requests per level (at least 2 per client)")
    ap.add_argument("--max-seconds", type=float, default=60, help="time limit per level")
    ap.add_argument("--server-args", default="", help="extra `impasto serve` options, e.g. '--workers 3'")
    args = ap.parse_args(argv)

    import httpx
    models = ensure_models(args.models)
    data = payloads(args.size)
    with serving(models, args.server_args, "impasto-load-") as (server, url, cmd):
        info = httpx.get(url + "/styles").json()
        style = args.style or info["default"]
        form = {"style": style, "size": str(args.size), "format": "jpeg"}
        for body in data + data:  # the same warm-up as offline
            probe = httpx.post(url + "/stylize", files={"file": ("p.jpg", body, "image/jpeg")}, data=form,
                               timeout=120)
        print(f"server: {' '.join(cmd[2:])}\nstyle {style}, backend {probe.headers.get('X-Backend')}, "
              f"{args.size} px photos (JPEG in, JPEG out), {len(data)} different photos")

        # Offline throughput, measured while the server idles (same machine, same work, no HTTP).
        off = offline(models, style, data, args.size, args.max_seconds, args.requests)
        print(f"offline single-process throughput: {off:.2f} req/s\n")
        print(f"{'clients':>7s} {'ok':>5s} {'req/s':>7s} {'vs offline':>10s} {'p50 ms':>8s} {'p95 ms':>8s} "
              f"{'p99 ms':>8s}  503s  other errors")
        rows = []
        for c in args.clients:
            total = max(args.requests, 2 * c)
            r = asyncio.run(level(url, c, data, form, total, args.max_seconds))
            other = {k: v for k, v in r["codes"].items() if k not in (200, 503)}
            rows.append((r, other))
            print(f"{c:7d} {r['ok']:5d} {r['rps']:7.2f} {r['rps'] / off:9.2f}x {r['p50']:8.0f} {r['p95']:8.0f} "
                  f"{r['p99']:8.0f} {r['codes'].get(503, 0):5d}  {other or '-'}")
        at16 = next((r for r, _ in rows if r["clients"] == 16), None)
        fivexx = sum(v for _, o in rows for k, v in o.items() if k >= 500 or k < 0)
        if at16:
            ratio = at16["rps"] / off
            print(f"\ntarget: throughput at 16 clients >= 90% of offline: {ratio:.2f} -> "
                  f"{'MET' if ratio >= 0.9 else 'MISSED'}")
        print(f"target: no 5xx other than deliberate 503s: {fivexx} -> {'MET' if fivexx == 0 else 'MISSED'}")
        metrics = httpx.get(url + "/metrics").text
        rejected = [l for l in metrics.splitlines() if l.startswith("impasto_rejected_total")]
        print("server metrics:", rejected[0] if rejected else "impasto_rejected_total 0")
    return 0


if __name__ == "__main__":
    sys.exit(main())
