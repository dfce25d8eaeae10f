"""The checkpoint contract between `impasto train` and `impasto export`.

`load_fast_checkpoint(path)` returns the network in eval mode and a `meta` dict with at least
META_FIELDS (style, arch, style_image, steps, config_hash, loss_terms, wall_time_s); the model card
schema that meta feeds is `impasto.models.zoo.card`. `SafetyCheckpoint` keeps `last.ckpt` current.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import onnx
import pytorch_lightning as pl
import torch
from onnx import numpy_helper

from impasto.errors import ImpastoError
from impasto.export.onnx_export import read_metadata
from impasto.models.transformer import Architecture, MultiStyleTransformerNet, TransformerNet

META_KEY = "impasto"
# Fields every checkpoint's meta carries (what `impasto export` relies on).
META_FIELDS = ("style", "arch", "style_image", "steps", "config_hash", "loss_terms", "wall_time_s")


def load_fast_checkpoint(path: str | os.PathLike) -> tuple[TransformerNet | MultiStyleTransformerNet, dict]:
    """Read a checkpoint written by `impasto train`: (TransformerNet in eval mode, meta dict).
    A multi-style checkpoint (`impasto train-multi`) gives a MultiStyleTransformerNet and its
    meta names the styles in order (`styles`, `style_images`).

    meta has at least: style (name), arch (architecture name), arch_spec (its channels etc.),
    style_image (path as given in the config), steps, config_hash, loss_terms (final values,
    mean of the last steps), wall_time_s (training time, summed across resumes).
    """
    path = Path(path)
    if not path.is_file():
        raise ImpastoError(f"{path}: no such checkpoint file")
    if path.suffix == ".onnx":
        return _load_onnx(path)
    try:
        # Lightning checkpoints hold plain Python hyper-parameters; these are our own files.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ImpastoError(f"{path}: not a readable checkpoint ({exc})") from None
    meta = ckpt.get(META_KEY) if isinstance(ckpt, dict) else None
    if not meta:
        raise ImpastoError(f"{path}: not an impasto fast-style checkpoint (no '{META_KEY}' metadata); "
                           "train one with `impasto train --config configs/fast/<style>.yaml`")
    net = build_net(meta["arch"], meta.get("arch_spec"), len(meta["styles"]) if meta.get("styles") else None)
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state)
    net.eval()
    meta = dict(meta)
    meta["checkpoint"] = str(path)
    return net, meta


def _load_onnx(path: Path) -> tuple[TransformerNet | MultiStyleTransformerNet, dict]:
    """A network exported by `impasto export` (a bundled one, say), back as a torch network, so
    training can continue from it (`init_from: models/zoo/zoo8.onnx`). The exporter keeps every
    parameter as an ONNX initializer under its torch name; fp32 and fp16 files qualify, int8
    ones (quantised weights) do not."""
    try:
        model = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ImpastoError(f"{path}: not a readable ONNX file ({exc})") from None
    props = read_metadata(model)
    if "arch" not in props:
        raise ImpastoError(f"{path}: not an impasto network (no impasto.arch metadata); "
                           "only files written by `impasto export` can be trained further")
    if props.get("precision") == "int8":
        raise ImpastoError(f"{path}: an int8 network; start from its fp32 export instead")
    styles = [s for s in props.get("styles", "").split(",") if s]
    try:
        net = build_net(props["arch"], None, len(styles) or None)
    except Exception as exc:  # noqa: BLE001 - an architecture this version does not know
        raise ImpastoError(f"{path}: architecture {props['arch']!r} is not one this impasto builds ({exc})") from None
    weights = {t.name: t for t in model.graph.initializer}
    state = net.state_dict()
    missing = [k for k in state if k not in weights]
    if missing:
        raise ImpastoError(f"{path}: lacks {len(missing)} of the {props['arch']} network's tensors "
                           f"({', '.join(missing[:3])}...); was it exported by impasto?")
    loaded = {}
    for key, ref in state.items():
        arr = numpy_helper.to_array(weights[key]).astype(np.float32)
        if tuple(arr.shape) != tuple(ref.shape):
            raise ImpastoError(f"{path}: {key} has shape {arr.shape}, the {props['arch']} network {tuple(ref.shape)}")
        loaded[key] = torch.from_numpy(arr)
    net.load_state_dict(loaded)
    net.eval()
    meta = {"style": props.get("style", path.stem), "arch": props["arch"], "style_image": "",
            "steps": 0, "config_hash": props.get("config_hash", ""), "loss_terms": {},
            "wall_time_s": 0.0, "checkpoint": str(path)}
    if styles:
        meta["styles"] = styles
    return net, meta


def build_net(arch: str, spec: Optional[dict] = None,
              num_styles: Optional[int] = None) -> TransformerNet | MultiStyleTransformerNet:
    """The network a checkpoint was trained with: its stored spec wins over today's table, so a
    later change to a named architecture never breaks an old checkpoint. `num_styles`: a
    multi-style network with that many styles."""
    layout: str | Architecture = arch
    if spec:
        spec = dict(spec)
        spec["channels"] = tuple(spec["channels"])
        spec.pop("styles", None)
        layout = Architecture(**spec)
    net = MultiStyleTransformerNet(layout, num_styles) if num_styles else TransformerNet(layout)
    net.arch_name = arch
    return net


def config_hash(config: Any) -> str:
    """A short stable hash of a (JSON-able) training configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


class NonFiniteLoss(ImpastoError):
    """Training diverged: the loss is inf or nan, and so, after that step's update, are the weights."""


class FiniteLossGuard(pl.Callback):
    """Stops training at a non-finite loss before any checkpoint saves the ruined weights.

    It runs before the checkpoint callbacks (Lightning orders those last) and reads the loss back
    on every step that saves (every `save_every` steps and the last) and, between them, every step
    on a CPU, where the read is free, and every `gpu_every` steps on an accelerator, where it stalls
    the queue. A diverged run then fails at once with a clear message, and last.ckpt keeps the
    last finite weights to start again from. Under DDP every rank stops at the same step."""

    def __init__(self, save_every: int, last: str | os.PathLike = "checkpoints/last.ckpt", gpu_every: int = 20):
        self.save_every, self.last, self.gpu_every = save_every, Path(last), gpu_every
        self._seen: Optional[torch.Tensor] = None   # 1 once any loss since the last read was not finite

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        loss = outputs["loss"] if isinstance(outputs, dict) else outputs
        if loss is None:
            return
        bad = (~torch.isfinite(loss.detach())).any()
        self._seen = bad if self._seen is None else self._seen | bad
        step = trainer.global_step
        saving = step % self.save_every == 0 or (trainer.max_steps is not None and 0 <= trainer.max_steps <= step)
        if saving or loss.device.type == "cpu" or step % self.gpu_every == 0:
            seen, self._seen = bool(self._seen), None
            # Every rank reads at the same steps, and one rank's nan stops them all: alone, it
            # would leave the others waiting on it in the next all-reduce until that fails, and
            # they would then save the ruined weights (their gradients were averaged with its).
            if trainer.strategy.reduce_boolean_decision(seen, all=False):
                value = f"{float(loss):g}" if seen else "non-finite on another process"
                raise NonFiniteLoss(
                    f"the training loss became {value} by step {step}: the run diverged, and its weights "
                    f"with it. Nothing was saved after the last finite step, so {self.last}, if the run "
                    "wrote one, holds finite weights. Start a new stage from it with a lower learning rate "
                    f"(--model.init_from {self.last} --model.lr ...) or in fp32 "
                    "(--trainer.precision 32)")


class SafetyCheckpoint(pl.Callback):
    """Writes checkpoints/last.ckpt after the final step, and when training is interrupted
    (Ctrl-C or an error), so that `--resume last` always has something current to continue from.

    The final save happens at the end of the last batch (not in on_train_end, by which time
    Lightning has closed the epoch, so a resume from it would skip the rest of that epoch)."""

    def __init__(self, dirpath: str | os.PathLike):
        self.path = Path(dirpath) / "last.ckpt"
        self._training = False
        self._saved_step = -1

    def on_train_start(self, trainer, pl_module):
        self._training = True

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.max_steps is not None and 0 <= trainer.max_steps <= trainer.global_step:
            trainer.save_checkpoint(self.path)
            self._saved_step = trainer.global_step

    def on_train_end(self, trainer, pl_module):
        # Stopped early (max_time, early stopping): save now. Resuming from this one starts the
        # next epoch (Lightning has closed the current one), which is still a valid run.
        if self._training and trainer.global_step > self._saved_step and trainer.global_step > 0:
            trainer.save_checkpoint(self.path)
        self._training = False

    def on_exception(self, trainer, pl_module, exception):
        # a diverged run's weights are not finite: keep the last save, which was
        if self._training and trainer.global_step > 0 and not isinstance(exception, NonFiniteLoss):
            trainer.save_checkpoint(self.path)
            print(f"\nimpasto train: interrupted at step {trainer.global_step}; saved {self.path} "
                  "(continue with --resume last)")
