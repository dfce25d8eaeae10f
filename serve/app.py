"""The HTTP server: FastAPI on uvicorn.

Why FastAPI: the routes are few and thin, and FastAPI gives typed form parameters with validation
and OpenAPI docs (/docs, /openapi.json) for free, on Starlette's ASGI core (static files, streaming,
lifespan) with no extra weight. LitServe batches well on GPUs but hides the request loop we need
to control here (admission with 503, per-request timeouts, body limits before parsing).

Connections: `guard.GuardedH11Protocol` times out slow request headers (408) and caps open
connections apart from the inference queue (503), so slow clients never starve /healthz.

Request path for POST /stylize:
  body guard (ASGI middleware, before multipart parsing: size 413, read time 408) -> form
  validation (FastAPI) ->
  admission (`Gate`: a bounded queue; full -> 503 + Retry-After) -> `service.stylize_upload` in a
  worker thread (off the event loop), the network itself behind a semaphore of `slots` so that
  concurrent requests overlap decoding/encoding but never oversubscribe the cores, and decoded
  pixels in flight are bounded (`guard.PixelBudget`, 503 past it) -> per-request
  timeout (504) -> the image, with X-Inference-Ms / X-Total-Ms / X-Backend headers.
Every error is JSON: {"error": message, "status": code}.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import uvicorn
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from impasto import __version__
from impasto.errors import ImpastoError

from . import blend as blending
from . import guard, service, zoo
from .metrics import Registry
from .runtime import default_threads

log = logging.getLogger("impasto.serve")
STATIC = Path(__file__).parent / "static"


@dataclass
class Settings:
    models: str | None = None          # folder of <style>.onnx (+ .json, .png); default: bundled
    backend: str = "auto"
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 2                   # threads doing decode + stylise + encode
    slots: int = 1                     # networks running at once (each uses all `threads`)
    threads: int | None = None         # intra-op threads per network run
    queue: int = 32                    # requests that may wait for a worker before 503
    timeout_s: float = 60.0            # per request, queue wait included
    preload: bool = True               # load every style at start-up
    limits: service.Limits = field(default_factory=service.Limits)
    header_timeout_s: float = 10.0     # a connection's request headers must arrive within this
    body_timeout_s: float = 60.0       # a request body must arrive whole within this
    max_connections: int = 512         # open connections (idle ones included); past it 503
    max_decode_pixels: int = 120_000_000  # decoded pixels in flight, all requests; past it 503


class Busy(Exception):
    pass


class Gate:
    """Bounded admission in front of a thread pool: at most workers + queue requests inside."""

    def __init__(self, workers: int, queue: int, metrics: Registry):
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="impasto-worker")
        self.capacity = workers + queue
        self.pending = 0
        self.running = 0
        self._lock = threading.Lock()
        self.metrics = metrics

    def _update(self) -> None:
        self.metrics.in_flight.set(self.running)
        self.metrics.queue_depth.set(max(0, self.pending - self.running))

    async def run(self, fn, timeout: float):
        if self.pending >= self.capacity:
            self.metrics.rejected.inc()
            raise Busy()
        self.pending += 1
        self._update()

        def job():
            with self._lock:
                self.running += 1
                self._update()
            try:
                return fn()
            finally:
                with self._lock:
                    self.running -= 1
                    self._update()

        try:
            fut = asyncio.get_running_loop().run_in_executor(self.executor, job)
            return await asyncio.wait_for(fut, timeout)
        finally:
            self.pending -= 1
            self._update()

    def shutdown(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


class LockedEngine:
    """Wraps an engine so that at most `slots` network runs execute at once."""

    def __init__(self, engine, semaphore: threading.Semaphore):
        self.engine, self.semaphore = engine, semaphore

    def __call__(self, x, style_weights=None):
        with self.semaphore:
            return self.engine(x, style_weights)

    @property
    def styles(self) -> list[str]:
        return self.engine.styles

    def describe(self) -> str:
        return self.engine.describe()


class SharedStyles(service.Styles):
    def __init__(self, *a, slots: int = 1, **k):
        super().__init__(*a, **k)
        self._sem = threading.Semaphore(max(1, slots))
        self._wrapped: dict = {}

    def engine(self, name, spatial: bool = False):
        eng = super().engine(name, spatial)
        key = (name, spatial)
        w = self._wrapped.get(key)
        if w is None or w.engine is not eng:
            w = self._wrapped[key] = LockedEngine(eng, self._sem)
        return w


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    if len(message) > 1000:  # the last guard: no error ever echoes a huge value back
        message = message[:1000] + "..."
    return JSONResponse({"error": message, "status": status}, status_code=status, headers=headers)


@dataclass
class _Parts:
    """What the routes share: the settings, the loaded styles, the admission gate, the metrics."""
    settings: Settings
    styles: SharedStyles
    gate: Gate
    metrics: Registry
    state: dict
    budget: guard.PixelBudget   # decoded pixels in flight, all requests together


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app: thin routes that validate and hand the work to `service` (callable without HTTP)."""
    settings = settings or Settings()
    metrics = Registry()
    parts = _Parts(settings, SharedStyles(settings.models, settings.backend, settings.threads, slots=settings.slots),
                   Gate(settings.workers, settings.queue, metrics), metrics,
                   {"ready": False, "started": time.time(), "load_error": None},
                   guard.PixelBudget(max(settings.max_decode_pixels, settings.limits.max_input_pixels)))
    app = FastAPI(title="impasto", version=__version__, lifespan=_lifespan(parts),
                  description="Paint a photo in the style of an artwork, with fast style networks "
                              "run by onnxruntime or OpenVINO.")
    app.state.settings, app.state.styles, app.state.metrics, app.state.gate = (
        settings, parts.styles, metrics, parts.gate)
    _add_observation(app, metrics)
    app.add_middleware(guard.RequestGuard, limit=settings.limits.max_body_bytes,
                       body_timeout=settings.body_timeout_s)
    _add_error_handlers(app)
    _add_info_routes(app, parts)
    _add_stylize_route(app, parts)
    return app


def _lifespan(parts: _Parts):
    settings, styles, gate, state = parts.settings, parts.styles, parts.gate, parts.state

    @asynccontextmanager
    async def lifespan(app):
        if settings.preload:
            try:
                loaded = await asyncio.get_running_loop().run_in_executor(None, styles.load_all)
                log.info("loaded %d styles: %s", len(loaded), ", ".join(loaded))
            except ImpastoError as exc:
                state["load_error"] = str(exc)
                log.error("cannot load styles: %s", exc)
        state["ready"] = True
        yield
        gate.shutdown()  # graceful: uvicorn has stopped accepting; let running work finish
    return lifespan


def _add_observation(app: FastAPI, metrics: Registry) -> None:
    @app.middleware("http")
    async def observe(request: Request, call_next):
        t0 = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", None) or ("/static" if request.url.path.startswith("/static/")
                                                 else "other")
        metrics.requests.inc(path, request.method, str(response.status_code))
        metrics.latency.observe(time.perf_counter() - t0, path)
        if response.status_code >= 400:
            metrics.errors.inc(path, str(response.status_code))
        return response


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ImpastoError)
    async def impasto_error(request, exc: ImpastoError):
        return _error(exc.status, str(exc), {"Retry-After": "1"} if exc.status == 503 else None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        msgs = ["{}: {}".format(".".join(str(p) for p in e.get("loc", ())[1:]) or "request",
                                str(e.get("msg"))[:200]) for e in exc.errors()]
        return _error(422, "; ".join(msgs) or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail)[:500], getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):
        log.exception("internal error on %s", request.url.path)
        return _error(500, "internal error")


def _add_info_routes(app: FastAPI, parts: _Parts) -> None:
    styles, gate, metrics, state = parts.styles, parts.gate, parts.metrics, parts.state

    @app.get("/", include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    if STATIC.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/healthz", summary="Liveness and readiness")
    async def healthz():
        ok = state["ready"] and not state["load_error"]
        body = {"status": "ok" if ok else ("starting" if not state["ready"] else "error"),
                "version": __version__, "styles": styles.loaded, "queue_depth": max(0, gate.pending - gate.running),
                "in_flight": gate.running, "uptime_s": round(time.time() - state["started"], 1)}
        if state["load_error"]:
            body["error"] = state["load_error"]
        return JSONResponse(body, status_code=200 if ok else 503)

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    async def metrics_route():
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/styles", summary="The styles this server paints in, with their model cards")
    async def list_styles():
        entries = styles.list()
        default = entries[0]["name"] if entries else None
        return {"default": default, "styles": [service.style_info(e) for e in entries]}

    @app.get("/styles/{name}/preview", summary="A preview image painted by the style's model")
    async def preview(name: str):
        return FileResponse(service.preview_path(styles, name), media_type="image/png",
                            headers={"Cache-Control": "public, max-age=3600"})


def _add_stylize_route(app: FastAPI, parts: _Parts) -> None:
    settings, styles, gate, metrics, budget = parts.settings, parts.styles, parts.gate, parts.metrics, parts.budget

    @app.post("/stylize", summary="Paint an uploaded photo in a style",
              responses={200: {"content": {"image/jpeg": {}, "image/png": {}, "image/webp": {}}},
                         413: {"description": "too large"}, 415: {"description": "not an accepted image"},
                         503: {"description": "busy; retry after the Retry-After seconds"}})
    async def stylize(
        file: UploadFile = File(..., description="the photo: JPEG, PNG or WebP"),
        style: str | None = Form(None, description="style name (GET /styles); default: the first"),
        size: int | None = Form(None, description="longest side of the result in px (never upscales)"),
        strength: float = Form(1.0, ge=0.0, le=1.0, description="1 = fully stylised, 0 = the photo"),
        preserve_color: bool = Form(False, description="keep the photo's colours"),
        format: str = Form("jpeg", description="png, jpeg or webp"),
        blend: str | None = Form(None, max_length=blending.MAX_BLEND_TEXT,
                                 description="a multi-style model's mix, e.g. candy:0.7,udnie:0.3 "
                                             "(weights >= 0, normalised); with a mask: FIRST,SECOND"),
        mask: UploadFile | None = File(None, description="a grey image of the photo's proportions: "
                                                         "white paints the first style of blend, black the second"),
    ):
        style = style or None  # an empty field means the default style
        blend = blend or None
        if style is not None:
            zoo.check_style_name(style)
        service.parse_output_format(format)
        if size is not None and not (16 <= size <= settings.limits.max_size):
            raise ImpastoError(f"size must be between 16 and {settings.limits.max_size} px, not {size}", 422)

        def work():
            # Read in the worker: while a request waits in the queue its upload stays in the
            # spooled file (on disk past 1 MB), not in memory.
            file.file.seek(0)
            data = file.file.read(settings.limits.max_body_bytes + 1)
            mask_data = None
            if mask is not None and mask.filename:
                mask.file.seek(0)
                mask_data = mask.file.read(settings.limits.max_body_bytes + 1)
            try:
                return service.stylize_upload(data, styles, style=style, size=size, strength=strength,
                                              preserve_color=preserve_color, out_format=format,
                                              limits=settings.limits, budget=budget, blend=blend,
                                              mask=mask_data)
            finally:
                del data, mask_data
                guard.release_memory()
        try:
            result = await gate.run(work, settings.timeout_s)
        except Busy:
            return _error(503, "the server is busy; retry shortly", {"Retry-After": "1"})
        except asyncio.TimeoutError:
            metrics.timeouts.inc()
            return _error(504, f"stylising took longer than {settings.timeout_s:g} s")
        metrics.inference.observe(result.inference_ms / 1000, result.style)
        return Response(result.data, media_type=result.media_type, headers={
            "X-Inference-Ms": f"{result.inference_ms:.1f}", "X-Total-Ms": f"{result.total_ms:.1f}",
            "X-Backend": result.backend, "X-Style": result.style, **({"X-Blend": result.blend} if result.blend else {}),
            "X-Image-Size": f"{result.width}x{result.height}",
            "Content-Disposition": f'inline; filename="{result.style}.{result.extension}"'})


def serve(settings: Settings) -> None:
    """Run the app on uvicorn until SIGINT/SIGTERM; in-flight requests finish first."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings.threads = settings.threads or default_threads()
    guard.tune_allocator()
    app = create_app(settings)
    # No limit_concurrency: it counts idle connections too. Connections are capped (and slow
    # headers timed out) by the protocol; the inference queue by the Gate.
    protocol = guard.GuardedH11Protocol.configured(settings.header_timeout_s, settings.max_connections)
    config = uvicorn.Config(app, host=settings.host, port=settings.port, log_level="info", http=protocol,
                            timeout_graceful_shutdown=int(settings.timeout_s) + 5,
                            access_log=False, server_header=False)
    uvicorn.Server(config).run()
