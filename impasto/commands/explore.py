"""`impasto explore`: a labelled grid of iterative results over two options, to see at a glance
what a knob does (by default the style/content weight ratio down the rows and the TV weight
across the columns)."""

from __future__ import annotations

from .options import add_objective_arguments, add_parser, add_run_arguments, config_from_args


EPILOG = """\
examples:
  impasto explore --content photo.jpg --style starry_night.jpg -o grid.png
  impasto explore --content photo.jpg --style s.jpg --rows histogram_weight=0,0.5,2 --cols intensity=0.5,1,2 -o g.png
  impasto explore --content photo.jpg --style s.jpg --cols style_layers=relu1_1+relu2_1,relu3_1+relu4_1+relu5_1 -o g.png

A sweep is NAME=V1,V2,...; NAME is any iterative option (content_weight, style_weight, tv_weight,
histogram_weight, mrf_weight, intensity, style_layers, content_layers, pooling, gram_norm, init,
optimizer, lr, iterations, style_scale, preserve_color, precision, seed, ...) or `ratio` (the
style/content weight ratio: style_weight = ratio x content_weight). Layer lists join with '+'.
Every cell is a full iterative run (default 150 L-BFGS iterations at 256 px): 9 cells take a few
minutes on a laptop CPU. Cell images and their loss terms go into <output>_cells/."""


def register(sub) -> None:
    p = add_parser(sub, "explore", help="a labelled grid of results over two options (what does this knob do?)",
                       description=__doc__, epilog=EPILOG)
    p.add_argument("--content", required=True, help="the photo")
    p.add_argument("--style", required=True, help="the style image")
    p.add_argument("-o", "--output", required=True, help="the figure (.png)")
    p.add_argument("--rows", metavar="NAME=V1,V2,...", help="option swept down the rows (default: ratio=1e-5,1e-4,1e-3)")
    p.add_argument("--cols", metavar="NAME=V1,V2,...", help="option swept across the columns (default: tv_weight=0,100,1000)")
    p.add_argument("--quiet", action="store_true", help="no per-cell progress lines")
    run_options = add_run_arguments(p)
    run_options["size"].help = "longest side of each cell in pixels"
    add_objective_arguments(p)
    p.set_defaults(run=run, iterations=150, size=256)


def run(args) -> int:
    from impasto import images
    from impasto.compare import explore

    images.format_for(args.output)
    rows = explore.parse_sweep(args.rows) if args.rows else ("ratio", explore.RATIO_ROWS)
    cols = explore.parse_sweep(args.cols) if args.cols else ("tv_weight", explore.TV_COLUMNS)
    base = config_from_args(args)
    log = (lambda s: None) if args.quiet else print
    data = explore.explore(args.content, args.style, args.output, rows, cols, base, log=log)
    n = sum(len(r) for r in data["cells"])
    print(f"wrote {args.output} ({len(data['cells'])} x {len(data['cells'][0])} = {n} cells)")
    return 0
