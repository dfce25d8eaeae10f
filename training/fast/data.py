"""Photos for fast-style training: a LightningDataModule on the `datasets` library.

`source` is a local folder of images (read directly, sorted by path, e.g.
`../shared/data/coco_sample`) or a dataset on the Hugging Face hub with an image column
(`detection-datasets/coco` or any other; `streaming: true` reads it without downloading it all).

Each photo: EXIF-upright, converted to RGB (grayscale, CMYK, palette, alpha all work), shorter
side resized to `image_size`, a random `image_size` square crop, a random horizontal flip. A
photo that cannot be decoded is skipped (the next one takes its place) and counted in
`skipped`; it never stops an epoch.

The first `holdout` photos (folders: in sorted file order) are held out of training: they are
the validation set, the stylised grid, and the photos the quality bar is measured on.

Exact resume: the order of an epoch is a permutation seeded by (seed, epoch), every crop and flip
is seeded by (seed, epoch, position), and after a restart the loader skips the batches of the
current epoch that were already trained on. No RNG state needs saving; `trainer.global_step` and
`trainer.current_epoch` (restored by Lightning) say where to continue.
"""

from __future__ import annotations

import io
import random
from pathlib import Path
from typing import Optional

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image, ImageFile, ImageOps
from torch.utils.data import DataLoader, Dataset, Sampler

from impasto.errors import ImpastoError

ImageFile.LOAD_TRUNCATED_IMAGES = False
MAX_PIXELS = 40_000_000
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def decode(item) -> Image.Image:
    """A datasets image cell ({"bytes", "path"}, a PIL image, or a path) -> RGB PIL image."""
    if isinstance(item, Image.Image):
        img = item
    elif isinstance(item, dict):
        data, path = item.get("bytes"), item.get("path")
        img = Image.open(io.BytesIO(data)) if data else Image.open(path)
    else:
        img = Image.open(item)
    if img.size[0] * img.size[1] > MAX_PIXELS:
        raise ValueError(f"image is {img.size[0]}x{img.size[1]}, too large")
    img.load()
    img = ImageOps.exif_transpose(img)
    if img.mode != "RGB":
        img = img.convert("RGBA").convert("RGB") if img.mode in ("P", "LA", "PA") else img.convert("RGB")
    return img


def crop_tensor(img: Image.Image, size: int, rng: Optional[random.Random],
                resize: Optional[int] = None) -> torch.Tensor:
    """Shorter side -> resize (default: size), then a size x size crop (random with rng, else
    centred), random flip."""
    w, h = img.size
    s = max(resize or size, size) / min(w, h)
    nw, nh = max(size, round(w * s)), max(size, round(h * s))
    img = img.resize((nw, nh), Image.BILINEAR, reducing_gap=3.0)
    if rng is not None:
        x0, y0 = rng.randint(0, nw - size), rng.randint(0, nh - size)
    else:
        x0, y0 = (nw - size) // 2, (nh - size) // 2
    img = img.crop((x0, y0, x0 + size, y0 + size))
    if rng is not None and rng.random() < 0.5:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    arr = np.asarray(img, dtype=np.float32) / 255.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


class PhotoDataset(Dataset):
    """Index -> {"image": (3, S, S) float tensor}. Undecodable photos are replaced by the next
    decodable one and recorded in `skipped` (a set shared with the data module)."""

    def __init__(self, table, column: str, size: int, train: bool, seed: int = 0,
                 skipped: Optional[set] = None, resize: Optional[int] = None, cache: bool = False):
        self.table, self.column, self.size, self.train, self.seed = table, column, size, train, seed
        self.cache: Optional[dict] = {} if cache else None
        self.resize = resize
        self.skipped = skipped if skipped is not None else set()
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, key):
        # key: an index, or (index, epoch, position) from EpochSampler for seeded augmentation
        idx, epoch, pos = key if isinstance(key, tuple) else (key, 0, key)
        n = len(self.table)
        for attempt in range(n):
            j = (idx + attempt) % n
            try:
                img = self._decode(j)
            except Exception as exc:  # noqa: BLE001 - any broken photo is skipped, never fatal
                self.skipped.add(self._name(j, exc))
                continue
            rng = random.Random(hash((self.seed, epoch, pos, attempt))) if self.train else None
            return {"image": crop_tensor(img, self.size, rng, self.resize)}
        raise ImpastoError("no photo in the dataset could be decoded")

    def _decode(self, j: int) -> Image.Image:
        if self.cache is None:
            return decode(self.table[j][self.column])
        if j not in self.cache:
            self.cache[j] = decode(self.table[j][self.column])
        return self.cache[j]

    def _name(self, j: int, exc: Exception) -> str:
        try:
            cell = self.table.with_format(None)[j][self.column]
            return str(cell.get("path") if isinstance(cell, dict) else j)
        except Exception:  # noqa: BLE001
            return f"#{j}"


class EpochSampler(Sampler):
    """A permutation per epoch, seeded by (seed, epoch); this rank's share; skips the first
    `skip_batches` batches (a mid-epoch resume). Yields (index, epoch, position) keys."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int, skip_batches: int = 0,
                 rank: int = 0, world: int = 1):
        self.n, self.batch_size, self.seed, self.epoch = n, batch_size, seed, epoch
        self.skip_batches, self.rank, self.world = skip_batches, rank, world

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning at each epoch start; a new epoch starts from its first batch."""
        if epoch != self.epoch:
            self.epoch, self.skip_batches = epoch, 0

    def batches_per_epoch(self) -> int:
        return self.n // (self.batch_size * self.world)

    def __len__(self) -> int:
        return self.batches_per_epoch() * self.batch_size

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(self.n, generator=g).tolist()
        mine = order[self.rank::self.world][: len(self)]
        for pos in range(self.skip_batches * self.batch_size, len(mine)):
            yield (mine[pos], self.epoch, pos * self.world + self.rank)


class ResumableLoader(DataLoader):
    """A DataLoader Lightning treats as stateful: its position is derived from the trainer's
    restored step and epoch, so the state itself is only informative."""

    def state_dict(self) -> dict:
        s = self.sampler
        return {"epoch": s.epoch, "seed": s.seed}

    def load_state_dict(self, state: dict) -> None:
        pass

    def __len__(self) -> int:  # full epoch length even when resuming mid-epoch
        return self.sampler.batches_per_epoch()


class FolderTable:
    """The image files of a folder (recursively, sorted by path) as the small part of a
    `datasets.Dataset`'s interface the data module uses: rows of {"image": {"path", "bytes"}}.
    A folder needs no `imagefolder` build (no cache files, no scan of every file's format)."""

    def __init__(self, paths: list[str]):
        self.paths = paths

    @classmethod
    def of(cls, folder: Path) -> "FolderTable":
        files = sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))
        if not files:
            raise ImpastoError(f"{folder}: no files in this folder")
        images = [str(p) for p in files if p.suffix.lower() in IMAGE_SUFFIXES]
        if not images:
            raise ImpastoError(f"{folder}: no image files ({', '.join(sorted(IMAGE_SUFFIXES))}) in this folder")
        return cls(images)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key):
        if isinstance(key, str):  # a column
            return [{"path": p, "bytes": None} for p in self.paths]
        return {"image": {"path": self.paths[key], "bytes": None}}

    def select(self, indices) -> "FolderTable":
        return FolderTable([self.paths[i] for i in indices])

    def with_format(self, _format) -> "FolderTable":
        return self


class PhotoDataModule(pl.LightningDataModule):
    """Training photos from a folder or a hub dataset.

    Args:
        source: a local folder of images, or a hub dataset name (e.g. "detection-datasets/coco").
        image_column: the column holding the images (hub datasets; folders use "image").
        split: split to read from a hub dataset.
        streaming: stream a hub dataset instead of downloading it; `max_images` then bounds how
            many photos are read (streamed photos are buffered in memory).
        max_images: use at most this many photos (None: all of a local/downloaded dataset).
        holdout: the first this-many photos are held out for validation and evaluation.
        image_size: training crop size in pixels (square).
        resize_size: the photo's shorter side is resized to this before cropping (default:
            image_size, Johnson's whole-photo crops). Larger values train on photos at the pixel
            scale they will be stylised at, at the cost of a smaller field of view per crop.
        val_size: shorter side and centre-crop size of the held-out photos (default: resize_size).
        val_source: a folder of held-out photos; then `holdout` photos of `source` are not held
            out (a training pack keeps its held-out photos in a folder of their own).
        batch_size: photos per step (per process under DDP).
        num_workers: DataLoader worker processes (0 is right on a 2-core machine; they persist
            across epochs).
        cache_images: keep decoded photos in memory (a small set such as a training pack: the
            JPEG decoding is then paid once, not once per step).
        seed: seeds the data order and augmentation.
    """

    def __init__(self, source: str = "../shared/data/coco_sample", image_column: str = "image",
                 split: str = "train", streaming: bool = False, max_images: Optional[int] = None,
                 holdout: int = 8, image_size: int = 256, resize_size: Optional[int] = None,
                 val_size: Optional[int] = None, batch_size: int = 4, num_workers: int = 0, seed: int = 0,
                 val_source: Optional[str] = None, cache_images: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.source, self.image_column, self.split, self.streaming = source, image_column, split, streaming
        self.max_images, self.holdout, self.val_source = max_images, holdout, val_source
        self.cache_images = cache_images
        self.image_size, self.batch_size, self.num_workers, self.seed = image_size, batch_size, num_workers, seed
        self.resize_size = resize_size or image_size
        self.val_size = val_size or self.resize_size
        self.skipped: set = set()
        self.train_set: Optional[PhotoDataset] = None
        self.val_set: Optional[PhotoDataset] = None

    # -- loading ------------------------------------------------------------------------------
    def load_table(self):
        """The photos as a `datasets.Dataset` with undecoded image cells, in a stable order."""
        if Path(self.source).is_dir():
            table, column = FolderTable.of(Path(self.source)), "image"
        elif Path(self.source).exists():
            raise ImpastoError(f"{self.source}: give a folder of images or a hub dataset name")
        else:
            import datasets   # the hub alone needs it: a folder of photos trains without it
            from datasets import Image as ImageFeature

            column = self.image_column
            try:
                table = datasets.load_dataset(self.source, split=self.split, streaming=self.streaming)
            except Exception as exc:  # noqa: BLE001
                raise ImpastoError(f"cannot load dataset {self.source!r} (split {self.split!r}): {exc}") from None
            if self.streaming:
                if not self.max_images:
                    raise ImpastoError("streaming needs max_images (how many photos to read)")
                table = table.cast_column(column, ImageFeature(decode=False))
                rows = list(table.take(self.max_images))
                table = datasets.Dataset.from_list([{column: r[column]} for r in rows])
                table = table.cast_column(column, ImageFeature(decode=False))
            elif column not in table.column_names:
                raise ImpastoError(f"dataset {self.source!r} has no column {column!r}; "
                                   f"columns: {', '.join(table.column_names)}")
            else:
                table = table.select_columns([column]).cast_column(column, ImageFeature(decode=False))
        if self.max_images:
            table = table.select(range(min(self.max_images, len(table))))
        if len(table) <= (0 if self.val_source else self.holdout):
            raise ImpastoError(f"only {len(table)} photos: need more than holdout={self.holdout}")
        self.column = column
        return table

    def setup(self, stage: Optional[str] = None):
        if self.train_set is not None:
            return
        table = self.load_table()
        held = self.holdout
        if self.val_source:
            folder = Path(self.val_source)
            if not folder.is_dir():
                raise ImpastoError(f"val_source {folder}: not a folder of photos")
            val_table, held = FolderTable.of(folder), 0
        else:
            val_table = table.select(range(held))
        self.val_set = PhotoDataset(val_table, self.column, self.val_size,
                                    train=False, seed=self.seed, skipped=self.skipped)
        self.train_set = PhotoDataset(table.select(range(held, len(table))), self.column,
                                      self.image_size, train=True, seed=self.seed, skipped=self.skipped,
                                      resize=self.resize_size, cache=self.cache_images)
        if len(self.train_set) < self.batch_size:
            raise ImpastoError(f"{len(self.train_set)} training photos is fewer than batch_size={self.batch_size}")

    def holdout_paths(self) -> list[str]:
        self.setup()
        return [c.get("path") for c in self.val_set.table[self.column]]

    # -- loaders ------------------------------------------------------------------------------
    def train_dataloader(self):
        trainer = self.trainer
        world = trainer.world_size if trainer is not None else 1
        rank = trainer.global_rank if trainer is not None else 0
        sampler = EpochSampler(len(self.train_set), self.batch_size, self.seed, 0, 0, rank, world)
        if trainer is not None:
            per_epoch = sampler.batches_per_epoch()
            epoch = trainer.current_epoch
            done = trainer.global_step - epoch * per_epoch  # optimizer steps == batches here
            sampler.epoch = epoch
            sampler.skip_batches = max(0, min(done, per_epoch))
        return ResumableLoader(self.train_set, batch_size=self.batch_size, sampler=sampler, drop_last=True,
                               num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size, shuffle=False, num_workers=0)

    def state_dict(self) -> dict:
        return {"skipped": sorted(self.skipped)}

    def load_state_dict(self, state: dict) -> None:
        self.skipped.update(state.get("skipped", []))
