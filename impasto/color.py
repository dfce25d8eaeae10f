"""Colour preservation (Gatys et al. 2016, "Preserving colour in neural artistic style transfer"),
the one formula both paths use: numpy only, so the torch-free fast path (`impasto stylize`, the
server) and the iterative optimiser share it.

Two ways: transfer luminance only and keep the photo's chroma (`luminance`, `keep_colors`), or
first give the style image the photo's colour distribution (mean and covariance matching).

Luminance transfer works in YIQ, as the paper does. The fast path used YUV before; both spaces
share the luma row (Rec. 601: 0.299, 0.587, 0.114) and their chroma axes are rotations of each
other in the plane of grey-free colours, so "stylised Y + photo's chroma" is the same image in
either (they differed by ~1e-5, YUV's rounded coefficients). YIQ is kept: the paper's space, and
the iterative path's results stay bit-for-bit the same.
"""

from __future__ import annotations

import numpy as np

from impasto.images import resize_to

_RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                        [0.596, -0.274, -0.322],
                        [0.211, -0.523, 0.312]], dtype=np.float32)
_YIQ_TO_RGB = np.linalg.inv(_RGB_TO_YIQ).astype(np.float32)


def rgb_to_yiq(image: np.ndarray) -> np.ndarray:
    return image @ _RGB_TO_YIQ.T


def yiq_to_rgb(image: np.ndarray) -> np.ndarray:
    return image @ _YIQ_TO_RGB.T


def luminance(image: np.ndarray) -> np.ndarray:
    """Grey RGB image holding only the luminance (for luminance-only transfer)."""
    y = rgb_to_yiq(image)[..., :1]
    return np.repeat(np.clip(y, 0, 1), 3, axis=2)


def keep_colors(stylized: np.ndarray, content: np.ndarray) -> np.ndarray:
    """The stylised image's luminance with the content's chroma (I and Q)."""
    if stylized.shape != content.shape:
        content = resize_to(content, (stylized.shape[1], stylized.shape[0]))
    out = rgb_to_yiq(content)
    out[..., 0] = rgb_to_yiq(stylized)[..., 0]
    return np.clip(yiq_to_rgb(out), 0, 1)


def _sqrtm(cov: np.ndarray, inverse: bool = False) -> np.ndarray:
    vals, vecs = np.linalg.eigh(cov)
    vals = np.clip(vals, 1e-8, None) ** (-0.5 if inverse else 0.5)
    return (vecs * vals) @ vecs.T


def match_color_histogram(source: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Recolour `source` so its pixel mean and covariance equal `reference`'s."""
    src = source.reshape(-1, 3).astype(np.float64)
    ref = reference.reshape(-1, 3).astype(np.float64)
    mu_s, mu_r = src.mean(0), ref.mean(0)
    cov_s = np.cov(src, rowvar=False) + 1e-5 * np.eye(3)
    cov_r = np.cov(ref, rowvar=False) + 1e-5 * np.eye(3)
    transform = _sqrtm(cov_r) @ _sqrtm(cov_s, inverse=True)
    out = (src - mu_s) @ transform.T + mu_r
    return np.clip(out, 0, 1).reshape(source.shape).astype(np.float32)
