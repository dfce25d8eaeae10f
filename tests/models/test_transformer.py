"""The single-style architectures: each paints a picture of the photo's own size (odd sides
included, as the runtime may pass them), slim_wide is slim's layout at twice the width, and
slim_dilated is slim's weights with a wider view, slim_skip passes the photo to the output, the
centred variants sample each 2x2 block at its centre, and slim_coarse grows slim by a branch at an
eighth of the photo's scale."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from impasto.errors import ImpastoError
from impasto.models.transformer import ARCHITECTURES, HalfPixelShift, TransformerNet


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_architecture_returns_a_picture_of_the_photos_size(arch):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 45, 70)
    with torch.no_grad():
        y = TransformerNet(arch).eval()(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all() and float(y.min()) >= 0.0 and float(y.max()) <= 1.0


def test_slim_wide_is_slim_at_twice_the_width():
    slim, wide = TransformerNet("slim"), TransformerNet("slim_wide")
    assert wide.spec.channels == tuple(2 * c for c in slim.spec.channels)
    same = {k: v for k, v in vars(slim.spec).items() if k != "channels"}
    assert same == {k: v for k, v in vars(wide.spec).items() if k != "channels"}
    count = lambda net: sum(p.numel() for p in net.parameters())  # noqa: E731
    assert 3 * count(slim) < count(wide) < 4 * count(slim)


def _reach(arch: str | TransformerNet) -> int:
    """How far (px) from a pixel the network's output still depends on it: the gradient of
    one output pixel with respect to the photo, the farthest nonzero column. The instance norms
    are taken out: their whole-image statistics tie every pixel to every other one."""
    torch.manual_seed(0)
    net = (TransformerNet(arch) if isinstance(arch, str) else arch).eval()
    for name, module in list(net.named_modules()):
        if isinstance(module, torch.nn.InstanceNorm2d):
            parent, _, leaf = name.rpartition(".")
            setattr(net.get_submodule(parent), leaf, torch.nn.Identity())
    x = torch.rand(1, 3, 192, 640, requires_grad=True)
    net(x)[0, :, 96, 320].sum().backward()
    columns = torch.nonzero(x.grad.abs().sum((0, 1, 2)))
    return int(max(320 - columns.min(), columns.max() - 320))


def test_slim_dilated_sees_farther_with_slims_weights():
    slim, dilated = TransformerNet("slim"), TransformerNet("slim_dilated")
    assert {k: v.shape for k, v in slim.state_dict().items()} == {k: v.shape for k, v in dilated.state_dict().items()}
    assert _reach("slim_dilated") >= 1.6 * _reach("slim")   # 100 px against 60


@pytest.mark.parametrize("body", ["slim", "slim_wide"])
def test_a_coarse_branch_starts_as_its_body_and_then_sees_four_times_as_far(body):
    torch.manual_seed(0)
    slim, coarse = TransformerNet(body).eval(), TransformerNet(body + "_coarse").eval()
    assert coarse.can_start_from(slim.state_dict()) and not slim.can_start_from(coarse.state_dict())
    coarse.load_state_dict(slim.state_dict(), strict=False)
    x = torch.rand(1, 3, 45, 70)                          # odd sides: the branch's grid is cropped
    with torch.no_grad():
        assert torch.equal(coarse(x), slim(x))             # its 1x1 out conv starts at zero
        nn.init.normal_(coarse.coarse.out.weight, std=0.1)  # as training moves it
        assert not torch.allclose(coarse(x), slim(x))
    assert _reach(coarse) >= 3.5 * _reach(body)             # 212 px against 60


def test_slim_skip_passes_the_photo_to_the_output():
    torch.manual_seed(0)
    slim, skip = TransformerNet("slim").eval(), TransformerNet("slim_skip").eval()
    skip.load_state_dict(slim.state_dict(), strict=False)
    x = torch.rand(1, 3, 40, 52)
    with torch.no_grad():
        assert torch.equal(skip(x), slim(x))               # the skip starts at zero: slim exactly
        for net in (slim, skip):                           # the body's last conv silenced
            net.decoder[5][1].weight.zero_()
            net.decoder[5][1].bias.zero_()
        skip.skip.weight.copy_(4 * torch.eye(3)[..., None, None])
        assert torch.allclose(slim(x), torch.full_like(x, 0.5))
        assert torch.allclose(skip(x), torch.sigmoid(4 * x), atol=1e-6)   # the photo, through the skip


def test_dilations_must_fit_the_residual_blocks():
    from dataclasses import replace
    with pytest.raises(ImpastoError, match="one positive int per residual block"):
        TransformerNet(replace(ARCHITECTURES["slim"], dilations=(1, 2)))


def test_an_unknown_architecture_is_named_in_the_error():
    with pytest.raises(ImpastoError, match="unknown architecture 'huge'.*slim_wide"):
        TransformerNet("huge")


def test_a_half_pixel_shift_makes_a_stride_2_conv_sample_block_centres():
    columns = torch.arange(8.0).expand(1, 1, 4, 8)           # each pixel holds its column
    sampled = HalfPixelShift()(columns)[..., ::2]             # what a stride-2 conv centres on
    assert torch.equal(sampled[0, 0, 0], torch.tensor([0.5, 2.5, 4.5, 6.5]))


def _symmetric(arch: str) -> TransformerNet:
    """The network with every kernel mirror-symmetric and each sub-pixel conv's four outputs
    equal (a nearest upsample): nothing in its weights prefers a side, only its grid can."""
    torch.manual_seed(0)
    net = TransformerNet(arch).eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.Conv2d):
                m.weight.copy_((m.weight + m.weight.flip(-1) + m.weight.flip(-2) + m.weight.flip(-1, -2)) / 4)
        for conv in (net.decoder[0][-1], net.decoder[5][-1]):   # the two convs before a pixel shuffle
            c = conv.out_channels // 4
            w = conv.weight.view(c, 4, -1).mean(1, keepdim=True).expand(c, 4, -1)
            conv.weight.copy_(w.reshape(conv.weight.shape))
            conv.bias.copy_(conv.bias.view(c, 4).mean(1, keepdim=True).expand(c, 4).reshape(-1))
    return net


@pytest.mark.parametrize("arch", ["slim", "slim_wide"])
def test_centred_strides_take_the_diagonal_out_of_the_grid(arch):
    """With symmetric weights, the painting of a mirrored photo should be the mirrored painting.
    slim's strided convs sample the top-left pixel of each block, so its painting moves 1.5 px
    the other way when the photo is mirrored; the centred variant has the same weights' names
    and starts from them, and agrees with its mirror (but for the image-wide norms' edges)."""
    plain, centred = _symmetric(arch), TransformerNet(f"{arch}_centred").eval()
    centred.load_state_dict(plain.state_dict())
    torch.manual_seed(1)
    x = F.interpolate(torch.rand(1, 3, 16, 24), size=(128, 192), mode="bicubic").clamp(0, 1)
    inner = (..., slice(16, -16), slice(16, -16))
    with torch.no_grad():
        disagreement = {name: float((net(x) - net(x.flip(-1)).flip(-1))[inner].abs().mean())
                        for name, net in (("plain", plain), ("centred", centred))}
        detail = float((plain(x) - plain(x).mean())[inner].abs().mean())
    assert disagreement["plain"] > 0.2 * detail
    assert disagreement["centred"] < 0.2 * disagreement["plain"]


def test_a_centred_stride_2_stem_must_reflect():
    from dataclasses import replace
    with pytest.raises(ImpastoError, match="stem_padding='reflect'"):
        TransformerNet(replace(ARCHITECTURES["slim"], centred=True, stem_padding="zeros"))


@pytest.mark.parametrize("arch", ["slim_dilated", "slim_coarse"])
def test_dilated_convs_get_their_true_weight_gradient_under_cpu_bf16(arch):
    """Training runs channels-last under bf16 autocast. On CPUs with AVX-512 BF16, oneDNN's kernel
    for a dilated depthwise conv on maps of 32 px and more returns a wrong weight gradient
    (relative error about 1.4, at times inf): what made dilated networks go nan. Each dilated conv,
    on the input it gets inside the network, must get fp32's gradient within bf16's rounding."""
    torch.manual_seed(0)
    net = TransformerNet(arch).to(memory_format=torch.channels_last)
    dilated = {n: m for n, m in net.named_modules() if isinstance(m, nn.Conv2d) and max(m.dilation) > 1}
    inputs = {}
    hooks = [m.register_forward_hook(lambda m, args, out, n=n: inputs.setdefault(n, args[0].detach()))
             for n, m in dilated.items()]
    with torch.no_grad():  # 256 px: the body's maps are 64 px, the coarse branch's 32
        net(torch.rand(2, 3, 256, 256).contiguous(memory_format=torch.channels_last))
    for hook in hooks:
        hook.remove()
    assert dilated and inputs.keys() == dilated.keys()

    for name, conv in dilated.items():
        x = inputs[name]
        upstream = torch.randn(x.shape[0], conv.out_channels, *x.shape[2:]).contiguous(
            memory_format=torch.channels_last)

        def weight_grad(bf16: bool) -> torch.Tensor:
            conv.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = conv(x)
            out.backward(upstream)
            return conv.weight.grad.clone()

        exact, mixed = weight_grad(False), weight_grad(True)
        assert torch.isfinite(mixed).all(), name
        error = float((mixed - exact).norm() / exact.norm())
        assert error < 0.02, f"{name}: relative error {error:.3g}"
