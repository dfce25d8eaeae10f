"""Fast-style training: real VGG weights, real photos, 64 px crops, a few steps each."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from impasto.errors import ImpastoError
from impasto.hardware import auto_trainer_precision
from impasto.training.fast.gpu import style_configs

from helpers import REPO, coco_photos
N_PHOTOS = 12  # 2 held out, 10 for training: 5 steps per epoch at batch 2


pytestmark = pytest.mark.usefixtures("training_env")


@pytest.fixture(scope="module")
def photos(data, tmp_path_factory) -> Path:
    return coco_photos(data, tmp_path_factory.mktemp("photos"), N_PHOTOS)


@pytest.fixture(scope="module")
def style_image(data) -> str:
    return str(data / "style" / "candy.jpg")


def tiny_args(photos, style_image, run_dir, steps, *extra) -> list[str]:
    return ["--model.style_image", style_image, "--model.style_name", "tiny", "--model.style_size", "64",
            "--model.lr", "0.01", "--data.source", str(photos), "--data.holdout", "2",
            "--data.image_size", "64", "--data.batch_size", "2", "--trainer.max_steps", str(steps),
            "--trainer.precision", "32-true", "--trainer.val_check_interval", "3",
            "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
            "--trainer.enable_model_summary", "false", "--run_dir", str(run_dir),
            "--save_every_n_steps", "3", *extra]


def train_losses(run_dir: Path) -> dict[int, float]:
    rows = list(csv.DictReader(open(run_dir / "csv" / "metrics.csv")))
    return {int(r["step"]): float(r["train/loss"]) for r in rows if r.get("train/loss")}


def test_loss_falls(photos, style_image, tmp_path):
    from impasto.training.fast.data import PhotoDataModule
    from impasto.training.fast.module import FastStyleModule
    import pytorch_lightning as pl

    pl.seed_everything(0)
    model = FastStyleModule(style_image, style_size=64, style_weight=5.0, lr=0.01)
    dm = PhotoDataModule(str(photos), holdout=2, image_size=64, batch_size=2)
    dm.setup()
    fixed = torch.stack([dm.train_set[(i, 0, i)]["image"] for i in range(4)])
    model.prepare_loss(torch.device("cpu"))
    with torch.no_grad():
        before, _, _ = model.compute_loss(fixed)
    trainer = pl.Trainer(max_steps=25, precision=auto_trainer_precision(False), logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=tmp_path)
    trainer.fit(model, datamodule=dm)
    with torch.no_grad():
        after, terms, _ = model.compute_loss(fixed)
    assert trainer.global_step == 25
    assert float(after) < 0.8 * float(before), (float(before), float(after))
    assert set(terms) >= {"content", "style"}
    assert model.final_loss_terms()["total"] > 0


def test_resume_is_exact_and_checkpoint_contract(photos, style_image, tmp_path):
    from impasto.training.fast.checkpoint import META_FIELDS, load_fast_checkpoint
    from impasto.training.fast.cli import cli_main

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    assert cli_main(tiny_args(photos, style_image, a, 3)) == 0         # stops mid-epoch (5 per epoch)
    assert cli_main(tiny_args(photos, style_image, b, 7, "--resume", str(a / "checkpoints" / "last.ckpt"))) == 0
    assert cli_main(tiny_args(photos, style_image, c, 7)) == 0         # uninterrupted reference

    resumed, straight = train_losses(b), train_losses(c)
    assert min(resumed) == 3, "the resumed run must continue at step 3, not start over"
    assert sorted(resumed) == [3, 4, 5, 6]
    for step in resumed:
        assert resumed[step] == pytest.approx(straight[step], rel=1e-4), step
    assert train_losses(a)[2] == pytest.approx(straight[2], rel=1e-4)

    net_b, meta_b = load_fast_checkpoint(b / "checkpoints" / "last.ckpt")
    net_c, meta_c = load_fast_checkpoint(c / "checkpoints" / "last.ckpt")
    for (name, pb), pc in zip(net_b.state_dict().items(), net_c.state_dict().values()):
        torch.testing.assert_close(pb, pc, rtol=1e-4, atol=1e-6, msg=name)
    assert not net_b.training
    assert set(META_FIELDS) <= set(meta_b)
    assert meta_b["steps"] == 7 and meta_b["style"] == "tiny" and meta_b["arch"] == "slim"
    assert meta_b["style_image"] == style_image
    assert meta_b["config_hash"] == meta_c["config_hash"] or meta_b["config"] != meta_c["config"]
    assert set(meta_b["loss_terms"]) >= {"content", "style", "total"}
    assert meta_b["wall_time_s"] > 0
    assert (b / "checkpoints" / "best.ckpt").exists()
    assert sorted(p.name for p in (c / "samples").glob("*.png"))[-1] == "step_000006.png"
    y = net_b(torch.rand(1, 3, 37, 50))
    assert y.shape == (1, 3, 37, 50)


def test_lr_decay_follows_the_global_step_across_a_resume(photos, style_image, tmp_path):
    """A decay chosen when resuming a constant-rate run lands on the same curve as a run that
    had it from the start, and the rate Adam used last is the cosine's."""
    from impasto.training.fast.cli import cli_main
    from impasto.training.fast.module import lr_at

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    decay = ("--model.lr_decay", "[3,7]")
    assert cli_main(tiny_args(photos, style_image, a, 3)) == 0      # constant rate: the decay starts at 3
    assert cli_main(tiny_args(photos, style_image, b, 7, *decay, "--resume", str(a / "checkpoints" / "last.ckpt"))) == 0
    assert cli_main(tiny_args(photos, style_image, c, 7, *decay)) == 0
    resumed, straight = train_losses(b), train_losses(c)
    assert sorted(resumed) == [3, 4, 5, 6]
    for step in resumed:
        assert resumed[step] == pytest.approx(straight[step], rel=1e-4), step
    for run in (b, c):
        state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
        used = state["optimizer_states"][0]["param_groups"][0]["lr"]
        assert used == pytest.approx(lr_at(6, 0.01, (3, 7))) and used < 0.2 * 0.01


def test_a_deadline_decay_anneals_to_zero_as_the_time_budget_runs_out(photos, style_image, tmp_path):
    """`lr_decay: deadline` measures the run's own pace, fixes the cosine's end at the step the
    time runs out, and stops there with the rate at zero, well inside max_time."""
    import time

    from impasto.training.fast.cli import cli_main
    from impasto.training.fast.schedule import lr_at

    run = tmp_path / "run"
    started = time.monotonic()
    assert cli_main(tiny_args(photos, style_image, run, 100000, "--model.lr_decay", "deadline",
                              "--trainer.max_time", "00:00:00:25", "--trainer.val_check_interval", "1000",
                              "--save_every_n_steps", "1000")) == 0
    took = time.monotonic() - started
    state = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    start, end = state["hyper_parameters"]["lr_decay"]
    assert start == 0 and end > 30                        # planned after 20 steps and a 5 s window
    last = state["global_step"]             # the end it chose (a busy machine's timer may stop it a few steps early)
    assert end - 5 <= last <= end
    used = state["optimizer_states"][0]["param_groups"][0]["lr"]
    assert used == pytest.approx(lr_at(last - 1, 0.01, (0, end))) and used < 0.1 * 0.01   # annealed
    assert took < 25 + 15                                 # start-up and the last save on top of the budget


def test_a_deadline_decay_needs_a_time_budget(photos, style_image, tmp_path):
    from impasto.training.fast.cli import cli_main
    with pytest.raises(ImpastoError, match="give trainer.max_time"):
        cli_main(tiny_args(photos, style_image, tmp_path / "run", 5, "--model.lr_decay", "deadline"))


def test_lr_decay_is_a_half_cosine_and_bad_ranges_are_refused(style_image):
    from impasto.training.fast.module import FastStyleModule, lr_at
    assert lr_at(10, 1e-3, None) == 1e-3
    assert [lr_at(s, 1.0, (4, 8)) for s in (0, 4, 6, 8, 20)] == pytest.approx([1.0, 1.0, 0.5, 0.0, 0.0])
    for bad in ([5, 5], [8, 4], [-1, 3], [3], "soon"):
        with pytest.raises(ImpastoError, match="lr_decay is \\[start, end\\]"):
            FastStyleModule(style_image, lr_decay=bad)


def test_ctrl_c_leaves_a_usable_checkpoint(photos, style_image, tmp_path):
    import pytorch_lightning as pl
    from impasto.training.fast.data import PhotoDataModule
    from impasto.training.fast.checkpoint import SafetyCheckpoint, load_fast_checkpoint
    from impasto.training.fast.module import FastStyleModule

    class CtrlC(pl.Callback):
        def on_train_batch_start(self, trainer, *_):
            if trainer.global_step == 2:
                raise KeyboardInterrupt

    model = FastStyleModule(style_image, style_size=64)
    dm = PhotoDataModule(str(photos), holdout=2, image_size=64, batch_size=2)
    trainer = pl.Trainer(max_steps=10, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, default_root_dir=tmp_path, enable_checkpointing=False,
                         callbacks=[SafetyCheckpoint(tmp_path / "ck"), CtrlC()])
    with pytest.raises(SystemExit):       # Lightning's graceful shutdown ends with exit(1)
        trainer.fit(model, datamodule=dm)
    net, meta = load_fast_checkpoint(tmp_path / "ck" / "last.ckpt")
    assert meta["steps"] == 2


def test_a_diverged_run_stops_at_once_and_keeps_its_last_finite_checkpoint(photos, style_image, tmp_path):
    """An update that overflows (here: a weight set to inf before step 3, as a too-high learning
    rate does) makes the loss non-finite: training stops with a clear error, and neither the
    periodic save nor the save on errors writes the ruined weights over last.ckpt (step 2)."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint
    from impasto.training.fast.data import PhotoDataModule
    from impasto.training.fast.checkpoint import (FiniteLossGuard, NonFiniteLoss, SafetyCheckpoint,
                                                  load_fast_checkpoint)
    from impasto.training.fast.module import FastStyleModule

    class Overflow(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, *_):
            if trainer.global_step == 2:
                with torch.no_grad():
                    next(pl_module.net.parameters()).fill_(float("inf"))

    ck = tmp_path / "ck"
    model = FastStyleModule(style_image, style_size=64)
    dm = PhotoDataModule(str(photos), holdout=2, image_size=64, batch_size=2)
    trainer = pl.Trainer(max_steps=10, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         limit_val_batches=0, default_root_dir=tmp_path,
                         callbacks=[Overflow(), FiniteLossGuard(2, ck / "last.ckpt"), SafetyCheckpoint(ck),
                                    ModelCheckpoint(dirpath=ck, filename="step{step:06d}", save_top_k=0,
                                                    save_last=True, every_n_train_steps=2)])
    with pytest.raises(NonFiniteLoss, match="the training loss became (nan|inf) by step 3: the run diverged") as err:
        trainer.fit(model, datamodule=dm)
    assert f"--model.init_from {ck / 'last.ckpt'}" in str(err.value)   # where to start again
    net, meta = load_fast_checkpoint(ck / "last.ckpt")
    assert meta["steps"] == 2
    assert all(torch.isfinite(p).all() for p in net.parameters())


@pytest.mark.slow
def test_ddp_two_cpu_processes_on_gloo(photos, style_image, tmp_path):
    """The documented multi-GPU command, on CPU: Lightning launches a second process, the two
    join over gloo, each trains on its own half of the photos, rank 0 writes the checkpoint."""
    import subprocess
    import sys

    from impasto.training.fast.checkpoint import load_fast_checkpoint
    run = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    proc = subprocess.run([sys.executable, "-m", "impasto.cli", "train",
                           *tiny_args(photos, style_image, run, 3, "--trainer.strategy", "ddp",
                                      "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--threads", "1")],
                          capture_output=True, text=True, timeout=600, env=env, cwd=REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert "MEMBER: 1/2" in out and "MEMBER: 2/2" in out and "gloo" in out
    net, meta = load_fast_checkpoint(run / "checkpoints" / "last.ckpt")
    assert meta["steps"] == 3 and meta["style"] == "tiny"
    assert set(train_losses(run)) == {0, 1, 2}           # logged once (rank 0), one row per step


DDP_POISON = """
import sys
import torch
from impasto.cli import main
from impasto.training.fast.module import FastStyleModule


def overflow(start):   # rank 1's weights overflow before step 2; rank 0's loss stays finite
    def on_train_batch_start(self, batch, batch_idx):
        start(self, batch, batch_idx)
        if self.trainer.global_step == 2 and self.trainer.global_rank == 1:
            with torch.no_grad():
                next(self.net.parameters()).fill_(float("inf"))
    return on_train_batch_start


FastStyleModule.on_train_batch_start = overflow(FastStyleModule.on_train_batch_start)
sys.exit(main(["train", *sys.argv[1:]]))
"""


@pytest.mark.slow
def test_under_ddp_a_nan_on_one_rank_stops_every_rank_at_once(photos, style_image, tmp_path):
    """Only rank 1's loss is nan at step 2, but the averaged gradients ruin rank 0's weights too:
    both ranks stop with the divergence message at the same step, neither waits on the other,
    and last.ckpt keeps the finite weights of step 2."""
    import subprocess
    import sys

    from impasto.training.fast.checkpoint import load_fast_checkpoint
    script, run = tmp_path / "poisoned_train.py", tmp_path / "ddp"
    script.write_text(DDP_POISON)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(29500 + (os.getpid() + 500) % 1000)}
    proc = subprocess.run([sys.executable, str(script),
                           *tiny_args(photos, style_image, run, 6, "--trainer.strategy", "ddp",
                                      "--trainer.accelerator", "cpu", "--trainer.devices", "2", "--threads", "1",
                                      "--save_every_n_steps", "1")],
                          capture_output=True, text=True, timeout=300, env=env, cwd=REPO)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    assert "became nan by step 3: the run diverged" in out, out[-3000:]                   # rank 1
    assert "became non-finite on another process by step 3: the run diverged" in out    # rank 0
    assert "Traceback" not in out
    net, meta = load_fast_checkpoint(run / "checkpoints" / "last.ckpt")
    assert meta["steps"] == 2 and all(torch.isfinite(p).all() for p in net.parameters())


def test_train_command_logs_the_temporal_term(photos, style_image, tmp_path):
    from impasto.cli import main
    run = tmp_path / "run"
    assert main(["train", *tiny_args(photos, style_image, run, 3, "--model.temporal_weight", "1000",
                                     "--model.temporal_motion", "{shift: 4, noise: 0.02}")]) == 0
    rows = list(csv.DictReader(open(run / "csv" / "metrics.csv")))
    assert [float(r["train/temporal"]) for r in rows if r.get("train/temporal")][0] > 0
    assert any(r.get("val/temporal") for r in rows)


def test_edge_margin_trains_on_what_the_runtime_shows(photos, style_image, data, tmp_path):
    """With `edge_margin` the losses see the network's output as the runtime serves it (the photo
    reflect-padded, painted, cropped back); the exported model carries the margin, and onnxruntime
    then paints a photo exactly as training did."""
    from impasto import images
    from impasto.cli import main
    from impasto.serve.runtime import load_engine
    from impasto.serve.stylize import run_network
    from impasto.training.fast.module import FastStyleModule

    run = tmp_path / "run"
    assert main(["train", *tiny_args(photos, style_image, run, 2, "--model.edge_margin", "8")]) == 0
    module = FastStyleModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt", map_location="cpu").eval()
    photo = images.load(data / "content" / "chicago.jpg", max_side=64)[:40, :64]   # 64x40: no padding to 4
    x = torch.from_numpy(photo.transpose(2, 0, 1).copy())[None]
    with torch.no_grad():
        trained_view = module(x)
        padded = module.net(torch.nn.functional.pad(x, (8, 8, 8, 8), mode="reflect"))
        unpadded = module.net(x)
    torch.testing.assert_close(trained_view, padded[..., 8:48, 8:72])
    assert not torch.allclose(trained_view, unpadded, atol=1e-3)   # the margin changes what the loss sees

    assert main(["export", str(run / "checkpoints" / "last.ckpt"), "-o", str(tmp_path / "m.onnx"),
                 "--no-variants"]) == 0
    engine = load_engine(tmp_path / "m.onnx", "ort")
    assert engine.edge_margin == 8
    served = run_network(engine, photo)
    np.testing.assert_allclose(served, trained_view[0].clamp(0, 1).numpy().transpose(1, 2, 0), atol=1e-4)

    for bad in (-4, 6):
        with pytest.raises(ImpastoError, match="edge_margin"):
            FastStyleModule(style_image, edge_margin=bad)


def test_epoch_sampler_gives_each_rank_its_own_photos():
    from impasto.training.fast.data import EpochSampler
    shards = [list(EpochSampler(10, 2, 0, 0, 0, rank, 2)) for rank in (0, 1)]
    seen = [{photo for photo, _, _ in s} for s in shards]
    assert len(shards[0]) == len(shards[1]) == 4           # 10 photos, batch 2 per rank: 2 steps each
    assert not seen[0] & seen[1]                           # no photo on both ranks


def test_data_module_survives_corrupt_and_grayscale(data, tmp_path):
    from impasto.training.fast.data import PhotoDataModule

    for p in sorted((data / "coco_sample").glob("*.jpg"))[:6]:
        shutil.copy(p, tmp_path / p.name)
    good = (data / "coco_sample" / "000000000009.jpg").read_bytes()
    (tmp_path / "zz_truncated.jpg").write_bytes(good[: len(good) // 3])
    (tmp_path / "zz_text.jpg").write_text("this is not an image")
    Image.new("L", (90, 70), 100).save(tmp_path / "zz_gray.png")
    Image.new("CMYK", (80, 80), (10, 200, 30, 0)).save(tmp_path / "zz_cmyk.jpg")
    Image.new("P", (80, 60), 3).save(tmp_path / "zz_palette.gif")

    dm = PhotoDataModule(str(tmp_path), holdout=1, image_size=48, batch_size=2)
    dm.setup()
    assert len(dm.train_set) + len(dm.val_set) == 11
    seen = 0
    for batch in dm.train_dataloader():
        x = batch["image"]
        assert x.shape[1:] == (3, 48, 48) and x.dtype == torch.float32
        assert 0.0 <= float(x.min()) and float(x.max()) <= 1.0
        seen += x.shape[0]
    assert seen == 10
    assert sorted(Path(p).name for p in dm.skipped) == ["zz_text.jpg", "zz_truncated.jpg"]
    gray = next(i for i in range(len(dm.train_set))
                if dm.train_set.table[i]["image"]["path"].endswith("zz_gray.png"))
    x = dm.train_set[gray]["image"]
    assert x.shape == (3, 48, 48) and torch.allclose(x[0], x[1])


def test_data_module_errors_are_actionable(tmp_path):
    from impasto.training.fast.data import PhotoDataModule
    Image.new("RGB", (40, 40)).save(tmp_path / "one.png")
    with pytest.raises(ImpastoError, match="holdout"):
        PhotoDataModule(str(tmp_path), holdout=1).setup()
    (tmp_path / "file.txt").write_text("x")
    with pytest.raises(ImpastoError, match="folder"):
        PhotoDataModule(str(tmp_path / "file.txt")).setup()


def test_config_parses_and_overrides_apply(capsys):
    from impasto.training.fast.cli import cli_main

    with pytest.raises(SystemExit) as exc:
        cli_main(["--config", "configs/fast/candy.yaml", "--model.style_weight", "7.5",
                  "--data.image_size", "96", "--trainer.max_steps", "11", "--print_config"])
    assert exc.value.code == 0
    cfg = yaml.safe_load(capsys.readouterr().out)
    assert cfg["model"]["style_weight"] == 7.5
    assert cfg["data"]["image_size"] == 96
    assert cfg["trainer"]["max_steps"] == 11
    assert cfg["trainer"]["precision"] == auto_trainer_precision(torch.cuda.is_available())
    assert cfg["model"]["arch"] == "slim"
    with pytest.raises(SystemExit) as exc:
        cli_main(["--config", "configs/fast/candy.yaml", "--model.no_such_key", "1"])
    assert exc.value.code != 0


STYLE_CONFIGS = style_configs([REPO / "configs" / "fast"], None)


@pytest.mark.parametrize("config", STYLE_CONFIGS, ids=lambda p: p.stem)
def test_bundled_configs_point_at_real_files(config):
    cfg = yaml.safe_load(config.read_text())
    base = yaml.safe_load((REPO / "configs" / "fast" / "base.yaml").read_text())
    assert cfg["model"]["arch"] == base["model"]["arch"] == "slim"
    assert cfg["model"]["init_from"].startswith(base["run_dir"] + "/")
    assert (REPO / cfg["model"]["style_image"]).exists() or pytest.skip("shared style images not present")
    assert not os.path.isabs(cfg["model"]["style_image"]) and not os.path.isabs(cfg["data"]["source"])
    assert cfg["model"].get("style_name", config.stem) == config.stem


def test_model_card_merges(tmp_path):
    from impasto.models.zoo.card import write_card
    card = tmp_path / "candy.json"
    write_card(card, {"onnx": "candy.onnx", "quality": {"fp16": 0.01}}, merge_nested=True)
    write_card(card, {"style": "candy", "steps": 800, "quality": {"lbfgs_iterations": 40}}, merge_nested=True)
    got = json.loads(card.read_text())
    assert got == {"onnx": "candy.onnx", "quality": {"fp16": 0.01, "lbfgs_iterations": 40},
                   "style": "candy", "steps": 800}


def test_train_command_help(capsys):
    from impasto.cli import main
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    assert "--resume last" in out and "trainer.strategy ddp" in out and "--model.style_weight" in out
