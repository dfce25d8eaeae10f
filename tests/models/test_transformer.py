"""The single-style architectures: each paints a picture of the photo's own size (odd sides
included, as the runtime may pass them), slim_wide is slim's layout at twice the width, and
slim_dilated is slim's weights with a wider view, slim_skip passes the photo to the output."""

from __future__ import annotations

import pytest
import torch

from impasto.errors import ImpastoError
from impasto.models.transformer import ARCHITECTURES, TransformerNet


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


def _reach(arch: str) -> int:
    """How far (px) from a pixel the network's output still depends on it: the gradient of
    one output pixel with respect to the photo, the farthest nonzero column. The instance norms
    are taken out: their whole-image statistics tie every pixel to every other one."""
    torch.manual_seed(0)
    net = TransformerNet(arch).eval()
    for name, module in list(net.named_modules()):
        if isinstance(module, torch.nn.InstanceNorm2d):
            parent, _, leaf = name.rpartition(".")
            setattr(net.get_submodule(parent), leaf, torch.nn.Identity())
    x = torch.rand(1, 3, 192, 384, requires_grad=True)
    net(x)[0, :, 96, 192].sum().backward()
    columns = torch.nonzero(x.grad.abs().sum((0, 1, 2)))
    return int(max(192 - columns.min(), columns.max() - 192))


def test_slim_dilated_sees_farther_with_slims_weights():
    slim, dilated = TransformerNet("slim"), TransformerNet("slim_dilated")
    assert {k: v.shape for k, v in slim.state_dict().items()} == {k: v.shape for k, v in dilated.state_dict().items()}
    assert _reach("slim_dilated") >= 1.6 * _reach("slim")   # 100 px against 60


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
