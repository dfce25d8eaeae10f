"""What the commands share: the parser (one-line errors) and help formatter (every option shows its
default), checked numbers for options (every numeric option names its range; a value outside it,
or nan/inf, is refused at parse time with one line and exit 2), and the iterative options with
their one mapping to a config (`config_from_args`), used by optimize, compare and explore.
Nothing here imports torch or numpy: the parser builds fast.

    p.add_argument("--lr", type=number(gt=0), ...)
    p.add_argument("--size", type=integer(16, MAX_SIDE), ...)

argparse turns the ArgumentTypeError raised here into "argument --lr: <message>".
"""

from __future__ import annotations

import argparse
import math

from impasto.errors import shown
from impasto.hardware import auto_precision

MAX_DEFAULT_SIZE = 512   # px: optimize's default --size caps the photo's own size here, as stylize does


# The longest side any command accepts for a result; the pixel count has its own limit
# (images.DEFAULT_MAX_OUTPUT_PIXELS, raised with --max-output-megapixels).
MAX_SIDE = 32768


def _describe(lo, hi, gt, lt) -> str:
    parts = []
    if gt is not None:
        parts.append(f"> {gt:g}")
    elif lo is not None:
        parts.append(f">= {lo:g}")
    if lt is not None:
        parts.append(f"< {lt:g}")
    elif hi is not None:
        parts.append(f"<= {hi:g}")
    return " and ".join(parts)


def _checked(kind, lo, hi, gt, lt):
    what = "a whole number" if kind is int else "a number"
    rule = _describe(lo, hi, gt, lt)

    def parse(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}{' ' + rule if rule else ''}, not {shown(text)}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number{' ' + rule if rule else ''}, "
                                             f"not {shown(text)}")
        if ((lo is not None and value < lo) or (hi is not None and value > hi)
                or (gt is not None and value <= gt) or (lt is not None and value >= lt)):
            raise argparse.ArgumentTypeError(f"must be {rule}, not {shown(text)}")
        return value
    parse.__name__ = "integer" if kind is int else "number"  # argparse names the type in some errors
    return parse


def number(lo: float | None = None, hi: float | None = None, *, gt: float | None = None,
           lt: float | None = None):
    """A finite float in [lo, hi] (gt/lt: strict bounds)."""
    return _checked(float, lo, hi, gt, lt)


def integer(lo: int | None = None, hi: int | None = None):
    """A whole number in [lo, hi]."""
    return _checked(int, lo, hi, None, None)


def megapixels(text: str) -> int:
    """--max-output-megapixels: a positive number of megapixels, returned as a pixel count."""
    return int(number(gt=0, hi=1e5)(text) * 1e6)


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (no usage block) and never echo a huge value."""

    def error(self, message: str):
        if len(message) > 300:
            message = message[:300] + "..."
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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


def add_lightning_parser(sub, name: str, help: str, description: str, multi_style: bool = False) -> None:
    """A training subcommand that hands its arguments to LightningCLI (training/fast/cli.py):
    -h prints `description`, then LightningCLI's full option list."""
    p = add_parser(sub, name, help=help, description=description, add_help=False)
    p.add_argument("-h", "--help", action="store_true", help="show this help (and the full option list)")

    def run(args) -> int:
        from impasto.training.fast.cli import cli_main
        from impasto.training.fast.module import FastStyleModule
        from impasto.training.fast.multistyle import MultiStyleModule
        argv = list(args.extra)
        if args.help:
            print(description)
            argv = ["--help"]
        return cli_main(argv, MultiStyleModule if multi_style else FastStyleModule, prog=f"impasto {name}")

    p.set_defaults(run=run, accepts_extra=True)


def add_objective_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that builds the iterative objective."""
    g = p.add_argument_group("objective")
    g.add_argument("--content-weight", type=number(0), default=1.0, help="weight of the content (photo) term")
    g.add_argument("--style-weight", type=number(0), default=1e-4,
                   help="weight of the Gram style term; the same balance under both --gram-norm")
    g.add_argument("--tv-weight", type=number(0), default=None,
                   help="total variation: smooths noise (default 1, or 2e-6 with --loss-scale paper)")
    g.add_argument("--histogram-weight", type=number(0), default=0.0, help="Risser et al. histogram loss (0 = off)")
    g.add_argument("--mrf-weight", type=number(0), default=0.0, help="Li & Wand MRF patch loss (0 = off)")
    g.add_argument("--swd-weight", type=number(0), default=0.0,
                   help="Heitz et al. sliced Wasserstein loss on the style layers: the painting's whole "
                        "feature distribution, not only its Gram (0 = off)")
    g.add_argument("--content-layers", nargs="+", default=["relu4_2"], metavar="LAYER",
                   help="VGG layers of the content term")
    g.add_argument("--style-layers", nargs="+", default=["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"],
                   metavar="LAYER", help="VGG layers of the style term")
    g.add_argument("--style-layer-weights", nargs="+", type=number(0), metavar="W",
                   help="one weight per style layer (default: all 1)")
    g.add_argument("--gram-norm", choices=["pixels", "chw"], default="pixels",
                   help="Gram normalisation: by pixel count (sizes may differ) or by C*H*W")
    g.add_argument("--loss-scale", choices=["mean", "paper"], default="mean",
                   help="mean: every term a mean, weights independent of the image size; paper: "
                        "the papers' sums (TV summed over pixels, content 1/(2ND), style 1/(2N^2)), for "
                        "their weights, e.g. TV 0.001 / 0.01, histogram 100 / 500 (docs/experiments.md)")
    g.add_argument("--intensity", type=number(gt=0, hi=100), default=1.0,
                   help="scales the style Grams: >1 bolder texture (0 < I <= 100)")
    g.add_argument("--style-pyramid", type=integer(1, 6), default=1, metavar="LEVELS",
                   help="the Gram style term also on both images pooled by 2, 4, ... (Snelgrove's pyramid): "
                        "motifs larger than the VGG's view, such as a painting's circles (default: %(default)s, off)")
    g.add_argument("--pooling", choices=["max", "avg"], default="max", help="VGG pooling (Gatys used avg)")
    g.add_argument("--vgg-weights", metavar="PATH|torchvision",
                   help="loss network weights (default: $IMPASTO_VGG_WEIGHTS, else torchvision's download)")
    g.add_argument("--vgg", dest="vgg_arch", choices=["vgg16", "vgg19"], default="vgg19",
                   help="architecture for torchvision weights (files carry their own)")
    g.add_argument("--precision", choices=["auto", "bf16", "fp32"], default="auto",
                   help="bf16 autocast is 2-5x faster on CPUs with AMX or AVX-512 BF16 and 12x slower "
                        "on CPUs without them; auto picks it only where the units exist")


def add_run_arguments(p: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The optimisation options; returns their actions by name, for a command to retell a default."""
    g = p.add_argument_group("optimisation")
    actions = {}
    actions["iterations"] = g.add_argument("--iterations", type=integer(0, 1_000_000), default=300, help="loss evaluations per scale")
    g.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs", help="the pixel optimiser")
    g.add_argument("--lr", type=number(gt=0, hi=1e6), help="step size (default 1 for L-BFGS, 0.02 for Adam)")
    g.add_argument("--init", default="content", help="content | noise | style | PATH of an image")
    actions["size"] = g.add_argument("--size", type=integer(16, MAX_SIDE), default=None,
                                     help=f"longest side of the output in pixels, 16..{MAX_SIDE} "
                                          f"(default: the photo's, at most {MAX_DEFAULT_SIZE})")
    g.add_argument("--scales", nargs="+", type=integer(16, MAX_SIDE), default=[], metavar="PX",
                   help="coarse-to-fine sizes, e.g. 256 512 1024 (overrides --size; default: none)")
    g.add_argument("--style-scale", type=number(gt=0, hi=16), default=1.0,
                   help="style image size relative to the output (0 < S <= 16)")
    g.add_argument("--seed", type=integer(0, 2**63 - 1), default=0, help="random seed (noise init, sampling)")
    g.add_argument("--max-output-megapixels", type=megapixels, default=None, metavar="MP", dest="max_output_pixels",
                   help="largest result in megapixels (default 40, e.g. 7700x5100); raise it for bigger prints")
    g.add_argument("--overwrite-input", action="store_true",
                   help="allow -o to name one of the inputs (refused otherwise, so a typo cannot destroy it)")
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
        mrf_weight=args.mrf_weight, swd_weight=args.swd_weight, content_layers=args.content_layers,
        style_layers=args.style_layers,
        style_layer_weights=args.style_layer_weights, gram_norm=args.gram_norm, intensity=args.intensity,
        style_pyramid=getattr(args, "style_pyramid", 1),
        loss_scale=getattr(args, "loss_scale", "mean"),
        pooling=args.pooling, preserve_color=getattr(args, "preserve_color", None), precision=auto_precision(args.precision),
        seed=args.seed, snapshot_every=getattr(args, "snapshot_every", 0),
        snapshot_dir=getattr(args, "snapshot_dir", None), vgg_weights=args.vgg_weights, vgg_arch=args.vgg_arch)


def inputs_of(args) -> list:
    """Every file the run reads (--init excepted: refining a result in place is its purpose)."""
    return [args.content, *(args.style or []), getattr(args, "content_map", None),
            *(getattr(args, "style_map", None) or []), *(getattr(args, "mask", None) or [])]


def write_result(result, output: str, label: str = "") -> int:
    """Save an iterative run's picture and report it. After Ctrl-C, what was reached is written
    and the exit status is 130, with how to go on from it."""
    from impasto import images
    if result.interrupted:  # a second Ctrl-C must not break the write
        from impasto.interrupts import ignore_further_interrupts
        ignore_further_interrupts()
    images.save(result.image, output)
    if result.interrupted:
        print(f"stopped after {result.iterations} iterations; wrote {output}. Resume with --init {output}")
        return 130
    last = result.final or (result.history[-1] if result.history else {})
    terms = " ".join(f"{k}={v:.4g}" for k, v in last.items() if k not in ("seconds", "scale", "best"))
    print(f"wrote {output} ({label}{result.iterations} iterations, {result.seconds:.1f} s; {terms})")
    return 0


def check_result_size(content, config, max_output_pixels=None) -> None:
    """Refuse a --size/--scales whose result would be over the output limit, before any work."""
    from impasto import images
    h, w = content.shape[:2]
    limit = max_output_pixels or images.DEFAULT_MAX_OUTPUT_PIXELS
    for side in config.sizes():
        images.check_output_pixels(*images.scaled_size(w, h, side), limit,
                                   "--scales" if config.scales else "--size")
