"""The numbers of a comparison: SSIM to the photo, colour distance to the painting (sliced
Wasserstein in CIELAB), the objective's terms on an image, "worth N iterations", the machine a run
was measured on, and how the reports print and store them."""

from __future__ import annotations

import math
import os
import platform
from fractions import Fraction
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from impasto.errors import ImpastoError
from impasto.models.tensors import to_tensor


def _gaussian_kernel(sigma: float = 1.5, radius: int = 5) -> np.ndarray:
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return k / k.sum()


def _filter2(img: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Separable 'valid' correlation of a 2-D array with the 1-D kernel k (both directions)."""
    n = len(k)
    h, w = img.shape
    rows = sum(k[i] * img[:, i:w - n + 1 + i] for i in range(n))
    return sum(k[i] * rows[i:h - n + 1 + i, :] for i in range(n))


def luma(arr: np.ndarray) -> np.ndarray:
    """Rec. 601 luma of an RGB image in 0..1."""
    return arr[..., :3].astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean structural similarity (Wang et al. 2004) of two RGB images' luma, in 0..1 units.

    Gaussian window sigma 1.5 (11 taps), K1 0.01, K2 0.03, data range 1: the constants of the
    paper and of scikit-image's `structural_similarity(gaussian_weights=True)`. 1 = identical.
    """
    if a.shape[:2] != b.shape[:2]:
        raise ImpastoError(f"SSIM needs images of the same size, not {a.shape[:2]} and {b.shape[:2]}")
    x, y = luma(a), luma(b)
    k = _gaussian_kernel()
    if min(x.shape) < len(k):
        raise ImpastoError(f"SSIM needs images of at least {len(k)} px a side")
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mx, my = _filter2(x, k), _filter2(y, k)
    sxx = _filter2(x * x, k) - mx * mx
    syy = _filter2(y * y, k) - my * my
    sxy = _filter2(x * y, k) - mx * my
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def rgb_to_lab(arr: np.ndarray) -> np.ndarray:
    """sRGB in 0..1 -> CIELAB (D65), L in 0..100."""
    rgb = arr[..., :3].astype(np.float64)
    lin = np.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    m = np.array([[0.4124564, 0.3575761, 0.1804375],
                  [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = lin @ m.T / np.array([0.95047, 1.0, 1.08883])
    eps, kappa = 216 / 24389, 24389 / 27
    f = np.where(xyz > eps, np.cbrt(xyz), (kappa * xyz + 16) / 116)
    return np.stack([116 * f[..., 1] - 16, 500 * (f[..., 0] - f[..., 1]), 200 * (f[..., 1] - f[..., 2])], -1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, projections: int = 64, quantiles: int = 256,
                       seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two point clouds (N, D) and (M, D).

    Each of `projections` fixed random unit directions gives two 1-D distributions; their W1
    distance is the mean absolute difference of their quantile functions (sampled at `quantiles`
    points). The result is the mean over directions, in the units of the points.
    """
    rng = np.random.default_rng(seed)
    dirs = rng.normal(size=(projections, a.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    q = (np.arange(quantiles) + 0.5) / quantiles
    pa = np.quantile(a @ dirs.T, q, axis=0)
    pb = np.quantile(b @ dirs.T, q, axis=0)
    return float(np.abs(pa - pb).mean())


def color_distance(image: np.ndarray, style: np.ndarray) -> float:
    """How far an image's colour distribution is from the style image's: sliced Wasserstein-1
    distance between their pixel colours in CIELAB (about Delta-E units; 0 = same palette)."""
    return sliced_wasserstein(rgb_to_lab(image).reshape(-1, 3), rgb_to_lab(style).reshape(-1, 3))


def evaluate(loss, image: np.ndarray, content: np.ndarray, precision: str = "fp32") -> dict:
    """The objective's terms and total for `image` with `content` as the content target, as the
    training step computes them (`loss(y, content=x)`)."""
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        total, terms = loss(to_tensor(image), content=to_tensor(content))
    row = {k: float(v) for k, v in terms.items()}
    row["total"] = float(total)
    return row


def worth_iterations(curve: Sequence[float], fast_loss: float) -> Optional[int]:
    """First iteration n whose loss is at most the fast model's (None: never within the run)."""
    for n, value in enumerate(curve):
        if value <= fast_loss:
            return n
    return None


def machine() -> dict:
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    return {"cpu": platform.processor() or platform.machine(), "cores": cores,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(),
            "torch": torch.__version__, "load_average": [round(x, 2) for x in os.getloadavg()]}


def json_default(o):
    if isinstance(o, (np.floating, np.integer)):
        return o.item()
    if isinstance(o, Fraction):            # a video's frame rate
        return float(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(type(o).__name__)


def fmt_float(x) -> str:
    if x is None:
        return "-"
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return f"{x:.4g}"
