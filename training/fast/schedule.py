"""The learning rate's schedule: a half cosine over global steps, whose end is either given or
fixed by the time budget (`lr_decay: deadline`)."""

from __future__ import annotations

import math
import time
from typing import Optional, Sequence, Union

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Timer

from impasto.errors import ImpastoError

DEADLINE = "deadline"


def check_lr_decay(lr_decay: Optional[Union[Sequence[int], str]]) -> None:
    if lr_decay == DEADLINE:
        return
    if isinstance(lr_decay, str) or (lr_decay is not None and (
            len(lr_decay) != 2 or not 0 <= lr_decay[0] < lr_decay[1])):
        raise ImpastoError(f"lr_decay is [start, end] steps with 0 <= start < end, or \"{DEADLINE}\"; "
                           f"got {lr_decay!r}")


def lr_at(step: int, lr: float, lr_decay: Optional[Union[Sequence[int], str]]) -> float:
    """The learning rate at a global step: `lr`, then a half cosine from `lr` to 0 over lr_decay
    (held at `lr` while a deadline's end is not known yet)."""
    if not lr_decay or lr_decay == DEADLINE:
        return lr
    start, end = lr_decay
    done = min(max((step - start) / (end - start), 0.0), 1.0)
    return lr * 0.5 * (1.0 + math.cos(math.pi * done))


def deadline_end(step: int, seconds_per_step: float, seconds_left: float, margin: float = 0.9) -> int:
    """The step at which `seconds_left` (less a margin for validation and the last save) runs out."""
    return step + max(1, int(seconds_left * margin / seconds_per_step))


class DeadlineDecay(pl.Callback):
    """`lr_decay: deadline` anneals the learning rate to zero by the trainer's max_time, whatever the
    machine's pace: a GPU's budget in minutes, not in steps nobody could guess beforehand.

    After `warmup` steps (start-up, kernel selection) it times windows of at least `every_s` seconds
    and `min_steps` steps. After each window it sets lr_decay to [first step, the step at which the
    time runs out at that pace], and max_steps to that end, so the run stops there annealed. It
    plans again after every window: runs that share a GPU slow each other down as they start and
    speed up as they end. The last plan is saved with the hyperparameters and the checkpoint's meta."""

    def __init__(self, warmup: int = 20, every_s: float = 5.0, min_steps: int = 10):
        self.warmup, self.every_s, self.min_steps = warmup, every_s, min_steps
        self._first: Optional[int] = None
        self._window: Optional[tuple[int, float]] = None   # (step, time) the current window began at
        self._cap: Optional[int] = None                      # the configured max_steps, if any

    def on_train_start(self, trainer, pl_module):
        if pl_module.hparams.get("lr_decay") == DEADLINE and self._timer(trainer) is None:
            raise ImpastoError(f"lr_decay: {DEADLINE} anneals by the time budget: give trainer.max_time too")
        self._cap = trainer.max_steps if trainer.max_steps is not None and trainer.max_steps > 0 else None

    @staticmethod
    def _timer(trainer) -> Optional[Timer]:
        timer = next((c for c in trainer.callbacks if isinstance(c, Timer)), None)
        return timer if timer is not None and timer.time_remaining() is not None else None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self._first is None:
            if pl_module.hparams.get("lr_decay") != DEADLINE:
                return
            self._first = trainer.global_step
        step = trainer.global_step
        if self._window is None:
            if step - self._first >= self.warmup:
                self._window = (step, time.perf_counter())
            return
        began, began_at = self._window
        now = time.perf_counter()
        if step - began < self.min_steps or now - began_at < self.every_s:
            return
        pace = (now - began_at) / (step - began)
        self._window = (step, now)
        end = deadline_end(step, pace, self._timer(trainer).time_remaining())
        if self._cap is not None:
            end = min(end, self._cap)
        first_plan = pl_module.hparams.lr_decay == DEADLINE
        pl_module.hparams.lr_decay = [self._first, max(end, step + 1)]
        trainer.fit_loop.epoch_loop.max_steps = pl_module.hparams.lr_decay[1]
        if first_plan:
            print(f"lr_decay: {DEADLINE} -> {pl_module.hparams.lr_decay} ({pace * 1000:.1f} ms a step)", flush=True)
