"""A training pack: what fast-style training needs, small enough to travel with the code to a
GPU machine that has no internet (64 MiB in all).

    impasto pack ../shared packs/coco

    vgg16.safetensors  the loss network's convolutions up to the deepest loss layer (conv5_1 for
                       the Gatys layers relu1_1..relu5_1, conv4_3 for Johnson's relu4_3 alone),
                       fp16, arch and preprocessing in its metadata
    photos/            training photos, shorter side `--side` px (random 256 px crops at train time)
    holdout/           the held-out photos (the first `--holdout` of the source, sorted by name),
                       never trained on: validation and the quality bar
    styles/            every painting of the source, longest side `--style-side` px
    pack.json          what is inside, where it came from, and a content hash

The configs under configs/fast/ read the pack through `--pack`-relative paths (see
`impasto train-gpu`), so the same YAML trains on a laptop from ../shared and on a GPU from
the pack.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from PIL import Image, ImageOps

from impasto.errors import ImpastoError
from impasto.models.weights import load_vgg_weights, save_safetensors

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))


def _shrink(src: Path, dst: Path, *, shorter: int | None = None, longer: int | None = None) -> None:
    with Image.open(src) as img:
        img = ImageOps.exif_transpose(img).convert("RGB")
        w, h = img.size
        s = (shorter / min(w, h)) if shorter else (longer / max(w, h))
        if s < 1:
            img = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.LANCZOS)
        dst.parent.mkdir(parents=True, exist_ok=True)
        img.save(dst.with_suffix(".jpg"), quality=92)


def make_pack(shared: Path, out: Path, *, photos: int, holdout: int, side: int, style_side: int, last_conv: str,
              styles: list[str] | None = None) -> dict:
    """The pack; the defaults a user gets are `impasto pack`'s (impasto/commands/pack.py), stated once."""
    shared, out = Path(shared), Path(out)
    coco, style_dir = shared / "data" / "coco_sample", shared / "data" / "style"
    weights_file = shared / "weights" / "vgg16_hed_bsds500.weights.h5"
    for need in (coco, style_dir, weights_file):
        if not need.exists():
            raise ImpastoError(f"{need} not found: give the shared folder (with data/ and weights/)")
    files = image_files(coco)
    if len(files) <= holdout:
        raise ImpastoError(f"{coco}: {len(files)} photos, need more than holdout={holdout}")
    train = files[holdout:holdout + photos]
    for i, f in enumerate(files[:holdout] + train):
        _shrink(f, out / ("holdout" if i < holdout else "photos") / f.name, shorter=side)
    paintings = [f for f in image_files(style_dir) if styles is None or f.stem in styles]
    for f in paintings:
        _shrink(f, out / "styles" / f.name, longer=style_side)
    vgg = save_safetensors(load_vgg_weights(str(weights_file)), out / "vgg16.safetensors", last=last_conv)
    digest = hashlib.sha256()
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != "pack.json":
            digest.update(p.relative_to(out).as_posix().encode() + p.read_bytes())
    info = {"photos": len(train), "holdout": holdout, "side": side, "styles": [f.stem for f in paintings],
            "style_side": style_side, "vgg": {"file": vgg.name, "source": weights_file.name, "last": last_conv,
                                              "dtype": "float16"},
            "source": "coco_sample (COCO train2017) and style/ of the shared data", "sha256": digest.hexdigest()[:16],
            "bytes": sum(p.stat().st_size for p in out.rglob("*") if p.is_file())}
    (out / "pack.json").write_text(json.dumps(info, indent=2) + "\n")
    return info
