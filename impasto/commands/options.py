"""What the commands share: the help formatter (every option shows its default) and the iterative
options with their one mapping to a config (`config_from_args`), used by optimize, compare and
explore. Nothing here imports torch or numpy: the parser builds fast.
"""

from __future__ import annotations

import argparse

MAX_DEFAULT_SIZE = 512   # px: optimize's default --size caps the photo's own size here, as stylize does


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs as written; every option with a value shows its default."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        if ("default" in text.lower() or action.default in (None, argparse.SUPPRESS)
                or action.nargs == 0 or action.required):
            return text
        return f"{text} (default: %(default)s)" if text else "(default: %(default)s)"


def add_parser(sub, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand's parser with the shared help formatter."""
    return sub.add_parser(name, formatter_class=HelpFormatter, **kwargs)


def add_objective_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that builds the iterative objective."""
    g = p.add_argument_group("objective")
    g.add_argument("--content-weight", type=float, default=1.0, help="weight of the content (photo) term")
    g.add_argument("--style-weight", type=float, default=1e-4,
                   help="weight of the Gram style term; the same balance under both --gram-norm")
    g.add_argument("--tv-weight", type=float, default=None,
                   help="total variation: smooths noise (default 1, or 2e-6 with --loss-scale paper)")
    g.add_argument("--histogram-weight", type=float, default=0.0, help="Risser et al. histogram loss (0 = off)")
    g.add_argument("--mrf-weight", type=float, default=0.0, help="Li & Wand MRF patch loss (0 = off)")
    g.add_argument("--content-layers", nargs="+", default=["relu4_2"], metavar="LAYER",
                   help="VGG layers of the content term")
    g.add_argument("--style-layers", nargs="+", default=["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"],
                   metavar="LAYER", help="VGG layers of the style term")
    g.add_argument("--style-layer-weights", nargs="+", type=float, metavar="W",
                   help="one weight per style layer (default: all 1)")
    g.add_argument("--gram-norm", choices=["pixels", "chw"], default="pixels",
                   help="Gram normalisation: by pixel count (sizes may differ) or by C*H*W")
    g.add_argument("--loss-scale", choices=["mean", "paper"], default="mean",
                   help="mean: every term a mean, weights independent of the image size; paper: "
                        "the papers' sums (TV summed over pixels, content 1/(2ND), style 1/(2N^2)), for "
                        "their weights, e.g. TV 0.001 / 0.01, histogram 100 / 500 (docs/experiments.md)")
    g.add_argument("--intensity", type=float, default=1.0, help="scales the style Grams: >1 bolder texture")
    g.add_argument("--pooling", choices=["max", "avg"], default="max", help="VGG pooling (Gatys used avg)")
    g.add_argument("--vgg-weights", metavar="PATH|torchvision",
                   help="loss network weights (default: $IMPASTO_VGG_WEIGHTS, else torchvision's download)")
    g.add_argument("--vgg", dest="vgg_arch", choices=["vgg16", "vgg19"], default="vgg19",
                   help="architecture for torchvision weights (files carry their own)")
    g.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                   help="bf16 autocast is ~2x faster on CPUs with AMX/AVX512-bf16")


def add_run_arguments(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The optimisation options; returns their actions by name, for a command to retell a default."""
    g = p.add_argument_group("optimisation")
    actions = {}
    actions["iterations"] = g.add_argument("--iterations", type=int, default=300, help="loss evaluations per scale")
    g.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs", help="the pixel optimiser")
    g.add_argument("--lr", type=float, help="step size (default 1 for L-BFGS, 0.02 for Adam)")
    g.add_argument("--init", default="content", help="content | noise | style | PATH of an image")
    actions["size"] = g.add_argument("--size", type=int, default=None,
                                     help=f"longest side of the output in pixels (default: the photo's, at most {MAX_DEFAULT_SIZE})")
    g.add_argument("--scales", nargs="+", type=int, default=[], metavar="PX",
                   help="coarse-to-fine sizes, e.g. 256 512 1024 (overrides --size; default: none)")
    g.add_argument("--style-scale", type=float, default=1.0, help="style image size relative to the output")
    g.add_argument("--seed", type=int, default=0, help="random seed (noise init, sampling)")
    return actions


def default_size(size: int | None, natural_side: int | None) -> int:
    """--size, else the input's own longest side capped at MAX_DEFAULT_SIZE (never an upscale)."""
    if size:
        return size
    return min(MAX_DEFAULT_SIZE, natural_side) if natural_side else MAX_DEFAULT_SIZE


def config_from_args(args, natural_side: int | None = None):
    """The one mapping from the iterative options to an OptimizeConfig. `natural_side`: the longest
    side of the photo (or video, or map), for the default --size."""
    from impasto.training.iterative.optimize import OptimizeConfig
    return OptimizeConfig(
        iterations=args.iterations, optimizer=args.optimizer, lr=args.lr, init=args.init,
        size=default_size(args.size, natural_side),
        scales=args.scales, style_scale=args.style_scale, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, histogram_weight=args.histogram_weight,
        mrf_weight=args.mrf_weight, content_layers=args.content_layers, style_layers=args.style_layers,
        style_layer_weights=args.style_layer_weights, gram_norm=args.gram_norm, intensity=args.intensity,
        loss_scale=getattr(args, "loss_scale", "mean"),
        pooling=args.pooling, preserve_color=getattr(args, "preserve_color", None), precision=args.precision,
        seed=args.seed, snapshot_every=getattr(args, "snapshot_every", 0),
        snapshot_dir=getattr(args, "snapshot_dir", None), vgg_weights=args.vgg_weights, vgg_arch=args.vgg_arch)
