"""Load and save images safely: RGB float arrays in 0..1, upright, bounded in size.

numpy + Pillow only, so the server and `impasto stylize` can use it without torch.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
from PIL import Image, ImageFile, UnidentifiedImageError

from .errors import ImpastoError, shown
from .files import atomic_write, existing_file, write_through  # noqa: F401  (images.atomic_write: the one writer)

# Decode at most this many pixels. Checked from the header, before any pixel is decoded,
# so a small file that declares a huge canvas (a decompression bomb) costs nothing.
DEFAULT_MAX_PIXELS = 40_000_000

# The largest result a command writes unless told otherwise (`--max-output-megapixels`): 40 MP, as
# large as any photo the input limit admits; past it a typo such as `--size 100000` would need tens of GB.
DEFAULT_MAX_OUTPUT_PIXELS = 40_000_000

# Modes that Pillow can shrink in 8 bit (Image.reduce) before the float conversion.
_REDUCIBLE = ("L", "LA", "RGB", "RGBA", "RGBX")
_TRANSPOSE = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180,
              4: Image.Transpose.FLIP_TOP_BOTTOM, 5: Image.Transpose.TRANSPOSE,
              6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_90}

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
        existing_file(source, name, "an image file")
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


def scaled_size(w: int, h: int, max_side: int) -> tuple[int, int]:
    """(width, height) after scaling so that the longest side is `max_side` (aspect kept)."""
    scale = max_side / max(h, w)
    return max(1, round(w * scale)), max(1, round(h * scale))


def check_output_pixels(w: int, h: int, max_output_pixels: int | None, what: str = "--size") -> None:
    """Refuse a result of w x h past the limit, with a message saying how to raise it."""
    if max_output_pixels and w * h > max_output_pixels:
        raise ImpastoError(
            f"{what} gives a {w}x{h} result = {w * h / 1e6:.1f} megapixels, over the limit of "
            f"{max_output_pixels / 1e6:g}; lower {what} or raise --max-output-megapixels")


def _orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1 = upright); a damaged EXIF block counts as upright."""
    try:
        return int(img.getexif().get(0x0112, 1))
    except Exception:
        return 1


def _shrink_8bit(img: Image.Image, target: tuple[int, int]) -> Image.Image:
    """Shrink by a whole factor in 8 bit, keeping at least twice the target on each side (so
    the final Lanczos resize sees the same detail): a 6000x6000 upload asked at 64 px never
    becomes a 36-megapixel float array. JPEGs are decoded at reduced scale (draft) at once."""
    w, h = img.size
    factor = min(w // (2 * target[0]), h // (2 * target[1]))
    if factor < 2:
        return img
    if img.mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
    elif img.mode == "1":
        img = img.convert("L")
    if img.mode not in _REDUCIBLE:
        return img
    return img.reduce(factor)


def load(source: Source, max_side: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS,
         name: str | None = None, max_output_pixels: int | None = None) -> np.ndarray:
    """Read an image as float32 RGB (H, W, 3) in 0..1, EXIF-upright.

    `max_side` resizes (down or up) so that the longest side has that length; a big image is
    first shrunk in 8 bit (JPEG: decoded at reduced scale), so memory follows the result.
    Raises ImpastoError for anything that is not a readable image within `max_pixels`, or whose
    result would be over `max_output_pixels`.
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
    target = scaled_size(w, h, max_side) if max_side else (w, h)
    check_output_pixels(*target, max_output_pixels)
    try:
        img.seek(0)  # animated GIF/WebP: the first frame
        orientation = _orientation(img)
        if max_side and img.format == "JPEG" and img.mode in ("RGB", "L", "CMYK"):
            img.draft(img.mode, (2 * target[0], 2 * target[1]))
        img.load()
        if max_side:
            img = _shrink_8bit(img, target)
        if orientation in _TRANSPOSE:
            img = img.transpose(_TRANSPOSE[orientation])
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
    size = scaled_size(w, h, max_side)
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
    """Write an RGB float image; the format follows the extension. Written atomically
    (see atomic_write: umask honoured, fsync'd, symlinks written through)."""
    path = Path(path)
    data = encode(arr, format_for(path), quality)
    return atomic_write(path, data)


def same_file(a: Union[str, os.PathLike], b: Union[str, os.PathLike]) -> bool:
    """True when the two paths name one file (through symlinks, hard links, `./` and `..`)."""
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return os.path.realpath(a) == os.path.realpath(b)


def refuse_overwriting_inputs(output: Union[str, os.PathLike], inputs, allow: bool = False) -> None:
    """An output that would replace one of its inputs is a mistake unless `--overwrite-input`."""
    if allow or output is None:
        return
    for src in inputs:
        if src is not None and not isinstance(src, (bytes, bytearray)) and same_file(output, src):
            raise ImpastoError(f"{shown(output)}: the output would replace the input {shown(src)}; "
                               "choose another -o, or pass --overwrite-input")


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def list_images(folder: Union[str, os.PathLike]) -> list[Path]:
    """The image files directly inside a folder, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ImpastoError(f"{folder}: not a folder")
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
