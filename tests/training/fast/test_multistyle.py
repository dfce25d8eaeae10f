"""Multi-style training (conditional instance norm): real VGG weights, real photos, 64 px crops,
a few steps; adding a style trains its norm rows and nothing else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from impasto.errors import ImpastoError

from helpers import REPO, coco_photos, make_checkpoint

N_PHOTOS = 8   # 2 held out, 6 for training: 3 steps per epoch at batch 2


pytestmark = pytest.mark.usefixtures("training_env")


@pytest.fixture(scope="module")
def photos(data, tmp_path_factory) -> Path:
    return coco_photos(data, tmp_path_factory.mktemp("photos"), N_PHOTOS)


def tiny_args(photos, run_dir, steps, *extra) -> list[str]:
    return ["--model.style_size", "64", "--model.lr", "0.01", "--model.style_weight", "5",
            "--data.source", str(photos), "--data.holdout", "2", "--data.image_size", "64",
            "--data.batch_size", "2", "--trainer.max_steps", str(steps), "--trainer.precision", "32-true",
            "--trainer.val_check_interval", "3", "--trainer.log_every_n_steps", "1",
            "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
            "--run_dir", str(run_dir), "--save_every_n_steps", "3", "--threads", "1", *extra]


@pytest.fixture(scope="module")
def two_styles(photos, data, tmp_path_factory, weights_path) -> Path:
    """A two-style network trained 4 steps through the command line (`impasto train-multi`)."""
    from impasto.cli import main
    run = tmp_path_factory.mktemp("multi")
    styles = f"[{data / 'style' / 'candy.jpg'}, {data / 'style' / 'udnie.jpg'}]"
    assert main(["train-multi", *tiny_args(photos, run, 4, "--model.style_images", styles)]) == 0
    return run / "checkpoints" / "last.ckpt"


def test_trains_every_style_and_checkpoint_loads(two_styles):
    from impasto.models.transformer import MultiStyleTransformerNet
    from impasto.training.fast.checkpoint import load_fast_checkpoint
    net, meta = load_fast_checkpoint(two_styles)
    assert isinstance(net, MultiStyleTransformerNet) and net.num_styles == 2
    assert meta["styles"] == ["candy", "udnie"] and meta["trained_styles"] == ["candy", "udnie"]
    assert meta["steps"] == 4 and meta["style"] == "multi"
    assert set(meta["loss_terms"]) >= {"content", "style"}
    # the two styles' norms moved apart from the shared start
    first = net.norms()[0]
    assert not torch.equal(first.weight[0], first.weight[1])
    with torch.no_grad():
        a = net(torch.rand(1, 3, 40, 52), torch.tensor([[1.0, 0.0]]))
    assert a.shape == (1, 3, 40, 52)


def test_each_round_of_steps_draws_every_style_once():
    from impasto.training.fast.multistyle import MultiStyleModule
    m = MultiStyleModule(["a.jpg", "b.jpg", "c.jpg"], style_weight=1.0)
    for round_start in (0, 3, 6, 30):
        assert sorted(m.style_for_step(s) for s in range(round_start, round_start + 3)) == [0, 1, 2]
    assert [m.style_for_step(s) for s in range(9)] == [m.style_for_step(s) for s in range(9)]


def test_edge_margin_paints_each_mix_as_the_runtime_does():
    """A multi-style network with `edge_margin` is trained on the crop of its padded painting,
    for every mix; its checkpoint meta names the margin for export."""
    import torch.nn.functional as F

    from impasto.training.fast.multistyle import MultiStyleModule
    m = MultiStyleModule(["a.jpg", "b.jpg"], style_weight=1.0, edge_margin=8, channels_last=False).eval()
    x, mix = torch.rand(2, 3, 40, 48), torch.tensor([[1.0, 0.0], [0.3, 0.7]])
    with torch.no_grad():
        torch.testing.assert_close(m(x, mix), m.net(F.pad(x, (8, 8, 8, 8), mode="reflect"), mix)[..., 8:48, 8:56])
    assert m.meta()["edge_margin"] == 8 and "edge_margin" not in MultiStyleModule(["a.jpg"], style_weight=1.0).meta()
    with pytest.raises(ImpastoError, match="edge_margin"):
        MultiStyleModule(["a.jpg"], style_weight=1.0, edge_margin=10)
    with pytest.raises(ImpastoError, match="edge_margin 8 needs images larger than it; got 8x8"):
        m(torch.rand(1, 3, 8, 8), mix[:1])


def test_add_a_style_trains_only_its_norm_rows(two_styles, photos, data, tmp_path):
    from impasto.cli import main
    from impasto.training.fast.checkpoint import load_fast_checkpoint
    old, _ = load_fast_checkpoint(two_styles)
    run = tmp_path / "plus"
    assert main(["train-multi", *tiny_args(photos, run, 3, "--model.add_to", str(two_styles),
                                           "--model.style_images", f"[{data / 'style' / 'the_wave.jpg'}]",
                                           "--model.network_name", "plus")]) == 0
    new, meta = load_fast_checkpoint(run / "checkpoints" / "last.ckpt")
    assert meta["styles"] == ["candy", "udnie", "the_wave"] and meta["trained_styles"] == ["the_wave"]
    assert new.num_styles == 3
    before, after = old.state_dict(), new.state_dict()
    moved = 0
    for name, value in after.items():
        if value.dim() == 2 and value.shape[0] == 3:     # a norm table: old rows fixed, the new one trained
            assert torch.equal(value[:2], before[name]), name
            moved += not torch.allclose(value[2], before[name].mean(0))
        else:
            assert torch.equal(value, before[name]), name
    assert moved > 0
    assert meta["trained_parameters"] == sum(v[2].numel() for v in after.values()
                                             if v.dim() == 2 and v.shape[0] == 3)


def test_init_from_a_single_style_network_gives_it_to_every_style(tmp_path):
    from impasto.training.fast.checkpoint import load_fast_checkpoint
    from impasto.training.fast.multistyle import MultiStyleModule
    single, _ = load_fast_checkpoint(make_checkpoint(tmp_path / "one.pt"))
    m = MultiStyleModule(["a.jpg", "b.jpg"], init_from=str(tmp_path / "one.pt"), channels_last=False).eval()
    x = torch.rand(1, 3, 48, 48)
    with torch.no_grad():
        for w in ([1.0, 0.0], [0.0, 1.0], [0.5, 0.5]):
            torch.testing.assert_close(m.net(x, torch.tensor([w])), single(x), rtol=0, atol=1e-5)


def test_training_continues_from_a_bundled_onnx_network(tmp_path):
    """init_from takes what ships: the network rebuilt from zoo8.onnx paints as onnxruntime runs
    the file, per style; add_to appends to its eight; a single-style file starts a single-style
    module; files impasto did not write are refused."""
    import numpy as np
    import onnx
    import onnxruntime as ort
    from impasto.training.fast.module import FastStyleModule
    from impasto.training.fast.multistyle import MultiStyleModule
    zoo = REPO / "models" / "zoo"
    names = ["candy", "mosaic", "starry_night", "udnie", "la_muse", "the_scream", "composition_vii", "feathers"]
    m = MultiStyleModule([f"{n}.jpg" for n in names], init_from=str(zoo / "zoo8.onnx"), channels_last=False).eval()
    session = ort.InferenceSession(str(zoo / "zoo8.onnx"), providers=["CPUExecutionProvider"])
    x = np.random.default_rng(0).random((1, 3, 40, 56), dtype=np.float32)
    for index in (0, 3, 7):
        w = np.eye(8, dtype=np.float32)[[index]]
        with torch.no_grad():
            ours = m.net(torch.from_numpy(x), torch.from_numpy(w)).numpy()
        np.testing.assert_allclose(ours, session.run(None, {"input": x, "style_weights": w})[0], atol=1e-4)

    # a bundled slim_wide network (candy) starts a slim_wide module, and only that
    wide = FastStyleModule("candy.jpg", arch="slim_wide", init_from=str(zoo / "candy.onnx"), channels_last=False).eval()
    session = ort.InferenceSession(str(zoo / "candy.onnx"), providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(wide.net(torch.from_numpy(x)).numpy(), session.run(None, {"input": x})[0], atol=1e-4)
    with pytest.raises(ImpastoError, match="a slim_wide network, not slim"):
        FastStyleModule("candy.jpg", init_from=str(zoo / "candy.onnx"))

    slim = str(zoo / "starry_night.video.onnx")   # a bundled slim network (starry_night's video network)
    single = FastStyleModule("udnie.jpg", init_from=slim, channels_last=False).eval()
    session = ort.InferenceSession(slim, providers=["CPUExecutionProvider"])
    with torch.no_grad():
        np.testing.assert_allclose(single.net(torch.from_numpy(x)).numpy(), session.run(None, {"input": x})[0], atol=1e-4)

    plus = MultiStyleModule(["the_wave.jpg"], add_to=str(zoo / "zoo8.onnx"), channels_last=False)
    assert plus.style_names == names + ["the_wave"] and plus.trained == [8]
    with pytest.raises(ImpastoError, match="8 styles, not 2"):
        MultiStyleModule(["a.jpg", "b.jpg"], init_from=str(zoo / "zoo8.onnx"))
    with pytest.raises(ImpastoError, match="a slim network, not medium"):
        FastStyleModule("udnie.jpg", arch="medium", init_from=slim)
    dilated = FastStyleModule("udnie.jpg", arch="slim_dilated", init_from=slim)
    assert dilated.net.spec.dilations and all(torch.equal(a, b) for a, b in
                                              zip(dilated.net.state_dict().values(), single.net.state_dict().values()))
    # slim's weights fill slim_skip but for the skip, which starts at zero: the bundled network exactly.
    skip = FastStyleModule("udnie.jpg", arch="slim_skip", init_from=slim, channels_last=False)
    coarse = FastStyleModule("udnie.jpg", arch="slim_coarse", init_from=slim, channels_last=False)
    with torch.no_grad():   # and slim_coarse, whose branch joins through a zero conv
        for grown in (skip, coarse):
            np.testing.assert_allclose(grown.net(torch.from_numpy(x)).numpy(), session.run(None, {"input": x})[0],
                                       atol=1e-4)
    with pytest.raises(ImpastoError, match="a slim_skip network, not slim"):   # the skip would be lost
        FastStyleModule("candy.jpg", arch="slim", init_from=str(make_checkpoint(tmp_path / "skip.pt", "slim_skip")))
    stranger = onnx.load(str(zoo / "candy.onnx"))
    del stranger.metadata_props[:]
    onnx.save(stranger, str(tmp_path / "stranger.onnx"))
    with pytest.raises(ImpastoError, match="not an impasto network"):
        FastStyleModule("candy.jpg", init_from=str(tmp_path / "stranger.onnx"))
    (tmp_path / "junk.onnx").write_bytes(b"not a protobuf")
    with pytest.raises(ImpastoError, match="not a readable ONNX file"):
        FastStyleModule("candy.jpg", init_from=str(tmp_path / "junk.onnx"))


def test_bad_configurations_say_what_to_fix(two_styles, tmp_path):
    from impasto.training.fast.multistyle import MultiStyleModule
    with pytest.raises(ImpastoError, match="single-style"):
        MultiStyleModule(["x.jpg"], add_to=str(make_checkpoint(tmp_path / "one.pt")))
    with pytest.raises(ImpastoError, match="more than once"):
        MultiStyleModule(["a/candy.jpg", "b/candy.jpg"])
    with pytest.raises(ImpastoError, match="more than once"):
        MultiStyleModule(["candy.jpg"], add_to=str(two_styles))
    with pytest.raises(ImpastoError, match="at least one"):
        MultiStyleModule([])
    with pytest.raises(ImpastoError, match="3 styles, not 2|2 styles, not 3"):
        MultiStyleModule(["a.jpg", "b.jpg", "c.jpg"], init_from=str(two_styles))


def test_style_weight_scales_weigh_each_style_on_its_own(data, weights_path):
    """A style scaled 3x gets 3x the style term on the same batch; the other style keeps its weight."""
    from impasto.training.fast.multistyle import MultiStyleModule
    paintings = [str(data / "style" / "candy.jpg"), str(data / "style" / "udnie.jpg")]
    x = torch.rand(1, 3, 48, 48)

    def style_terms(scales):
        torch.manual_seed(0)   # the same network both times
        m = MultiStyleModule(paintings, style_weight=5.0, style_size=64, style_weight_scales=scales,
                             vgg_weights=weights_path, channels_last=False).eval()
        m.prepare_loss(torch.device("cpu"))
        out = []
        for index in (0, 1):
            m._use_style(index)
            with torch.no_grad():
                out.append(float(m.compute_loss(x)[1]["style"]))
        return out

    plain, scaled = style_terms(None), style_terms([1.0, 3.0])
    assert scaled[0] == pytest.approx(plain[0], rel=1e-5)
    assert scaled[1] == pytest.approx(3 * plain[1], rel=1e-5)
    with pytest.raises(ImpastoError, match="one positive number per style image"):
        MultiStyleModule(paintings, style_weight=5.0, style_weight_scales=[1.0])
    with pytest.raises(ImpastoError, match="one positive number per style image"):
        MultiStyleModule(paintings, style_weight=5.0, style_weight_scales=[1.0, 0.0])


def test_bundled_multistyle_configs_parse(capsys):
    import yaml
    from impasto.training.fast.cli import cli_main
    from impasto.training.fast.multistyle import MultiStyleModule
    for config in sorted((REPO / "configs" / "multistyle").glob("*.yaml")):
        with pytest.raises(SystemExit) as exc:
            cli_main(["--config", str(config), "--print_config"], MultiStyleModule)
        assert exc.value.code == 0
        cfg = yaml.safe_load(capsys.readouterr().out)
        assert cfg["model"]["style_images"] and cfg["model"]["arch"] == "slim"
        assert all((REPO / p).exists() for p in cfg["model"]["style_images"]) or pytest.skip("no shared data")


def test_trained_styles_blend_half_and_half_between_them(two_styles, vgg_weights, data):
    """The bar's blend test on a trained network (4 steps: the styles have just parted)."""
    from impasto import images
    from impasto.models.losses import GATYS_STYLE, gram
    from impasto.models.tensors import to_tensor
    from impasto.models.vgg import VGGEncoder
    from impasto.training.fast.checkpoint import load_fast_checkpoint
    net, _ = load_fast_checkpoint(two_styles)
    vgg = VGGEncoder(vgg_weights, GATYS_STYLE)
    photo = to_tensor(images.load(sorted((data / "content").glob("*.jpg"))[0], max_side=96))
    with torch.no_grad():
        g = {k: vgg(net(photo, torch.tensor([w]))) for k, w in (("a", [1.0, 0.0]), ("b", [0.0, 1.0]),
                                                                ("mix", [0.5, 0.5]))}
    for layer in GATYS_STYLE:
        a, b, mix = (gram(g[k][layer])[0].double() for k in ("a", "b", "mix"))
        apart = (a - b).norm()
        assert apart > 0 and (mix - a).norm() < apart and (mix - b).norm() < apart, layer
        t = float(((mix - a) * (b - a)).sum() / apart ** 2)
        assert 0.2 < t < 0.8, (layer, t)
