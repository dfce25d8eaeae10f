"""`impasto train-multi`: one network for many styles (conditional instance norm), LightningCLI + YAML."""

from __future__ import annotations

from .options import add_parser

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
    p = add_parser(subparsers, "train-multi", help=HELP, description=DESCRIPTION, add_help=False)
    p.add_argument("-h", "--help", action="store_true", help="show this help (and the full option list)")
    p.set_defaults(run=run, accepts_extra=True)


def run(args) -> int:
    from impasto.training.fast.cli import cli_main
    from impasto.training.fast.multistyle import MultiStyleModule
    argv = list(args.extra)
    if args.help:
        print(DESCRIPTION)
        argv = ["--help"]
    return cli_main(argv, MultiStyleModule, prog="impasto train-multi")
