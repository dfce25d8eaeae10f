"""`impasto serve`: the HTTP server and web page (FastAPI on uvicorn, onnxruntime/OpenVINO)."""

from __future__ import annotations

from .options import add_parser


def register(sub) -> None:
    p = add_parser(sub, "serve", help="serve stylisation over HTTP with a web page",
                       description="Start the HTTP server: web page at /, API docs at /docs. "
                                   "Binds 127.0.0.1 unless --host says otherwise.")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="port (default %(default)s)")
    p.add_argument("--models", help="folder of STYLE.onnx (+ .json, .png) (default: bundled styles)")
    p.add_argument("--backend", default="auto",
                   choices=["auto", "ort", "ort-cuda", "openvino", "openvino-fp32"],
                   help="inference backend (default: auto = CUDA, else OpenVINO bf16, else onnxruntime)")
    p.add_argument("--workers", type=int, default=2, help="worker threads (decode+stylise+encode)")
    p.add_argument("--slots", type=int, default=1, help="networks running at once (default 1)")
    p.add_argument("--threads", type=int, help="threads per network run (default: all cores)")
    p.add_argument("--queue", type=int, default=32, help="requests that may wait before 503 (default 32)")
    p.add_argument("--timeout", type=float, default=60.0, help="per-request time limit in seconds")
    p.add_argument("--max-body-mb", type=float, default=20.0, help="largest upload in MB (default 20)")
    p.add_argument("--max-size", type=int, default=2048, help="largest result side in px (default 2048)")
    p.add_argument("--max-megapixels", type=float, default=40.0, help="largest upload canvas (default 40)")
    p.set_defaults(run=run)


def run(args) -> int:
    from impasto.errors import ImpastoError
    from impasto.serve.app import Settings, serve
    from impasto.serve.service import Limits
    if args.workers < 1 or args.queue < 0 or args.slots < 1:
        raise ImpastoError("--workers and --slots must be at least 1, --queue at least 0")
    limits = Limits(max_body_bytes=int(args.max_body_mb * 1024 * 1024), max_size=args.max_size,
                    max_input_pixels=int(args.max_megapixels * 1e6),
                    default_size=min(1024, args.max_size))
    serve(Settings(models=args.models, backend=args.backend, host=args.host, port=args.port,
                   workers=args.workers, slots=args.slots, threads=args.threads, queue=args.queue,
                   timeout_s=args.timeout, limits=limits))
    return 0
