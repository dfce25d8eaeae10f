"""`impasto optimize`: iterative stylisation of one photo with any painting (Gatys et al.)."""

from __future__ import annotations

import argparse

EPILOG = """\
examples:
  impasto optimize --content photo.jpg --style starry_night.jpg -o out.png
  impasto optimize --content photo.jpg --style a.jpg --style b.jpg --style-weights 0.7 0.3 -o mix.png
  impasto optimize --content photo.jpg --style s.jpg --scales 256 512 1024 -o big.png   (coarse to fine)
  impasto optimize --content photo.jpg --style s.jpg --preserve-color luminance -o keep_colours.png
  impasto optimize --content photo.jpg --style s.jpg --snapshot-every 50 --snapshot-dir snaps -o out.png
  impasto optimize --content photo.jpg --style s.jpg --init out.png -o out2.png   (resume a stopped run)

Weights: content 1, style 1e-4, TV 1 suit Caffe-style VGG weights (the default loss network
of the tests); raise --style-weight for more paint, lower it to keep more of the photo.
Ctrl-C stops early and still writes the image reached so far."""


def add_objective_arguments(p: argparse.ArgumentParser) -> None:
    """Options shared by every command that builds the iterative objective."""
    g = p.add_argument_group("objective")
    g.add_argument("--content-weight", type=float, default=1.0)
    g.add_argument("--style-weight", type=float, default=1e-4,
                   help="style against content (1e-4); the same balance under both --gram-norm")
    g.add_argument("--tv-weight", type=float, default=None,
                   help="total variation: smooths noise (default 1, or 2e-6 with --loss-scale paper)")
    g.add_argument("--histogram-weight", type=float, default=0.0, help="Risser et al. histogram loss (0 = off)")
    g.add_argument("--mrf-weight", type=float, default=0.0, help="Li & Wand MRF patch loss (0 = off)")
    g.add_argument("--content-layers", nargs="+", default=["relu4_2"], metavar="LAYER")
    g.add_argument("--style-layers", nargs="+", default=["relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1"],
                   metavar="LAYER")
    g.add_argument("--style-layer-weights", nargs="+", type=float, metavar="W")
    g.add_argument("--gram-norm", choices=["pixels", "chw"], default="pixels",
                   help="Gram normalisation: by pixel count (sizes may differ) or by C*H*W")
    g.add_argument("--loss-scale", choices=["mean", "paper"], default="mean",
                   help="mean: every term a mean, weights independent of the image size (default); paper: "
                        "the papers' sums (TV summed over pixels, content 1/(2ND), style 1/(2N^2)), for "
                        "their weights, e.g. TV 0.001 / 0.01, histogram 100 / 500 (docs/experiments.md)")
    g.add_argument("--intensity", type=float, default=1.0, help="scales the style Grams: >1 bolder texture")
    g.add_argument("--pooling", choices=["max", "avg"], default="max")
    g.add_argument("--vgg-weights", metavar="PATH|torchvision",
                   help="loss network weights (default: $IMPASTO_VGG_WEIGHTS, else torchvision's download)")
    g.add_argument("--vgg", dest="vgg_arch", choices=["vgg16", "vgg19"], default="vgg19",
                   help="architecture for torchvision weights (files carry their own)")
    g.add_argument("--precision", choices=["bf16", "fp32"], default="bf16",
                   help="bf16 autocast is ~2x faster on CPUs with AMX/AVX512-bf16")


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("optimisation")
    g.add_argument("--iterations", type=int, default=300, help="loss evaluations per scale")
    g.add_argument("--optimizer", choices=["lbfgs", "adam"], default="lbfgs")
    g.add_argument("--lr", type=float, help="step size (default 1 for L-BFGS, 0.02 for Adam)")
    g.add_argument("--init", default="content", help="content | noise | style | PATH of an image")
    g.add_argument("--size", type=int, default=512, help="longest side of the output in pixels")
    g.add_argument("--scales", nargs="+", type=int, default=[], metavar="PX",
                   help="coarse-to-fine sizes, e.g. 256 512 1024 (overrides --size)")
    g.add_argument("--style-scale", type=float, default=1.0, help="style image size relative to the output")
    g.add_argument("--seed", type=int, default=0)


def config_from_args(args):
    from impasto.training.optimize import OptimizeConfig
    return OptimizeConfig(
        iterations=args.iterations, optimizer=args.optimizer, lr=args.lr, init=args.init, size=args.size,
        scales=args.scales, style_scale=args.style_scale, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight, histogram_weight=args.histogram_weight,
        mrf_weight=args.mrf_weight, content_layers=args.content_layers, style_layers=args.style_layers,
        style_layer_weights=args.style_layer_weights, gram_norm=args.gram_norm, intensity=args.intensity,
        loss_scale=getattr(args, "loss_scale", "mean"),
        pooling=args.pooling, preserve_color=getattr(args, "preserve_color", None), precision=args.precision,
        seed=args.seed, snapshot_every=getattr(args, "snapshot_every", 0),
        snapshot_dir=getattr(args, "snapshot_dir", None), vgg_weights=args.vgg_weights, vgg_arch=args.vgg_arch)


def register(sub) -> None:
    p = sub.add_parser("optimize", help="iterative stylisation with any style image (slow, flexible)",
                       description=__doc__, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--content", required=True, help="the photo to paint")
    p.add_argument("--style", required=True, action="append", help="a style image (repeat to blend several)")
    p.add_argument("--style-weights", nargs="+", type=float, metavar="W", help="blend weights, one per --style")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp, ...)")
    p.add_argument("--preserve-color", choices=["luminance", "histogram"],
                   help="keep the photo's colours: transfer luminance only, or recolour the style first")
    p.add_argument("--snapshot-every", type=int, default=0, metavar="N", help="save the image every N iterations")
    p.add_argument("--snapshot-dir", help="where snapshots go (default: next to the output)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_run_arguments(p)
    add_objective_arguments(p)
    from impasto.serve.video import add_video_arguments
    add_video_arguments(p, iterative=True)
    from impasto.commands.semantic import add_semantic_arguments  # maps, masks, patch, doodle, MRF rules
    add_semantic_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from impasto import images
    from impasto.training.optimize import stylize
    from impasto.commands.semantic import maybe_run
    code = maybe_run(args)  # a semantic option is set: the semantic runner does the work
    if code is not None:
        return code
    from impasto.video import is_video
    if is_video(args.content):
        from impasto.training.video import run_optimize
        return run_optimize(args)

    images.format_for(args.output)  # fail on a bad extension before minutes of work
    if args.snapshot_every and not args.snapshot_dir:
        args.snapshot_dir = str(Path(args.output).with_suffix("")) + "_snapshots"
    config = config_from_args(args)
    content = images.load(args.content)
    styles = [images.load(s) for s in args.style]
    result = stylize(content, styles, config, args.style_weights, progress=not args.quiet)
    images.save(result.image, args.output)
    last = result.final or (result.history[-1] if result.history else {})
    terms = " ".join(f"{k}={v:.4g}" for k, v in last.items() if k not in ("seconds", "scale", "best"))
    if result.interrupted:
        print(f"stopped after {result.iterations} iterations; wrote {args.output}. "
              f"Resume with --init {args.output}")
        return 130
    print(f"wrote {args.output} ({result.iterations} iterations, {result.seconds:.1f} s; {terms})")
    return 0
