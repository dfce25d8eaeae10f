"""`impasto train`: LightningCLI for FastStyleModule + PhotoDataModule, with the run folder,
checkpoints (best, periodic, last) and loggers every run gets."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Optional

import torch
from pytorch_lightning.callbacks import ModelCheckpoint, RichProgressBar
from pytorch_lightning.cli import LightningCLI
from pytorch_lightning.loggers import TensorBoardLogger

from impasto.errors import ImpastoError
from impasto.hardware import auto_trainer_precision

from .checkpoint import FiniteLossGuard, SafetyCheckpoint, config_hash
from .csvlog import ResumableCSVLogger, checkpoint_step
from .data import PhotoDataModule
from .module import FastStyleModule
from .schedule import DeadlineDecay

TRAINER_DEFAULTS = {
    "accelerator": "auto",
    # bf16-mixed where it is fast (a GPU, a CPU with AVX-512 BF16 or AMX), fp32 elsewhere
    "precision": auto_trainer_precision(torch.cuda.is_available()),
    "max_steps": 2000,
    "val_check_interval": 100,
    "check_val_every_n_epoch": None,
    "log_every_n_steps": 10,
    "num_sanity_val_steps": 1,
    "use_distributed_sampler": False,   # the data module shards by rank itself (exact resume)
}


class FastStyleCLI(LightningCLI):
    """The run folder's options, callbacks and loggers on top of LightningCLI."""

    def add_arguments_to_parser(self, parser):
        parser.add_argument("--run_dir", type=Optional[str], default=None,
                            help="output folder (checkpoints, logs, samples); default runs/<style>")
        parser.add_argument("--resume", type=Optional[str], default=None,
                            help='checkpoint to continue from, or "last" (run_dir/checkpoints/last.ckpt)')
        parser.add_argument("--save_every_n_steps", type=int, default=100,
                            help="how often checkpoints/last.ckpt is written")
        parser.add_argument("--threads", type=Optional[int], default=None,
                            help="CPU threads for torch (1 is fastest on a busy shared machine)")

    def instantiate_trainer(self, **kwargs):
        cfg = self.config
        run_dir = Path(cfg.run_dir or Path("runs") / self.model.style_name)
        ckpt_dir = run_dir / "checkpoints"
        trainer_cfg = self._get(self.config_init, "trainer", default={})
        callbacks = list(trainer_cfg.get("callbacks") or [])
        callbacks += [
            FiniteLossGuard(cfg.save_every_n_steps, ckpt_dir / "last.ckpt"),
            ModelCheckpoint(dirpath=ckpt_dir, filename="best", monitor="val/loss", mode="min",
                            save_top_k=1, auto_insert_metric_name=False, enable_version_counter=False),
            ModelCheckpoint(dirpath=ckpt_dir, filename="step{step:06d}", save_top_k=0, save_last=True,
                            every_n_train_steps=cfg.save_every_n_steps, auto_insert_metric_name=False,
                            enable_version_counter=False),
            SafetyCheckpoint(ckpt_dir),
            DeadlineDecay(),
        ]
        if trainer_cfg.get("enable_progress_bar", True) is not False:
            callbacks.append(RichProgressBar(leave=True))
        kwargs["callbacks"] = callbacks
        kwargs["default_root_dir"] = str(run_dir)
        if trainer_cfg.get("logger") in (None, True):
            # metrics.csv keeps the rows from before a --resume (steps up to the checkpoint's)
            resume = ckpt_dir / "last.ckpt" if cfg.resume == "last" else cfg.resume
            kwargs["logger"] = [TensorBoardLogger(str(run_dir), name="tensorboard", version=""),
                                ResumableCSVLogger(str(run_dir), name="csv", version="",
                                                   resume_step=checkpoint_step(resume))]
        return super().instantiate_trainer(**kwargs)


def cli_main(argv: Optional[list[str]] = None, module_class: type = FastStyleModule,
             prog: str = "impasto train") -> int:
    """LightningCLI for FastStyleModule (or a subclass: `impasto train-multi` gives
    MultiStyleModule) + PhotoDataModule, used by `impasto train`."""
    with warnings.catch_warnings():
        # `impasto train ...` hands LightningCLI its own arguments; sys.argv (kept as it is: DDP's
        # launcher re-runs it for the other ranks) holds the same ones, which LightningCLI warns about.
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python")
        cli = FastStyleCLI(module_class, PhotoDataModule, run=False, args=argv,
                           trainer_defaults=TRAINER_DEFAULTS, seed_everything_default=0,
                           save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False,
                           parser_kwargs={"prog": prog, "default_env": False})
    cfg = cli.config.as_dict()
    if cfg.get("threads"):
        torch.set_num_threads(cfg["threads"])
    trainer_keys = ("max_steps", "precision", "accumulate_grad_batches", "devices", "num_nodes")
    config = {"model": cfg.get("model", {}), "data": cfg.get("data", {}),
              "trainer": {k: cfg.get("trainer", {}).get(k) for k in trainer_keys},
              "seed_everything": cfg.get("seed_everything")}
    cli.model.config = config
    cli.model.config_hash = config_hash(config)
    ckpt = cfg.get("resume")
    if ckpt == "last":
        ckpt = str(Path(cli.trainer.default_root_dir) / "checkpoints" / "last.ckpt")
        if not Path(ckpt).exists():
            raise ImpastoError(f"--resume last: no {ckpt} yet; start without --resume")
    elif ckpt and not Path(ckpt).exists():
        raise ImpastoError(f"--resume {ckpt}: no such checkpoint")
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=ckpt)
    return 0


