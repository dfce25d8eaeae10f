"""Semantic maps and the region/MRF losses on real maps and real VGG features (fast: no optimisation)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from impasto import images
from impasto.errors import ImpastoError
from impasto.models.semantic import SemanticWarning, load_map, mask_from_image, match_labels, snap_map
from impasto.models.semantic_losses import (SemanticMRFLoss, hard_region_grams, masked_grams, masked_grams_plain)
from impasto.models.tensors import to_tensor
from impasto.models.vgg import VGGEncoder, hard_layer_labels, layer_masks


def test_snaps_antialiased_png_to_its_palette(data):
    m = load_map(data / "doodle" / "Monet_sem.png")
    colours = {tuple(int(v) for v in c) for c in m.palette}
    assert colours == {(255, 255, 255), (255, 51, 31), (0, 0, 255), (0, 255, 0), (192, 0, 0)}
    # every pixel, blended edges included, carries one of the 5 labels
    assert m.labels.min() == 0 and m.labels.max() == 4
    assert np.isclose(m.fractions().sum(), 1.0)


def test_snaps_jpeg_damaged_mask_to_two_labels(data):
    raw = images.load(data / "masks" / "titu1994" / "cherry-blossom-mask-1.jpg")
    assert len(np.unique((raw * 255).round().reshape(-1, 3), axis=0)) > 1000  # JPEG noise
    m = snap_map(raw, "mask")
    assert m.num_labels == 2
    assert {tuple(int(v) for v in c) for c in m.palette} == {(0, 0, 0), (255, 255, 255)}


@pytest.mark.parametrize("photo", ["doodle/Monet.jpg", "masks/deep_photo/in8.png", "masks/deep_photo/tar36.png"])
def test_photo_is_not_a_map(data, photo):
    # tar36 is a mostly black photo, in8 a grey-level one: few colours, still not maps
    with pytest.raises(ImpastoError, match="looks like a photo"):
        load_map(data / photo)


def test_noise_and_gradients_are_not_maps():
    rng = np.random.default_rng(0)
    with pytest.raises(ImpastoError, match="map"):
        snap_map(rng.uniform(0, 1, (64, 64, 3)).astype(np.float32))
    ramp = np.repeat(np.linspace(0, 1, 256, dtype=np.float32)[None, :, None], 64, 0).repeat(3, 2)
    with pytest.raises(ImpastoError, match="map"):
        snap_map(ramp)


def test_map_resized_with_nearest_neighbour(data):
    m = load_map(data / "doodle" / "Coastline_sem.png", size=(101, 77))
    assert m.labels.shape == (77, 101)
    assert set(np.unique(m.labels)) <= set(range(m.num_labels))
    with pytest.warns(SemanticWarning, match="different shape"):
        load_map(data / "doodle" / "Coastline_sem.png", size=(100, 100))


def test_one_sided_labels_warn_and_behave(data):
    renoir = load_map(data / "doodle" / "Renoir_sem.png")
    monet = load_map(data / "doodle" / "Monet_sem.png")
    # Monet has a dark-red label (#c00000) that Renoir lacks: unused, with a warning
    with pytest.warns(SemanticWarning, match="c00000.*unused"):
        match = match_labels(renoir, [monet])
    assert len(match) == 4
    for k, targets in zip(match.content, match.style):
        assert monet.palette[targets[0][1]].tolist() == renoir.palette[k].tolist()
    # Landscape has a teal label (#008080) that Monet lacks: whole style image (default) ...
    land = load_map(data / "doodle" / "Landscape_sem.png")
    with pytest.warns(SemanticWarning, match="008080.*whole style image"):
        match = match_labels(land, [monet])
    teal = [t for c, t in zip(match.colours, match.style) if c.tolist() == [0, 128, 128]]
    assert teal == [[(0, None)]]
    # ... or left to the content, or refused
    with pytest.warns(SemanticWarning, match="left unstyled"):
        assert len(match_labels(land, [monet], unmatched="skip")) == len(match) - 1
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SemanticWarning)
        with pytest.raises(ImpastoError, match="008080"):
            match_labels(land, [monet], unmatched="error")
        with pytest.raises(ImpastoError, match="not a colour of"):
            match_labels(land, [monet], labels=["#123456"])


def test_coloured_image_is_not_a_mask(data):
    with pytest.raises(ImpastoError, match="grey-level"):
        mask_from_image(data / "doodle" / "Monet_sem.png", (64, 48))
    m = mask_from_image(data / "masks" / "gatys_control" / "fig2_style1_sky.jpg", (64, 40))
    assert m.shape == (40, 64) and 0 <= m.min() and m.max() <= 1


def test_layer_masks_line_up_with_vgg_features(vgg_weights, data):
    layers = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
    vgg = VGGEncoder(vgg_weights, layers)
    x = torch.rand(1, 3, 75, 61)  # odd sizes: pooling rounds down, the masks must too
    feats = vgg(x)
    m = load_map(data / "doodle" / "Monet_sem.png", size=(61, 75))
    masks = layer_masks(torch.from_numpy(m.one_hot())[None], layers, vgg_weights.arch)
    labs = hard_layer_labels(torch.from_numpy(m.labels), m.num_labels, layers, vgg_weights.arch)
    for n in layers:
        assert masks[n].shape[-2:] == feats[n].shape[-2:], n
        assert labs[n].shape == feats[n].shape[-2:], n
        assert torch.allclose(masks[n].sum(1), torch.ones(1)), n  # fractions still sum to one


def test_batched_masked_grams_equal_plain_and_hard(vgg_weights, data):
    img = to_tensor(images.load(data / "doodle" / "Monet.jpg", max_side=64))
    f = VGGEncoder(vgg_weights, ["relu2_1"])(img)["relu2_1"].detach().requires_grad_(True)
    m = load_map(data / "doodle" / "Monet_sem.png", size=(img.shape[3], img.shape[2]))
    lab = hard_layer_labels(torch.from_numpy(m.labels), m.num_labels, ["relu2_1"])["relu2_1"]
    onehot = torch.nn.functional.one_hot(lab, m.num_labels).permute(2, 0, 1).float()
    soft = torch.rand(3, *lab.shape)
    batched = masked_grams(f, soft, chunk=2)
    plain = masked_grams_plain(f, soft)
    assert torch.allclose(batched, plain, rtol=1e-4, atol=1e-4)
    (g1,) = torch.autograd.grad(batched.square().sum(), f)
    (g2,) = torch.autograd.grad(plain.square().sum(), f)
    assert torch.allclose(g1, g2, rtol=1e-3, atol=1e-3 * g2.abs().max().item())
    assert torch.allclose(masked_grams(f, onehot), hard_region_grams(f, onehot), rtol=1e-4, atol=1e-4)
    pooled = layer_masks(torch.from_numpy(m.one_hot())[None], ["relu2_1"], vgg_weights.arch)["relu2_1"][0]
    assert torch.allclose(masked_grams(f, pooled), hard_region_grams(f, pooled), rtol=1e-4, atol=1e-4)


def _mrf_on(vgg_weights, data, matching, **kw):
    vgg = VGGEncoder(vgg_weights, ["relu3_1"])
    style = to_tensor(images.load(data / "doodle" / "Monet.jpg", max_side=96))
    out = to_tensor(images.load(data / "doodle" / "Renoir.jpg", max_side=96))
    loss = SemanticMRFLoss(["relu3_1"], matching=matching, semantic_weight=0, **kw)
    with torch.no_grad():
        loss.set_target([vgg(style)])
        f = vgg(out)["relu3_1"]
    idx, scores = loss.match(f, "relu3_1")
    return loss, idx[0], scores


def test_contiguity_bonus_gives_coherent_matches(vgg_weights, data):
    def coherence(loss, idx):
        pos = loss.coords["relu3_1"][idx]            # (H', W', 3)
        right = pos[:, 1:] - pos[:, :-1]
        down = pos[1:] - pos[:-1]
        return 0.5 * (((right[..., 1] == 0) & (right[..., 2] == 1)).float().mean()
                      + ((down[..., 1] == 1) & (down[..., 2] == 0)).float().mean()).item()
    plain = coherence(*_mrf_on(vgg_weights, data, "nearest")[:2])
    coherent = coherence(*_mrf_on(vgg_weights, data, "contiguity", contiguity=0.5)[:2])
    assert coherent > plain + 0.05, (plain, coherent)


def test_bidirectional_uses_all_style_patches(vgg_weights, data):
    loss, idx, scores = _mrf_on(vgg_weights, data, "bidirectional")
    n_style = loss.patches["relu3_1"].shape[0]
    forward_used = idx.unique().numel()
    assert forward_used < 0.5 * n_style  # nearest alone leaves most style patches unused
    # the backward term pulls some output patch toward every style patch
    vgg = VGGEncoder(vgg_weights, ["relu3_1"])
    out = to_tensor(images.load(data / "doodle" / "Renoir.jpg", max_side=96))
    f = vgg(out)["relu3_1"].detach().requires_grad_(True)
    total = loss({"relu3_1": f})
    nearest_only = SemanticMRFLoss(["relu3_1"], matching="nearest", semantic_weight=0)
    nearest_only.patches, nearest_only.kernels = loss.patches, loss.kernels
    assert total.item() > nearest_only({"relu3_1": f}).item()
    assert scores.flatten(2).argmax(2).numel() == n_style


def test_cli_reports_bad_map(tmp_path, data, capsys):
    from impasto.cli import main
    code = main(["optimize", "--content", str(data / "doodle" / "Renoir.jpg"),
                 "--content-map", str(data / "doodle" / "Renoir.jpg"),
                 "--style", str(data / "doodle" / "Monet.jpg"), "--style-map", str(data / "doodle" / "Monet_sem.png"),
                 "-o", str(tmp_path / "o.png")])
    assert code == 2
    err = capsys.readouterr().err
    assert "Renoir.jpg" in err and "swap an image and its map" in err and "Traceback" not in err
    code = main(["optimize", "--style", str(data / "doodle" / "Monet.jpg"), "-o", str(tmp_path / "o.png")])
    assert code == 2 and "--content is required" in capsys.readouterr().err


def test_semantic_modes_refuse_a_style_pyramid(tmp_path, data, capsys):
    """The semantic terms are masked per region at one scale: --style-pyramid is an error there,
    not an option silently dropped."""
    from impasto.cli import main
    monet, monet_map = str(data / "doodle" / "Monet.jpg"), str(data / "doodle" / "Monet_sem.png")
    code = main(["optimize", "--content", monet, "--content-map", monet_map, "--style", monet,
                 "--style-map", monet_map, "--style-pyramid", "2", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and "--style-pyramid" in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()
