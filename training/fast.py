"""Fast style networks (Johnson et al. 2016): a LightningModule that trains a TransformerNet
against the shared perceptual losses, and the checkpoint contract the export step relies on.

The objective is the iterative path's own `PerceptualLoss` (the teacher): content on relu2_2,
Gram style on relu1_2/relu2_2/relu3_3/relu4_3, total variation, optional histogram loss. The
style Gram targets are computed once (`prepare_loss`), never per step. The frozen VGG is kept
out of the module's state dict, so checkpoints hold only the small transformer.

Checkpoint contract (for `impasto export`): `load_fast_checkpoint(path)` returns the network in
eval mode and a `meta` dict with at least style, arch, style_image, steps, config_hash,
loss_terms, wall_time_s. `write_model_card(meta, path)` merges fields into a model card JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional, Sequence

import torch
import pytorch_lightning as pl

from impasto.errors import ImpastoError
from impasto.models.losses import (JOHNSON_CONTENT, JOHNSON_STYLE, ContentLoss, HistogramLoss,
                                   PerceptualLoss, StyleLoss, TVLoss)
from impasto.models.transformer import ARCHITECTURES, Architecture, TransformerNet

META_KEY = "impasto"
# Fields every checkpoint's meta carries (the export engineer's contract).
META_FIELDS = ("style", "arch", "style_image", "steps", "config_hash", "loss_terms", "wall_time_s")


# --------------------------------------------------------------------------- checkpoint contract

def load_fast_checkpoint(path: str | os.PathLike) -> tuple[TransformerNet, dict]:
    """Read a checkpoint written by `impasto train`: (TransformerNet in eval mode, meta dict).

    meta has at least: style (name), arch (architecture name), arch_spec (its channels etc.),
    style_image (path as given in the config), steps, config_hash, loss_terms (final values,
    mean of the last steps), wall_time_s (training time, summed across resumes).
    """
    path = Path(path)
    if not path.is_file():
        raise ImpastoError(f"{path}: no such checkpoint file")
    try:
        # Lightning checkpoints hold plain Python hyper-parameters; these are our own files.
        ckpt = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is the user's to fix
        raise ImpastoError(f"{path}: not a readable checkpoint ({exc})") from None
    meta = ckpt.get(META_KEY) if isinstance(ckpt, dict) else None
    if not meta:
        raise ImpastoError(f"{path}: not an impasto fast-style checkpoint (no '{META_KEY}' metadata); "
                           "train one with `impasto train --config configs/fast/<style>.yaml`")
    net = _build_net(meta["arch"], meta.get("arch_spec"))
    state = {k[len("net."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("net.")}
    net.load_state_dict(state)
    net.eval()
    meta = dict(meta)
    meta["checkpoint"] = str(path)
    return net, meta


def _build_net(arch: str, spec: Optional[dict] = None) -> TransformerNet:
    """The network a checkpoint was trained with: its stored spec wins over today's table, so a
    later change to a named architecture never breaks an old checkpoint."""
    if spec:
        spec = dict(spec)
        spec["channels"] = tuple(spec["channels"])
        net = TransformerNet(Architecture(**spec))
        net.arch_name = arch
        return net
    return TransformerNet(arch)


def write_model_card(meta: dict, path: str | os.PathLike) -> Path:
    """Merge `meta` into the model card JSON at `path` (created if missing), atomically.

    Keys already in the card that `meta` does not mention are kept, so training and export can
    each add their own fields (export adds the onnx file, preview, quality numbers).
    """
    path = Path(path)
    card: dict[str, Any] = {}
    if path.exists():
        try:
            card = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise ImpastoError(f"{path}: model card is not valid JSON ({exc}); fix or delete it") from None
    for key, value in meta.items():
        if isinstance(value, dict) and isinstance(card.get(key), dict):
            card[key] = {**card[key], **value}
        else:
            card[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(card, f, indent=2, sort_keys=False, default=_json_default)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def card_from_meta(meta: dict) -> dict:
    """The training half of a model card: what a person wants to know about a bundled style."""
    keys = ("style", "arch", "arch_spec", "parameters", "style_image", "steps", "images_seen", "device", "image_size", "batch_size",
            "wall_time_s", "loss_terms", "val_loss_terms", "loss_weights", "vgg", "config_hash", "config")
    card = {k: meta[k] for k in keys if k in meta}
    if "style_image" in card:
        card["style_image"] = Path(card["style_image"]).name
    if card.get("vgg"):   # a file name, never a machine's absolute path
        card["vgg"] = Path(str(card["vgg"])).name
    if meta.get("checkpoint") and not Path(meta["checkpoint"]).is_absolute():
        card["training_checkpoint"] = meta["checkpoint"]
    return card


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform
    return f"{device.type} ({platform.processor() or platform.machine()})"


def _json_default(o):
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.item() if o.numel() == 1 else o.tolist()
    if isinstance(o, tuple):
        return list(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def config_hash(config: Any) -> str:
    """A short stable hash of a (JSON-able) training configuration."""
    blob = json.dumps(config, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


# --------------------------------------------------------------------------- the LightningModule

def build_perceptual_loss(vgg_weights: Optional[str], content_weight: float, style_weight: float,
                          tv_weight: float, histogram_weight: float = 0.0,
                          content_layers: Sequence[str] = JOHNSON_CONTENT,
                          style_layers: Sequence[str] = JOHNSON_STYLE,
                          style_layer_weights: Optional[Sequence[float]] = None,
                          histogram_layers: Sequence[str] = ("relu1_2", "relu4_3"),
                          style_relative: bool = False) -> PerceptualLoss:
    from impasto.models.weights import load_vgg_weights
    weights = load_vgg_weights(vgg_weights)
    return PerceptualLoss(
        weights,
        content=ContentLoss(content_layers, weight=content_weight),
        style=StyleLoss(style_layers, weight=style_weight, layer_weights=style_layer_weights, gram_norm="chw",
                        relative=style_relative),
        tv=TVLoss(tv_weight) if tv_weight > 0 else None,
        histogram=HistogramLoss(histogram_layers, weight=histogram_weight) if histogram_weight > 0 else None)


def load_style_image(path: str, size: Optional[int]) -> torch.Tensor:
    from impasto import images
    from impasto.models.tensors import to_tensor
    return to_tensor(images.load(path, max_side=size))


class FastStyleModule(pl.LightningModule):
    """Train one feed-forward network for one style image.

    Args:
        style_image: the painting (path, relative to where you run `impasto train`).
        style_name: name of the style (model card, zoo file name); default: the image's stem.
        arch: transformer architecture: "slim" (real-time CPU default) or "johnson" (as published).
        style_size: longest side the style image is resized to before its Gram targets are taken
            (match it to the training crop size so brush strokes come out at the scale you see).
        content_weight, style_weight, tv_weight, histogram_weight: loss weights. The defaults were
            chosen by a sweep with the HED VGG16 weights (see docs/training.md).
        content_layers, style_layers, style_layer_weights: VGG layers (Johnson's by default).
        vgg_weights: VGG weight source (path or "torchvision"); default: $IMPASTO_VGG_WEIGHTS.
        lr: Adam learning rate.
        channels_last: run the transformer and VGG in channels-last memory format (faster on CPU).
        bf16_gram: under bf16-mixed precision, multiply the style Grams in bf16 too (AVX-512 BF16 units; about
            0.4% rounding per entry, far below a step's noise; bench/bench_training.py measures it).
        grid_size: how many held-out photos go into the stylised validation grid.
        init_from: start from this network (a checkpoint of the same architecture, e.g. the
            shared base network that reproduces photos: `configs/fast/base.yaml`) instead of a
            random one. From-scratch networks under a high style weight lose the photo.
        style_ramp_steps: the style weight rises linearly from 0 over this many steps, so the
            network paints on top of the content it already keeps instead of collapsing.
        pixel_weight: weight of an RGB mean-squared error to the photo (the base network's
            objective; 0 for styles).
        style_relative: each style layer's error relative to its target Gram (see StyleLoss);
            without it the HED VGG's relu1_2 outweighs the deeper layers 1000:1.
    """

    def __init__(self, style_image: Optional[str] = None, style_name: Optional[str] = None, arch: str = "slim",
                 style_size: Optional[int] = 256, content_weight: float = 1.0, style_weight: float = 1.5,
                 tv_weight: float = 0.0, histogram_weight: float = 0.0,
                 content_layers: Sequence[str] = JOHNSON_CONTENT, style_layers: Sequence[str] = JOHNSON_STYLE,
                 style_layer_weights: Optional[Sequence[float]] = None, vgg_weights: Optional[str] = None,
                 lr: float = 1e-3, channels_last: bool = True, bf16_gram: bool = True, grid_size: int = 4,
                 init_from: Optional[str] = None, style_ramp_steps: int = 0, pixel_weight: float = 0.0,
                 style_relative: bool = False):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ImpastoError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
        if style_image is None and style_weight > 0:
            raise ImpastoError("style_image is needed when style_weight > 0")
        self.save_hyperparameters()
        self.style_name = style_name or (Path(style_image).stem if style_image else "base")
        self.net = TransformerNet(arch)
        if init_from:
            start, _ = load_fast_checkpoint(init_from)
            if start.spec != self.net.spec:
                raise ImpastoError(f"init_from {init_from}: a {start.arch_name} network, not {arch}")
            self.net.load_state_dict(start.state_dict())
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        # Not a registered submodule: the frozen VGG stays out of checkpoints (moved by hand).
        object.__setattr__(self, "loss_fn", None)
        self.config_hash: Optional[str] = None   # set by the CLI from the full config
        self.config: Optional[dict] = None
        self._recent: deque = deque(maxlen=50)   # last steps' loss terms, for "final" values
        self._val_terms: dict[str, float] = {}
        self._wall_offset = 0.0
        self._fit_started: Optional[float] = None
        self._step_started: Optional[float] = None
        self._grid: list[torch.Tensor] = []

    # -- the objective ------------------------------------------------------------------------
    def prepare_loss(self, device: Optional[torch.device] = None) -> PerceptualLoss:
        """Build the VGG objective and compute the style targets (once per style and size)."""
        hp = self.hparams
        device = device or self.device
        if self.loss_fn is None:
            loss = build_perceptual_loss(hp.vgg_weights, hp.content_weight, hp.style_weight, hp.tv_weight,
                                         hp.histogram_weight, hp.content_layers, hp.style_layers,
                                         hp.style_layer_weights, style_relative=hp.get("style_relative", False))
            if hp.channels_last:
                loss = loss.to(memory_format=torch.channels_last)
            loss.style.bf16_gram = hp.get("bf16_gram", True)   # checkpoints from before the option: on
            object.__setattr__(self, "loss_fn", loss)
        loss = self.loss_fn.to(device)
        if hp.style_image:
            style = load_style_image(hp.style_image, hp.style_size).to(device)
            with torch.autocast(device.type, enabled=False):
                loss.set_targets(styles=[self._fmt(style)])
        return loss

    def style_ramp(self) -> float:
        """The share of the style weight in force at this step (1 after the ramp)."""
        n = self.hparams.get("style_ramp_steps", 0)
        return 1.0 if not n or not self.training else min(1.0, (self.global_step + 1) / n)

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self._fmt(x))

    @torch.no_grad()
    def content_targets(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """The photo's content features, from a VGG pass that stops at the deepest content
        layer (relu2_2: a third of the FLOPs of the full pass to relu4_3)."""
        vgg, want = self.loss_fn.vgg, set(self.loss_fn.content.layers)
        h = vgg.preprocess(x).contiguous(memory_format=torch.channels_last)
        out = {}
        for name, module in vgg.body.named_children():
            h = module(h)
            if name in want:
                out[name] = h
                if len(out) == len(want):
                    break
        return out

    def compute_loss(self, x: torch.Tensor):
        """(total, terms, stylised batch): the shared PerceptualLoss terms, as its forward
        computes them, with the content targets from the truncated pass."""
        lf = self.loss_fn
        y = self(x)
        feats = lf.vgg(y)
        terms: dict[str, torch.Tensor] = {"content": lf.content(feats, self.content_targets(self._fmt(x)))}
        if self.hparams.style_weight > 0:
            terms["style"] = lf.style(feats) * self.style_ramp()
        if self.hparams.get("pixel_weight", 0.0) > 0:
            terms["pixel"] = self.hparams.pixel_weight * torch.nn.functional.mse_loss(y.float(), x.float())
        if lf.histogram is not None:
            terms["histogram"] = lf.histogram(feats)
        if lf.tv is not None:
            terms["tv"] = lf.tv(y)
        return sum(terms.values()), terms, y

    # -- Lightning hooks ----------------------------------------------------------------------
    def on_fit_start(self):
        self.prepare_loss(self.device)
        self._fit_started = time.perf_counter()

    def on_validation_start(self):
        if self.loss_fn is None:  # trainer.validate() without fit
            self.prepare_loss(self.device)

    def configure_optimizers(self):
        return torch.optim.Adam(self.net.parameters(), lr=self.hparams.lr)

    def on_train_batch_start(self, batch, batch_idx):
        self._step_started = time.perf_counter()

    def training_step(self, batch, batch_idx):
        x = batch["image"]
        total, terms, _ = self.compute_loss(x)
        # Detached tensors, read back only when a checkpoint or the card needs them: a float()
        # here would make the GPU wait for every step.
        self._recent.append({k: v.detach() for k, v in terms.items()})
        self.log("train/loss", total, prog_bar=True)
        for k, v in terms.items():
            self.log(f"train/{k}", v.detach(), prog_bar=True)
        return total

    def on_train_batch_end(self, outputs, batch, batch_idx):
        if self._step_started is not None:
            dt = time.perf_counter() - self._step_started
            n = batch["image"].shape[0]
            self.log("perf/images_per_s", n / dt, prog_bar=True)
            self.log("perf/step_s", dt)
        dm = getattr(self.trainer, "datamodule", None)
        if dm is not None and hasattr(dm, "skipped"):
            self.log("data/skipped_images", float(len(dm.skipped)))

    def validation_step(self, batch, batch_idx):
        x = batch["image"]
        total, terms, y = self.compute_loss(x)
        self.log("val/loss", total, prog_bar=True, batch_size=x.shape[0])
        for k, v in terms.items():
            self.log(f"val/{k}", v, batch_size=x.shape[0])
        have = sum(t.shape[0] for t in self._grid)
        if have < self.hparams.grid_size * 2:
            k = min(self.hparams.grid_size - have // 2, x.shape[0])
            self._grid += [x[:k].float().cpu(), y[:k].float().cpu()]
        return total

    def on_validation_epoch_start(self):
        self._grid = []

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking is False:
            self._val_terms = {k[len("val/"):]: float(v) for k, v in self.trainer.callback_metrics.items()
                               if k.startswith("val/") and k != "val/loss"}
        if not self._grid or not self.trainer.is_global_zero:
            return
        import torchvision
        photos = torch.cat(self._grid[0::2])
        styled = torch.cat(self._grid[1::2])
        grid = torchvision.utils.make_grid(torch.cat([photos, styled]).clamp(0, 1), nrow=photos.shape[0], padding=2)
        for logger in self.loggers:
            exp = getattr(logger, "experiment", None)
            if hasattr(exp, "add_image"):
                exp.add_image("val/stylised", grid, self.global_step)
        out_dir = Path(self.trainer.default_root_dir) / "samples"
        from impasto import images
        images.save(grid.permute(1, 2, 0).numpy(), out_dir / f"step_{self.global_step:06d}.png")
        self._grid = []

    # -- checkpoints --------------------------------------------------------------------------
    def wall_time_s(self) -> float:
        running = time.perf_counter() - self._fit_started if self._fit_started is not None else 0.0
        return self._wall_offset + running

    def final_loss_terms(self) -> dict[str, float]:
        if not self._recent:
            return {}
        keys = self._recent[-1].keys()
        terms = {k: sum(float(r[k]) for r in self._recent) / len(self._recent) for k in keys}
        terms["total"] = sum(terms.values())
        return terms

    def meta(self) -> dict:
        hp = self.hparams
        from impasto.models.weights import load_vgg_weights  # noqa: F401 (cheap; documents the source)
        cfg = self.config if self.config is not None else dict(hp)
        meta = {
            "style": self.style_name,
            "arch": hp.arch,
            "arch_spec": asdict(self.net.spec),
            "parameters": sum(p.numel() for p in self.net.parameters()),
            "style_image": str(hp.style_image),
            "style_size": hp.style_size,
            "steps": int(self.global_step),
            "config_hash": self.config_hash or config_hash(cfg),
            "config": cfg,
            "loss_terms": self.final_loss_terms(),
            "val_loss_terms": dict(self._val_terms),
            "loss_weights": {"content": hp.content_weight, "style": hp.style_weight, "tv": hp.tv_weight,
                             "histogram": hp.histogram_weight},
            "device": _device_name(self.device),
            "vgg": self.loss_fn.weights_source.source if self.loss_fn is not None else hp.vgg_weights,
            "wall_time_s": round(self.wall_time_s(), 1),
            "image_size": getattr(getattr(self.trainer, "datamodule", None), "image_size", None)
            if self._trainer is not None else None,
            "batch_size": getattr(getattr(self.trainer, "datamodule", None), "batch_size", None)
            if self._trainer is not None else None,
            "input_range": [0.0, 1.0],
        }
        if meta["batch_size"]:
            meta["images_seen"] = meta["steps"] * meta["batch_size"] * (self.trainer.world_size if self._trainer else 1)
        return meta

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint[META_KEY] = self.meta()
        checkpoint["impasto_recent_terms"] = [{k: float(v) for k, v in r.items()} for r in self._recent]

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        meta = checkpoint.get(META_KEY, {})
        self._wall_offset = float(meta.get("wall_time_s", 0.0))
        self._val_terms = dict(meta.get("val_loss_terms", {}))
        self._recent = deque(checkpoint.get("impasto_recent_terms", []), maxlen=self._recent.maxlen)


# --------------------------------------------------------------------------- callbacks and CLI

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
        if self._training and trainer.global_step > 0:
            trainer.save_checkpoint(self.path)
            print(f"\nimpasto train: interrupted at step {trainer.global_step}; saved {self.path} "
                  "(continue with --resume last)")


TRAINER_DEFAULTS = {
    "accelerator": "auto",
    "precision": "bf16-mixed",
    "max_steps": 2000,
    "val_check_interval": 100,
    "check_val_every_n_epoch": None,
    "log_every_n_steps": 10,
    "num_sanity_val_steps": 1,
    "use_distributed_sampler": False,   # the data module shards by rank itself (exact resume)
}


def cli_main(argv: Optional[list[str]] = None) -> int:
    """LightningCLI for FastStyleModule + PhotoDataModule, used by `impasto train`."""
    from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
    from pytorch_lightning.cli import LightningCLI
    from pytorch_lightning.loggers import CSVLogger, TensorBoardLogger

    from .data import PhotoDataModule

    class FastStyleCLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.add_argument("--run_dir", type=Optional[str], default=None,
                                help="output folder (checkpoints, logs, samples); default runs/<style>")
            parser.add_argument("--resume", type=Optional[str], default=None,
                                help='checkpoint to continue from, or "last" (run_dir/checkpoints/last.ckpt)')
            parser.add_argument("--save_every_n_steps", type=int, default=100,
                                help="how often checkpoints/last.ckpt is written")
            parser.add_argument("--threads", type=Optional[int], default=None,
                                help="CPU threads for torch (1 is fastest on a busy shared machine)")

        def instantiate_trainer(self, **kwargs):
            cfg = self.config
            run_dir = Path(cfg.run_dir or Path("runs") / self.model.style_name)
            ckpt_dir = run_dir / "checkpoints"
            trainer_cfg = self._get(self.config_init, "trainer", default={})
            callbacks = list(trainer_cfg.get("callbacks") or [])
            callbacks += [
                ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/loss", mode="min",
                                save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False),
                ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:06d}", save_top_k=0, save_last=True,
                                every_n_train_steps=cfg.save_every_n_steps, auto_insert_metric_name=False,
                                enable_version_counter=False),
                SafetyCheckpoint(ckpt_dir),
            ]
            if trainer_cfg.get("enable_progress_bar", True) is not False:
                callbacks.append(RichProgressBar(leave=True))
            kwargs["callbacks"] = callbacks
            kwargs["default_root_dir"] = str(run_dir)
            if trainer_cfg.get("logger") in (None, True):
                kwargs["logger"] = [TensorBoardLogger(str(run_dir), name="tensorboard", version=""),
                                    CSVLogger(str(run_dir), name="csv", version="")]
            return super().instantiate_trainer(**kwargs)

    with warnings.catch_warnings():
        # `impasto train ...` hands LightningCLI its own arguments; sys.argv (kept as it is: DDP's
        # launcher re-runs it for the other ranks) holds the same ones, which LightningCLI warns about.
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python")
        cli = FastStyleCLI(FastStyleModule, PhotoDataModule, run=False, args=argv,
                           trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=0,
                           save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False,
                           parser_kwargs={"prog": "impasto train", "default_env": False})
    cfg = cli.config.as_dict()
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    trainer_keys = ("max_steps", "precision", "accumulate_grad_batches", "devices", "num_nodes")
    config = {"model": cfg.get("model", {}), "data": cfg.get("data", {}),
              "trainer": {k: cfg.get("trainer", {}).get(k) for k in trainer_keys},
              "seed_everything": cfg.get("seed_everything")}
    cli.model.config = config
    cli.model.config_hash = config_hash(config)
    ckpt = cfg.get("resume")
    if ckpt == "last":
        ckpt = str(Path(cli.trainer.default_root_dir) / "checkpoints" / "last.ckpt")
        if not Path(ckpt).exists():
            raise ImpastoError(f"--resume last: no {ckpt} yet; start without --resume")
    elif ckpt and not Path(ckpt).exists():
        raise ImpastoError(f"--resume {ckpt}: no such checkpoint")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    return 0


def _card_main(argv: Optional[list[str]] = None) -> int:
    """python -m impasto.training.fast CHECKPOINT CARD.json: write the training half of a card."""
    import argparse
    p = argparse.ArgumentParser(prog="python -m impasto.training.fast", description=_card_main.__doc__)
    p.add_argument("checkpoint")
    p.add_argument("card")
    a = p.parse_args(argv)
    _, meta = load_fast_checkpoint(a.checkpoint)
    write_model_card(card_from_meta(meta), a.card)
    print(f"wrote {a.card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(_card_main())
