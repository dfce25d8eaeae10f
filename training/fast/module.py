"""Fast style networks (Johnson et al. 2016): a LightningModule that trains a TransformerNet
against the shared perceptual objective.

The objective is the iterative path's own `Objective` (the teacher): content on relu2_2,
Gram style on relu1_2/relu2_2/relu3_3/relu4_3, total variation, optional histogram, sliced
Wasserstein and MRF patch losses. The style Gram targets are computed once (`prepare_loss`),
never per step. The frozen VGG is kept out of the module's state dict, so checkpoints hold only
the small transformer. The checkpoint contract for `impasto export` is in `checkpoint.py`.
"""

from __future__ import annotations

import platform
import time
from collections import deque
from dataclasses import asdict
from pathlib import Path
from typing import Optional, Sequence, Union

import pytorch_lightning as pl
import torch
import torch.nn.functional as F
import torchvision

from impasto import images
from impasto.errors import ImpastoError
from impasto.models.losses import (GATYS_STYLE, JOHNSON_CONTENT, JOHNSON_STYLE, ContentLoss, HistogramLoss,
                                   MRFLoss, SlicedWassersteinLoss, StyleLoss, TVLoss, gram_pyramid)
from impasto.models.objective import Objective
from impasto.models.tensors import to_tensor
from impasto.models.transformer import ARCHITECTURES, TransformerNet
from impasto.models.weights import load_vgg_weights

from .checkpoint import META_KEY, config_hash, load_fast_checkpoint
from .schedule import check_lr_decay, lr_at
from .temporal import Motion, temporal_loss


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{device.type} ({platform.processor() or platform.machine()})"


MRF_LAYERS = ("relu4_1",)   # the MRF patch term's default layer


def build_perceptual_loss(vgg_weights: Optional[str], content_weight: float, style_weight: float,
                          tv_weight: float, histogram_weight: float = 0.0,
                          content_layers: Sequence[str] = JOHNSON_CONTENT,
                          style_layers: Sequence[str] = JOHNSON_STYLE,
                          style_layer_weights: Optional[Sequence[float]] = None,
                          histogram_layers: Sequence[str] = ("relu1_2", "relu4_3"),
                          style_relative: bool = False, mrf_weight: float = 0.0,
                          mrf_layers: Sequence[str] = MRF_LAYERS, swd_weight: float = 0.0,
                          swd_layers: Sequence[str] = GATYS_STYLE, style_pyramid: int = 1) -> Objective:
    """The fast path's objective: Johnson's layers, each optional term only when its weight is positive.
    `style_pyramid` levels of the Gram style term: "style" on the image, "style_x2" on it pooled by 2,
    "style_x4" by 4, ..., each at the full style weight."""
    weights = load_vgg_weights(vgg_weights)
    level = lambda scale: StyleLoss(style_layers, weight=style_weight, layer_weights=style_layer_weights,
                                    gram_norm="chw", relative=style_relative, scale=scale)
    return Objective(
        weights,
        content=ContentLoss(content_layers, weight=content_weight),
        **(gram_pyramid(level, style_pyramid) if style_weight > 0 else {}),
        tv=TVLoss(tv_weight) if tv_weight > 0 else None,
        histogram=HistogramLoss(histogram_layers, weight=histogram_weight) if histogram_weight > 0 else None,
        swd=SlicedWassersteinLoss(swd_layers, weight=swd_weight) if swd_weight > 0 else None,
        # Style patches every 2nd position: a quarter of the matching cost of every position.
        mrf=MRFLoss(mrf_layers, weight=mrf_weight, stride=2) if mrf_weight > 0 else None)


def gram_style_terms(objective: Objective) -> list[StyleLoss]:
    """The Gram style term and its coarser pyramid levels (`build_perceptual_loss`)."""
    return [t for t in objective.terms.values() if isinstance(t, StyleLoss)]


def load_style_image(path: str, size: Optional[int]) -> torch.Tensor:
    return to_tensor(images.load(path, max_side=size))


def check_edge_margin(edge_margin: int) -> None:
    if edge_margin < 0 or edge_margin % 4:
        raise ImpastoError(f"edge_margin is a margin in pixels, a multiple of 4 (0: none); got {edge_margin}")


def with_margin(x: torch.Tensor, margin: int, paint) -> torch.Tensor:
    """`paint(x)` run on `x` reflect-padded by `margin` and cropped back: what the runtime's edge
    margin does (serve/stylize.py), so the loss sees only what a user will see."""
    if not margin:
        return paint(x)
    h, w = x.shape[-2:]
    if margin >= min(h, w):   # a reflection cannot be wider than the image
        raise ImpastoError(f"edge_margin {margin} needs images larger than it; got {w}x{h} (data.image_size)")
    return paint(F.pad(x, (margin, margin, margin, margin), mode="reflect"))[..., margin:margin + h, margin:margin + w]


class FastStyleModule(pl.LightningModule):
    """Train one feed-forward network for one style image.

    Args:
        style_image: the painting (path, relative to where you run `impasto train`).
        style_name: name of the style (model card, zoo file name); default: the image's stem.
        arch: transformer architecture: "slim" (real-time CPU default), "slim_wide" (slim at twice the
            width), "slim_dilated" (slim's weights, dilated residual blocks: a wider view at the same
            cost), "slim_skip" (slim with the photo passed to the output through a 1x1 conv),
            "slim_centred" and "slim_wide_centred" (their strided convs sample each 2x2 block's
            centre: no diagonal in the grid; same weights), "slim_coarse" (slim and a branch at an
            eighth of the photo's scale: 212 px of view for the largest shapes), "medium" or
            "johnson" (as published).
        style_size: longest side the style image is resized to before its Gram targets are taken
            (match it to the training crop size so brush strokes come out at the scale you see).
        mrf_weight, mrf_layers: Li & Wand's MRF patch loss (each 3x3 patch of the output's features
            pulled toward its nearest patch of the painting's), for motifs a Gram does not place;
            0: off. Not ramped.
        swd_weight, swd_layers: Heitz et al.'s sliced Wasserstein loss (each layer's feature
            distribution, not only its Gram, pulled toward the painting's); 0: off. Ramped with the
            style weight.
        content_weight, style_weight, tv_weight, histogram_weight: loss weights. The defaults were
            chosen by a sweep with the HED VGG16 weights (see docs/training.md).
        content_layers, style_layers, style_layer_weights: VGG layers (Johnson's by default).
        vgg_weights: VGG weight source (path or "torchvision"); default: $IMPASTO_VGG_WEIGHTS.
        lr: Adam learning rate.
        lr_decay: [start, end] global steps: the learning rate holds until `start`, then falls along
            a half cosine to zero at `end` and stays there; none: constant. Global steps, so a
            resumed run continues on the same curve (set max_steps to `end`). "deadline": the end
            is the step at which trainer.max_time runs out, measured from the run's own pace.
        channels_last: run the transformer and VGG in channels-last memory format (faster on CPU).
        bf16_gram: under bf16-mixed precision, multiply the style Grams in bf16 too (AVX-512 BF16 units; about
            0.4% rounding per entry, far below a step's noise; bench/bench_training.py measures it).
        grid_size: how many held-out photos go into the stylised validation grid.
        init_from: start from this network (a checkpoint with the same weights' names and shapes,
            e.g. the shared base network that gives photos back: `configs/fast/base.yaml`, or a
            slim network for slim_dilated, slim_centred, slim_skip or slim_coarse, whose skip or
            coarse branch then starts at zero) instead of a random one. From random weights a
            network under a high style weight loses the photo.
        style_ramp_steps: the style weight rises linearly from 0 over this many steps, so the
            network paints on top of the content it already keeps.
        pixel_weight: weight of an RGB mean-squared error to the photo (the base network's
            objective; 0 for styles).
        style_relative: each style layer's error relative to its target Gram (StyleLoss); without
            it the HED VGG's relu1_2 outweighs the deeper layers 1000:1 and networks only grade colours.
        temporal_weight: weight of the temporal term (`temporal.py`): a photo and a moved copy must
            be painted alike, so video painted frame by frame flickers less. 0: off.
        temporal_motion: the synthetic motion's range, keys of `temporal.Motion` (shift px, zoom,
            rotate degrees, noise, mirror: the chance of a left-right mirror); default: Motion's.
        temporal_lowpass: compare the two paintings over blocks of this many pixels a side
            (1: per pixel); see `temporal.temporal_loss`.
        edge_margin: train as the runtime serves (px, a multiple of 4; 0: off): each photo is
            reflect-padded by this margin, painted, and cropped back before any loss. Zero padding
            inside the slim networks lets them find their edges, and under a high style weight they
            learn to paint a band of colour there that the Gram loss rewards; with the margin the
            loss never sees the band. Export stores it as the model's edge margin.
        mirror_objective: on every other step, score the mirrored output and photo against the
            mirrored painting. A VGG whose filters came in exact mirror pairs would give the same
            loss; the HED VGG16 does not, and networks trained on it lay their strokes along the
            one diagonal its Grams favour (docs/training.md). Gram style term only.
    """

    def __init__(self, style_image: Optional[str] = None, style_name: Optional[str] = None, arch: str = "slim",
                 style_size: Optional[int] = 256, content_weight: float = 1.0, style_weight: float = 1.5,
                 tv_weight: float = 0.0, histogram_weight: float = 0.0, mrf_weight: float = 0.0,
                 mrf_layers: Sequence[str] = MRF_LAYERS, swd_weight: float = 0.0,
                 swd_layers: Sequence[str] = GATYS_STYLE,
                 content_layers: Sequence[str] = JOHNSON_CONTENT, style_layers: Sequence[str] = JOHNSON_STYLE,
                 style_layer_weights: Optional[Sequence[float]] = None, vgg_weights: Optional[str] = None,
                 lr: float = 1e-3, channels_last: bool = True, bf16_gram: bool = True, grid_size: int = 4,
                 init_from: Optional[str] = None, style_ramp_steps: int = 0, pixel_weight: float = 0.0,
                 style_relative: bool = False, temporal_weight: float = 0.0,
                 temporal_motion: Optional[dict] = None, temporal_lowpass: int = 1,
                 lr_decay: Optional[Union[Sequence[int], str]] = None, edge_margin: int = 0,
                 mirror_objective: bool = False, style_pyramid: int = 1):
        super().__init__()
        check_lr_decay(lr_decay)
        if mirror_objective and (histogram_weight or mrf_weight or swd_weight):
            raise ImpastoError("mirror_objective mirrors the Gram style targets only; "
                               "turn off histogram_weight, mrf_weight and swd_weight")
        check_edge_margin(edge_margin)
        if style_pyramid < 1:
            raise ImpastoError(f"style_pyramid counts the Gram style term's levels, 1 or more; got {style_pyramid}")
        if temporal_lowpass < 1:
            raise ImpastoError(f"temporal_lowpass is a block size in pixels (1 = per pixel); got {temporal_lowpass}")
        if arch not in ARCHITECTURES:
            raise ImpastoError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
        if style_image is None and style_weight > 0:
            raise ImpastoError("style_image is needed when style_weight > 0")
        try:
            self.motion = Motion(**(temporal_motion or {}))
        except TypeError:
            raise ImpastoError(f"temporal_motion takes {', '.join(Motion.__dataclass_fields__)}; "
                               f"got {', '.join(temporal_motion)}") from None
        self.save_hyperparameters()
        self.style_name = style_name or (Path(style_image).stem if style_image else "base")
        self.net = TransformerNet(arch)
        if init_from:
            start, _ = load_fast_checkpoint(init_from)
            if not self.net.can_start_from(start.state_dict()):
                raise ImpastoError(f"init_from {init_from}: a {start.arch_name} network, not {arch}")
            self.net.load_state_dict(start.state_dict(), strict=False)
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
        self._val_motion: Optional[torch.Generator] = None   # the same motions in every validation

    # -- the objective ------------------------------------------------------------------------
    def prepare_loss(self, device: Optional[torch.device] = None) -> Objective:
        """Build the VGG objective and compute the style targets (once per style and size)."""
        hp = self.hparams
        device = device or self.device
        if self.loss_fn is None:
            loss = build_perceptual_loss(hp.vgg_weights, hp.content_weight, hp.style_weight, hp.tv_weight,
                                         hp.histogram_weight, hp.content_layers, hp.style_layers,
                                         hp.style_layer_weights, style_relative=hp.get("style_relative", False),
                                         mrf_weight=hp.get("mrf_weight", 0.0),
                                         mrf_layers=hp.get("mrf_layers", MRF_LAYERS),
                                         swd_weight=hp.get("swd_weight", 0.0),
                                         swd_layers=hp.get("swd_layers", GATYS_STYLE),
                                         style_pyramid=hp.get("style_pyramid", 1))
            if hp.channels_last:
                loss = loss.to(memory_format=torch.channels_last)
            for term in gram_style_terms(loss):   # checkpoints from before the option: on
                term.bf16_gram = hp.get("bf16_gram", True)
            object.__setattr__(self, "loss_fn", loss)
        loss = self.loss_fn.to(device)
        if hp.style_image:
            style = load_style_image(hp.style_image, hp.style_size).to(device)
            mirror = hp.get("mirror_objective", False) and loss.term("style") is not None
            with torch.autocast(device.type, enabled=False):
                if mirror:
                    loss.set_targets(styles=[self._fmt(style.flip(-1))])
                    self._mirrored_targets = _targets_of(loss)
                loss.set_targets(styles=[self._fmt(style)])
            if mirror:
                self._plain_targets = _targets_of(loss)
        return loss

    def style_weight_now(self) -> float:
        """The style term's weight at this step: the configured weight times the ramp."""
        return self.hparams.style_weight * self.style_ramp()

    def style_ramp(self) -> float:
        """The share of the style weight in force at this step (1 after the ramp, and always
        in validation, which measures the full objective)."""
        n = self.hparams.get("style_ramp_steps", 0)
        return 1.0 if not n or not self.training else min(1.0, (self.global_step + 1) / n)

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=torch.channels_last) if self.hparams.channels_last else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return with_margin(self._fmt(x), self.hparams.get("edge_margin", 0), self.net)

    def compute_loss(self, x: torch.Tensor):
        """(total, terms, stylised batch): the shared objective on the network's output, with each
        photo of the batch as its own content target."""
        y = self(x)
        style, swd = self.loss_fn.term("style"), self.loss_fn.term("swd")
        for term in gram_style_terms(self.loss_fn):
            term.weight = self.style_weight_now()
        if swd is not None:
            swd.weight = self.hparams.swd_weight * self.style_ramp()
        if self.training and style is not None and self.hparams.get("mirror_objective", False) \
                and self.global_step % 2:
            # Every other step the loss sees the mirrored painting, photo and output: a VGG
            # whose filters are mirror pairs would score them alike; ours does not.
            _set_targets(self.loss_fn, self._mirrored_targets)
            try:
                total, terms = self.loss_fn(y.flip(-1), content=self._fmt(x.flip(-1)))
            finally:
                _set_targets(self.loss_fn, self._plain_targets)
        else:
            total, terms = self.loss_fn(y, content=self._fmt(x))
        if self.hparams.get("pixel_weight", 0.0) > 0:   # the base network: give the photo back
            terms["pixel"] = self.hparams.pixel_weight * F.mse_loss(y.float(), x.float())
            total = total + terms["pixel"]
        if self.hparams.get("temporal_weight", 0.0) > 0:
            generator = None if self.training else self._val_motion
            terms["temporal"] = self.hparams.temporal_weight * temporal_loss(self, x, y, self.motion, generator,
                                                                         self.hparams.get("temporal_lowpass", 1))
            total = total + terms["temporal"]
        return total, terms, y

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
        # The schedule is a function of the global step, not an LR scheduler's own counter: a run
        # resumed from a checkpoint written before the decay was chosen lands on the same curve.
        lr = lr_at(self.global_step, self.hparams.lr, self.hparams.get("lr_decay"))
        for group in self.optimizers().optimizer.param_groups:
            group["lr"] = lr

    def training_step(self, batch, batch_idx):
        x = batch["image"]
        total, terms, _ = self.compute_loss(x)
        # Detached tensors, read back only when a checkpoint or the card needs them: a float()
        # here would make a GPU wait for every step.
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
        self._val_motion = torch.Generator().manual_seed(0)

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking is False:
            self._val_terms = {k[len("val/"):]: float(v) for k, v in self.trainer.callback_metrics.items()
                               if k.startswith("val/") and k != "val/loss"}
        if not self._grid or not self.trainer.is_global_zero:
            return
        photos = torch.cat(self._grid[0::2])
        styled = torch.cat(self._grid[1::2])
        grid = torchvision.utils.make_grid(torch.cat([photos, styled]).clamp(0, 1), nrow=photos.shape[0], padding=2)
        for logger in self.loggers:
            exp = getattr(logger, "experiment", None)
            if hasattr(exp, "add_image"):
                exp.add_image("val/stylised", grid, self.global_step)
        out_dir = Path(self.trainer.default_root_dir) / "samples"
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
        cfg = self.config if self.config is not None else dict(hp)
        meta = {
            "style": self.style_name,
            "arch": hp.arch,
            "arch_spec": asdict(self.net.spec),
            "parameters": sum(p.numel() for p in self.net.parameters()),
            "style_image": str(hp.get("style_image") or ""),
            "style_size": hp.style_size,
            "steps": int(self.global_step),
            "config_hash": self.config_hash or config_hash(cfg),
            "config": cfg,
            "loss_terms": self.final_loss_terms(),
            "val_loss_terms": dict(self._val_terms),
            "loss_weights": {"content": hp.content_weight, "style": hp.style_weight, "tv": hp.tv_weight,
                             "histogram": hp.get("histogram_weight", 0.0), "mrf": hp.get("mrf_weight", 0.0),
                             "swd": hp.get("swd_weight", 0.0), "temporal": hp.get("temporal_weight", 0.0)},
            "device": device_name(self.device),
            "vgg": self.loss_fn.weights_source.source if self.loss_fn is not None else hp.vgg_weights,
            "wall_time_s": round(self.wall_time_s(), 1),
            "image_size": getattr(getattr(self.trainer, "datamodule", None), "image_size", None)
            if self._trainer is not None else None,
            "batch_size": getattr(getattr(self.trainer, "datamodule", None), "batch_size", None)
            if self._trainer is not None else None,
            "input_range": [0.0, 1.0],
        }
        if hp.get("lr_decay") is not None:   # as run: a deadline's resolved [start, end]
            meta["lr_decay"] = list(hp.lr_decay) if not isinstance(hp.lr_decay, str) else hp.lr_decay
        if hp.get("edge_margin"):   # the margin it was trained with is the one it needs (export stores it)
            meta["edge_margin"] = hp.edge_margin
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


def _targets_of(objective: Objective) -> list[tuple[dict, dict]]:
    return [(dict(t.targets), dict(t.scales)) for t in gram_style_terms(objective)]


def _set_targets(objective: Objective, targets: list[tuple[dict, dict]]) -> None:
    for term, (grams, scales) in zip(gram_style_terms(objective), targets):
        term.targets, term.scales = grams, scales   # set_target replaces these dicts, never edits them
