"""Perceptual loss terms on the real VGG: zero where they should be, moving the right way."""

import pytest
import torch

from impasto import images
from impasto.errors import ImpastoError
from impasto.models.losses import (ContentLoss, HistogramLoss, MRFLoss, SlicedWassersteinLoss, StyleLoss,
                                   TVLoss, gram)
from impasto.models.objective import Objective
from impasto.models.tensors import to_tensor


@pytest.fixture(scope="module")
def pair(data):
    content = images.load(data / "content" / "tubingen.jpg", 64)
    style = images.resize_to(images.load(data / "style" / "starry_night.jpg"), content.shape[1::-1])
    return to_tensor(content), to_tensor(style)


def test_gram_normalisations():
    f = torch.randn(2, 8, 5, 6)
    g_chw, g_px = gram(f, "chw"), gram(f, "pixels")
    assert g_chw.shape == (2, 8, 8)
    assert torch.allclose(g_px, g_chw * 8, atol=1e-5)
    assert torch.allclose(g_chw[0], g_chw[0].T)
    with pytest.raises(ImpastoError):
        gram(f, "bogus")


def test_gram_is_fp32_under_bf16_autocast():
    f = torch.randn(1, 4, 8, 8)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert gram(f.bfloat16()).dtype == torch.float32


def test_gram_is_the_same_in_either_memory_layout_with_its_gradient():
    f = torch.randn(2, 8, 5, 6)
    a = f.clone().requires_grad_(True)
    b = f.clone().contiguous(memory_format=torch.channels_last).requires_grad_(True)
    ga, gb = gram(a), gram(b)
    torch.testing.assert_close(ga, gb)
    (ga ** 2).sum().backward()
    (gb ** 2).sum().backward()
    torch.testing.assert_close(a.grad, b.grad)


def test_bf16_gram_only_on_request_and_close_to_fp32():
    f = torch.rand(1, 16, 32, 32)
    exact = gram(f)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.equal(gram(f), exact)                 # the default stays fp32
        fast = gram(f, bf16=True)
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)
    assert (fast - exact).abs().max() < 1e-2 * exact.abs().max()
    assert torch.equal(gram(f, bf16=True), exact)         # no autocast: fp32 whatever is asked


def test_each_term_is_zero_at_its_target_and_positive_elsewhere(vgg_weights, pair):
    content, style = pair
    loss = Objective(vgg_weights, content=ContentLoss(), style=StyleLoss(), histogram=HistogramLoss(),
                          mrf=MRFLoss())
    loss.set_targets(content, [style])
    with torch.no_grad():
        _, on_content = loss(content)
        _, on_style = loss(style)
    assert on_content["content"] < 1e-6 < on_style["content"]
    assert on_style["style"] < 1e-6 * on_content["style"]
    assert on_style["histogram"] < 1e-3 * on_content["histogram"]
    assert on_style["mrf"] < 1e-6 * max(1.0, float(on_content["mrf"]))
    assert on_content["mrf"] > 0


def test_style_blend_targets_are_weighted_grams(vgg_weights, pair):
    content, style = pair
    term = StyleLoss(["relu2_1"], gram_norm="chw")
    loss = Objective(vgg_weights, style=term)
    loss.set_targets(None, [content, style], [3, 1])
    with torch.no_grad():
        g_c = gram(loss.vgg(content)["relu2_1"], "chw")
        g_s = gram(loss.vgg(style)["relu2_1"], "chw")
    assert torch.allclose(term.targets["relu2_1"], 0.75 * g_c + 0.25 * g_s, rtol=1e-4, atol=1e-6)
    with pytest.raises(ImpastoError, match="style weights"):
        loss.set_targets(None, [content, style], [1])


def test_intensity_scales_the_target(vgg_weights, pair):
    _, style = pair
    a, b = StyleLoss(["relu1_1"]), StyleLoss(["relu1_1"], intensity=2.0)
    for term in (a, b):
        Objective(vgg_weights, style=term).set_targets(None, [style])
    assert torch.allclose(b.targets["relu1_1"], 2 * a.targets["relu1_1"])


def test_style_targets_are_computed_once(vgg_weights, pair):
    content, style = pair
    loss = Objective(vgg_weights, content=ContentLoss(), style=StyleLoss())
    loss.set_targets(content, [style])
    before = {n: t for n, t in loss.terms["style"].targets.items()}
    calls = []
    handle = loss.vgg.register_forward_hook(lambda *a: calls.append(1))
    x = content.clone().requires_grad_(True)
    for _ in range(3):
        total, _ = loss(x)
        total.backward()
    handle.remove()
    assert len(calls) == 3  # one VGG pass per step: no style (or content) recomputation
    assert all(loss.terms["style"].targets[n] is before[n] for n in before)


def test_a_pyramid_level_is_the_gram_term_of_both_images_pooled(vgg_weights, pair):
    """A style term at scale 2 scores the image pooled by 2 against the painting pooled by 2,
    in one more VGG pass; the plain term beside it is unchanged."""
    content, style = pair
    layers = ["relu1_1", "relu3_1"]
    plain, coarse = StyleLoss(layers), StyleLoss(layers, scale=2)
    loss = Objective(vgg_weights, style=plain, style_x2=coarse)
    loss.set_targets(None, [style])
    alone = StyleLoss(layers)
    by_hand = Objective(vgg_weights, style=alone)
    by_hand.set_targets(None, [torch.nn.functional.avg_pool2d(style, 2)])
    calls = []
    handle = loss.vgg.register_forward_hook(lambda *a: calls.append(1))
    with torch.no_grad():
        _, terms = loss(content)
    handle.remove()
    with torch.no_grad():
        _, pooled = by_hand(torch.nn.functional.avg_pool2d(content, 2))
        _, unpooled = by_hand(content)
    assert len(calls) == 2                          # one VGG pass per scale
    assert terms["style_x2"].item() == pytest.approx(pooled["style"].item(), rel=1e-5)
    assert abs(terms["style_x2"].item() - unpooled["style"].item()) > 0.05 * unpooled["style"].item()
    for n in layers:
        assert torch.allclose(coarse.targets[n], alone.targets[n])
        assert not torch.allclose(plain.targets[n], coarse.targets[n], rtol=0.05)
    with pytest.raises(ImpastoError, match="pooling factor"):
        StyleLoss(layers, scale=0)


def test_histogram_loss_pulls_channels_toward_the_style(vgg_weights, pair):
    content, style = pair
    term = HistogramLoss(["relu1_1"])
    loss = Objective(vgg_weights, histogram=term)
    loss.set_targets(None, [style])
    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.02)
    first = None
    for _ in range(15):
        opt.zero_grad()
        total, _ = loss(x)
        first = first if first is not None else float(total.detach())
        total.backward()
        opt.step()
    assert float(loss(x)[0]) < 0.5 * first


def test_sliced_wasserstein_is_zero_at_the_painting_and_falls_under_adam(vgg_weights, pair):
    content, style = pair
    fixed = SlicedWassersteinLoss(["relu1_1", "relu3_1"], fresh=False)
    Objective(vgg_weights, swd=fixed).set_targets(None, [style])
    term = SlicedWassersteinLoss(["relu1_1", "relu3_1"])   # fresh directions each step, as in training
    loss = Objective(vgg_weights, swd=term)
    loss.set_targets(None, [style])
    measure = Objective(loss.vgg, {"swd": fixed})
    with torch.no_grad():
        assert float(measure(style)[0]) < 1e-8 < float(measure(content)[0])
        first = float(measure(content)[0])
    x = content.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=0.02)
    for _ in range(15):
        opt.zero_grad()
        loss(x)[0].backward()
        opt.step()
    with torch.no_grad():
        assert float(measure(x)[0]) < 0.5 * first


def test_sliced_wasserstein_sees_what_grams_and_channel_histograms_miss():
    """Two colours half and half against their blend everywhere: the same Gram (second moment),
    different distributions. Two channels that rise together against two that do not: the
    same histogram in each channel, different joint distributions."""
    two = torch.tensor([0.0, 2.0]).repeat(32).view(1, 1, 8, 8)
    blend = torch.full((1, 1, 8, 8), 2.0 ** 0.5)
    together = torch.linspace(0, 1, 64).view(1, 1, 8, 8).repeat(1, 2, 1, 1)
    apart = torch.stack([together[0, 0], together[0, 1].flip(0).flip(1)])[None]
    for painting, output in ((two, blend), (together, apart)):
        style, hist = StyleLoss(["f"], relative=True), HistogramLoss(["f"])
        swd = SlicedWassersteinLoss(["f"], fresh=False)
        for term in (style, hist, swd):
            term.set_target([{"f": painting}])
        same = {"f": output}
        assert float(swd(same)) > 0.01
        assert float(style(same)) < 1e-6 if painting is two else float(hist(same)) < 1e-6


def test_sliced_wasserstein_blends_paintings_as_a_barycentre(vgg_weights, pair):
    content, style = pair
    one, both = SlicedWassersteinLoss(["relu2_1"], fresh=False), SlicedWassersteinLoss(["relu2_1"], fresh=False)
    Objective(vgg_weights, swd=one).set_targets(None, [style])
    Objective(vgg_weights, swd=both).set_targets(None, [content, style], [0, 1])
    with torch.no_grad():
        a, b = Objective(vgg_weights, swd=one)(content)[0], Objective(vgg_weights, swd=both)(content)[0]
    assert torch.allclose(a, b, rtol=1e-5)


def test_tv_prefers_smooth_images():
    smooth = torch.linspace(0, 1, 32).view(1, 1, 1, 32).expand(1, 3, 32, 32)
    noisy = torch.rand(1, 3, 32, 32)
    assert TVLoss()(smooth) < 0.01 * TVLoss()(noisy)


def test_mrf_matches_the_nearest_style_patch(vgg_weights, pair):
    content, style = pair
    term = MRFLoss(["relu3_1"])
    loss = Objective(vgg_weights, mrf=term)
    loss.set_targets(None, [style])
    with torch.no_grad():
        feats = loss.vgg(style)["relu3_1"]
        idx = term.match(feats, "relu3_1")
    # on the style image itself, each patch's best match is (almost always) itself
    h, w = idx.shape[1:]
    own = torch.arange(h * w).view(h, w)
    assert (idx[0] == own).float().mean() > 0.9


def test_bad_layer_name_is_a_clear_error(vgg_weights):
    with pytest.raises(ImpastoError, match="unknown vgg16 layer"):
        Objective(vgg_weights, content=ContentLoss(["relu9_9"]))
