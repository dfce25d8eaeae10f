"""Image loading: every common kind of file comes in as upright RGB 0..1; bad files get a clear error."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from impasto import images
from impasto.errors import ImpastoError


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def test_real_photo_loads_as_rgb_float(data):
    arr = images.load(data / "content" / "tubingen.jpg", max_side=96)
    assert arr.dtype == np.float32 and arr.ndim == 3 and arr.shape[2] == 3
    assert max(arr.shape[:2]) == 96
    assert 0.0 <= arr.min() and arr.max() <= 1.0 and arr.std() > 0.05


def test_grayscale_jpeg_becomes_three_equal_channels(data):
    arr = images.load(data / "style" / "escher_sphere.jpg", max_side=64)
    assert arr.shape[2] == 3
    assert np.allclose(arr[..., 0], arr[..., 1]) and np.allclose(arr[..., 1], arr[..., 2])


def test_cmyk_is_converted(tmp_path):
    path = tmp_path / "cmyk.jpg"
    Image.new("CMYK", (20, 10), (0, 255, 255, 0)).save(path)  # pure red in CMYK
    arr = images.load(path)
    assert arr.shape == (10, 20, 3)
    assert arr[..., 0].mean() > 0.9 and arr[..., 1].mean() < 0.1


def test_alpha_is_composited_on_white(tmp_path):
    path = tmp_path / "alpha.png"
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[:, :4] = (255, 0, 0, 255)  # left: opaque red; right: fully transparent black
    Image.fromarray(rgba).save(path)
    arr = images.load(path)
    assert np.allclose(arr[:, :4], [1, 0, 0])
    assert np.allclose(arr[:, 4:], [1, 1, 1])


def test_palette_with_transparency(tmp_path):
    path = tmp_path / "pal.gif"
    img = Image.new("P", (6, 6), 0)
    img.putpalette([0, 0, 255] + [0, 0, 0] * 255)
    img.save(path, transparency=0)
    assert np.allclose(images.load(path), 1.0)  # the only colour is transparent -> white


def test_sixteen_bit_keeps_precision(tmp_path):
    path = tmp_path / "deep.png"
    ramp = np.linspace(0, 65535, 64 * 4).astype(np.uint16).reshape(4, 64)
    Image.fromarray(ramp).save(path)
    arr = images.load(path)
    assert arr.shape == (4, 64, 3)
    assert arr[..., 0].max() == pytest.approx(1.0, abs=1e-4)
    # more distinct levels than an 8-bit conversion could give
    assert len(np.unique(arr[..., 0])) > 200


def test_exif_rotation_is_honoured(tmp_path):
    path = tmp_path / "rotated.jpg"
    img = Image.new("RGB", (40, 20), "white")
    img.paste((255, 0, 0), (0, 0, 10, 20))  # red stripe at the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    img.save(path, exif=exif, quality=95)
    arr = images.load(path)
    assert arr.shape[:2] == (40, 20)           # now portrait
    assert arr[:10, :, 0].mean() > 0.9 and arr[:10, :, 1].mean() < 0.2  # the stripe is on top


def test_gif_first_frame(tmp_path):
    path = tmp_path / "anim.gif"
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=50, loop=0)
    arr = images.load(path)
    assert arr[..., 0].mean() > 0.9 and arr[..., 1].mean() < 0.1


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is not a picture")
    with pytest.raises(ImpastoError, match="not an image"):
        images.load(path)


def test_empty_and_missing(tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(ImpastoError, match="empty"):
        images.load(empty)
    with pytest.raises(ImpastoError, match="no such file"):
        images.load(tmp_path / "missing.png")
    with pytest.raises(ImpastoError, match="empty"):
        images.load(b"")


def test_truncated_jpeg(data):
    raw = (data / "content" / "tubingen.jpg").read_bytes()
    with pytest.raises(ImpastoError, match="truncated|damaged"):
        images.load(raw[: len(raw) // 2])


def _bomb_png(width: int, height: int) -> bytes:
    """A tiny PNG whose header declares a huge canvas (no pixel data worth decoding)."""
    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b"")


def test_decompression_bomb_is_refused_before_decoding():
    with pytest.raises(ImpastoError, match="too large|megapixels") as err:
        images.load(_bomb_png(50000, 50000))
    assert err.value.status == 413


def test_pixel_limit_is_configurable(data):
    with pytest.raises(ImpastoError, match="megapixels"):
        images.load(data / "content" / "tubingen.jpg", max_pixels=10_000)


def test_save_round_trip_by_extension(tmp_path):
    arr = np.random.default_rng(0).uniform(0, 1, (12, 16, 3)).astype(np.float32)
    for ext in (".png", ".jpg", ".webp", ".bmp", ".tiff"):
        out = images.save(arr, tmp_path / f"x{ext}")
        assert Image.open(out).format == images.SAVE_FORMATS[ext]
        back = images.load(out)
        assert back.shape == arr.shape
    assert np.abs(images.load(tmp_path / "x.png") - arr).max() <= 1 / 255 + 1e-6
    with pytest.raises(ImpastoError, match="extension"):
        images.save(arr, tmp_path / "x.txt")
    assert not list(tmp_path.glob("*.part"))  # atomic writes leave no temp files


def test_load_shrinks_in_8_bit_and_matches_the_float_path(tmp_path):
    """images.load with max_side decodes big images at reduced size; the result stays the same
    picture as a full-size float resize would give."""
    rng = np.random.default_rng(1)
    base = (rng.random((30, 40, 3)) * 255).astype(np.uint8)
    img = Image.fromarray(base).resize((1200, 900), Image.BICUBIC)
    for name, kw in (("p.png", {}), ("j.jpg", {"quality": 95})):
        img.save(tmp_path / name, **kw)
        small = images.load(tmp_path / name, max_side=100)
        full = images.resize(images.load(tmp_path / name), 100)
        assert small.shape == full.shape == (75, 100, 3)
        assert np.abs(small - full).mean() < 0.02, name
