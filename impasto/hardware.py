"""What this machine's processor does fast, read without importing torch.

bf16 autocast pays only on CPUs with bf16 units (AVX-512 BF16 or AMX): there it is 2-5x faster
than fp32. Without them (AMD Zen 3 and older, Intel before Cooper Lake) torch emulates bf16, and
a training step of the slim network measured 12x slower than fp32 on a Zen 3 EPYC. So "auto"
means bf16 where the units exist, fp32 elsewhere.
"""

from __future__ import annotations

import functools
from pathlib import Path

BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The processor's feature flags from /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith("flags"):
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def cpu_has_bf16() -> bool:
    return bool(BF16_FLAGS & cpu_flags())


def auto_precision(precision: str = "auto") -> str:
    """"bf16" or "fp32" for the iterative optimiser and the measures: "auto" picks bf16 only on
    CPUs with bf16 units; an explicit choice is kept."""
    if precision != "auto":
        return precision
    return "bf16" if cpu_has_bf16() else "fp32"


def auto_trainer_precision(cuda: bool) -> str:
    """Lightning's precision for training: bf16-mixed on a GPU or a CPU with bf16 units."""
    return "bf16-mixed" if cuda or cpu_has_bf16() else "32-true"
