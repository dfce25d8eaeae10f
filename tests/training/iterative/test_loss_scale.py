"""Issue 14, items 2 and 6: --gram-norm chw keeps the balance of the default weights, and
--loss-scale paper writes the terms as the papers do."""

import numpy as np
import pytest
import torch

from impasto import images
from impasto.errors import ImpastoError
from impasto.models.tensors import to_tensor
from impasto.training.iterative.optimize import OptimizeConfig, build_objective, stylize


@pytest.fixture(scope="module")
def pair(data):
    return (images.load(data / "content" / "chicago.jpg", 64), images.load(data / "style" / "candy.jpg", 64))


def _terms(config, vgg_weights, pair, image=None):
    content, style = pair
    objective = build_objective(config, vgg_weights)
    objective.set_targets(to_tensor(content), [to_tensor(style)])
    with torch.no_grad():
        _, terms = objective(to_tensor(content if image is None else image))
    return {k: float(v) for k, v in terms.items()}


def test_chw_keeps_the_balance_of_the_default_weights(vgg_weights, pair):
    pixels = _terms(OptimizeConfig(), vgg_weights, pair)["style"]
    chw = _terms(OptimizeConfig(gram_norm="chw"), vgg_weights, pair)["style"]
    assert 0.3 < chw / pixels < 3          # was 1e-4: the style term vanished and the photo came back


def test_chw_at_the_default_weight_paints(vgg_weights, pair, weights_path):
    content, style = pair
    config = OptimizeConfig(size=64, iterations=15, gram_norm="chw", precision="fp32", vgg_weights=weights_path)
    out = stylize(content, [style], config).image
    before = _terms(config, vgg_weights, pair)["style"]
    after = _terms(config, vgg_weights, pair, out)["style"]
    assert after < 0.5 * before
    assert np.abs(out - content).mean() > 0.02      # not the photo given back


def test_paper_scale_terms(vgg_weights, pair):
    noise = np.random.default_rng(0).uniform(0, 1, pair[0].shape).astype(np.float32)
    kw = dict(histogram_weight=1.0, tv_weight=1.0)
    mean = _terms(OptimizeConfig(**kw), vgg_weights, pair, noise)
    paper = _terms(OptimizeConfig(loss_scale="paper", **kw), vgg_weights, pair, noise)
    assert paper["content"] == pytest.approx(mean["content"] / 2, rel=1e-4)     # 1/(2ND) against 1/(ND)
    assert paper["style"] == pytest.approx(mean["style"] / 2, rel=1e-4)         # 1/(2N^2) over the Gram entries
    h, w = noise.shape[:2]
    # TV: the sum of squared neighbour differences; the mean divides each direction by its count
    x = noise.transpose(2, 0, 1).astype(np.float64)
    tv_sum = (np.diff(x, axis=2) ** 2).sum() + (np.diff(x, axis=1) ** 2).sum()
    assert paper["tv"] == pytest.approx(tv_sum, rel=1e-4)
    assert paper["tv"] > 1000 * mean["tv"]
    assert paper["histogram"] < mean["histogram"] / 100                          # / (2 N), N = 64 and 512
    with pytest.raises(ImpastoError, match="loss scale"):
        OptimizeConfig(loss_scale="sum")


def test_default_tv_follows_the_scale():
    assert OptimizeConfig().tv_weight == 1.0
    assert OptimizeConfig(loss_scale="paper").tv_weight == 2e-6
    assert OptimizeConfig(loss_scale="paper", tv_weight=0.01).tv_weight == 0.01
