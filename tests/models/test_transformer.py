"""The single-style architectures: each paints a picture of the photo's own size (odd sides
included, as the runtime may pass them), and slim_wide is slim's layout at twice the width."""

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


def test_an_unknown_architecture_is_named_in_the_error():
    with pytest.raises(ImpastoError, match="unknown architecture 'huge'.*slim_wide"):
        TransformerNet("huge")
