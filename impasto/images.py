"""Load and save images safely: RGB float arrays in 0..1, upright, bounded in size.

numpy + Pillow only, so the server and `impasto stylize` can use it without torch.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from .errors import ImpastoError

# Decode at most this many pixels. Checked from the header, before any pixel is decoded,
# so a small file that declares a huge canvas (a decompression bomb) costs nothing.
DEFAULT_MAX_PIXELS = 40_000_000

# A truncated file must be an error, never a silently grey-filled image.
ImageFile.LOAD_TRUNCATED_IMAGES = False

SAVE_FORMATS = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP",
    ".bmp": "BMP", ".tif": "TIFF", ".tiff": "TIFF", ".gif": "GIF",
}

Source = Union[str, os.PathLike, bytes, BinaryIO]


def _open(source: Source, name: str) -> Image.Image:
    if isinstance(source, (bytes, bytearray)):
        if not source:
            raise ImpastoError(f"{name}: the file is empty")
        source = io.BytesIO(source)
    elif isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if not path.exists():
            raise ImpastoError(f"{name}: no such file")
        if path.is_dir():
            raise ImpastoError(f"{name}: is a folder, not an image file")
        if path.stat().st_size == 0:
            raise ImpastoError(f"{name}: the file is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(source)
    except Image.DecompressionBombError as exc:
        raise ImpastoError(f"{name}: image is far too large to decode ({exc})", 413) from None
    except UnidentifiedImageError:
        raise ImpastoError(f"{name}: not an image (or a format Pillow cannot read)", 415) from None
    except OSError as exc:
        raise ImpastoError(f"{name}: cannot read image: {exc}") from None


def _to_rgb_array(img: Image.Image) -> np.ndarray:
    """Any Pillow mode -> float32 HxWx3 in 0..1; transparency is composited on white."""
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit int) grayscale: scale by the real range instead of clipping to 8 bit.
        a = np.asarray(img, dtype=np.float32)
        top = 65535.0 if mode.startswith("I;16") or a.max() > 255 else 255.0
        a = np.clip(a / top, 0, 1)
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "F":
        a = np.clip(np.asarray(img, dtype=np.float32), 0, 1)
        return np.repeat(a[..., None], 3, axis=2)
    if mode == "P" and "transparency" in img.info:
        img = img.convert("RGBA")
    if mode in ("LA", "PA"):
        img = img.convert("RGBA")
    if img.mode == "RGBA" or img.mode == "RGBa":
        white = Image.new("RGBA", img.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, img.convert("RGBA"))
    rgb = img.convert("RGB")
    return np.asarray(rgb, dtype=np.float32) / 255.0


def load(source: Source, max_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
         name: str | None = None) -> np.ndarray:
    """Read an image as float32 RGB (H, W, 3) in 0..1, EXIF-upright.

    `max_side` resizes (down or up) so that the longest side has that length.
    Raises ImpastoError for anything that is not a readable image within `max_pixels`.
    """
    name = name or (str(source) if isinstance(source, (str, os.PathLike)) else "image")
    img = _open(source, name)
    w, h = img.size
    if w < 1 or h < 1:
        raise ImpastoError(f"{name}: image has no pixels")
    if w * h > max_pixels:
        raise ImpastoError(
            f"{name}: image is {w}x{h} = {w * h / 1e6:.1f} megapixels, over the limit of "
            f"{max_pixels / 1e6:.1f}; shrink it first", 413)
    try:
        img.seek(0)  # animated GIF/WebP: the first frame
        img.load()
        img = ImageOps.exif_transpose(img)
        arr = _to_rgb_array(img)
    except ImpastoError:
        raise
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImpastoError(f"{name}: damaged or truncated image ({exc})") from None
    if max_side:
        arr = resize(arr, max_side)
    return arr


def resize(arr: np.ndarray, max_side: int) -> np.ndarray:
    """Scale so that the longest side is `max_side` (Lanczos; aspect ratio kept)."""
    h, w = arr.shape[:2]
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if size == (w, h):
        return arr
    return resize_to(arr, size)


def resize_to(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to exactly (width, height), per channel in float so that no precision is lost."""
    chans = [Image.fromarray(arr[..., c].astype(np.float32)).resize(size, Image.LANCZOS)
             for c in range(arr.shape[2])]
    return np.clip(np.stack([np.asarray(c) for c in chans], axis=2), 0, 1)


def to_uint8(arr: np.ndarray) -> np.ndarray:
    return (np.clip(arr, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def encode(arr: np.ndarray, fmt: str = "PNG", quality: int = 95) -> bytes:
    """Encode an RGB float image to bytes in a Pillow format name (PNG, JPEG, WEBP, ...)."""
    buf = io.BytesIO()
    img = Image.fromarray(to_uint8(arr))
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def format_for(path: Union[str, os.PathLike]) -> str:
    ext = Path(path).suffix.lower()
    if ext not in SAVE_FORMATS:
        raise ImpastoError(
            f"{path}: unknown output extension {ext or '(none)'}; use one of "
            + ", ".join(sorted(SAVE_FORMATS)))
    return SAVE_FORMATS[ext]


def save(arr: np.ndarray, path: Union[str, os.PathLike], quality: int = 95) -> Path:
    """Write an RGB float image; the format follows the extension. Written atomically."""
    path = Path(path)
    data = encode(arr, format_for(path), quality)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def list_images(folder: Union[str, os.PathLike]) -> list[Path]:
    """The image files directly inside a folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImpastoError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
