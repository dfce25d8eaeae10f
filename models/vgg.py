"""VGG16/VGG19 feature extractors with VGG's own layer names, frozen, truncated at the deepest layer used."""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn

from impasto.errors import ImpastoError

from .weights import VGGWeights, make_preprocess

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)


def layer_names(arch: str) -> list[str]:
    """conv1_1, relu1_1, conv1_2, relu1_2, pool1, ... in network order (torchvision's indices)."""
    names = []
    for b, n in enumerate(BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def conv_names(arch: str) -> list[str]:
    return [n for n in layer_names(arch) if n.startswith("conv")]


def check_layers(arch: str, layers: Iterable[str]) -> list[str]:
    known = layer_names(arch)
    layers = list(layers)
    bad = [n for n in layers if n not in known]
    if bad:
        raise ImpastoError(f"unknown {arch} layer(s) {', '.join(bad)}; valid names: {', '.join(known)}")
    return layers


def channels_of(layer: str) -> int:
    return CHANNELS[int(layer[-3 if layer[-2] == "_" else -1]) - 1] if not layer.startswith("pool") \
        else CHANNELS[int(layer[4:]) - 1]


class VGGFeatures(nn.Module):
    """Maps an RGB 0..1 image batch to a dict of the requested layers' activations.

    The weight source's own preprocessing runs first, so callers never think about BGR or means.
    """

    def __init__(self, weights: VGGWeights, layers: Iterable[str], pooling: str = "max"):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ImpastoError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.arch = weights.arch
        self.layers = set(check_layers(self.arch, layers))
        if not self.layers:
            raise ImpastoError("no VGG layers requested")
        order = layer_names(self.arch)
        last = max(order.index(n) for n in self.layers)
        deepest = max(order.index(n) for n in weights.convs)
        if last > deepest + 1:  # + 1: a conv's own relu needs no more weights
            raise ImpastoError(f"{weights.source} holds {self.arch} only up to {order[deepest]}; "
                               f"layer {order[last]} needs deeper weights")
        self.preprocess = make_preprocess(weights.preprocessing)
        self.body = nn.Sequential()
        in_ch = 3
        for name in order[: last + 1]:
            if name.startswith("conv"):
                w, b = weights.convs[name]
                conv = nn.Conv2d(in_ch, w.shape[0], 3, padding=1)
                with torch.no_grad():
                    conv.weight.copy_(w)
                    conv.bias.copy_(b)
                in_ch = w.shape[0]
                self.body.add_module(name, conv)
            elif name.startswith("relu"):
                self.body.add_module(name, nn.ReLU(inplace=False))
            else:
                pool = nn.MaxPool2d(2, 2) if pooling == "max" else nn.AvgPool2d(2, 2)
                self.body.add_module(name, pool)
        self.requires_grad_(False)
        self.eval()
        # oneDNN's convolutions (bf16 above all) are much faster on NHWC tensors
        self.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True):  # frozen: always eval
        return super().train(False)

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.preprocess(image).contiguous(memory_format=torch.channels_last)
        out = {}
        for name, module in self.body.named_children():
            x = module(x)
            if name in self.layers:
                out[name] = x
        return out
