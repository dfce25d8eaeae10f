"""A CSV logger whose metrics.csv survives `--resume`: rows are appended, never thrown away.

Lightning's CSVLogger deletes metrics.csv when its folder already has files, so a resumed run
lost every row from before the resume (and resuming a finished run lost the file). Here:

- a fresh run (no resume) starts a new file, as before;
- a resumed run keeps the rows of the steps before the checkpoint it resumes from and drops
  the rest (steps after the checkpoint are trained, and logged, again), so every step's row is
  in the file once, across any number of kills and resumes;
- each batch of logged rows is written at once (flush every step), so a killed run loses no
  row from before its last checkpoint.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Optional

import torch
from lightning_fabric.loggers.logger import rank_zero_experiment
from pytorch_lightning.loggers import CSVLogger
from pytorch_lightning.loggers.csv_logs import ExperimentWriter

from impasto.files import atomic_write


class _ResumingWriter(ExperimentWriter):
    def __init__(self, log_dir: str, resume_step: Optional[int]):
        self._resume_step = resume_step
        super().__init__(log_dir)

    def _check_log_dir_exists(self) -> None:
        path = Path(self.metrics_file_path)
        if not path.is_file():
            return
        if self._resume_step is None:  # a new run in an old folder: a new history
            path.unlink()
            return
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            keys = list(reader.fieldnames or [])
            rows = [r for r in reader if _step(r) is not None and _step(r) < self._resume_step]
        self.metrics_keys = sorted(keys)
        out = _csv_text(self.metrics_keys, rows)
        atomic_write(path, out)


def _step(row: dict) -> Optional[int]:
    try:
        return int(float(row.get("step", "")))
    except ValueError:
        return None


def _csv_text(keys: list[str], rows: list[dict]) -> str:
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=keys)
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


class ResumableCSVLogger(CSVLogger):
    """CSVLogger(save_dir, name, version) that appends across resumes (see module doc).
    `resume_step`: the global step of the checkpoint being resumed, None for a fresh run."""

    def __init__(self, *args, resume_step: Optional[int] = None, **kwargs):
        kwargs.setdefault("flush_logs_every_n_steps", 1)
        super().__init__(*args, **kwargs)
        self._resume_step = resume_step

    @property
    @rank_zero_experiment
    def experiment(self):
        if self._experiment is None:
            os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = _ResumingWriter(self.log_dir, self._resume_step)
        return self._experiment


def checkpoint_step(path: Optional[str]) -> Optional[int]:
    """The global step stored in a Lightning checkpoint (None when there is no such file)."""
    if not path or not Path(path).is_file():
        return None
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    return int(ckpt.get("global_step", 0))
