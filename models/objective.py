"""The objective: named loss terms over one VGG pass, `objective(image) -> (total, terms)`.

Every path scores images with it: the iterative optimiser (classic, semantic modes, video frames,
reconstructions), fast-network training (the same objective is the teacher) and compare. A term is
a module with `layers` (the VGG layers it reads) called with the features; a term with
`on_pixels = True` (TV, the video's temporal term, patch mode's tiled style) is called with the
image instead. A term with `scale` > 1 (a Gram pyramid's level) reads the features of the image
average-pooled by that factor: one more VGG pass per scale. `terms` is the dict of weighted values
in the order the terms were given; `total` is their sum.
"""

from __future__ import annotations

from typing import Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import nn

from .vgg import VGGEncoder, VGGWeights

# The order keyword terms are summed and shown in (a mapping's own order is kept as given).
ORDER = ("content", "style", "histogram", "swd", "mrf", "tv")


class Objective(nn.Module):
    """Named terms, one VGG pass for all of them, the weighted sum and the terms for display.

    `Objective(weights, content=ContentLoss(), style=StyleLoss(), tv=TVLoss())` builds the encoder
    for the union of the terms' layers; `Objective(encoder, {"style": ..., "mrf": ...})` shares an
    encoder built elsewhere (the semantic modes compute their targets with it first). Terms given
    as None are left out; keyword terms are taken in the order of ORDER.
    """

    def __init__(self, encoder: Union[VGGEncoder, VGGWeights], terms: Optional[Mapping[str, Optional[nn.Module]]] = None,
                 pooling: str = "max", **named_terms: Optional[nn.Module]):
        super().__init__()
        named = sorted(named_terms.items(), key=lambda kv: ORDER.index(kv[0]) if kv[0] in ORDER else len(ORDER))
        given = {**(terms or {}), **dict(named)}
        self.terms = nn.ModuleDict({name: term for name, term in given.items() if term is not None})
        if isinstance(encoder, VGGEncoder):
            self.vgg = encoder
        else:
            layers = set()
            for term in self.terms.values():
                layers |= set(getattr(term, "layers", ()))
            self.vgg = VGGEncoder(encoder, layers, pooling)
        self.weights_source = self.vgg.weights_source
        # The VGG passes forward() makes: one per scale the feature-reading terms ask for.
        self.scales = sorted({scale_of(t) for t in self.terms.values() if not getattr(t, "on_pixels", False)})

    def term(self, name: str) -> Optional[nn.Module]:
        return self.terms[name] if name in self.terms else None

    def with_terms(self, **extra: nn.Module) -> "Objective":
        """The same encoder and terms plus `extra` (summed after them)."""
        return Objective(self.vgg, {**dict(self.terms.items()), **extra})

    @property
    def style_terms(self) -> list[nn.Module]:
        """The terms whose targets come from style images (all but content and the pixel terms)."""
        return [t for n, t in self.terms.items()
                if n != "content" and not getattr(t, "on_pixels", False) and hasattr(t, "set_target")]

    @torch.no_grad()
    def set_targets(self, content: Optional[torch.Tensor] = None,
                    styles: Sequence[torch.Tensor] = (), blend: Optional[Sequence[float]] = None) -> None:
        """Compute the fixed targets once: content features and every style-side statistic."""
        if content is not None and "content" in self.terms:
            self.terms["content"].set_target(self.vgg(content))
        if styles:
            per_scale = {k: [self.vgg(pooled(s, k)) for s in styles] for k in {scale_of(t) for t in self.style_terms}}
            for term in self.style_terms:
                term.set_target(per_scale[scale_of(term)], blend)

    def forward(self, image: torch.Tensor, content: Optional[torch.Tensor] = None):
        """(total, {name: weighted term}). `content` (a batch) overrides the stored content target,
        as in fast-network training where each batch brings its own photos; its VGG pass stops at
        the deepest content layer."""
        feats = {k: self.vgg(pooled(image, k)) for k in self.scales}
        terms: dict[str, torch.Tensor] = {}
        for name, term in self.terms.items():
            if getattr(term, "on_pixels", False):
                terms[name] = term(image)
            elif name == "content" and content is not None:
                with torch.no_grad():
                    targets = self.vgg(content, term.layers)
                terms[name] = term(feats[1], targets)
            else:
                terms[name] = term(feats[scale_of(term)])
        return sum(terms.values()), terms


def scale_of(term: nn.Module) -> int:
    return getattr(term, "scale", 1)


def pooled(image: torch.Tensor, scale: int) -> torch.Tensor:
    """The image average-pooled by `scale` (itself at 1): a Gram pyramid's level."""
    return image if scale == 1 else F.avg_pool2d(image, scale)
