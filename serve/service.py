"""The work behind the HTTP routes, as plain functions a test (or another front end) can call.

`Styles` loads each model once and shares it; `stylize_upload` checks an uploaded file against the
server's limits (from its header, before decoding a single pixel), stylises it and encodes the
result. The HTTP layer (serve/app.py) only validates parameters, queues, and maps errors.
"""

from __future__ import annotations

import contextlib
import io
import os
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from impasto import images
from impasto.errors import ImpastoError, shown

from . import blend as blending
from . import zoo
from .runtime import Engine, load_engine
from .stylize import Options, check_dimensions, stylize_array

OUTPUT_FORMATS = {
    "jpeg": ("JPEG", "image/jpeg", "jpg"),
    "jpg": ("JPEG", "image/jpeg", "jpg"),
    "png": ("PNG", "image/png", "png"),
    "webp": ("WEBP", "image/webp", "webp"),
}


@dataclass
class Limits:
    max_body_bytes: int = 20 * 1024 * 1024       # the whole request
    max_input_pixels: int = 40_000_000           # declared canvas of the upload
    max_size: int = 2048                         # longest side of the result
    default_size: int = 1024
    # MPO is how Pillow names a JPEG with extra preview frames (many phone cameras): its first
    # frame is the photo.
    input_formats: tuple = ("JPEG", "MPO", "PNG", "WEBP", "GIF", "BMP")
    # 8-bit RGB(A), grayscale and palette images only: CMYK (no reliable colour conversion without
    # its ICC profile), 16-bit and float images are refused with a message saying what to send.
    input_modes: tuple = ("RGB", "RGBA", "L", "LA", "P", "PA", "1", "RGBX")
    tile: int = 1024
    overlap: int = 128


@dataclass
class Result:
    data: bytes
    media_type: str
    extension: str
    width: int
    height: int
    inference_ms: float
    total_ms: float
    style: str
    backend: str
    blend: str | None = None     # the mix painted ("candy:0.70,udnie:0.30", or "mask:candy,udnie")


class Styles:
    """The style models in one folder, each loaded once (lazily or up front) and shared."""

    def __init__(self, folder: str | os.PathLike | None = None, backend: str = "auto",
                 threads: int | None = None):
        self.folder = zoo.model_dir(folder)
        self.backend = backend
        self.threads = threads
        self._engines: dict[str, Engine] = {}
        self._lock = threading.Lock()

    def names(self) -> list[str]:
        return [s["name"] for s in zoo.list_styles(self.folder)]

    def list(self) -> list[dict]:
        return zoo.list_styles(self.folder)

    def default(self) -> str:
        return zoo.default_style(self.folder)

    def engine(self, name: str, spatial: bool = False) -> Engine:
        """The shared engine of a style; `spatial`: a multi-style model's per-pixel variant."""
        path = zoo.resolve_style(name, self.folder, allow_paths=False)
        key = f"{name}{zoo.SPATIAL_SUFFIX}" if spatial else name
        with self._lock:
            eng = self._engines.get(key)
            if eng is None:
                eng = load_engine(zoo.spatial_model(path) if spatial else path, self.backend, self.threads)
                self._engines[key] = eng
            return eng

    def load_all(self) -> list[str]:
        names = self.names()
        for n in names:
            self.engine(n)
        return names

    @property
    def loaded(self) -> list[str]:
        return sorted(self._engines)


def inspect_upload(data: bytes, limits: Limits) -> tuple[int, int, str, str]:
    """(width, height, format, mode) from the file's header; refuses what the server won't decode."""
    if not data:
        raise ImpastoError("the uploaded file is empty", 400)
    if len(data) > limits.max_body_bytes:
        raise ImpastoError(f"the upload is {len(data)} bytes, over the limit of {limits.max_body_bytes}", 413)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImpastoError("the image declares a canvas far too large to decode", 413) from None
    except Exception:
        raise ImpastoError("the upload is not an image (send a JPEG, PNG or WebP file)", 415) from None
    w, h = img.size
    fmt, mode = img.format or "?", img.mode
    if fmt not in limits.input_formats:
        raise ImpastoError(f"image format {fmt} is not accepted; send one of "
                           + ", ".join(limits.input_formats), 415)
    if fmt != "MPO" and (getattr(img, "is_animated", False) or getattr(img, "n_frames", 1) > 1):
        raise ImpastoError("animated images are not accepted; send a single frame (JPEG or PNG)", 415)
    if mode not in limits.input_modes:
        what = {"CMYK": "CMYK", "I;16": "16-bit", "I;16B": "16-bit", "I;16L": "16-bit", "I": "32-bit integer",
                "F": "floating-point"}.get(mode, mode)
        raise ImpastoError(f"{what} images are not accepted; convert to 8-bit RGB (sRGB) first", 415)
    if w * h > limits.max_input_pixels:
        raise ImpastoError(f"the image is {w}x{h} = {w * h / 1e6:.0f} megapixels, over the limit of "
                           f"{limits.max_input_pixels / 1e6:.0f}", 413)
    check_dimensions(w, h)
    return w, h, fmt, mode


def parse_output_format(fmt: str | None) -> tuple[str, str, str]:
    key = (fmt or "jpeg").lower().strip()
    if key not in OUTPUT_FORMATS:
        raise ImpastoError(f"unknown output format {shown(fmt)}; choose png, jpeg or webp", 422)
    return OUTPUT_FORMATS[key]


def stylize_upload(data: bytes, styles: Styles, *, style: str | None = None, size: int | None = None,
                   strength: float = 1.0, preserve_color: bool = False, out_format: str = "jpeg",
                   limits: Limits | None = None, budget=None, blend: str | None = None,
                   mask: bytes | None = None) -> Result:
    """Decode an uploaded image, stylise it with a shared engine, encode the result.

    `blend` ("candy:0.7,udnie:0.3") mixes a multi-style model's styles; with `mask` (an image
    of the photo's proportions) it names the two styles the mask picks between per pixel.
    Without `style`, a blend goes to the multi-style model that holds its styles.

    The image is shrunk in 8 bit while it is decoded (images.load), so memory follows the result
    size, not the upload's canvas; `budget` (guard.PixelBudget) bounds the canvases being decoded
    across requests at once (503 past it)."""
    limits = limits or Limits()
    t0 = time.perf_counter()
    pil_fmt, media, ext = parse_output_format(out_format)
    size = limits.default_size if size is None else int(size)
    if not (16 <= size <= limits.max_size):
        raise ImpastoError(f"size must be between 16 and {limits.max_size} px, not {size}", 422)
    options = Options(strength=float(strength), preserve_color=bool(preserve_color),
                      tile=limits.tile, overlap=limits.overlap).check()
    if mask is not None and not blend:
        raise ImpastoError("a style mask needs blend=FIRST,SECOND: the two styles it picks between", 422)
    if style:
        name = zoo.check_style_name(style)
    elif blend:
        name = zoo.model_with_styles(blending.blend_names(blend), styles.folder)
    else:
        name = styles.default()
    engine = styles.engine(name, spatial=mask is not None)
    weights, pair = None, None
    if mask is not None:
        pair = blending.pair_for_mask(blend, engine.styles)
    elif blend:
        weights = blending.parse_blend(blend, engine.styles)
    w, h, _, _ = inspect_upload(data, limits)
    with budget.take(w * h) if budget is not None else contextlib.nullcontext():
        arr = images.load(data, max_side=min(size, max(w, h)), max_pixels=limits.max_input_pixels,
                          name="upload")
    check_dimensions(arr.shape[1], arr.shape[0])
    if pair is not None:
        mw, mh, _, _ = inspect_upload(mask, limits)
        with budget.take(mw * mh) if budget is not None else contextlib.nullcontext():
            grey = blending.load_mask(mask, arr.shape[1], arr.shape[0])
        weights = blending.mask_weights(grey, *pair, len(engine.styles))
    t1 = time.perf_counter()
    out = stylize_array(engine, arr, options, style_weights=weights)
    t2 = time.perf_counter()
    body = images.encode(out, pil_fmt, quality=92)
    painted = None
    if pair is not None:
        painted = f"mask:{engine.styles[pair[0]]},{engine.styles[pair[1]]}"
    elif weights is not None:
        painted = ",".join(f"{n}:{v:.2f}" for n, v in zip(engine.styles, weights) if v > 0)
    return Result(body, media, ext, out.shape[1], out.shape[0], (t2 - t1) * 1000,
                  (time.perf_counter() - t0) * 1000, name, engine.describe(), painted)


def style_info(entry: dict) -> dict:
    """What /styles shows about one style: its name, card (without local paths), preview URL, and
    for a multi-style model the styles inside it (what `blend` names)."""
    card = {k: v for k, v in entry["card"].items() if not isinstance(v, str) or not os.path.isabs(v)}
    return {"name": entry["name"], "preview": f"/styles/{entry['name']}/preview" if entry["preview"] else None,
            "card": card, "styles": entry.get("styles", [])}


def preview_path(styles: Styles, name: str) -> Path:
    zoo.check_style_name(name)
    for entry in styles.list():
        if entry["name"] == name and entry["preview"]:
            return entry["preview"]
    raise ImpastoError(f"no preview for style {shown(name)}", 404)


__all__ = ["Limits", "Result", "Styles", "inspect_upload", "stylize_upload", "style_info", "preview_path",
           "OUTPUT_FORMATS"]
