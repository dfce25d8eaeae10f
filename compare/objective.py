"""The objective a fast model was trained with, rebuilt from its model card: the training
module's defaults under the card's training config, the painting at its training size (the original
file when it is found, else the small copy bundled next to the model), targets set."""

from __future__ import annotations

import inspect
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch

from impasto.errors import ImpastoError
from impasto.models.objective import Objective
from impasto.models.tensors import to_array
from impasto.models.zoo.card import style_thumbnail_path, training_config
from impasto.training.fast.module import FastStyleModule, build_perceptual_loss, load_style_image


def training_defaults() -> dict:
    """The fast training module's own defaults (what a config that leaves a key out trained with)."""
    sig = inspect.signature(FastStyleModule.__init__)
    return {k: p.default for k, p in sig.parameters.items()
            if k != "self" and p.default is not inspect.Parameter.empty}


def training_params(card: dict) -> dict:
    """The hyper-parameters the fast model was trained with: the card's training config over the
    training module's defaults."""
    model_cfg = training_config(card)
    params = training_defaults()
    params.update({k: v for k, v in model_cfg.items() if v is not None or k in ("style_layer_weights",)})
    # The loss weights recorded by the module itself win (they are what it actually used).
    for key, value in (card.get("loss_weights") or {}).items():
        if f"{key}_weight" in params and value is not None:
            params[f"{key}_weight"] = value
    return params


def find_style_image(params: dict, card: dict, given: Optional[str | os.PathLike] = None,
                     search: Sequence[Path] = (), model: Optional[Path] = None) -> Path:
    """The painting the model was trained on: `given`, else the config's path (relative to the
    working folder, as `impasto train` resolves it), else its file name in the search folders, else
    the small copy next to `model` that its card names (export writes `<name>.style.jpg`)."""
    if given:
        p = Path(given)
        if not p.is_file():
            raise ImpastoError(f"--style-image {given}: no such file")
        return p
    recorded = params.get("style_image") or card.get("style_image")
    if not recorded:
        raise ImpastoError("the model card does not name its style image; pass --style-image")
    candidates = [Path(recorded)] + [Path(d) / Path(recorded).name for d in search]
    if model is not None:   # a video network's card names its photo network's copy
        thumbnail = card.get("style_thumbnail")
        candidates.append(model.with_name(Path(thumbnail).name) if thumbnail else style_thumbnail_path(model))
    for c in candidates:
        if c.is_file():
            return c
    raise ImpastoError(f"style image {recorded!r} of this model not found (looked in: "
                       f"{', '.join(str(c.parent) for c in candidates)}); pass --style-image PATH")


@dataclass
class FastObjective:
    """The objective a fast model was trained with, targets set, ready to evaluate images."""
    loss: Objective
    params: dict
    style_image: Path
    style: np.ndarray             # the style image as the objective sees it (at style_size)
    vgg: str

    def describe(self) -> dict:
        keys = ("content_weight", "style_weight", "tv_weight", "histogram_weight", "content_layers",
                "style_layers", "style_layer_weights", "style_size")
        d = {k: self.params.get(k) for k in keys}
        d["style_image"] = self.style_image.name
        d["vgg"] = self.vgg
        d["content_normalize"] = "mean"
        d["gram_norm"] = "chw"
        return d


def build_fast_objective(params: dict, style_image: Path, vgg_weights: Optional[str] = None) -> FastObjective:
    """Rebuild the training objective exactly as `FastStyleModule.prepare_loss` does."""
    vgg = vgg_weights or params.get("vgg_weights")
    loss = build_perceptual_loss(vgg, params["content_weight"], params["style_weight"], params["tv_weight"],
                                 params.get("histogram_weight", 0.0), params["content_layers"],
                                 params["style_layers"], params.get("style_layer_weights"),
                                 style_relative=params.get("style_relative", False),
                                 style_pyramid=params.get("style_pyramid", 1))
    style = load_style_image(str(style_image), params.get("style_size"))
    with torch.autocast("cpu", enabled=False):
        loss.set_targets(styles=[style])
    loss.eval()
    return FastObjective(loss, params, Path(style_image), to_array(style), loss.weights_source.source)
