"""numpy images <-> torch batches (RGB, 0..1, NCHW)."""

from __future__ import annotations

import numpy as np
import torch


def to_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) float array -> (1, 3, H, W) float32 tensor."""
    return torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32)).permute(2, 0, 1)[None].contiguous()


def to_array(batch: torch.Tensor) -> np.ndarray:
    """(1, 3, H, W) or (3, H, W) tensor -> (H, W, 3) float32 array clipped to 0..1."""
    t = batch.detach().float().clamp(0, 1).cpu()
    if t.ndim == 4:
        t = t[0]
    return t.permute(1, 2, 0).numpy().copy()
