"""The multi-style network (conditional instance norm): a one-hot mix is exactly that style, a
single-style network carried over gives itself for every style, a 50/50 blend's Gram matrices
lie between the two styles' (real VGG, real photo), and a uniform per-pixel map equals the mix."""

from __future__ import annotations

import pytest
import torch

from impasto import images
from impasto.errors import ImpastoError
from impasto.models.losses import GATYS_STYLE, gram
from impasto.models.tensors import to_tensor
from impasto.models.transformer import ConditionalInstanceNorm2d, MultiStyleTransformerNet, TransformerNet
from impasto.models.vgg import VGGEncoder

from helpers import photos_in


@pytest.fixture(autouse=True)
def _one_thread(one_thread):
    yield


def distinct_styles(arch: str = "slim", count: int = 2, seed: int = 0) -> MultiStyleTransformerNet:
    """A network whose styles paint clearly differently: each style's norms drawn on their own."""
    torch.manual_seed(seed)
    net = MultiStyleTransformerNet(arch, count).eval()
    with torch.no_grad():
        for norm in net.norms():
            norm.weight.uniform_(0.3, 2.0)
            norm.bias.uniform_(-0.8, 0.8)
    return net


def test_single_style_network_is_unchanged_and_carries_over():
    torch.manual_seed(1)
    single = TransformerNet("slim").eval()
    assert not any(isinstance(m, ConditionalInstanceNorm2d) for m in single.modules())
    with torch.no_grad():
        for m in single.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.3, 0.3)
    multi = MultiStyleTransformerNet.from_single(single, 3).eval()
    assert set(multi.state_dict()) == set(single.state_dict())   # the same layers, norms widened
    x = torch.rand(2, 3, 52, 68)
    with torch.no_grad():
        ref = single(x)
        for w in ([1.0, 0, 0], [0, 0, 1.0], [0.2, 0.3, 0.5]):
            torch.testing.assert_close(multi(x, torch.tensor([w, w])), ref, rtol=0, atol=1e-5)


def test_one_hot_is_that_style_and_a_uniform_map_is_the_mix():
    net = distinct_styles(count=3)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        a = net(x, torch.tensor([[1.0, 0, 0]]))
        b = net(x, torch.tensor([[0, 1.0, 0]]))
        mix = torch.tensor([[0.2, 0.5, 0.3]])
        flat = net(x, mix)
        per_pixel = net(x, mix[:, :, None, None].expand(1, 3, 64, 64))
    assert (a - b).abs().mean() > 0.02   # in 0..1: the styles differ
    torch.testing.assert_close(per_pixel, flat, rtol=0, atol=1e-4)


def test_style_weights_of_the_wrong_shape_are_refused():
    net = distinct_styles(count=2)
    with pytest.raises(ImpastoError, match=r"\(N, 2\)"):
        net(torch.rand(1, 3, 32, 32), torch.ones(1, 3))
    with pytest.raises(ImpastoError):
        MultiStyleTransformerNet("slim", 0)


def styles_from_one_base(seed: int = 0) -> MultiStyleTransformerNet:
    """Two styles as training makes them: one base network's norms, the second style's moved off
    them (what train-multi does from init_from, or add_to from the mean of the styles)."""
    torch.manual_seed(seed)
    net = MultiStyleTransformerNet("slim", 2).eval()
    with torch.no_grad():
        for norm in net.norms():
            norm.weight[:] = torch.empty(norm.weight.shape[1]).uniform_(0.5, 1.5)
            norm.bias[:] = torch.empty(norm.bias.shape[1]).uniform_(-0.2, 0.2)
            norm.weight[1] += torch.empty_like(norm.weight[1]).uniform_(-0.5, 0.5)
            norm.bias[1] += torch.empty_like(norm.bias[1]).uniform_(-0.4, 0.4)
    return net


def test_a_half_and_half_blend_has_grams_between_the_two_styles(vgg_weights, data):
    net = styles_from_one_base()
    vgg = VGGEncoder(vgg_weights, GATYS_STYLE)
    photo = to_tensor(images.load(photos_in(data)[0], max_side=128))
    with torch.no_grad():
        grams = {}
        for name, w in (("a", [1.0, 0.0]), ("b", [0.0, 1.0]), ("mix", [0.5, 0.5])):
            feats = vgg(net(photo, torch.tensor([w])))
            grams[name] = {n: gram(feats[n])[0].double() for n in GATYS_STYLE}
    for layer in GATYS_STYLE:
        a, b, mix = (grams[k][layer] for k in ("a", "b", "mix"))
        apart = (a - b).norm()
        assert (mix - a).norm() < apart and (mix - b).norm() < apart, layer
        # where the mix falls along the line from a to b (0 = a, 1 = b), and how far off it
        t = float(((mix - a) * (b - a)).sum() / apart ** 2)
        off = float((mix - a - t * (b - a)).norm() / apart)
        print(f"{layer}: t={t:.2f} off the line={off:.2f}")
        assert 0.25 < t < 0.8 and off < 0.6, (layer, t, off)
