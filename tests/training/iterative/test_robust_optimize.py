"""Issue 14: the iterative path never diverges. A grid of 4 photos x 4 styles x 3 sizes, every
mode of the optimiser spread over it (each mode meets several photos, styles and sizes): the
image returned has a lower loss than the photo it started from, and no run ends above its own
best by more than 10%. Small sizes and few iterations keep it cheap; real images, real VGG."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from impasto import images
from impasto.models.tensors import to_tensor
from impasto.training.iterative.optimize import OptimizeConfig, build_objective, optimize_pixels, stylize

PHOTOS = ("chicago.jpg", "tubingen.jpg", "golden_gate.jpg", "stata.jpg")
STYLES = ("candy.jpg", "starry_night.jpg", "the_scream.jpg", "composition_vii.jpg")
SIZES = (64, 128, 192)
ITERATIONS = 6

# every way the optimiser runs: precision, L-BFGS with its line search or a fixed step (which
# only the guard protects), Adam, both Gram normalisations, both loss scales, a noise start
MODES = {
    "lbfgs-bf16": dict(precision="bf16"),
    "lbfgs-fp32": dict(precision="fp32"),
    "lbfgs-fixed-step": dict(precision="fp32", line_search=None),
    "adam": dict(precision="fp32", optimizer="adam"),
    "gram-chw": dict(precision="fp32", gram_norm="chw"),
    "chw-bold": dict(precision="fp32", gram_norm="chw", style_weight=10.0, intensity=3.0),
    "paper": dict(precision="fp32", loss_scale="paper", tv_weight=1e-3, histogram_weight=100.0),
    "noise-init": dict(precision="fp32", init="noise"),
}
BF16_SIDE = 64      # bf16 convolutions are slow on CPUs without AMX: those cells stay small


def _cells():
    """48 cells; modes cycle so that each meets different photos, styles and sizes."""
    cells = []
    names = [m for m in MODES if m != "lbfgs-bf16"]
    for i, (side, photo, style) in enumerate(itertools.product(SIZES, PHOTOS, STYLES)):
        mode = names[i % len(names)]
        if side == BF16_SIDE and i % 5 == 0:
            mode = "lbfgs-bf16"
        cells.append((photo, style, side, mode))
    return cells


CELLS = _cells()


def test_the_grid_covers_every_mode():
    assert len(CELLS) == 48 and {c[3] for c in CELLS} == set(MODES)
    for mode in MODES:
        cells = [c for c in CELLS if c[3] == mode]
        assert len({c[0] for c in cells}) >= 2 and len({c[1] for c in cells}) >= 2


@pytest.fixture(scope="module")
def objective_cache(vgg_weights):
    return {}


def _run(photo, style, side, mode, data, vgg_weights):
    opts = dict(MODES[mode])
    line_search = opts.pop("line_search", "strong_wolfe")
    config = OptimizeConfig(size=side, iterations=ITERATIONS, **opts)
    content = images.load(data / "content" / photo, side)
    painting = images.load(data / "style" / style, side)
    objective = build_objective(config, vgg_weights)
    objective.set_targets(to_tensor(content), [to_tensor(painting)])
    if config.init == "noise":
        start = np.random.default_rng(0).uniform(0, 1, content.shape).astype(np.float32)
    else:
        start = content
    messages = []
    result = optimize_pixels(lambda x: objective(x), to_tensor(start), config.iterations, config.optimizer,
                             config.learning_rate, config.precision, line_search=line_search,
                             log=messages.append)

    def loss(image):  # the returned image, measured again in fp32
        with torch.no_grad():
            return float(objective(to_tensor(image))[0])
    return loss(start), loss(result.image), result, messages


@pytest.mark.parametrize("photo,style,side,mode", CELLS, ids=[f"{p[:-4]}-{s[:-4]}-{z}-{m}" for p, s, z, m in CELLS])
def test_never_diverges(photo, style, side, mode, data, vgg_weights):
    initial, final, result, messages = _run(photo, style, side, mode, data, vgg_weights)
    best = min(r["total"] for r in result.history)
    assert np.isfinite(final)
    assert final < initial, (initial, final, messages)
    assert final <= 1.1 * best, (final, best, messages)


def test_the_guard_backs_off_and_says_so():
    """A fixed step far too long for the objective (the bf16 failure of issue 14, on a quadratic):
    the loss rises, the guard restores the best point, halves the step, and logs it."""
    target = torch.full((1, 3, 8, 8), 0.5)

    def objective(x):
        total = 50.0 * ((x - target) ** 2).sum()
        return total, {"quadratic": total}
    messages = []
    start = torch.zeros(1, 3, 8, 8)
    result = optimize_pixels(objective, start, 30, "lbfgs", lr=40.0, precision="fp32", line_search=None,
                             log=messages.append)
    assert result.backoffs >= 1 and any("back to the best image" in m for m in messages)
    final = float(objective(to_tensor(result.image))[0])
    assert final <= min(r["total"] for r in result.history) + 1e-6
    assert final < float(objective(start)[0])


def test_chicago_candy_at_the_defaults_matches_fp32(data, weights_path):
    """The issue's command (128 px, 40 iterations) ended at 1,326 in bf16 (22.5 in fp32); the
    defaults now end within 10% of the fp32 run. 64 px and 20 iterations here, to stay cheap."""
    content = images.load(data / "content" / "chicago.jpg")
    style = images.load(data / "style" / "candy.jpg")
    finals = {}
    for precision in ("bf16", "fp32"):
        config = OptimizeConfig(size=64, iterations=20, precision=precision, vgg_weights=weights_path)
        result = stylize(content, [style], config)
        finals[precision] = result.final["total"]
        assert result.final["total"] < 0.5 * result.history[0]["total"]
    assert finals["bf16"] <= 1.1 * finals["fp32"], finals
