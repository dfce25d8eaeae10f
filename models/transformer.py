"""Feed-forward style networks (Johnson et al. 2016) and a slim variant for real-time CPU use.

Both are fully convolutional: reflection padding, instance normalisation, nearest-neighbour
upsampling followed by a convolution (transposed convolutions leave checkerboard artefacts).
Input and output are RGB in 0..1. Any H x W works: the output is cropped back to the input
size; callers that care about borders reflect-pad to a multiple of 4 first (serve does).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
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
    dilations: Optional[tuple[int, ...]] = None  # per residual block (Yu & Koltun 2016): a wider view
    #                                for the same weights and arithmetic; default 1 for every block
    input_skip: bool = False  # a 1x1 conv from the photo added to the output's logits (zero at
    #                           the start): copying the photo then costs the body nothing
    centred: bool = False     # a 2x2 mean before each stride-2 conv, so that it samples the centre
    #                           of each 2x2 block, not its top-left pixel (see HalfPixelShift)
    coarse_dilations: tuple[int, ...] = ()  # residual blocks of a branch at half the body's
    #                           resolution and twice its width, added back to the body's input
    #                           through a 1x1 conv that starts at zero (see CoarseBranch)


# Real-time on CPU: nothing but one pixel shuffle runs at full resolution (a strided stem,
# a sub-pixel output stage), a narrower depthwise-separable body, zero padding inside the
# convs (reflection pads and the layout copies around them cost more than the convs in
# onnxruntime). About 1/20 of Johnson's FLOPs.
_SLIM = Architecture(channels=(16, 32, 64), res_blocks=5, separable=True, edge_kernel=5, padding="zeros",
                     stem_padding="reflect", strides=(2, 2, 1), subpixel_output=True, subpixel_blur=True)
_SLIM_WIDE = replace(_SLIM, channels=(32, 64, 128))   # slim at twice its width

ARCHITECTURES = {
    # Johnson et al. 2016, as published.
    "johnson": Architecture(),
    # Johnson's layout at 3/4 of its width, zero padding inside the body's convs (the stem
    # reflects): about half of Johnson's FLOPs, for the latency of a multi-style peer.
    "medium": Architecture(channels=(24, 48, 96), padding="zeros", stem_padding="reflect"),
    "slim": _SLIM,
    # slim at twice its width: the capacity lever that keeps slim's real-time layout.
    "slim_wide": _SLIM_WIDE,
    # slim with dilated residual blocks: each output pixel sees 100 px each way instead of 60,
    # with slim's weights and arithmetic, for shapes larger than slim's strokes (candy's circles).
    "slim_dilated": replace(_SLIM, dilations=(1, 2, 4, 2, 1)),
    # slim with the photo passed to the output: the body's capacity goes to the painting.
    "slim_skip": replace(_SLIM, input_skip=True),
    # slim and slim_wide with centred strides: the same weights, without the grid's diagonal.
    "slim_centred": replace(_SLIM, centred=True),
    "slim_wide_centred": replace(_SLIM_WIDE, centred=True),
    # slim with a coarse branch: each output pixel sees 212 px each way instead of 60, the
    # scale of the deepest style layer's features (relu5_1 sees 196 px), for 1.2-1.3x slim's
    # time at 512 px. slim's weights fill it and it starts as slim exactly, so it grows a
    # trained network rather than training one from its base.
    "slim_coarse": replace(_SLIM, coarse_dilations=(1, 2, 4, 2)),
    # the same branch on slim_wide (the bundled candy and mosaic): it grows them as slim_coarse
    # grows slim.
    "slim_wide_coarse": replace(_SLIM_WIDE, coarse_dilations=(1, 2, 4, 2)),
}


def _conv(cin: int, cout: int, k: int, stride: int = 1, separable: bool = False,
          padding: str = "reflect", dilation: int = 1) -> nn.Sequential:
    reach = dilation * (k // 2)
    if padding == "reflect":
        layers, p = [nn.ReflectionPad2d(reach)], 0
    elif padding == "zeros":
        layers, p = [], reach
    else:
        raise ImpastoError(f"padding must be 'reflect' or 'zeros', not {padding!r}")
    if separable and k > 1 and cin > 3:
        depthwise = DilatedDepthwiseConv2d if dilation > 1 else nn.Conv2d
        return nn.Sequential(*layers, depthwise(cin, cin, k, stride, p, dilation, groups=cin, bias=False),
                             nn.Conv2d(cin, cout, 1))
    return nn.Sequential(*layers, nn.Conv2d(cin, cout, k, stride, p, dilation))


class DilatedDepthwiseConv2d(nn.Conv2d):
    """A dilated depthwise conv that runs in NCHW on CPU, whatever the memory format of its input
    and weight. Given either channels-last in bf16, on maps of 32 px or more, oneDNN returns a
    wrong weight gradient (relative error about 1.4, at times inf) on AVX-512 BF16 CPUs: the nans
    of docs/training.md's dilated runs. Its NCHW kernel is right and as fast. Only training
    needs it: the forward pass is right either way, and export keeps the plain conv's graph."""

    def forward(self, x):
        if not (self.training and x.device.type == "cpu"):  # inference and export: the plain conv
            return super().forward(x)
        # clone, not contiguous(): a (C, 1, k, k) weight with channels-last strides counts as
        # contiguous already, and oneDNN would still pick the channels-last kernel from it
        weight = self.weight.clone(memory_format=torch.contiguous_format)
        return F.conv2d(x.contiguous(), weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _norm(c: int) -> nn.InstanceNorm2d:
    return nn.InstanceNorm2d(c, affine=True)


class ResidualBlock(nn.Module):
    def __init__(self, c: int, separable: bool, padding: str = "reflect", dilation: int = 1):
        super().__init__()
        self.body = nn.Sequential(_conv(c, c, 3, separable=separable, padding=padding, dilation=dilation),
                                  _norm(c), nn.ReLU(inplace=True),
                                  _conv(c, c, 3, separable=separable, padding=padding, dilation=dilation),
                                  _norm(c))

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
        encoder = [
            _conv(3, c1, k, s1, padding=spec.stem_padding or pad), _norm(c1), nn.ReLU(inplace=True),
            _conv(c1, c2, 3, s2, separable=sub, padding=pad), _norm(c2), nn.ReLU(inplace=True),
            _conv(c2, c3, 3, s3, separable=sub, padding=pad), _norm(c3), nn.ReLU(inplace=True)]
        if spec.centred:
            _centre_strides(encoder, spec.strides)
        self.encoder = nn.Sequential(*encoder)
        dilations = tuple(spec.dilations or (1,) * spec.res_blocks)
        if len(dilations) != spec.res_blocks or min(dilations) < 1:
            raise ImpastoError(f"dilations {spec.dilations} must give one positive int per residual block "
                               f"({spec.res_blocks})")
        self.residuals = nn.Sequential(*[ResidualBlock(c3, s, pad, d) for d in dilations])
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
        self.skip = _zero_conv1x1(3, 3) if spec.input_skip else None
        self.coarse = CoarseBranch(c3, spec.coarse_dilations, s, pad) if spec.coarse_dilations else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        features = self.encoder(x)
        if self.coarse is not None:
            features = features + self.coarse(features)
        return _picture(self.decoder(self.residuals(features))[..., :h, :w], x, self.skip)

    def can_start_from(self, state: dict) -> bool:
        """Whether `state` (another network's weights) fills every weight of this one with the same
        names and shapes; an input skip or a coarse branch it lacks is fine: both add to the
        network through a conv that starts at zero, so this network then starts as that one
        exactly (slim into slim_dilated, slim_skip or slim_coarse)."""
        own = self.state_dict()
        extra = own.keys() - state.keys()
        return (state.keys() <= own.keys() and all(k.startswith(("skip.", "coarse.")) for k in extra)
                and all(state[k].shape == own[k].shape for k in state))

    def describe(self) -> dict:
        return {"name": self.arch_name, **asdict(self.spec),
                "parameters": sum(p.numel() for p in self.parameters())}


class CoarseBranch(nn.Module):
    """Residual blocks at half the body's resolution (an eighth of the photo's) and twice its width,
    for the largest shapes of a painting (starry_night's swirls): at that scale a 3x3 conv spans
    24 px of the photo, and dilated ones more, and a pixel costs a quarter of one in the body.
    Its output joins the body through a 1x1 conv that starts at zero (the zero convolution of
    Zhang et al. 2023's ControlNet), so a trained network grown by it starts unchanged."""

    def __init__(self, c: int, dilations: tuple[int, ...], separable: bool, padding: str):
        super().__init__()
        if min(dilations) < 1:
            raise ImpastoError(f"coarse dilations {dilations} must be positive ints")
        wide = 2 * c
        self.down = nn.Sequential(_conv(c, wide, 3, 2, separable=separable, padding=padding),
                                  _norm(wide), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[ResidualBlock(wide, separable, padding, d) for d in dilations])
        self.out = _zero_conv1x1(wide, c)

    def forward(self, x):
        h, w = x.shape[-2:]
        coarse = self.out(self.blocks(self.down(x)))
        return F.interpolate(coarse, scale_factor=2.0, mode="nearest")[..., :h, :w]


class Blur(nn.Module):
    """Fixed 3x3 binomial low-pass, per channel, edges replicated."""

    def __init__(self, c: int):
        super().__init__()
        k = torch.tensor([1.0, 2.0, 1.0])
        self.register_buffer("kernel", (k[:, None] * k[None, :] / 16).expand(c, 1, 3, 3).contiguous())

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.kernel.to(x.dtype), groups=x.shape[1])


class HalfPixelShift(nn.Module):
    """The mean of each 2x2 block, written at its top-left pixel (last row and column replicated).

    A stride-2 conv with an odd kernel samples pixels 0, 2, 4...: the top-left pixel of each 2x2
    block, half a pixel up and left of the block's centre. Two of them put the encoder's grid
    1.5 px up and left of the decoder's (whose pixel shuffle and nearest upsample fill each block
    around its centre): one diagonal that no photo or painting has. (It was the suspect for the
    trained networks' one-diagonal strokes, and is not their cause: docs/training.md.) After this
    mean the same conv samples block centres (Zhang 2019's blur-pool with the [1, 1] filter).
    It has no weights, so a network trained without it keeps every parameter's name and can
    start from them."""

    def forward(self, x):
        return F.avg_pool2d(F.pad(x, (0, 1, 0, 1), mode="replicate"), 2, stride=1)


def _centre_strides(encoder: list[nn.Module], strides: tuple[int, int, int]) -> None:
    """Put a HalfPixelShift before each stride-2 conv of the encoder's [conv, norm, ReLU] x 3,
    inside a weightless module (the stem's padding, the ReLU before), so no parameter is renamed."""
    if any(s not in (1, 2) for s in strides):
        raise ImpastoError(f"centred strides need strides of 1 or 2, not {strides}")
    for i, stride in enumerate(strides):
        if stride == 1:
            continue
        if i == 0:
            pad = encoder[0][0]
            if not isinstance(pad, nn.ReflectionPad2d):
                raise ImpastoError("a centred stride-2 stem needs stem_padding='reflect'")
            encoder[0][0] = nn.Sequential(HalfPixelShift(), pad)
        else:
            encoder[3 * i - 1] = nn.Sequential(encoder[3 * i - 1], HalfPixelShift())


def _picture(logits: torch.Tensor, photo: torch.Tensor, skip: Optional[nn.Conv2d]) -> torch.Tensor:
    return torch.sigmoid(logits if skip is None else logits + skip(photo))


def _zero_conv1x1(cin: int, cout: int) -> nn.Conv2d:
    conv = nn.Conv2d(cin, cout, 1)
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)
    return conv


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


# ----------------------------------------------------------------------------- many styles

class ConditionalInstanceNorm2d(nn.Module):
    """Instance norm whose scale and shift belong to the style (Dumoulin et al. 2017).

    `weight` and `bias` are (styles, channels) tables. The forward takes style weights: (N, S),
    one mix per image, or (N, S, H, W), one mix per pixel (resized to this layer's size, each
    style normalised by the statistics of the pixels it paints). The layer's scale and shift are
    the weights times the tables, so a one-hot row is exactly that style and a mix blends the
    styles' parameters (not their outputs).
    """

    def __init__(self, channels: int, num_styles: int, eps: float = 1e-5):
        super().__init__()
        if num_styles < 1:
            raise ImpastoError(f"a multi-style network needs at least one style, not {num_styles}")
        self.num_features, self.num_styles, self.eps = channels, num_styles, eps
        self.weight = nn.Parameter(torch.ones(num_styles, channels))
        self.bias = nn.Parameter(torch.zeros(num_styles, channels))

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        w = style_weights.to(x.dtype)
        if w.dim() == 2:
            x = F.instance_norm(x, eps=self.eps)
            scale, shift = w @ self.weight.to(x.dtype), w @ self.bias.to(x.dtype)
            return x * scale[:, :, None, None] + shift[:, :, None, None]
        w = F.interpolate(w, size=x.shape[-2:], mode="bilinear", align_corners=False)
        x = self._regional_norm(x, w)
        scale = torch.einsum("nshw,sc->nchw", w, self.weight.to(x.dtype))
        shift = torch.einsum("nshw,sc->nchw", w, self.bias.to(x.dtype))
        return x * scale + shift

    def _regional_norm(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Instance norm with each style's statistics taken over the pixels it paints (weighted
        by its map), each pixel normalised by its mix of them. With one style everywhere this is
        plain instance norm; with a half-and-half mask each half is normalised by its own
        statistics, as if painted alone, instead of by the whole image's (which mixes the other
        style's activations in: measured on a two-style net, 3x further from the single-style
        result). The iterative path's regions normalise their Grams per region the same way."""
        mass = w.sum((2, 3)).clamp_min(1e-6)[..., None]                     # (N, S, 1)
        mean = torch.einsum("nchw,nshw->nsc", x, w) / mass                  # (N, S, C)
        var = (torch.einsum("nchw,nshw->nsc", x * x, w) / mass - mean * mean).clamp_min(0.0)
        inv = torch.rsqrt(var + self.eps)
        a = torch.einsum("nshw,nsc->nchw", w, inv)
        b = torch.einsum("nshw,nsc->nchw", w, mean * inv)
        return x * a - b


class MultiStyleTransformerNet(nn.Module):
    """One of the TransformerNet architectures with every instance norm made conditional: the
    convolutions are shared, each style owns the scale and shift of every norm. Same layers and
    widths as the single-style network, so the same latency but for the norms' blend.

    forward(x, style_weights): x (N, 3, H, W) in 0..1; style_weights (N, S) or (N, S, H, W),
    non-negative, each mix summing to 1 (callers normalise).
    """

    def __init__(self, arch: str | Architecture = "slim", num_styles: int = 1):
        super().__init__()
        base = TransformerNet(arch)
        self.arch_name, self.spec, self.num_styles = base.arch_name, base.spec, num_styles
        _make_conditional(base, num_styles)
        self.encoder, self.residuals, self.decoder = base.encoder, base.residuals, base.decoder
        self.skip = base.skip

    @classmethod
    def from_single(cls, net: TransformerNet, num_styles: int) -> "MultiStyleTransformerNet":
        """A multi-style network that starts as `net` for every style: convolutions copied, each
        norm's scale and shift broadcast to every style's row."""
        multi = cls(net.spec, num_styles)
        multi.arch_name = net.arch_name
        state = {k: (v[None].expand(num_styles, -1).clone() if _is_norm_param(multi, k) else v)
                 for k, v in net.state_dict().items()}
        multi.load_state_dict(state)
        return multi

    def norms(self) -> list[ConditionalInstanceNorm2d]:
        return [m for m in self.modules() if isinstance(m, ConditionalInstanceNorm2d)]

    def add_styles(self, count: int = 1) -> list[nn.Parameter]:
        """Append `count` style rows to every norm, each starting at the mean of the existing
        styles; returns the tables (their last `count` rows are the new styles)."""
        tables = []
        with torch.no_grad():
            for norm in self.norms():
                for name in ("weight", "bias"):
                    old = getattr(norm, name)
                    new = torch.cat([old, old.mean(0, keepdim=True).expand(count, -1)])
                    setattr(norm, name, nn.Parameter(new))
                    tables.append(getattr(norm, name))
                norm.num_styles += count
        self.num_styles += count
        return tables

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        if style_weights.dim() not in (2, 4) or style_weights.shape[1] != self.num_styles:
            raise ImpastoError(f"style weights must be (N, {self.num_styles}) or (N, {self.num_styles}, H, W), "
                               f"not {tuple(style_weights.shape)}")
        h, w = x.shape[-2:]
        y = x
        for stage in (self.encoder, self.residuals, self.decoder):
            y = _run_conditional(stage, y, style_weights)
        return _picture(y[..., :h, :w], x, self.skip)

    def describe(self) -> dict:
        return {"name": self.arch_name, **asdict(self.spec), "styles": self.num_styles,
                "parameters": sum(p.numel() for p in self.parameters())}


def _is_norm_param(net: nn.Module, key: str) -> bool:
    owner = net.get_submodule(key.rsplit(".", 1)[0])
    return isinstance(owner, ConditionalInstanceNorm2d)


def _make_conditional(module: nn.Module, num_styles: int) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.InstanceNorm2d):
            setattr(module, name, ConditionalInstanceNorm2d(child.num_features, num_styles, child.eps))
        else:
            _make_conditional(child, num_styles)


def _run_conditional(module: nn.Module, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
    """Run a TransformerNet stage, handing the style weights to each conditional norm (the
    stages are nn.Sequential, which passes one tensor along)."""
    if isinstance(module, ConditionalInstanceNorm2d):
        return module(x, style_weights)
    if isinstance(module, ResidualBlock):
        return x + _run_conditional(module.body, x, style_weights)
    if isinstance(module, nn.Sequential):
        for child in module:
            x = _run_conditional(child, x, style_weights)
        return x
    return module(x)
