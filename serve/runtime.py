"""Inference engines for exported style networks: onnxruntime (the reference) and OpenVINO.

No torch here: the server and `impasto stylize` run on onnxruntime or OpenVINO + numpy + Pillow.

Backend choice (`backend="auto"`):
1. onnxruntime with the CUDA provider, when onnxruntime-gpu is installed and sees a GPU;
2. OpenVINO with a bf16 inference-precision hint, when `openvino` is installed (the
   `impasto[openvino]` extra) and the CPU reports bf16 units (AVX512-BF16 / AMX): on such CPUs
   it is several times faster than onnxruntime, whose CPU provider computes in fp32 only;
3. onnxruntime's CPU provider in fp32 (always available, and the reference for quality).

`IMPASTO_BACKEND` (ort, ort-cuda, openvino, openvino-fp32) overrides the choice; `IMPASTO_THREADS`
sets the intra-op thread count (default: all cores the process may use).
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np

from impasto.errors import ImpastoError

INPUT_NAME = "input"
BACKENDS = ("auto", "ort", "ort-cuda", "openvino", "openvino-fp32")


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
    try:
        import onnxruntime as ort
    except ImportError:  # pragma: no cover
        return False
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
    """Runs one exported network: (N, 3, H, W) float32 in 0..1 -> same shape in 0..1."""

    backend = "?"
    precision = "fp32"

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)

    def __call__(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def describe(self) -> str:
        return f"{self.backend} {self.precision}"


class OrtEngine(Engine):
    backend = "onnxruntime"

    def __init__(self, path, threads: int | None = None, cuda: bool = False):
        super().__init__(path)
        import onnxruntime as ort
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
            raise ImpastoError(f"{path}: cannot load the model with onnxruntime: {exc}") from None
        active = self.session.get_providers()
        if active and active[0] == "CUDAExecutionProvider":
            self.backend = "onnxruntime-cuda"
        inp = self.session.get_inputs()[0]
        self.input_name = inp.name
        self.input_type = np.float16 if "float16" in inp.type else np.float32

    def __call__(self, x: np.ndarray) -> np.ndarray:
        out = self.session.run(None, {self.input_name: x.astype(self.input_type, copy=False)})[0]
        return out.astype(np.float32, copy=False)


class OpenVinoEngine(Engine):
    """OpenVINO on the CPU, compiled from the same ONNX file; a pool of infer requests makes it
    safe to call from several threads at once."""

    backend = "openvino"

    def __init__(self, path, precision: str = "bf16", threads: int | None = None, requests: int = 2):
        super().__init__(path)
        import openvino as ov
        self.precision = precision
        core = ov.Core()
        config = {
            "INFERENCE_PRECISION_HINT": "bf16" if precision == "bf16" else "f32",
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_NUM_THREADS": int(threads or default_threads()),
        }
        try:
            model = core.read_model(str(path))
            self.compiled = core.compile_model(model, "CPU", config)
        except Exception as exc:
            raise ImpastoError(f"{path}: cannot compile the model with OpenVINO: {exc}") from None
        self.input_name = self.compiled.inputs[0].get_any_name()
        self._pool: queue.Queue = queue.Queue()
        for _ in range(max(1, requests)):
            self._pool.put(self.compiled.create_infer_request())

    def __call__(self, x: np.ndarray) -> np.ndarray:
        req = self._pool.get()
        try:
            res = req.infer({0: np.ascontiguousarray(x, dtype=np.float32)})
            return np.array(next(iter(res.values())), dtype=np.float32, copy=True)
        finally:
            self._pool.put(req)


_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def load_engine(path: str | os.PathLike, backend: str = "auto", threads: int | None = None,
                cache: bool = True) -> Engine:
    """An engine for an ONNX file; engines are cached per (file, backend) and shared."""
    path = Path(path)
    if not path.is_file():
        raise ImpastoError(f"{path}: no such model file")
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
