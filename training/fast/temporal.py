"""The temporal term of fast-network training: stable strokes under camera motion, learned.

Painted frame by frame, a video flickers because the network answers a small change of its input
(a shift of a few pixels, new content at the edges that moves the instance-norm statistics,
sensor noise) with visibly different strokes. Following Huang et al. 2017 ("Real-Time Neural
Style Transfer for Videos") and ReCoNet (Gao et al. 2018), the network learns to agree with
itself: a photo and a moved copy of it must be painted alike where the motion is known,

    temporal = mean over valid pixels of (net(M(x) + noise) - M(net(x)))^2,

where M is a random synthetic camera motion (a shift, a zoom and a small rotation; Eilertsen et
al. 2019 train the same way without video), so the flow is exact and needs no estimator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Motion:
    """The range of the synthetic camera motion between two "frames"."""
    shift: float = 8.0          # whole pixels, each axis
    zoom: float = 0.0           # relative, either way (resamples: see random_motion)
    rotate: float = 0.0         # degrees, either way (resamples)
    noise: float = 0.01         # sensor noise on the moved frame (0..1 scale)
    mirror: float = 0.0         # chance the moved frame is also mirrored left to right: strokes
                                # must then follow the photo, not one direction of their own


def random_motion(n: int, height: int, width: int, motion: Motion,
                  generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """N affine matrices (N, 2, 3) for `F.affine_grid`, in its normalised coordinates."""
    def uniform(scale: float) -> torch.Tensor:
        return (torch.rand(n, generator=generator) * 2 - 1) * scale
    zoom = 1 + uniform(motion.zoom)
    angle = uniform(math.radians(motion.rotate))
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    # Whole pixels: a fractional shift resamples (blurs) the painting it is compared with, which
    # would teach the network to blur its strokes. Normalised coordinates span 2 units a side.
    tx = torch.round(uniform(motion.shift)) * 2 / width
    ty = torch.round(uniform(motion.shift)) * 2 / height
    aspect = height / width   # a rotation in pixels, in coordinates scaled differently per axis
    # A mirror maps pixel centres onto pixel centres: exact, like the whole-pixel shifts. Drawn
    # only when asked for, so motions without it stay the same for a given generator.
    x_sign = 1 - 2 * (torch.rand(n, generator=generator) < motion.mirror).float() if motion.mirror else 1
    return torch.stack([torch.stack([cos * x_sign, -sin * aspect, tx], 1),
                        torch.stack([sin / aspect * x_sign, cos, ty], 1)], 1)


def move(images: torch.Tensor, theta: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """`images` (N, C, H, W) moved by `theta`, and where the result saw inside the original (N, 1, H, W)."""
    grid = F.affine_grid(theta.to(images.device, images.dtype), list(images.shape), align_corners=False)
    moved = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    inside = (grid.abs() <= 1).all(dim=-1, keepdim=True).permute(0, 3, 1, 2).to(images.dtype)
    return moved, inside


def temporal_loss(net, x: torch.Tensor, y: torch.Tensor, motion: Motion,
                  generator: Optional[torch.Generator] = None, lowpass: int = 1) -> torch.Tensor:
    """The mean squared disagreement between painting a moved photo and moving the painting
    (`y` = net(x)), on the pixels the motion keeps in view; 0..1 scale.

    `lowpass` > 1 compares means over lowpass x lowpass blocks (in view) instead of pixels. Most
    of the flicker a viewer sees is a low-frequency drift of colour and tone as the instance-norm
    statistics follow the content (bench/bench_flicker.py); stroke texture may then shift with
    the motion without being fought, and the style keeps more of its weight."""
    n, _, h, w = x.shape
    theta = random_motion(n, h, w, motion, generator)
    moved_x, inside = move(x.float(), theta)
    if motion.noise:
        noise = torch.randn(moved_x.shape, generator=generator).to(moved_x.device) * motion.noise
        moved_x = (moved_x + noise).clamp(0, 1)
    moved_y, _ = move(y.float(), theta)
    painted = net(moved_x.to(x.dtype)).float()
    diff = painted - moved_y
    if lowpass > 1:
        # Block means over the pixels in view; a block is kept when it is mostly in view.
        area = F.avg_pool2d(inside, lowpass, ceil_mode=True)
        diff = F.avg_pool2d(diff * inside, lowpass, ceil_mode=True) / area.clamp_min(1e-6)
        inside = (area > 0.5).to(diff.dtype)
    err = diff ** 2 * inside
    return err.sum() / (inside.sum() * y.shape[1]).clamp_min(1.0)
