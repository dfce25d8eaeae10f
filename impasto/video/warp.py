"""Warping a frame by a flow field (bilinear, edges replicated). numpy + OpenCV."""

from __future__ import annotations

import cv2
import numpy as np

_GRIDS: dict = {}


def grid(h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    key = (h, w)
    if key not in _GRIDS:
        if len(_GRIDS) > 8:
            _GRIDS.clear()
        ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
        _GRIDS[key] = (xs, ys)
    return _GRIDS[key]


def warp(image: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """Sample `image` at x + flow(x) (bilinear, edges replicated): with a backward flow of frame
    t this moves frame t-1's content to where it is in frame t."""
    h, w = flow.shape[:2]
    xs, ys = grid(h, w)
    return cv2.remap(np.ascontiguousarray(image, dtype=np.float32), xs + flow[..., 0], ys + flow[..., 1],
                     interpolation=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
