"""A model repository for NVIDIA Triton Inference Server (onnxruntime backend).

Layout (https://docs.nvidia.com/deeplearning/triton-inference-server/):

    DIR/<name>/config.pbtxt
    DIR/<name>/1/model.onnx

The config declares the dynamic H/W input (-1), batching up to `max_batch_size`, and dynamic
batching with a short queue delay, so that concurrent requests of one size are batched together.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from impasto.errors import ImpastoError

from .onnx_export import INPUT_NAME, OUTPUT_NAME, atomic_write_bytes

CONFIG_TEMPLATE = """\
name: "{name}"
backend: "onnxruntime"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{input}"
    data_type: TYPE_FP32
    dims: [ 3, -1, -1 ]
  }}
]
output [
  {{
    name: "{output}"
    data_type: TYPE_FP32
    dims: [ 3, -1, -1 ]
  }}
]
dynamic_batching {{
  preferred_batch_size: [ {preferred} ]
  max_queue_delay_microseconds: {delay_us}
}}
instance_group [
  {{
    count: {instances}
    kind: {kind}
  }}
]
parameters {{
  key: "impasto.style"
  value: {{ string_value: "{style}" }}
}}
version_policy: {{ latest: {{ num_versions: 1 }} }}
"""


def triton_config(name: str, *, style: str = "", max_batch_size: int = 8, delay_us: int = 2000,
                  instances: int = 1, kind: str = "KIND_AUTO") -> str:
    preferred = ", ".join(str(b) for b in (2, 4, 8) if b <= max_batch_size) or "1"
    return CONFIG_TEMPLATE.format(name=name, max_batch_size=max_batch_size, input=INPUT_NAME,
                                  output=OUTPUT_NAME, preferred=preferred, delay_us=delay_us,
                                  instances=instances, kind=kind, style=style or name)


def write_triton_repository(onnx_path: str | os.PathLike, repo_dir: str | os.PathLike,
                            name: str, *, style: str = "", max_batch_size: int = 8,
                            version: int = 1) -> Path:
    """Copy `onnx_path` into a Triton repository as DIR/name/<version>/model.onnx plus config."""
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name):
        raise ImpastoError(f"model name {name!r}: use letters, digits, '_', '.', '-'")
    model_dir = Path(repo_dir) / name
    version_dir = model_dir / str(version)
    version_dir.mkdir(parents=True, exist_ok=True)
    tmp = version_dir / ".model.onnx.part"
    shutil.copyfile(onnx_path, tmp)
    os.chmod(tmp, 0o644)
    os.replace(tmp, version_dir / "model.onnx")
    atomic_write_bytes(model_dir / "config.pbtxt",
                       triton_config(name, style=style, max_batch_size=max_batch_size).encode())
    return model_dir
