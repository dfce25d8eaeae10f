"""`impasto serve`: the HTTP server and web page (FastAPI on uvicorn, onnxruntime/OpenVINO)."""

from __future__ import annotations

from .options import MAX_SIDE, add_parser, integer, number


def register(sub) -> None:
    p = add_parser(sub, "serve", help="serve stylisation over HTTP with a web page",
                       description="Start the HTTP server: web page at /, API docs at /docs. "
                                   "Binds 127.0.0.1 unless --host says otherwise.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=integer(0, 65535), default=8000, help="port (default %(default)s)")
    p.add_argument("--models", help="folder of STYLE.onnx (+ .json, .png) (default: bundled styles)")
    p.add_argument("--backend", default="auto",
                   choices=["auto", "ort", "ort-cuda", "openvino", "openvino-fp32"],
                   help="inference backend (default: auto = CUDA, else OpenVINO bf16, else onnxruntime)")
    p.add_argument("--workers", type=integer(1, 256), default=2, help="worker threads (decode+stylise+encode)")
    p.add_argument("--slots", type=integer(1, 256), default=1, help="networks running at once (default 1)")
    p.add_argument("--threads", type=integer(1, 1024), help="threads per network run (default: all cores)")
    p.add_argument("--queue", type=integer(0, 100_000), default=32, help="requests that may wait before 503 (default 32)")
    p.add_argument("--timeout", type=number(gt=0, hi=86400), default=60.0, help="per-request time limit in seconds")
    p.add_argument("--max-body-mb", type=number(gt=0, hi=4096), default=20.0, help="largest upload in MB (default 20)")
    p.add_argument("--max-size", type=integer(16, MAX_SIDE), default=2048, help="largest result side in px (default 2048)")
    p.add_argument("--max-megapixels", type=number(gt=0, hi=10_000), default=40.0, help="largest upload canvas (default 40)")
    g = p.add_argument_group("slow and greedy clients")
    g.add_argument("--header-timeout", type=number(gt=0, hi=3600), default=10.0, metavar="S",
                   help="a connection's request headers must arrive within S seconds, else 408 (default 10)")
    g.add_argument("--body-timeout", type=number(gt=0, hi=3600), default=60.0, metavar="S",
                   help="an upload must arrive whole within S seconds, else 408 (default 60)")
    g.add_argument("--max-connections", type=integer(1, 100_000), default=512, metavar="N",
                   help="open connections, idle ones included; past it 503 (default 512). "
                        "Separate from --queue: a slow client never holds an inference slot")
    g.add_argument("--max-decode-megapixels", type=number(gt=0, hi=100_000), default=120.0, metavar="MP",
                   help="image canvases being decoded at once, all requests together; past it 503 "
                        "(default 120)")
    p.set_defaults(run=run)


def run(args) -> int:
    from impasto.serve.app import Settings, serve
    from impasto.serve.service import Limits
    limits = Limits(max_body_bytes=int(args.max_body_mb * 1024 * 1024), max_size=args.max_size,
                    max_input_pixels=int(args.max_megapixels * 1e6),
                    default_size=min(1024, args.max_size))
    serve(Settings(models=args.models, backend=args.backend, host=args.host, port=args.port,
                   workers=args.workers, slots=args.slots, threads=args.threads, queue=args.queue,
                   timeout_s=args.timeout, limits=limits, header_timeout_s=args.header_timeout,
                   body_timeout_s=args.body_timeout, max_connections=args.max_connections,
                   max_decode_pixels=int(args.max_decode_megapixels * 1e6)))
    return 0
