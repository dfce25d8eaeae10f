"""Feed-forward style networks (Johnson et al. 2016) and a slim variant for real-time CPU use.

Both are fully convolutional: reflection padding, instance normalisation, nearest-neighbour
upsampling followed by a convolution (transposed convolutions leave checkerboard artefacts).
Input and output are RGB in 0..1. Any H x W works: the output is cropped back to the input
size; callers that care about borders reflect-pad to a multiple of 4 first (serve does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from impasto.errors import ImpastoError


@dataclass(frozen=True)
class Architecture:
    channels: tuple[int, int, int] = (32, 64, 128)
    res_blocks: int = 5
    separable: bool = False   # depthwise-separable convs in the residual and upsampling stages
    edge_kernel: int = 9      # kernel of the first and last convolution


ARCHITECTURES = {
    # Johnson et al. 2016, as published.
    "johnson": Architecture(),
    # About a tenth of the FLOPs: narrower, depthwise-separable body, smaller edge kernels.
    "slim": Architecture(channels=(16, 32, 64), res_blocks=5, separable=True, edge_kernel=5),
}


def _conv(cin: int, cout: int, k: int, stride: int = 1, separable: bool = False) -> nn.Sequential:
    pad = nn.ReflectionPad2d(k // 2)
    if separable and k > 1 and cin > 3:
        return nn.Sequential(pad, nn.Conv2d(cin, cin, k, stride, groups=cin, bias=False),
                             nn.Conv2d(cin, cout, 1))
    return nn.Sequential(pad, nn.Conv2d(cin, cout, k, stride))


def _norm(c: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(c, affine=True)


class ResidualBlock(nn.Module):
    def __init__(self, c: int, separable: bool):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c, 3, separable=separable), _norm(c), nn.ReLU(inplace=True),
                                  _conv(c, c, 3, separable=separable), _norm(c))

    def forward(self, x):
        return x + self.body(x)


class UpsampleConv(nn.Module):
    def __init__(self, cin: int, cout: int, separable: bool):
        super().__init__()
        self.conv = _conv(cin, cout, 3, separable=separable)

    def forward(self, x):
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class TransformerNet(nn.Module):
    def __init__(self, arch: str | Architecture = "johnson"):
        super().__init__()
        if isinstance(arch, str):
            if arch not in ARCHITECTURES:
                raise ImpastoError(f"unknown architecture {arch!r}; choose from {', '.join(ARCHITECTURES)}")
            self.arch_name, spec = arch, ARCHITECTURES[arch]
        else:
            self.arch_name, spec = "custom", arch
        self.spec = spec
        c1, c2, c3 = spec.channels
        s, k = spec.separable, spec.edge_kernel
        self.encoder = nn.Sequential(
            _conv(3, c1, k), _norm(c1), nn.ReLU(inplace=True),
            _conv(c1, c2, 3, 2), _norm(c2), nn.ReLU(inplace=True),
            _conv(c2, c3, 3, 2), _norm(c3), nn.ReLU(inplace=True))
        self.residuals = nn.Sequential(*[ResidualBlock(c3, s) for _ in range(spec.res_blocks)])
        self.decoder = nn.Sequential(
            UpsampleConv(c3, c2, s), _norm(c2), nn.ReLU(inplace=True),
            UpsampleConv(c2, c1, s), _norm(c1), nn.ReLU(inplace=True),
            _conv(c1, 3, k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.decoder(self.residuals(self.encoder(x)))
        return torch.sigmoid(y[..., :h, :w])

    def describe(self) -> dict:
        return {"name": self.arch_name, **asdict(self.spec),
                "parameters": sum(p.numel() for p in self.parameters())}


def build_transformer(arch: str = "johnson") -> TransformerNet:
    return TransformerNet(arch)
