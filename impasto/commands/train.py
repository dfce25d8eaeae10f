"""`impasto train`: train a fast style network with PyTorch Lightning (LightningCLI + YAML)."""

from __future__ import annotations

from .options import add_lightning_parser


HELP = "train a fast (feed-forward) style network on photos"

DESCRIPTION = """\
Train a feed-forward network that paints any photo in one style, in one pass.

The network learns from photos (COCO, or any folder) against the same perceptual loss the
iterative optimiser uses (content on VGG relu2_2, Gram style on relu1_2..relu4_3, TV).
Everything is configured by a YAML file; any key can be overridden on the command line.

examples:
  impasto train --config configs/fast/candy.yaml
  impasto train --config configs/fast/candy.yaml --trainer.max_steps 4000 --model.style_weight 8
  impasto train --config configs/fast/candy.yaml --resume last        # continue after Ctrl-C
  impasto train --config configs/fast/candy.yaml --data.source detection-datasets/coco \\
      --data.streaming true --data.max_images 20000                   # COCO from the hub
  impasto train --config configs/fast/candy.yaml --print_config       # the full resolved config
  impasto train --model.style_image my_painting.jpg --run_dir runs/mine   # no config file

  multi-GPU (one node, 4 GPUs) / multi-node:
  impasto train --config configs/fast/candy.yaml --trainer.accelerator gpu --trainer.devices 4 \\
      --trainer.strategy ddp --trainer.precision 16-mixed [--trainer.num_nodes 2]

keys (see --print_config for all):
  model.*    style_image, style_name, arch (slim|johnson), style_size, content_weight,
             style_weight, tv_weight, histogram_weight, lr, vgg_weights, ...
  data.*     source (folder or hub dataset), image_size, batch_size, holdout, streaming, ...
  trainer.*  max_steps, precision (bf16-mixed on CPU), val_check_interval, devices, strategy, ...
  run_dir    where checkpoints (checkpoints/last.ckpt, best.ckpt), TensorBoard and CSV logs,
             and the stylised validation grids (samples/) go; default runs/<style>
  resume     a checkpoint to continue from exactly (optimiser, step, data order), or "last"
  save_every_n_steps  how often checkpoints/last.ckpt is written

Ctrl-C stops cleanly and leaves checkpoints/last.ckpt; `--resume last` continues from it.
Watch it live: tensorboard --logdir runs/<style>
"""


def register(subparsers) -> None:
    add_lightning_parser(subparsers, "train", HELP, DESCRIPTION)
