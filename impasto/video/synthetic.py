"""Clips with known motion, made from still photos: a camera pan, and a parallax pan of two
layers with an occluding object. numpy + OpenCV.

A real camera gives no ground truth; these do. Every layer moves by a whole number of pixels a
frame, so the true backward flow of each frame is exact, and so is its reliability: a pixel is
reliable when the layer on top of it in frame t was also on top at its old place in frame t-1
(not occluded, not just uncovered, not from outside the frame). Flicker measured with these flows
is what a viewer sees once the known motion is undone.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Optional

import cv2
import numpy as np

from impasto.errors import ImpastoError

from .flow import FlowPair
from .io import VideoInfo, VideoWriter


@dataclass
class Layer:
    """A texture that slides across the frame by `velocity` (dx, dy) pixels a frame from
    `origin`, its top-left corner in frame 0; `alpha` (bool, the texture's size) is its shape."""
    texture: np.ndarray
    velocity: tuple[int, int]
    origin: tuple[int, int] = (0, 0)
    alpha: Optional[np.ndarray] = None

    def place(self, t: int, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
        """This layer's pixels in frame t (HxWx3) and where it covers the frame (HxW bool)."""
        x0 = self.origin[0] + self.velocity[0] * t
        y0 = self.origin[1] + self.velocity[1] * t
        th, tw = self.texture.shape[:2]
        image = np.zeros((h, w, 3), np.float32)
        cover = np.zeros((h, w), bool)
        # The overlap of the texture, shifted to (x0, y0), with the frame.
        fx0, fy0, fx1, fy1 = max(0, x0), max(0, y0), min(w, x0 + tw), min(h, y0 + th)
        if fx0 < fx1 and fy0 < fy1:
            tx, ty = fx0 - x0, fy0 - y0
            image[fy0:fy1, fx0:fx1] = self.texture[ty:ty + fy1 - fy0, tx:tx + fx1 - fx0]
            shape = self.alpha if self.alpha is not None else np.ones((th, tw), bool)
            cover[fy0:fy1, fx0:fx1] = shape[ty:ty + fy1 - fy0, tx:tx + fx1 - fx0]
        return image, cover


@dataclass
class SyntheticClip:
    """Frames (HxWx3 float32 in 0..1), the exact FlowPair linking each frame to the one before
    (n-1 of them), and each layer's coverage per frame (`covers[t][k]`, layer k, back to front)."""
    frames: list[np.ndarray]
    pairs: list[FlowPair]
    covers: list[list[np.ndarray]]

    def write(self, path, fps: int = 12, crf: int = 12) -> str:
        """The frames as a video file (mp4, webm, ...), nearly lossless by default."""
        h, w = self.frames[0].shape[:2]
        n = len(self.frames)
        info = VideoInfo(str(path), w, h, Fraction(fps), n, n / fps, "synthetic", Fraction(1, fps))
        with VideoWriter(path, info, crf=crf) as writer:
            for frame in self.frames:
                writer.write(frame)
        return str(path)

    def region(self, layer: int, grow: int = 4) -> list[np.ndarray]:
        """For frames 1..n-1: where layer `layer` is now or was a frame ago, grown by `grow`
        pixels (HxW bool). Trails, if any, show up there."""
        kernel = np.ones((2 * grow + 1, 2 * grow + 1), np.uint8)
        return [cv2.dilate((self.covers[t][layer] | self.covers[t - 1][layer]).astype(np.uint8), kernel) > 0
                for t in range(1, len(self.frames))]


def compose(layers: list[Layer], n: int, width: int, height: int, noise: float = 0.0,
            seed: int = 0) -> SyntheticClip:
    """Render `n` frames of `layers` (back to front) with the exact flows and reliabilities.
    `noise`: the standard deviation of Gaussian sensor noise added to each frame (0..1 scale)."""
    if n < 2 or width < 8 or height < 8:
        raise ImpastoError(f"a clip needs at least 2 frames of 8x8 px, not {n} of {width}x{height}")
    rng = np.random.default_rng(seed)
    frames, tops, covers = [], [], []
    for t in range(n):
        frame = np.zeros((height, width, 3), np.float32)
        top = np.full((height, width), -1, np.int16)
        frame_covers = []
        for k, layer in enumerate(layers):
            image, cover = layer.place(t, height, width)
            frame[cover] = image[cover]
            top[cover] = k
            frame_covers.append(cover)
        if noise:
            frame = np.clip(frame + rng.normal(0, noise, frame.shape).astype(np.float32), 0, 1)
        frames.append(frame)
        tops.append(top)
        covers.append(frame_covers)
    pairs = [_true_pair(layers, tops[t - 1], tops[t]) for t in range(1, n)]
    return SyntheticClip(frames, pairs, covers)


def _true_pair(layers: list[Layer], top_prev: np.ndarray, top: np.ndarray) -> FlowPair:
    h, w = top.shape
    flow = np.zeros((h, w, 2), np.float32)
    mask = np.zeros((h, w), np.float32)
    ys, xs = np.mgrid[0:h, 0:w]
    for k, layer in enumerate(layers):
        here = top == k
        dx, dy = layer.velocity
        flow[here] = (-dx, -dy)                        # where this pixel was a frame ago
        px, py = xs - dx, ys - dy
        inside = (px >= 0) & (px < w) & (py >= 0) & (py < h)
        was_on_top = np.zeros((h, w), bool)
        was_on_top[inside] = top_prev[py[inside], px[inside]] == k
        mask[here & was_on_top] = 1.0
    return FlowPair(flow, mask)


def pan(photo: np.ndarray, n: int = 16, width: int = 160, height: int = 120, step: int = 4,
        noise: float = 0.0) -> SyntheticClip:
    """A camera panning right across `photo` (HxWx3 float, wide enough) by `step` px a frame."""
    need = width + step * (n - 1)
    if photo.shape[1] < need or photo.shape[0] < height:
        photo = cover(photo, need, height)
    y0 = (photo.shape[0] - height) // 2
    return compose([Layer(photo[y0:y0 + height], (-step, 0))], n, width, height, noise)


def parallax(background: np.ndarray, foreground: np.ndarray, object_image: np.ndarray, n: int = 16,
             width: int = 160, height: int = 120, steps: tuple[int, int, int] = (2, 5, 6),
             noise: float = 0.0) -> SyntheticClip:
    """A parallax pan with an occluding object: the far `background` slides left by steps[0] px a
    frame, a near band of `foreground` (the bottom third) slides faster, by steps[1], and an
    elliptical cut of `object_image` crosses the frame the other way, by steps[2], in front of
    both. Layers: 0 background, 1 foreground band, 2 object."""
    far, near, fast = steps
    bg = cover(background, width + far * (n - 1), height)
    band_h = height // 3
    band = cover(foreground, width + near * (n - 1), band_h)
    size = (height * 3) // 5
    obj = cover(object_image, size, size)
    yy, xx = np.mgrid[0:size, 0:size]
    ellipse = ((xx - (size - 1) / 2) / (size / 2)) ** 2 + ((yy - (size - 1) / 2) / (size / 2.6)) ** 2 <= 1
    start_x = width // 2 - fast * (n // 2) - size // 2   # crosses the middle half-way through the clip
    layers = [Layer(bg, (-far, 0)),
              Layer(band, (-near, 0), (0, height - band_h)),
              Layer(obj, (fast, 0), (start_x, (height - size) // 3), ellipse)]
    return compose(layers, n, width, height, noise)


def cover(image: np.ndarray, width: int, height: int) -> np.ndarray:
    """`image` scaled (aspect kept) to cover width x height, then cropped to it, centred (the
    clips' layers here; export's style sheet tiles too)."""
    h, w = image.shape[:2]
    scale = max(width / w, height / h)
    if scale != 1:
        size = (max(width, round(w * scale)), max(height, round(h * scale)))
        image = cv2.resize(np.ascontiguousarray(image, np.float32), size,
                           interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    h, w = image.shape[:2]
    y0, x0 = (h - height) // 2, (w - width) // 2
    return np.clip(image[y0:y0 + height, x0:x0 + width], 0, 1).astype(np.float32)
