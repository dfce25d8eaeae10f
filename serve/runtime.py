"""Inference engines for exported style networks: onnxruntime (the reference) and OpenVINO.

No torch here: the server and `impasto stylize` run on onnxruntime or OpenVINO + numpy + Pillow.

Backend choice (`backend="auto"`):
1. onnxruntime with the CUDA provider, when onnxruntime-gpu is installed and sees a GPU;
2. OpenVINO with a bf16 inference-precision hint, when `openvino` is installed (the
   `impasto[openvino]` extra) and the CPU reports bf16 units (AVX512-BF16 / AMX): on such CPUs
   it is several times faster than onnxruntime, whose CPU provider computes in fp32 only;
3. onnxruntime's CPU provider in fp32 (always available, and the reference for quality). Without
   bf16 units OpenVINO computes in fp32 too, and it is not reliably faster: on a 2-core Zen 3
   its steady state ran 0.74-1.44x onnxruntime's time across photo sizes and models, and it
   takes about 0.5 s to load a model and 0.15-0.25 s to specialise each new size.

`IMPASTO_BACKEND` (ort, ort-cuda, openvino, openvino-fp32) overrides the choice; `IMPASTO_THREADS`
sets the intra-op thread count (default: all cores the process may use).
"""

from __future__ import annotations

import os
import queue
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np
import onnxruntime as ort

from impasto.errors import ImpastoError

INPUT_NAME = "input"
STYLE_INPUT_NAME = "style_weights"   # a multi-style model's second input: (N, S) or, spatial, (N, S, H, W)
BACKENDS = ("auto", "ort", "ort-cuda", "openvino", "openvino-fp32")


def _one_line(exc: Exception, limit: int = 200) -> str:
    """A runtime's exception as one short line (theirs span lines and quote source files)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = lines[-1] if lines else type(exc).__name__
    return text if len(text) <= limit else text[:limit] + "..."


def default_threads() -> int:
    env = os.environ.get("IMPASTO_THREADS")
    if env:
        return max(1, int(env))
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def openvino_available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


_BF16: bool | None = None


def cpu_has_bf16() -> bool:
    """True when OpenVINO's CPU plugin reports native bf16 support (AVX512-BF16 or AMX)."""
    global _BF16
    if _BF16 is None:
        try:
            import openvino as ov
            caps = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
            _BF16 = "BF16" in caps
        except Exception:
            _BF16 = False
    return _BF16


def cuda_available() -> bool:
    return "CUDAExecutionProvider" in ort.get_available_providers()


def choose_backend(requested: str = "auto") -> str:
    requested = (os.environ.get("IMPASTO_BACKEND") or requested or "auto").lower()
    if requested not in BACKENDS:
        raise ImpastoError(f"unknown backend {requested!r}; choose from {', '.join(BACKENDS)}")
    if requested != "auto":
        return requested
    if cuda_available():
        return "ort-cuda"
    if openvino_available() and cpu_has_bf16():
        return "openvino"
    return "ort"


class Engine:
    """Runs one exported network: (N, 3, H, W) float32 in 0..1 -> same shape in 0..1.

    A multi-style model (`styles` names its styles, in input order) also takes style weights:
    (N, S), or (N, S, H, W) for its spatial variant (`spatial`); without them it paints its
    first style."""

    backend = "?"
    precision = "fp32"
    styles: list[str] = []
    spatial = False
    edge_margin: int | None = None   # the model's own reflected margin (metadata impasto.edge_margin)

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __call__(self, x: np.ndarray, style_weights: np.ndarray | None = None) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.backend} {self.precision}"

    def _read_metadata(self, metadata: dict, style_input_rank: int | None) -> None:
        """The model's edge margin and, for a multi-style model, its styles."""
        margin = metadata.get("impasto.edge_margin", "")
        self.edge_margin = int(margin) if margin.isdigit() else None
        if style_input_rank is None:
            return
        self.styles = [n for n in metadata.get("impasto.styles", "").split(",") if n]
        self.spatial = style_input_rank == 4

    def style_feed(self, x: np.ndarray, style_weights: np.ndarray | None) -> np.ndarray | None:
        """The style_weights input for a batch `x`, checked against the model; None for a
        single-style model."""
        if not self.styles:
            if style_weights is not None:
                raise ImpastoError(f"{self.path.name} paints one style; style weights need a multi-style model")
            return None
        n, _, h, w = x.shape
        if style_weights is None:   # the first style
            style_weights = np.zeros((n, len(self.styles)) + ((h, w) if self.spatial else ()), np.float32)
            style_weights[:, 0] = 1.0
        want = (n, len(self.styles)) + ((h, w) if self.spatial else ())
        if style_weights.shape != want:
            raise ImpastoError(f"style weights of shape {style_weights.shape} for {self.path.name}, "
                               f"which takes {want}")
        return np.ascontiguousarray(style_weights, dtype=np.float32)


class OrtEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, path, threads: int | None = None, cuda: bool = False):
        super().__init__(path)
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = True
        opts.enable_mem_pattern = True
        providers = ["CPUExecutionProvider"]
        if cuda and cuda_available():
            providers.insert(0, ("CUDAExecutionProvider", {"cudnn_conv_algo_search": "HEURISTIC"}))
        try:
            self.session = ort.InferenceSession(str(path), opts, providers=providers)
        except Exception as exc:
            raise ImpastoError(f"{path}: cannot load the model with onnxruntime: {_one_line(exc)}") from None
        active = self.session.get_providers()
        if active and active[0] == "CUDAExecutionProvider":
            self.backend = "onnxruntime-cuda"
        inputs = self.session.get_inputs()
        inp = inputs[0]
        self.input_name = inp.name
        self.input_type = np.float16 if "float16" in inp.type else np.float32
        self.style_input = inputs[1].name if len(inputs) > 1 else None
        self._read_metadata(self.session.get_modelmeta().custom_metadata_map,
                          len(inputs[1].shape) if len(inputs) > 1 else None)

    def __call__(self, x: np.ndarray, style_weights: np.ndarray | None = None) -> np.ndarray:
        feed = {self.input_name: x.astype(self.input_type, copy=False)}
        weights = self.style_feed(x, style_weights)
        if weights is not None:
            feed[self.style_input] = weights
        out = self.session.run(None, feed)[0]
        return out.astype(np.float32, copy=False)


class OpenVinoEngine(Engine):
    """OpenVINO on the CPU, compiled from the same ONNX file.

    The dynamic-shape model serves any size. A size seen `static_after` times gets its own
    static-shape compilation (about 0.35 s here), which runs 25-35% faster than the dynamic one
    (slim net, 512x384, bf16: 49-52 ms vs 68-77 ms); up to `static_shapes` are kept (LRU).
    Each compiled model has a pool of infer requests, so several threads may call at once.
    """

    backend = "openvino"

    def __init__(self, path, precision: str = "bf16", threads: int | None = None, requests: int = 2,
                 static_shapes: int = 8, static_after: int = 2):
        super().__init__(path)
        import openvino as ov
        self.precision = precision
        self.core = ov.Core()
        self.config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(threads or default_threads()),
        }
        self.requests = max(1, requests)
        try:
            self.compiled = self.core.compile_model(read_onnx(path), "CPU", self.config)
        except Exception as exc:
            raise ImpastoError(f"{path}: cannot compile the model with OpenVINO: {_one_line(exc)}") from None
        self.input_name = self.compiled.inputs[0].get_any_name()
        inputs = self.compiled.inputs
        self.style_input = inputs[1].get_any_name() if len(inputs) > 1 else None
        self._read_metadata(_onnx_metadata(path),
                          inputs[1].get_partial_shape().rank.get_length() if self.style_input else None)
        self._pool = self._make_pool(self.compiled)
        self.static_shapes, self.static_after = static_shapes, static_after
        self._static: "OrderedDict[tuple, queue.Queue]" = OrderedDict()
        self._seen: dict[tuple, int] = {}
        self._lock = threading.Lock()
        self._compiling: set = set()
        # One tiny inference now, in one thread: OpenVINO's Python binding initialises numpy's C
        # API lazily on first tensor access, and two threads doing that first access at once
        # deadlock inside pybind11 (seen here: both stuck in gil_safe_call_once_and_store).
        tiny = np.zeros((1, 3, 8, 8), np.float32)
        self._run(self._pool, tiny, self.style_feed(tiny, None))

    def _make_pool(self, compiled) -> queue.Queue:
        pool: queue.Queue = queue.Queue()
        for _ in range(self.requests):
            pool.put(compiled.create_infer_request())
        return pool

    def _pool_for(self, shapes: tuple) -> queue.Queue:
        """shapes: the input's shape, then the style weights' when the model takes them."""
        if not self.static_shapes:
            return self._pool
        with self._lock:
            pool = self._static.get(shapes)
            if pool is not None:
                self._static.move_to_end(shapes)
                return pool
            self._seen[shapes] = n = self._seen.get(shapes, 0) + 1
            if n < self.static_after or shapes in self._compiling:
                return self._pool
            self._compiling.add(shapes)
        try:
            model = read_onnx(self.path)
            names = [self.input_name] + ([self.style_input] if self.style_input else [])
            model.reshape({name: list(shape) for name, shape in zip(names, shapes)})
            pool = self._make_pool(self.core.compile_model(model, "CPU", self.config))
        except Exception:  # a shape OpenVINO cannot specialise: stay on the dynamic model
            pool = self._pool
        with self._lock:
            self._compiling.discard(shapes)
            self._static[shapes] = pool
            while len(self._static) > self.static_shapes:
                self._static.popitem(last=False)
        return pool

    def __call__(self, x: np.ndarray, style_weights: np.ndarray | None = None) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        weights = self.style_feed(x, style_weights)
        shapes = (tuple(x.shape),) if weights is None else (tuple(x.shape), tuple(weights.shape))
        return self._run(self._pool_for(shapes), x, weights)

    @staticmethod
    def _run(pool: queue.Queue, x: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        req = pool.get()
        try:
            res = req.infer({0: x} if weights is None else {0: x, 1: weights})
            return np.array(next(iter(res.values())), dtype=np.float32, copy=True)
        finally:
            pool.put(req)


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def read_onnx(path: str | os.PathLike):
    """An OpenVINO model read by its ONNX front end only: core.read_model would try every front
    end (TensorFlow, Paddle, ...) on a bad file, and they print log lines of their own."""
    from openvino.frontend import FrontEndManager
    fe = FrontEndManager().load_by_framework("onnx")
    return fe.convert(fe.load(str(path)))


def _onnx_metadata(path: str | os.PathLike) -> dict:
    """An ONNX file's metadata properties, read with onnxruntime's reader (OpenVINO's model API
    does not expose them)."""
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"]).get_modelmeta().custom_metadata_map


def check_onnx_file(path: Path) -> None:
    """Refuse a file that is plainly not an ONNX model before any runtime reads it: an ONNX
    ModelProto opens with its ir_version field (tag byte 0x08)."""
    try:
        with open(path, "rb") as f:
            head = f.read(1)
    except OSError as exc:
        raise ImpastoError(f"{path}: cannot read the model file ({exc.strerror})") from None
    if head != b"\x08":
        raise ImpastoError(f"{path}: not an ONNX model (give a .onnx file written by `impasto export`, "
                           "or a style name from `impasto styles`)")


def load_engine(path: str | os.PathLike, backend: str = "auto", threads: int | None = None,
                cache: bool = True) -> Engine:
    """An engine for an ONNX file; engines are cached per (file, backend) and shared."""
    path = Path(path)
    if not path.is_file():
        raise ImpastoError(f"{path}: no such model file")
    check_onnx_file(path)
    chosen = choose_backend(backend)
    key = (str(path.resolve()), chosen, threads, path.stat().st_mtime_ns)
    with _CACHE_LOCK:
        if cache and key in _CACHE:
            return _CACHE[key]
        if chosen == "openvino":
            engine = OpenVinoEngine(path, "bf16" if cpu_has_bf16() else "fp32", threads)
        elif chosen == "openvino-fp32":
            engine = OpenVinoEngine(path, "fp32", threads)
        else:
            engine = OrtEngine(path, threads, cuda=(chosen == "ort-cuda"))
        if cache:
            _CACHE[key] = engine
        return engine
