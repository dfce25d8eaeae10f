"""One network, many styles (Dumoulin et al. 2017): a LightningModule that trains a
MultiStyleTransformerNet on the same perceptual objective as the single-style networks.

Every batch trains one style, drawn in a shuffled round per len(styles) steps (so a short run
still sees every style equally often, and a resumed run draws the same styles). One style per
batch keeps the shared `Objective` as it is: the style term's Gram targets (and its per-layer
relative scales) are swapped per step from a table computed once.

Adding a style (`add_to`): a trained multi-style checkpoint gets one new row in every norm's
scale and shift table, everything else is frozen, and only the new rows train (their gradient
alone is kept; Adam moves nothing whose gradient was always zero, so the old styles stay
bit-identical).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from impasto.errors import ImpastoError
from impasto.models.losses import JOHNSON_CONTENT, JOHNSON_STYLE
from impasto.models.objective import Objective
from impasto.models.transformer import MultiStyleTransformerNet
from impasto.models.zoo.card import check_style_names

from .checkpoint import config_hash, load_fast_checkpoint
from .module import FastStyleModule, build_perceptual_loss, load_style_image, with_margin


class MultiStyleModule(FastStyleModule):
    """Train one network for several style images (conditional instance norm).

    Args:
        style_images: the paintings, one style each (paths relative to where you run the command).
        style_names: their names, in the same order; default: each image's stem.
        network_name: the name of the multi-style network (run folder, model file); default "multi".
        init_from: start from this checkpoint: a single-style or base network (convolutions
            copied, its norms' scale and shift given to every style) or a multi-style network
            with the same number of styles.
        add_to: a trained multi-style checkpoint: `style_images` are appended to its styles and
            only their norm parameters train; every other parameter stays frozen.
        style_weight_scales: each trained style's multiple of `style_weight`, in the order of
            `style_images` (default: 1 for every style), for a painting that needs more weight to
            move than the others, or less to keep the photo.
        The other arguments are FastStyleModule's (the same objective and recipe).
    """

    def __init__(self, style_images: Sequence[str] = (), style_names: Optional[Sequence[str]] = None,
                 network_name: str = "multi", arch: str = "slim", style_size: Optional[int] = 256,
                 content_weight: float = 1.0, style_weight: float = 1.5, tv_weight: float = 0.0,
                 content_layers: Sequence[str] = JOHNSON_CONTENT, style_layers: Sequence[str] = JOHNSON_STYLE,
                 style_layer_weights: Optional[Sequence[float]] = None, vgg_weights: Optional[str] = None,
                 lr: float = 1e-3, channels_last: bool = True, bf16_gram: bool = True, grid_size: int = 4,
                 init_from: Optional[str] = None, add_to: Optional[str] = None, style_ramp_steps: int = 0,
                 style_relative: bool = False, lr_decay: Optional[Union[Sequence[int], str]] = None, edge_margin: int = 0,
                 style_weight_scales: Optional[Sequence[float]] = None):
        super().__init__(style_image=None, style_name=network_name, arch=arch, style_size=style_size,
                         content_weight=content_weight, style_weight=0.0, tv_weight=tv_weight,
                         content_layers=content_layers, style_layers=style_layers,
                         style_layer_weights=style_layer_weights, vgg_weights=vgg_weights, lr=lr,
                         channels_last=False, bf16_gram=bf16_gram, grid_size=grid_size,
                         style_ramp_steps=style_ramp_steps, style_relative=style_relative, lr_decay=lr_decay,
                         edge_margin=edge_margin)
        self.save_hyperparameters()   # this class's arguments, not the parent's
        if not style_images:
            raise ImpastoError("style_images: list at least one painting")
        if style_weight <= 0:
            raise ImpastoError("a multi-style network needs style_weight > 0")
        if init_from and add_to:
            raise ImpastoError("give init_from (a new network) or add_to (new styles for a trained one), not both")
        names = list(style_names) if style_names else [Path(p).stem for p in style_images]
        self.style_weight_scales = [1.0] * len(style_images) if style_weight_scales is None \
            else [float(w) for w in style_weight_scales]
        if len(self.style_weight_scales) != len(style_images) or min(self.style_weight_scales) <= 0:
            raise ImpastoError(f"style_weight_scales: one positive number per style image "
                               f"({len(style_images)}), got {list(style_weight_scales)}")
        if len(names) != len(style_images):
            raise ImpastoError(f"{len(names)} style_names for {len(style_images)} style_images")
        self.trained_images = [str(p) for p in style_images]
        if add_to:
            self.net, old = self._extend(add_to, arch, len(names))
            self.style_names = list(old["styles"]) + names
            self.style_images = list(old.get("style_images") or [""] * len(old["styles"])) + self.trained_images
        else:
            self.net = self._start(init_from, arch, len(names))
            self.style_names, self.style_images = names, list(self.trained_images)
        check_style_names(self.style_names)
        first_new = len(self.style_names) - len(names)
        self.trained = list(range(first_new, len(self.style_names)))   # indices of the styles this run trains
        if add_to:
            self._freeze_all_but(first_new)
        if channels_last:
            self.net = self.net.to(memory_format=torch.channels_last)
        self._targets: list[tuple[dict, dict]] = []   # per trained style: (Gram targets, layer scales)
        self._current = self.trained[0]

    # -- the network ------------------------------------------------------------------------
    @staticmethod
    def _start(init_from: Optional[str], arch: str, count: int) -> MultiStyleTransformerNet:
        net = MultiStyleTransformerNet(arch, count)
        if not init_from:
            return net
        start, meta = load_fast_checkpoint(init_from)
        if start.spec != net.spec:
            raise ImpastoError(f"init_from {init_from}: a {start.arch_name} network, not {arch}")
        if isinstance(start, MultiStyleTransformerNet):
            if start.num_styles != count:
                raise ImpastoError(f"init_from {init_from}: {start.num_styles} styles, not {count}; "
                                   "to add styles to a trained network use add_to")
            net.load_state_dict(start.state_dict())
            return net
        multi = MultiStyleTransformerNet.from_single(start, count)
        multi.arch_name = arch
        return multi

    @staticmethod
    def _extend(add_to: str, arch: str, count: int) -> tuple[MultiStyleTransformerNet, dict]:
        net, meta = load_fast_checkpoint(add_to)
        if not isinstance(net, MultiStyleTransformerNet):
            raise ImpastoError(f"add_to {add_to}: a single-style checkpoint; add styles to a multi-style "
                               "one (`impasto train-multi`), or start a new one from it with init_from")
        if meta.get("arch") != arch:
            raise ImpastoError(f"add_to {add_to}: a {meta.get('arch')} network, not {arch} (set model.arch)")
        net.add_styles(count)
        net.train()
        return net, meta

    def _freeze_all_but(self, first_new: int) -> None:
        """Only the new styles' rows of the norm tables learn: every other parameter is frozen,
        and the old rows' gradient is zeroed before the optimiser sees it."""
        for p in self.net.parameters():
            p.requires_grad_(False)
        keep = torch.zeros(self.net.num_styles, 1)
        keep[first_new:] = 1.0
        for norm in self.net.norms():
            for table in (norm.weight, norm.bias):
                table.requires_grad_(True)
                table.register_hook(lambda g, keep=keep: g * keep.to(g.device, g.dtype))

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.net.parameters() if p.requires_grad]

    def configure_optimizers(self):
        return torch.optim.Adam(self.trainable_parameters(), lr=self.hparams.lr)

    # -- styles per step --------------------------------------------------------------------
    def style_for_step(self, step: int) -> int:
        """A shuffled round of the trained styles every len(trained) steps, seeded by the round."""
        k = len(self.trained)
        order = list(self.trained)
        random.Random(step // k).shuffle(order)
        return order[step % k]

    def one_hot(self, index: int, batch: int) -> torch.Tensor:
        w = torch.zeros(batch, self.net.num_styles, device=self.device)
        w[:, index] = 1.0
        return w

    def _use_style(self, index: int) -> None:
        self._current = index
        term = self.loss_fn.term("style") if self.loss_fn is not None else None
        if term is not None and self._targets:
            term.targets, term.scales = self._targets[self.trained.index(index)]

    def style_weight_now(self) -> float:
        return super().style_weight_now() * self.style_weight_scales[self.trained.index(self._current)]

    # -- the objective ----------------------------------------------------------------------
    def prepare_loss(self, device: Optional[torch.device] = None) -> Objective:
        """The objective (as FastStyleModule's) and each trained style's Gram targets, once."""
        hp = self.hparams
        device = device or self.device
        if self.loss_fn is None:
            loss = build_perceptual_loss(hp.vgg_weights, hp.content_weight, hp.style_weight, hp.tv_weight,
                                         0.0, hp.content_layers, hp.style_layers, hp.style_layer_weights,
                                         style_relative=hp.style_relative)
            if hp.channels_last:
                loss = loss.to(memory_format=torch.channels_last)
            loss.terms["style"].bf16_gram = hp.bf16_gram
            object.__setattr__(self, "loss_fn", loss)
        loss = self.loss_fn.to(device)
        term = loss.term("style")
        self._targets = []
        for path in self.trained_images:
            style = load_style_image(path, hp.style_size).to(device)
            with torch.autocast(device.type, enabled=False):
                loss.set_targets(styles=[self._fmt(style)])
            self._targets.append((dict(term.targets), dict(term.scales)))
        self._use_style(self._current)
        return loss

    def forward(self, x: torch.Tensor, style_weights: Optional[torch.Tensor] = None) -> torch.Tensor:
        if style_weights is None:
            style_weights = self.one_hot(self._current, x.shape[0])
        return with_margin(self._fmt(x), self.hparams.get("edge_margin", 0), lambda p: self.net(p, style_weights))

    # -- Lightning hooks ----------------------------------------------------------------------
    def on_train_batch_start(self, batch, batch_idx):
        super().on_train_batch_start(batch, batch_idx)
        self._use_style(self.style_for_step(self.global_step))

    def on_validation_batch_start(self, batch, batch_idx, dataloader_idx=0):
        self._use_style(self.trained[batch_idx % len(self.trained)])

    def training_step(self, batch, batch_idx):
        self.log("train/style_index", float(self._current))
        return super().training_step(batch, batch_idx)

    # -- checkpoints --------------------------------------------------------------------------
    def meta(self) -> dict:
        hp = self.hparams
        return super().meta() | {
            "styles": list(self.style_names),
            "style_images": [str(p) for p in self.style_images],
            "trained_styles": [self.style_names[i] for i in self.trained],
            "added_to": hp.add_to,
            "trained_parameters": sum(p[self.trained].numel() if hp.add_to else p.numel()
                                      for p in self.trainable_parameters()),
        }
