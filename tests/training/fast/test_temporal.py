"""The temporal training term: exact synthetic motion, a term that measures disagreement, and
training that lowers it."""

from __future__ import annotations

import pytest
import torch

from impasto.errors import ImpastoError
from impasto.models.transformer import TransformerNet
from impasto.training.fast.temporal import Motion, move, random_motion, temporal_loss



@pytest.fixture(scope="module")
def batch(data):
    from impasto import images
    from impasto.models.tensors import to_tensor
    files = sorted((data / "coco_sample").glob("*.jpg"))[:4]
    return torch.cat([to_tensor(images.load(f, max_side=96))[..., :64, :64] for f in files])


def test_whole_pixel_shifts_are_exact(batch):
    theta = random_motion(4, 64, 64, Motion(shift=6, noise=0), torch.Generator().manual_seed(1))
    moved, inside = move(batch, theta)
    for i in range(4):
        dx, dy = (theta[i, :, 2] * 32).round().int().tolist()     # back to pixels
        assert theta[i, 0, 2] * 32 == dx and theta[i, 1, 2] * 32 == dy
        ys, xs = slice(max(0, -dy), 64 - max(0, dy)), slice(max(0, -dx), 64 - max(0, dx))
        src = batch[i, :, max(0, dy):64 + min(0, dy), max(0, dx):64 + min(0, dx)]
        assert torch.allclose(moved[i, :, ys, xs], src, atol=1e-5)
        assert inside[i, 0].sum() == (64 - abs(dx)) * (64 - abs(dy))


def test_a_mirror_is_exact_and_drawn_at_its_rate(batch):
    theta = random_motion(4, 64, 64, Motion(shift=0, noise=0, mirror=1), torch.Generator().manual_seed(1))
    moved, inside = move(batch, theta)
    assert torch.allclose(moved, batch.flip(-1), atol=1e-5) and bool(inside.all())
    signs = random_motion(400, 64, 64, Motion(shift=0, mirror=0.25), torch.Generator().manual_seed(2))[:, 0, 0]
    assert 60 < int((signs < 0).sum()) < 140


def test_a_mirror_penalises_strokes_of_one_direction_and_not_strokes_that_follow_the_photo(batch):
    """A diagonal texture stamped on every painting, whatever the photo, points the same way in
    the painting of the mirrored photo: the mirror sees it, a network that paints each pixel
    alone passes."""
    diagonal = ((torch.arange(64)[:, None] + torch.arange(64)[None]) // 3 % 2).float() * 0.2
    stamped = lambda x: x + diagonal       # noqa: E731
    pointwise = lambda x: x ** 2           # noqa: E731
    mirror = Motion(shift=0, noise=0, mirror=1)

    def term(net):
        return float(temporal_loss(net, batch, net(batch), mirror, torch.Generator().manual_seed(0)))

    assert term(pointwise) < 1e-10 < 1e-3 < term(stamped)
    assert float(temporal_loss(stamped, batch, stamped(batch), Motion(shift=0, noise=0))) < 1e-10


def test_the_term_is_zero_for_a_network_that_follows_the_motion_and_not_for_ours(batch):
    pointwise = torch.nn.Conv2d(3, 3, 1)        # sees each pixel alone: moves exactly with the photo
    motion = Motion(shift=6, noise=0)
    with torch.no_grad():
        zero = temporal_loss(pointwise, batch, pointwise(batch), motion, torch.Generator().manual_seed(0))
        torch.manual_seed(0)
        net = TransformerNet("slim")
        ours = temporal_loss(net, batch, net(batch), motion, torch.Generator().manual_seed(0))
    assert zero < 1e-10 < 1e-5 < ours


def test_training_on_the_term_lowers_it(batch):
    torch.manual_seed(0)
    net = TransformerNet("slim")
    motion = Motion(shift=6)
    fixed = lambda: temporal_loss(net, batch, net(batch), motion, torch.Generator().manual_seed(0))  # noqa: E731
    with torch.no_grad():
        before = float(fixed())
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(15):
        opt.zero_grad()
        temporal_loss(net, batch, net(batch), motion).backward()
        opt.step()
    with torch.no_grad():
        assert float(fixed()) < 0.5 * before


def test_bad_motion_keys_are_named():
    from impasto.training.fast.module import FastStyleModule
    with pytest.raises(ImpastoError, match="temporal_motion takes shift, zoom, rotate, noise, mirror"):
        FastStyleModule(style_weight=0, temporal_motion={"shfit": 3})


def test_lowpass_ignores_a_fixed_fine_texture_and_keeps_a_colour_drift(batch):
    """A 2-px checkerboard stamped on every painting disagrees with the moved painting at every
    pixel (odd shifts), but its block means are equal; a colour that follows the image's mean
    drifts as the motion brings in new content, and block means keep all of that."""
    checker = ((torch.arange(64)[:, None] + torch.arange(64)[None]) % 2).float() * 0.2
    texture = lambda x: x + checker        # noqa: E731
    drift = lambda x: x * 0 + x.mean(dim=(2, 3), keepdim=True) ** 2   # noqa: E731
    motion = Motion(shift=5, noise=0)

    def term(net, lowpass):
        return float(temporal_loss(net, batch, net(batch), motion, torch.Generator().manual_seed(3), lowpass))

    assert term(texture, 1) > 1e-3 and term(texture, 4) < 1e-10
    assert term(drift, 1) > 1e-7
    assert term(drift, 4) == pytest.approx(term(drift, 1), rel=0.05)


def test_a_bad_lowpass_is_refused():
    from impasto.training.fast.module import FastStyleModule
    with pytest.raises(ImpastoError, match="temporal_lowpass is a block size"):
        FastStyleModule(style_weight=0, temporal_lowpass=0)
