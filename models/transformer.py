"""Feed-forward style networks (Johnson et al. 2016) and a slim variant for real-time CPU use.

Both are fully convolutional: reflection padding, instance normalisation, nearest-neighbour
upsampling followed by a convolution (transposed convolutions leave checkerboard artefacts).
Input and output are RGB in 0..1. Any H x W works: the output is cropped back to the input
size; callers that care about borders reflect-pad to a multiple of 4 first (serve does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Optional

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
    # Speed levers for CPU inference (defaults = Johnson as published):
    padding: str = "reflect"  # "reflect" (Johnson) or "zeros" (inside the conv: no Pad ops, no layout copies)
    stem_padding: Optional[str] = None  # padding of the first conv only (default: `padding`); the
    #                                     3-channel input is cheap to reflect, and zeros there make a
    #                                     black frame that the style loss learns to paint on
    strides: tuple[int, int, int] = (1, 2, 2)  # of the three encoder convs (total must be 4)
    subpixel_blur: bool = False    # a fixed 3x3 binomial blur after each pixel shuffle (Sugawara et
    #                                al. 2018: removes the period-2 checkerboard sub-pixel convs make)
    subpixel_output: bool = False  # sub-pixel convs (conv to 4x the channels + pixel shuffle) for both
    #                                upsampling stages instead of nearest upsample + conv, the output
    #                                conv at half size; the encoder's strided convs separable too


ARCHITECTURES = {
    # Johnson et al. 2016, as published.
    "johnson": Architecture(),
    # Johnson's layout at 3/4 of its width, zero padding inside the body's convs (the stem
    # reflects): about half of Johnson's FLOPs, for the latency of a multi-style peer.
    "medium": Architecture(channels=(24, 48, 96), padding="zeros", stem_padding="reflect"),
    # Real-time on CPU: nothing but one pixel shuffle runs at full resolution (a strided stem,
    # a sub-pixel output stage), a narrower depthwise-separable body, zero padding inside the
    # convs (reflection pads and the layout copies around them cost more than the convs in
    # onnxruntime). About 1/20 of Johnson's FLOPs.
    "slim": Architecture(channels=(16, 32, 64), res_blocks=5, separable=True, edge_kernel=5,
                         padding="zeros", stem_padding="reflect", strides=(2, 2, 1), subpixel_output=True,
                         subpixel_blur=True),
}


def _conv(cin: int, cout: int, k: int, stride: int = 1, separable: bool = False,
          padding: str = "reflect") -> nn.Sequential:
    if padding == "reflect":
        layers, p = [nn.ReflectionPad2d(k // 2)], 0
    elif padding == "zeros":
        layers, p = [], k // 2
    else:
        raise ImpastoError(f"padding must be 'reflect' or 'zeros', not {padding!r}")
    if separable and k > 1 and cin > 3:
        return nn.Sequential(*layers, nn.Conv2d(cin, cin, k, stride, p, groups=cin, bias=False),
                             nn.Conv2d(cin, cout, 1))
    return nn.Sequential(*layers, nn.Conv2d(cin, cout, k, stride, p))


def _norm(c: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(c, affine=True)


class ResidualBlock(nn.Module):
    def __init__(self, c: int, separable: bool, padding: str = "reflect"):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c, 3, separable=separable, padding=padding), _norm(c),
                                  nn.ReLU(inplace=True),
                                  _conv(c, c, 3, separable=separable, padding=padding), _norm(c))

    def forward(self, x):
        return x + self.body(x)


class UpsampleConv(nn.Module):
    def __init__(self, cin: int, cout: int, separable: bool, padding: str = "reflect"):
        super().__init__()
        self.conv = _conv(cin, cout, 3, separable=separable, padding=padding)

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
        pad, (s1, s2, s3), sub = spec.padding, spec.strides, spec.subpixel_output
        if s1 * s2 * s3 != 4:
            raise ImpastoError(f"encoder strides {spec.strides} must downsample by 4 in total")
        self.encoder = nn.Sequential(
            _conv(3, c1, k, s1, padding=spec.stem_padding or pad), _norm(c1), nn.ReLU(inplace=True),
            _conv(c1, c2, 3, s2, separable=sub, padding=pad), _norm(c2), nn.ReLU(inplace=True),
            _conv(c2, c3, 3, s3, separable=sub, padding=pad), _norm(c3), nn.ReLU(inplace=True))
        self.residuals = nn.Sequential(*[ResidualBlock(c3, s, pad) for _ in range(spec.res_blocks)])
        if spec.subpixel_output:
            up = _conv(c3, c2 * 4, 3, separable=s, padding=pad)
            out = _conv(c2, 3 * 4, 3, separable=s, padding=pad)
            _icnr_(up[-1], 2)
            _icnr_(out[-1], 2)
            blur = (lambda c: [Blur(c)]) if spec.subpixel_blur else (lambda c: [])
            self.decoder = nn.Sequential(
                up, nn.PixelShuffle(2), *blur(c2), _norm(c2), nn.ReLU(inplace=True),
                out, nn.PixelShuffle(2), *blur(3))
        else:
            self.decoder = nn.Sequential(
                UpsampleConv(c3, c2, s, pad), _norm(c2), nn.ReLU(inplace=True),
                UpsampleConv(c2, c1, s, pad), _norm(c1), nn.ReLU(inplace=True),
                _conv(c1, 3, k, padding=pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = self.decoder(self.residuals(self.encoder(x)))
        return torch.sigmoid(y[..., :h, :w])

    def describe(self) -> dict:
        return {"name": self.arch_name, **asdict(self.spec),
                "parameters": sum(p.numel() for p in self.parameters())}


class Blur(nn.Module):
    """Fixed 3x3 binomial low-pass, per channel, edges replicated."""

    def __init__(self, c: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16).expand(c, 1, 3, 3).contiguous())

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.kernel.to(x.dtype), groups=x.shape[1])


def _icnr_(conv: nn.Conv2d, scale: int) -> None:
    """Aitken et al. 2017: initialise a sub-pixel conv so that, before training, it equals a
    nearest-neighbour upsample of a normal conv (no checkerboard pattern at the start)."""
    cout = conv.out_channels // (scale * scale)
    w = torch.empty(cout, *conv.weight.shape[1:])
    nn.init.kaiming_uniform_(w, a=5 ** 0.5)
    with torch.no_grad():
        conv.weight.copy_(w.repeat_interleave(scale * scale, dim=0))
        if conv.bias is not None:
            conv.bias.copy_(conv.bias[::scale * scale].repeat_interleave(scale * scale))


def build_transformer(arch: str = "johnson") -> TransformerNet:
    return TransformerNet(arch)
