"""The training recipe that paints: relative style layers, a base network to start from, the
style-weight ramp, and the pack that carries it all to a GPU machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from impasto.errors import ImpastoError

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def pack(data, weights_path, tmp_path_factory) -> Path:
    from impasto.training.fast.pack import make_pack
    out = tmp_path_factory.mktemp("pack")
    make_pack(data.parent, out, photos=6, holdout=2, side=96, style_side=128, styles=["candy"], last_conv="conv4_3")
    return out


def test_raw_gram_error_is_all_relu1_2_and_relative_weighs_every_layer(vgg_weights, data):
    """Why the bundled networks only graded colours: under the HED VGG16 the raw Gram error
    of a photo is nearly all relu1_2. Relative errors give every layer its say."""
    from impasto import images
    from impasto.models.losses import JOHNSON_STYLE, StyleLoss
    from impasto.models.objective import Objective
    from impasto.models.tensors import to_tensor
    photo = to_tensor(images.load(str(data / "content" / "chicago.jpg"), max_side=96))
    style = to_tensor(images.load(str(data / "style" / "udnie.jpg"), max_side=192))
    shares = {}
    for relative in (False, True):
        loss = Objective(vgg_weights, style=StyleLoss(JOHNSON_STYLE, relative=relative))
        loss.set_targets(styles=[style])
        with torch.no_grad():
            per = {k: float(v) for k, v in loss.terms["style"].layer_losses(loss.vgg(photo)).items()}
        shares[relative] = {k: v / sum(per.values()) for k, v in per.items()}
    assert shares[False]["relu1_2"] > 0.95
    assert shares[False]["relu3_3"] + shares[False]["relu4_3"] < 0.01
    assert shares[True]["relu3_3"] + shares[True]["relu4_3"] > 0.2, shares[True]


def test_pack_holds_a_truncated_caffe_vgg_and_the_photos(pack, vgg_weights):
    from impasto.models.vgg import VGGEncoder
    from impasto.models.weights import load_vgg_weights
    info = json.loads((pack / "pack.json").read_text())
    assert info["photos"] == 6 and info["holdout"] == 2 and info["styles"] == ["candy"]
    assert len(list((pack / "photos").glob("*.jpg"))) == 6 and len(list((pack / "holdout").glob("*.jpg"))) == 2
    w = load_vgg_weights(str(pack / "vgg16.safetensors"))
    assert (w.arch, w.preprocessing) == ("vgg16", "caffe")
    assert "conv4_3" in w.convs and "conv5_1" not in w.convs
    x = torch.rand(1, 3, 48, 48)
    deep = ("relu1_2", "relu4_3")
    got, want = VGGEncoder(w, deep)(x), VGGEncoder(vgg_weights, deep)(x)
    for n in deep:  # fp16 storage: close to the full-precision weights
        assert torch.allclose(got[n], want[n], rtol=2e-2, atol=2e-2 * float(want[n].abs().max()))
    with pytest.raises(ImpastoError, match="only up to conv4_3"):
        VGGEncoder(w, ("relu5_1",))


def test_data_module_reads_a_pack_without_datasets(pack):
    from impasto.training.fast.data import PhotoDataModule
    dm = PhotoDataModule(str(pack / "photos"), val_source=str(pack / "holdout"), holdout=8, image_size=64,
                         resize_size=80, val_size=64, batch_size=2, cache_images=True)
    dm.setup()
    assert len(dm.train_set) == 6 and len(dm.val_set) == 2  # holdout applies to val_source alone
    a, b = dm.train_set[(0, 0, 0)]["image"], dm.train_set[(0, 0, 0)]["image"]
    assert a.shape == (3, 64, 64) and torch.equal(a, b) and len(dm.train_set.cache) == 1
    assert all(Path(p).parent.name == "holdout" for p in dm.holdout_paths())


def test_a_style_starts_from_the_base_and_its_weight_ramps(tmp_path, data):
    from impasto.training.fast.module import FastStyleModule
    base = FastStyleModule(arch="slim", style_weight=0.0, pixel_weight=1.0)
    assert base.style_name == "base"
    path = tmp_path / "base.ckpt"
    torch.save({"state_dict": {f"net.{k}": v for k, v in base.net.state_dict().items()},
                "impasto": {**base.meta(), "arch": "slim"}}, path)
    style = FastStyleModule(style_image=str(data / "style" / "candy.jpg"), arch="slim", init_from=str(path),
                            style_ramp_steps=4)
    for (k, v), w in zip(base.net.state_dict().items(), style.net.state_dict().values()):
        assert torch.equal(v, w), k
    style.train()
    assert style.style_ramp() == pytest.approx(0.25)  # step 0: a quarter of the weight
    style.eval()
    assert style.style_ramp() == 1.0  # validation measures the full objective
    with pytest.raises(ImpastoError, match="not johnson"):
        FastStyleModule(style_image=str(data / "style" / "candy.jpg"), arch="johnson", init_from=str(path))
    with pytest.raises(ImpastoError, match="style_image is needed"):
        FastStyleModule(arch="slim")


def test_the_mrf_term_pulls_the_networks_patches_toward_the_paintings(data, weights_path):
    """mrf_weight adds Li & Wand's patch term to the objective (its targets taken once with the
    Grams'), it is logged under its weight, and training on it lowers it."""
    from impasto import images
    from impasto.models.tensors import to_tensor
    from impasto.training.fast.module import FastStyleModule
    torch.manual_seed(0)
    m = FastStyleModule(style_image=str(data / "style" / "candy.jpg"), arch="slim", style_size=96,
                        style_weight=0.0, mrf_weight=2.0, vgg_weights=weights_path, channels_last=False)
    loss = m.prepare_loss(torch.device("cpu"))
    assert loss.terms["mrf"].patches["relu4_1"].shape[0] > 0 and m.meta()["loss_weights"]["mrf"] == 2.0
    x = torch.stack([to_tensor(images.load(str(data / "content" / n), max_side=96))[0, :, :48, :48]
                     for n in ("chicago.jpg", "tubingen.jpg")])
    opt = torch.optim.Adam(m.net.parameters(), lr=1e-2)
    seen = []
    for _ in range(12):
        _, terms = loss(m.net(x), content=x)
        opt.zero_grad()
        terms["mrf"].backward()
        opt.step()
        seen.append(terms["mrf"].item())
    assert seen[-1] < 0.8 * seen[0], seen


def test_the_sliced_wasserstein_term_is_trained_ramped_and_on_the_card(data, weights_path):
    """swd_weight adds the sliced Wasserstein term beside the Grams, ramped with the style weight
    (a quarter of it at the ramp's first quarter) and written on the card."""
    from impasto.training.fast.module import FastStyleModule
    m = FastStyleModule(style_image=str(data / "style" / "candy.jpg"), arch="slim", style_size=64,
                        style_weight=10.0, swd_weight=4.0, style_ramp_steps=4, vgg_weights=weights_path,
                        channels_last=False)
    loss = m.prepare_loss(torch.device("cpu"))
    assert loss.terms["swd"].features["relu5_1"][0].shape[0] == 512 and m.meta()["loss_weights"]["swd"] == 4.0
    m.train()
    x = torch.rand(1, 3, 32, 32)
    _, terms, _ = m.compute_loss(x)
    assert loss.terms["swd"].weight == pytest.approx(1.0) and terms["swd"] > 0


def test_every_level_of_the_style_pyramid_is_ramped_and_rebuilt_for_comparison(data, weights_path):
    """style_pyramid: the Gram term at 1, 1/2 and 1/4 of the size, each level ramped with the
    style weight; compare rebuilds the same objective from the network's hyperparameters."""
    from impasto.compare.objective import build_fast_objective
    from impasto.training.fast.module import FastStyleModule
    m = FastStyleModule(style_image=str(data / "style" / "candy.jpg"), arch="slim", style_size=64,
                        style_weight=8.0, style_ramp_steps=4, style_pyramid=3, style_relative=True,
                        vgg_weights=weights_path, channels_last=False)
    loss = m.prepare_loss(torch.device("cpu"))
    assert [(n, t.scale) for n, t in loss.terms.items() if n.startswith("style")] == \
        [("style", 1), ("style_x2", 2), ("style_x4", 4)]
    m.train()
    _, terms, _ = m.compute_loss(torch.rand(1, 3, 64, 64))
    assert [loss.terms[n].weight for n in ("style", "style_x2", "style_x4")] == [2.0, 2.0, 2.0]
    assert all(terms[n] > 0 for n in ("style", "style_x2", "style_x4"))
    rebuilt = build_fast_objective(dict(m.hparams), data / "style" / "candy.jpg", weights_path)
    assert [t.scale for n, t in rebuilt.loss.terms.items() if n.startswith("style")] == [1, 2, 4]
    assert torch.allclose(rebuilt.loss.terms["style_x4"].targets["relu4_3"], loss.terms["style_x4"].targets["relu4_3"])
    with pytest.raises(ImpastoError, match="style_pyramid"):
        FastStyleModule(style_image=str(data / "style" / "candy.jpg"), style_pyramid=0)


def test_gpu_script_plans_from_the_configs(tmp_path, pack):
    import yaml
    from impasto.training.fast.gpu import pack_overrides, slim_checkpoint, style_configs
    configs = style_configs([REPO / "configs" / "fast"], None)
    assert {"candy", "mosaic", "starry_night", "udnie"} <= {c.stem for c in configs}
    assert not {"base", "gpu", "gpu_zoo", "video"} & {c.stem for c in configs}   # profiles, not styles
    args = pack_overrides(pack, yaml.safe_load((REPO / "configs" / "fast" / "candy.yaml").read_text()), 2)
    pairs = dict(zip(args[::2], args[1::2]))
    assert Path(pairs["--model.style_image"]) == pack / "styles" / "candy.jpg"
    assert Path(pairs["--model.vgg_weights"]) == pack / "vgg16.safetensors"
    src = tmp_path / "full.ckpt"
    torch.save({"state_dict": {"net.w": torch.ones(3), "loss.x": torch.ones(2)}, "impasto": {"style": "s"},
                "optimizer_states": [{"big": torch.ones(100)}], "global_step": 7}, src)
    slim_checkpoint(src, tmp_path / "slim.ckpt")
    slim = torch.load(tmp_path / "slim.ckpt", weights_only=False)
    assert set(slim) == {"impasto", "state_dict", "global_step"} and list(slim["state_dict"]) == ["net.w"]


def test_gpu_profile_lays_johnsons_scale_over_a_style_on_a_fast_network(capsys):
    import yaml
    from impasto.training.fast.cli import cli_main
    with pytest.raises(SystemExit) as exc:
        cli_main(["--config", "configs/fast/candy.yaml", "--config", "configs/fast/gpu.yaml", "--print_config"])
    assert exc.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert (cfg["model"]["arch"], cfg["data"]["image_size"], cfg["data"]["batch_size"]) == ("slim_wide", 256, 8)
    assert cfg["model"]["style_weight"] == 3000.0 and cfg["model"]["style_relative"] is True
    assert cfg["trainer"]["max_time"] is None and cfg["trainer"]["precision"] == "bf16-mixed"
    with pytest.raises(SystemExit) as exc:   # a video network: the temporal term on top of both
        cli_main(["--config", "configs/fast/candy.yaml", "--config", "configs/fast/gpu.yaml",
                  "--config", "configs/fast/video.yaml", "--print_config"])
    assert exc.value.code == 0
    video = yaml.safe_load(capsys.readouterr().out)
    assert (video["model"]["arch"], video["model"]["temporal_weight"], video["model"]["temporal_lowpass"]) == (
        "slim_wide", 8e5, 8)
    assert video["model"]["style_ramp_steps"] == 0 and video["trainer"]["max_steps"] == 2000
    # the photo network on the Gatys layers that won; its video network on Johnson's, where the
    # temporal weight was measured
    assert cfg["model"]["style_layers"] == GATYS and video["model"]["style_layers"] == JOHNSON


GATYS = ["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"]
JOHNSON = ["relu1_2", "relu2_2", "relu3_3", "relu4_3"]


def test_a_style_with_its_own_video_recipe_gets_it_on_top_of_the_video_profile(capsys):
    """mosaic's lead lines crawl below 8x8 blocks: its video network is trained per pixel on its
    photo network's layers (configs/fast/video/mosaic.yaml), the other styles' by the profile."""
    import yaml
    from impasto.training.fast.cli import cli_main
    from impasto.training.fast.gpu import video_configs
    fast = Path("configs/fast")
    stacks = {s: video_configs(fast / f"{s}.yaml", [fast / "gpu.yaml"], fast / "video.yaml")
              for s in ("candy", "mosaic", "starry_night", "udnie")}
    assert stacks["mosaic"][-1] == fast / "video" / "mosaic.yaml"
    assert all(stacks[s][-1] == fast / "video.yaml" for s in ("candy", "starry_night", "udnie"))
    with pytest.raises(SystemExit) as exc:
        cli_main([arg for c in stacks["mosaic"] for arg in ("--config", str(c))] + ["--print_config"])
    assert exc.value.code == 0
    model = yaml.safe_load(capsys.readouterr().out)["model"]
    assert (model["temporal_weight"], model["temporal_lowpass"], model["style_layers"]) == (3e5, 1, GATYS)
    assert (model["arch"], model["style_weight"], model["style_ramp_steps"]) == ("slim_wide", 4500.0, 0)


def test_gpu_script_refuses_a_pack_too_shallow_for_the_loss_layers(pack, tmp_path):
    """candy and zoo8 train on relu5_1 (and mosaic's video network): a pack cut at conv4_3 fails at
    once, not after the base networks."""
    import yaml
    from impasto.training.fast.gpu import deepest_conv, train_all
    assert deepest_conv({"model": {"style_layers": ["relu1_1", "relu5_1", "relu4_3"]}}) == "conv5_1"
    assert deepest_conv({"model": {}}) is None
    fast = REPO / "configs" / "fast"

    def train(style, **kw):
        train_all(pack, [fast / f"{style}.yaml"], out=tmp_path / "gpu", base=fast / "base.yaml",
                  profiles=[fast / "gpu.yaml"], **kw)

    with pytest.raises(ImpastoError, match="candy: .* up to conv5_1, the pack stops at conv4_3"):
        train("candy", multi=[])
    with pytest.raises(ImpastoError, match="zoo8: .* up to conv5_1, the pack stops at conv4_3"):
        train("udnie", multi=[REPO / "configs" / "multistyle" / "zoo8.yaml"])
    (tmp_path / "video").mkdir()          # a style's own video recipe is checked too
    (tmp_path / "video.yaml").write_text((fast / "video.yaml").read_text())
    (tmp_path / "video" / "udnie.yaml").write_text(yaml.safe_dump({"model": {"style_layers": ["relu5_1"]}}))
    with pytest.raises(ImpastoError, match="udnie_video: .* up to conv5_1"):
        train("udnie", multi=[], video_profile=tmp_path / "video.yaml")
    assert not (tmp_path / "gpu").exists()
    with pytest.raises(ImpastoError, match="no such multi-style config"):
        train_all(pack, [REPO / "configs" / "fast" / "candy.yaml"], multi=[tmp_path / "nope.yaml"])
    with pytest.raises(ImpastoError, match=r"video_share .* in \[0, 1\); got 1"):
        train_all(pack, [REPO / "configs" / "fast" / "candy.yaml"], out=tmp_path / "gpu", video_share=1)
    with pytest.raises(ImpastoError, match="nope.yaml: no such video profile"):
        train_all(pack, [REPO / "configs" / "fast" / "candy.yaml"], out=tmp_path / "gpu",
                  video_profile=tmp_path / "nope.yaml")
    with pytest.raises(ImpastoError, match="nope.yaml: no such profile"):
        train_all(pack, [REPO / "configs" / "fast" / "candy.yaml"], out=tmp_path / "gpu",
                  profiles=[fast / "gpu.yaml", tmp_path / "nope.yaml"])
    # a single-style option stacked under a multi-style network fails before the base networks
    (tmp_path / "pyramid.yaml").write_text(yaml.safe_dump({"model": {"style_pyramid": 3}}))
    with pytest.raises(ImpastoError, match="zoo8: a multi-style network takes no model option style_pyramid"):
        train_all(pack, [fast / "candy.yaml"], out=tmp_path / "gpu", profiles=[fast / "gpu.yaml", tmp_path / "pyramid.yaml"],
                  multi=[REPO / "configs" / "multistyle" / "zoo8.yaml"], video_share=0)
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump({"model": {"style_pyramids": 3}}))
    with pytest.raises(ImpastoError, match="candy: a single-style network takes no model option style_pyramids"):
        train_all(pack, [fast / "candy.yaml"], out=tmp_path / "gpu", profiles=[fast / "gpu.yaml", tmp_path / "typo.yaml"],
                  multi=[], video_share=0)
    assert not (tmp_path / "gpu").exists()


@pytest.mark.slow
def test_gpu_command_trains_base_style_and_multi_style_end_to_end(data, tmp_path):
    """`impasto train-gpu` as a GPU machine runs it, scaled down to a CPU: the pack, the base
    network, then a style and the eight-style network at once, each from the base, then the
    style's video network from its photo network, and the results."""
    import yaml

    from impasto.training.fast.checkpoint import load_fast_checkpoint
    from impasto.training.fast.pack import make_pack
    from helpers import cli
    zoo8 = yaml.safe_load((REPO / "configs" / "multistyle" / "zoo8.yaml").read_text())["model"]["style_images"]
    pack = tmp_path / "pack"
    from impasto.cli import build_parser
    default = build_parser().parse_args(["pack", "shared", "out"])   # what `impasto pack` gives a user
    info = make_pack(data.parent, pack, photos=6, holdout=2, side=96, style_side=128, last_conv=default.last_conv,
                     styles=["candy"] + [Path(p).stem for p in zoo8])
    assert info["vgg"]["last"] == "conv5_1"            # the default pack carries the Gatys layers
    arch = yaml.safe_load((REPO / "configs" / "fast" / "gpu.yaml").read_text())["model"]["arch"]
    profile = tmp_path / "tiny.yaml"        # the GPU profile's network, at a CPU's scale
    profile.write_text(yaml.safe_dump({
        "model": {"arch": arch, "style_size": 64, "style_ramp_steps": 300},
        "data": {"image_size": 32, "resize_size": 48, "val_size": 32, "batch_size": 2},
        "trainer": {"precision": "32-true", "max_steps": 2, "max_time": None, "val_check_interval": 2,
                    "enable_model_summary": False},
        "save_every_n_steps": 2, "threads": 1}))
    no_ramp = tmp_path / "no_ramp.yaml"     # a second profile, laid on top of the first
    no_ramp.write_text(yaml.safe_dump({"model": {"style_ramp_steps": 0, "style_weight": 2000.0}}))   # the base stays a copy
    video = yaml.safe_load((REPO / "configs" / "fast" / "video.yaml").read_text())
    video["trainer"]["max_steps"] = 2
    (tmp_path / "video.yaml").write_text(yaml.safe_dump(video))
    (tmp_path / "video").mkdir()             # candy's own video recipe, on top of the profile
    (tmp_path / "video" / "candy.yaml").write_text(yaml.safe_dump({"model": {"temporal_lowpass": 2}}))
    out = tmp_path / "gpu"
    r = cli("train-gpu", "--pack", str(pack), "--configs", "configs/fast/candy.yaml",
            "--multi", "configs/multistyle/zoo8.yaml", "--profile", str(profile), str(no_ramp), "--base-steps", "2",
            "--video-profile", str(tmp_path / "video.yaml"),
            "--workers", "0", "--minutes", "10", "--out", str(out), timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    summary = json.loads((out / "results" / "summary.json").read_text())
    assert {name: run["steps"] for name, run in summary["runs"].items()} == {
        f"base_{arch}": 2, "candy": 2, "zoo8": 2, "candy_video": 2}
    net, meta = load_fast_checkpoint(out / "results" / "zoo8.ckpt")
    assert net.num_styles == 8 and meta["styles"][:2] == ["candy", "mosaic"] and meta["arch"] == arch
    # the paintings, the photos and the VGG as the configs name them, not the pack's copies
    assert meta["style_images"] == meta["config"]["model"]["style_images"] == zoo8
    assert meta["config"]["data"]["source"] == "../shared/data/coco_sample" and meta["config"]["data"]["val_source"] is None
    _, candy = load_fast_checkpoint(out / "results" / "candy.ckpt")
    assert candy["style"] == "candy"
    assert candy["style_image"] == "../shared/data/style/candy.jpg"   # the painting, not the pack's copy
    assert (candy["config"]["model"]["style_ramp_steps"], candy["config"]["model"]["style_weight"]) == (0, 2000.0)
    assert candy["config"]["model"]["vgg_weights"] is None            # $IMPASTO_VGG_WEIGHTS, not the pack's
    _, steady = load_fast_checkpoint(out / "results" / "candy_video.ckpt")
    model = steady["config"]["model"]
    assert steady["style"] == "candy" and model["temporal_weight"] == video["model"]["temporal_weight"] > 0
    assert model["temporal_lowpass"] == 2 and model["style_layers"] == video["model"]["style_layers"]
    assert Path(model["init_from"]) == out / "candy" / "checkpoints" / "last.ckpt"   # from its photo network
    assert model["style_ramp_steps"] == 0 and model["arch"] == arch


def test_gpu_command_goes_on_from_the_bundled_networks(data, tmp_path):
    """`impasto train-gpu --from-zoo`: a style starts from its bundled ONNX network, on the recipe its
    card records (architecture, loss, weight), with the profile on top; a pack too shallow for a
    card's layers, or a style with no bundled network, is refused before any training."""
    import yaml

    from impasto.training.fast.checkpoint import load_fast_checkpoint
    from impasto.training.fast.pack import make_pack
    from helpers import cli
    card = json.loads((REPO / "models" / "zoo" / "udnie.json").read_text())
    pack = tmp_path / "pack"
    make_pack(data.parent, pack, photos=6, holdout=2, side=96, style_side=128, styles=["udnie"],
              last_conv=("conv" + max(card["config"]["model"]["style_layers"])[4:]))
    profile = tmp_path / "tiny_zoo.yaml"
    zoo_profile = yaml.safe_load((REPO / "configs" / "fast" / "gpu_zoo.yaml").read_text())
    zoo_profile["model"].update({"style_size": 64, "lr_decay": None})
    zoo_profile["data"] = {"image_size": 32, "resize_size": 48, "val_size": 32, "batch_size": 2}
    zoo_profile["trainer"].update({"precision": "32-true", "max_steps": 2, "val_check_interval": 2,
                                   "enable_model_summary": False, "benchmark": False})
    zoo_profile.update({"save_every_n_steps": 2, "threads": 1})
    profile.write_text(yaml.safe_dump(zoo_profile))
    out = tmp_path / "gpu"
    r = cli("train-gpu", "--pack", str(pack), "--styles", "udnie", "--from-zoo", "--multi", "--video-share", "0",
            "--profile", str(profile), "--workers", "0", "--minutes", "10", "--out", str(out), timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    assert "base_" not in r.stdout                               # no base network: the bundled one is the start
    _, meta = load_fast_checkpoint(out / "results" / "udnie.ckpt")
    model = meta["config"]["model"]
    assert meta["arch"] == card["arch"] and meta["steps"] == 2
    assert Path(model["init_from"]) == Path("models/zoo/udnie.onnx")
    assert (model["style_weight"], model["style_layers"]) == (card["config"]["model"]["style_weight"],
                                                               card["config"]["model"]["style_layers"])
    assert model["lr"] == zoo_profile["model"]["lr"] and model["style_ramp_steps"] == 0
    assert meta["style_image"] == card["config"]["model"]["style_image"]   # the painting, not the pack's copy

    shallow = tmp_path / "shallow"
    make_pack(data.parent, shallow, photos=6, holdout=2, side=96, style_side=128, styles=["candy"],
              last_conv="conv4_3")
    r = cli("train-gpu", "--pack", str(shallow), "--styles", "candy", "--from-zoo", "--multi",
            "--out", str(tmp_path / "no"))
    assert r.returncode != 0 and "the pack stops at conv4_3" in r.stderr and "Traceback" not in r.stderr
    r = cli("train-gpu", "--pack", str(shallow), "--styles", "candy", "--from-zoo", str(tmp_path), "--multi",
            "--out", str(tmp_path / "no"))
    assert r.returncode != 0 and "no bundled network for candy" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("pyramid", [1, 2])
def test_the_mirror_objective_scores_every_other_step_in_the_mirror(data, weights_path, tmp_path, monkeypatch,
                                                                    pyramid):
    """mirror_objective: on odd steps the loss is the objective of the mirrored output and photo
    against the mirrored painting (what a VGG with mirror-pair filters would give anyway). Ours
    scores a painting and its mirror differently, so the two steps differ; even steps and
    validation are the plain objective. Every level of a style pyramid is mirrored."""
    from PIL import Image, ImageOps
    from impasto.training.fast.module import FastStyleModule
    small = Image.open(data / "style" / "starry_night.jpg").convert("RGB")
    small.thumbnail((64, 64))           # at style_size already: no resize to break the mirror
    painting = tmp_path / "painting.png"
    small.save(painting)
    ImageOps.mirror(small).save(tmp_path / "mirrored.png")
    kw = dict(arch="slim", style_size=64, style_weight=1000.0, style_relative=True, vgg_weights=weights_path,
              channels_last=False, style_layers=["relu1_1", "relu2_1", "relu3_1", "relu4_1"], style_pyramid=pyramid)
    m = FastStyleModule(style_image=str(painting), mirror_objective=True, **kw)
    mirrored = FastStyleModule(style_image=str(tmp_path / "mirrored.png"), **kw)
    mirrored.net.load_state_dict(m.net.state_dict())
    m.prepare_loss(torch.device("cpu"))
    mirrored.prepare_loss(torch.device("cpu"))
    torch.manual_seed(0)
    x = torch.rand(2, 3, 48, 64)
    m.train()
    with torch.no_grad():
        even, _, y = m.compute_loss(x)
        monkeypatch.setattr(FastStyleModule, "global_step", property(lambda self: 1))
        odd, terms, _ = m.compute_loss(x)
        expected, _ = mirrored.loss_fn(y.flip(-1), content=x.flip(-1))
        again, _, _ = m.eval().compute_loss(x)          # validation: the plain objective
    assert len([t for t in terms if t.startswith("style")]) == pyramid
    assert odd.item() == pytest.approx(expected.item(), rel=1e-4)
    assert abs(odd.item() - even.item()) > 3e-4 * even.item()   # 0.3% (0.09% with the pyramid) untrained
    assert again.item() == pytest.approx(even.item(), rel=1e-5)
    with pytest.raises(ImpastoError, match="mirror_objective"):
        FastStyleModule(style_image=str(painting), mirror_objective=True, mrf_weight=1.0, **kw)
