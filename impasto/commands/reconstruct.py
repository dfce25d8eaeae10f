"""`impasto reconstruct`: rebuild an image from one VGG layer's features or Gram matrix."""

from __future__ import annotations

from .options import MAX_SIDE, add_parser, integer, number

EPILOG = """\
examples:
  impasto reconstruct --image photo.jpg --layer relu3_1 --what content -o content_relu3_1.png
  impasto reconstruct --image painting.jpg --layer relu2_1 --what style -o style_relu2_1.png
  impasto reconstruct --image painting.jpg --grid -o grid.png     (all layers, content and style)
  impasto reconstruct --image photo.jpg --style-image painting.jpg --grid -o fig1.png   (Gatys et al., fig. 1)

Content reconstructions stay photographic at shallow layers and keep only layout at deep ones;
style reconstructions show texture at growing scales."""


def register(sub) -> None:
    p = add_parser(sub, "reconstruct", help="see what the loss network keeps at each layer",
                       description=__doc__, epilog=EPILOG)
    p.add_argument("--image", required=True, help="the photo or painting to rebuild")
    p.add_argument("--layer", default="relu3_1", help="VGG layer name, e.g. relu3_1")
    p.add_argument("--what", choices=["content", "style"], default="content",
                   help="rebuild from the layer's features (content) or its Gram matrix (style)")
    p.add_argument("--grid", action="store_true", help="a figure across layers relu1_1..relu5_1, content and style")
    p.add_argument("--layers", nargs="+", metavar="LAYER",
                   help="layers for --grid (default: relu1_1 relu2_1 relu3_1 relu4_1 relu5_1)")
    p.add_argument("--style-image", metavar="PATH", help="--grid: the style row rebuilds this painting "
                   "(default: --image)")
    p.add_argument("--size", type=integer(16, MAX_SIDE), default=192, help="longest side in pixels")
    p.add_argument("--iterations", type=integer(0, 1_000_000), default=100,
                   help="L-BFGS loss evaluations per scale (half size, then full)")
    p.add_argument("--tv-weight", type=number(0), default=20.0, help="smoothness prior: the deep layers do not see "
                   "pixel noise, this removes it (0 = off)")
    p.add_argument("--pooling", choices=["avg", "max"], default="avg", help="avg, as Gatys et al. (max leaves a "
                   "checkerboard)")
    p.add_argument("--single-scale", action="store_true", help="no coarse-to-fine pass")
    p.add_argument("--vgg-weights", metavar="PATH|torchvision",
                   help="loss network weights (default: $IMPASTO_VGG_WEIGHTS, else torchvision's download)")
    p.add_argument("--precision", choices=["bf16", "fp32"], default="fp32", help="plain fp32 or bf16 autocast")
    p.add_argument("-o", "--output", required=True, help="the image (or --grid figure) to write")
    p.set_defaults(run=run)


def run(args) -> int:
    from impasto import images
    from impasto.training.iterative.reconstruct import DEFAULT_LAYERS, reconstruct, reconstruction_grid

    images.format_for(args.output)
    images.refuse_overwriting_inputs(args.output, [args.image] + ([args.style_image] if args.style_image else []))
    image = images.load(args.image, max_side=args.size, max_output_pixels=images.DEFAULT_MAX_OUTPUT_PIXELS)
    options = dict(tv_weight=args.tv_weight, pooling=args.pooling, coarse_to_fine=not args.single_scale)
    if args.grid:
        style = images.load(args.style_image, max_side=args.size) if args.style_image else None
        grid = reconstruction_grid(image, args.layers or DEFAULT_LAYERS, iterations=args.iterations,
                                   vgg_weights=args.vgg_weights, precision=args.precision, style_image=style,
                                   progress=lambda what: print(f"  {what}", flush=True), **options)
        grid.save(args.output)
    else:
        out = reconstruct(image, args.layer, args.what, args.iterations, args.vgg_weights, args.precision,
                          **options)
        images.save(out, args.output)
    print(f"wrote {args.output}")
    return 0
