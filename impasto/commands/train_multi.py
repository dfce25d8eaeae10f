"""`impasto train-multi`: one network for many styles (conditional instance norm), LightningCLI + YAML."""

from __future__ import annotations

from .options import add_lightning_parser

HELP = "train one fast network for several styles, or add a style to a trained one"

DESCRIPTION = """\
Train one feed-forward network that paints every style of a list (Dumoulin et al. 2017): the
convolutions are shared, each style owns the scale and shift of every instance norm. Each
training batch draws one of the styles. The exported model takes the style weights as a second
input, so one file serves every style and every blend (`impasto stylize --blend`).

The same keys as `impasto train` (see --print_config), with a list of paintings instead of one:

examples:
  impasto train --config configs/fast/base.yaml                       # once: the base network
  impasto train-multi --config configs/multistyle/multi.yaml          # four styles in one network
  impasto train-multi --config configs/multistyle/multi.yaml --resume last
  impasto train-multi --config configs/multistyle/add_style.yaml      # a fifth style in minutes:
      # only its norm parameters train, the convolutions and the other styles stay frozen
  impasto export runs/multi/checkpoints/last.ckpt -o multi.onnx --card multi.json

keys (see --print_config for all):
  model.style_images   the paintings, one style each
  model.style_names    their names (default: the file stems)
  model.network_name   the network's name (run folder, model file); default multi
  model.init_from      a single-style or base checkpoint (convolutions copied, norms given to
                       every style), or a multi-style one with the same number of styles
  model.add_to         a trained multi-style checkpoint to append style_images to
  model.*, data.*, trainer.*, run_dir, resume, save_every_n_steps, threads: as `impasto train`
"""


def register(subparsers) -> None:
    add_lightning_parser(subparsers, "train-multi", HELP, DESCRIPTION, multi_style=True)
