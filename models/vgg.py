"""The VGG16/VGG19 encoder: its layer table (VGG's own names), the weights it is built from, the
input preprocessing of each weight source, a frozen feature extractor truncated at the deepest
layer used, and how masks at image resolution follow it down to each layer.

Where the weights come from (files, torchvision) is `weights.py`; it builds on this table.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Optional

import torch
import torch.nn.functional as F
from torch import nn

from impasto.errors import ImpastoError

BLOCKS = {"vgg16": (2, 2, 3, 3, 3), "vgg19": (2, 2, 4, 4, 4)}
CHANNELS = (64, 128, 256, 512, 512)
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def layer_names(arch: str) -> list[str]:
    """conv1_1, relu1_1, conv1_2, relu1_2, pool1, ... in network order (torchvision's indices)."""
    names = []
    for b, n in enumerate(BLOCKS[arch], start=1):
        for i in range(1, n + 1):
            names += [f"conv{b}_{i}", f"relu{b}_{i}"]
        names.append(f"pool{b}")
    return names


def conv_names(arch: str) -> list[str]:
    return [f"conv{b}_{i}" for b, n in enumerate(BLOCKS[arch], 1) for i in range(1, n + 1)]


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


@dataclass
class VGGWeights:
    arch: str                                            # "vgg16" or "vgg19"
    convs: dict[str, tuple[torch.Tensor, torch.Tensor]]  # conv1_1 -> (weight OIHW, bias)
    preprocessing: str                                   # "caffe" or "torchvision"
    source: str                                          # where they came from, for model cards

    @property
    def fingerprint(self) -> str:
        w = self.convs["conv1_1"][0]
        return f"{self.arch}:{self.preprocessing}:{float(w.double().sum()):.6f}"


class Preprocess(nn.Module):
    """RGB 0..1 -> the network's input space."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        if kind == "caffe":
            self.register_buffer("mean", torch.tensor(CAFFE_MEAN_BGR).view(1, 3, 1, 1))
        elif kind == "torchvision":
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        else:
            raise ValueError(f"unknown preprocessing {kind!r}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "caffe":
            return x.flip(1) * 255.0 - self.mean
        return (x - self.mean) / self.std


class VGGEncoder(nn.Module):
    """Maps an RGB 0..1 image batch to a dict of the requested layers' activations.

    The weight source's own preprocessing runs first, so callers never think about BGR or means.
    `forward(image, layers)` may ask for a subset: the pass then stops at the deepest of those (the
    fast path's content targets need relu2_2 only: a third of the FLOPs of the pass to relu4_3).
    `channels_last` runs in NHWC memory (oneDNN's convolutions, bf16 above all, are much faster).
    """

    def __init__(self, weights: VGGWeights, layers: Iterable[str], pooling: str = "max",
                 channels_last: bool = True):
        super().__init__()
        if pooling not in ("max", "avg"):
            raise ImpastoError(f"pooling must be 'max' or 'avg', not {pooling!r}")
        self.arch = weights.arch
        self.weights_source = weights
        self.layers = set(check_layers(self.arch, layers))
        if not self.layers:
            raise ImpastoError("no VGG layers requested")
        order = layer_names(self.arch)
        last = max(order.index(n) for n in self.layers)
        deepest = max(order.index(n) for n in weights.convs)
        if last > deepest + 1:  # + 1: a conv's own relu needs no more weights
            raise ImpastoError(f"{weights.source} holds {self.arch} only up to {order[deepest]}; "
                               f"layer {order[last]} needs deeper weights")
        self.preprocess = Preprocess(weights.preprocessing)
        self.channels_last = channels_last
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
        if channels_last:
            self.to(memory_format=torch.channels_last)

    def train(self, mode: bool = True):  # frozen: always eval
        return super().train(False)

    def forward(self, image: torch.Tensor, layers: Optional[Iterable[str]] = None) -> dict[str, torch.Tensor]:
        want = self.layers if layers is None else set(layers)
        x = self.preprocess(image)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        out = {}
        for name, module in self.body.named_children():
            x = module(x)
            if name in want:
                out[name] = x
                if len(out) == len(want):
                    break
        return out

    def layer_masks(self, masks: torch.Tensor, layers: Optional[Iterable[str]] = None) -> dict[str, torch.Tensor]:
        """`layer_masks` for this encoder's architecture (and by default its layers)."""
        return layer_masks(masks, self.layers if layers is None else layers, self.arch)


def layer_masks(masks: torch.Tensor, layers: Iterable[str], arch: str = "vgg16") -> dict[str, torch.Tensor]:
    """(B, K, H, W) masks at image resolution -> {layer: (B, K, h, w)} at that layer's resolution.

    Follows the network: convolutions keep the size (padding 1) and each pool halves it with a
    2x2, stride-2 window (rounding down, as MaxPool2d/AvgPool2d do), which the masks follow with an
    average over the same window, so a mask value is the fraction of the cell inside the region.
    """
    layers = set(layers)
    out: dict[str, torch.Tensor] = {}
    m = masks.float()
    for name in layer_names(arch):
        if name.startswith("pool"):
            m = F.avg_pool2d(m, 2, 2)
        if name in layers:
            out[name] = m
        if len(out) == len(layers):
            break
    return out


def hard_layer_labels(labels: torch.Tensor, num_labels: int, layers: Iterable[str],
                      arch: str = "vgg16") -> dict[str, torch.Tensor]:
    """(H, W) label image -> {layer: (h, w) labels}: each feature cell takes the label covering
    most of it (the argmax of the pooled one-hot masks), so the regions stay a partition."""
    onehot = F.one_hot(labels.long(), num_labels).permute(2, 0, 1)[None].float()
    return {n: m[0].argmax(0) for n, m in layer_masks(onehot, layers, arch).items()}
