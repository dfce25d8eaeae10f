"""`impasto train-gpu --pack PACK`: every bundled style on one CUDA GPU within a time budget."""

from __future__ import annotations

from pathlib import Path

from .options import add_parser, number

CONFIGS = Path("configs/fast")   # relative to the repository root, where it runs (as the configs' own paths)
MULTI = Path("configs/multistyle/zoo8.yaml")
ZOO = Path("models/zoo")


def register(sub) -> None:
    p = add_parser(sub, "train-gpu", help="train the base network, then every style at once, on one GPU",
                   description="The shared base network (configs/fast/base.yaml), then every style config\n"
                               "and the eight-style network (--multi) at once, each with configs/fast/gpu.yaml\n"
                               "on top (slim_wide, Johnson's 256 px crops, batch 8, bf16-mixed), from a pack\n"
                               "written by `impasto pack`; then, in the budget's last --video-share, every\n"
                               "style's video network: its photo network fine-tuned with the temporal term\n"
                               "(--video-profile on top, then a style's own video/<style>.yaml beside it where\n"
                               "there is one: configs/fast/video/mosaic.yaml). Each network comes back as\n"
                               "OUT/results/<style>.ckpt "
                               "(<style>_video.ckpt) without its optimiser state.\n"
                               "Run it from the repository root.\n\n"
                               "With --from-zoo, every style goes on from its bundled network instead, on the\n"
                               "recipe its model card records, with configs/fast/gpu_zoo.yaml on top (the\n"
                               "learning rate annealed to zero by the deadline).\n\n"
                               "examples:\n  impasto train-gpu --pack packs/coco --minutes 12\n"
                               "  impasto train-gpu --pack packs/coco --styles candy --multi     # candy alone\n"
                               "  impasto train-gpu --pack packs/coco --from-zoo --multi --video-share 0 --minutes 8")
    p.add_argument("--pack", type=Path, required=True, help="a pack written by `impasto pack`")
    p.add_argument("--configs", type=Path, nargs="+", default=[str(CONFIGS)],
                   help="style configs: YAML files or folders of them")
    p.add_argument("--styles", default=None, help="comma-separated config names (default: every one)")
    p.add_argument("--minutes", type=float, default=12.0, help="the whole budget, the base networks included")
    p.add_argument("--base-steps", type=int, default=800, help="steps of each base network")
    p.add_argument("--workers", type=int, default=2, help="data-loading workers per run")
    p.add_argument("--out", type=Path, default=Path("runs/gpu"), help="runs and results")
    p.add_argument("--base", type=Path, default=CONFIGS / "base.yaml", help="the base network's config")
    p.add_argument("--multi", type=Path, nargs="*", default=[str(MULTI)],
                   help="multi-style configs to train beside the styles; `--multi` alone: none "
                        f"(default: the bundled eight-style network's, {MULTI})")
    p.add_argument("--profile", type=Path, nargs="+", default=None, metavar="YAML",
                   help=f"applied on top of every config, several in order (default: {CONFIGS / 'gpu.yaml'}; "
                        f"with --from-zoo, {CONFIGS / 'gpu_zoo.yaml'}); e.g. "
                        f"--profile {CONFIGS / 'gpu.yaml'} my_recipe.yaml")
    p.add_argument("--from-zoo", nargs="?", type=Path, const=ZOO, default=None, metavar="FOLDER",
                   help=f"go on from the bundled networks (default folder: {ZOO}), each on its card's recipe")
    p.add_argument("--video-share", type=number(0, lt=1), default=0.25,
                   help="share of the styles' time for their video networks; 0: none")
    p.add_argument("--video-profile", type=Path, default=CONFIGS / "video.yaml",
                   help="applied on top of a style's config and --profile for its video network; then a style's\n"
                        "own recipe in the folder named after it (configs/fast/video/<style>.yaml)")
    p.set_defaults(run=run)


def run(args) -> int:
    from impasto.training.fast.gpu import train_all
    profiles = args.profile or [CONFIGS / ("gpu_zoo.yaml" if args.from_zoo else "gpu.yaml")]
    return train_all(args.pack, [Path(c) for c in args.configs], args.styles.split(",") if args.styles else None,
                     args.minutes, args.base_steps, args.workers, args.out, args.base, profiles,
                     [Path(m) for m in args.multi], args.video_profile, args.video_share, args.from_zoo)
