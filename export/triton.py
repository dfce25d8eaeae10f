"""A model repository for NVIDIA Triton Inference Server (onnxruntime backend).

Layout (https://docs.nvidia.com/deeplearning/triton-inference-server/):

    DIR/<name>/config.pbtxt
    DIR/<name>/1/model.onnx

The config declares the dynamic H/W input (-1), batching up to `max_batch_size`, and dynamic
batching with a short queue delay, so that concurrent requests of one size are batched together.
A multi-style model declares its second input, `style_weights` (S floats per image: the mix of
its styles, named in order by the `impasto.styles` parameter).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Sequence

from impasto.errors import ImpastoError

from .onnx_export import INPUT_NAME, OUTPUT_NAME, STYLE_INPUT_NAME, atomic_write_bytes

CONFIG_TEMPLATE = """\
name: "{name}"
backend: "onnxruntime"
max_batch_size: {max_batch_size}
input [
  {{
    name: "{input}"
    data_type: TYPE_FP32
    dims: [ 3, -1, -1 ]
  }}{style_input}
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
}}{styles_parameter}
version_policy: {{ latest: {{ num_versions: 1 }} }}
"""


STYLE_INPUT_TEMPLATE = """,
  {{
    name: "{name}"
    data_type: TYPE_FP32
    dims: [ {count} ]
  }}"""

STYLES_PARAMETER_TEMPLATE = """
parameters {{
  key: "impasto.styles"
  value: {{ string_value: "{styles}" }}
}}"""


def triton_config(name: str, *, style: str = "", max_batch_size: int = 8, delay_us: int = 2000,
                  instances: int = 1, kind: str = "KIND_AUTO", styles: Sequence[str] = ()) -> str:
    """config.pbtxt; `styles` (a multi-style model's, in input order) adds the style_weights input."""
    preferred = ", ".join(str(b) for b in (2, 4, 8) if b <= max_batch_size) or "1"
    style_input = STYLE_INPUT_TEMPLATE.format(name=STYLE_INPUT_NAME, count=len(styles)) if styles else ""
    styles_parameter = STYLES_PARAMETER_TEMPLATE.format(styles=",".join(styles)) if styles else ""
    return CONFIG_TEMPLATE.format(name=name, max_batch_size=max_batch_size, input=INPUT_NAME,
                                  output=OUTPUT_NAME, preferred=preferred, delay_us=delay_us,
                                  instances=instances, kind=kind, style=style or name,
                                  style_input=style_input, styles_parameter=styles_parameter)


def write_triton_repository(onnx_path: str | os.PathLike, repo_dir: str | os.PathLike,
                            name: str, *, style: str = "", max_batch_size: int = 8,
                            version: int = 1, styles: Sequence[str] = ()) -> Path:
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
                       triton_config(name, style=style, max_batch_size=max_batch_size, styles=styles).encode())
    return model_dir
