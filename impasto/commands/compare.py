"""`impasto compare`: the fast model against the iterative optimiser on the same photos and the
same objective (a self-contained HTML report); given a video, the two paths with and without
temporal consistency (flicker, frames/s, loss per frame); with --algorithms, one figure comparing
the methods (Gatys, Gatys + histogram, MRF, the fast model) on content/style pairs."""

from __future__ import annotations

from impasto.hardware import auto_precision

from .options import add_objective_arguments, add_parser, add_run_arguments, config_from_args, integer, number

EPILOG = """\
examples:
  impasto compare --style candy --content photos/ -o report/          (open report/index.html)
  impasto compare --style candy --content a.jpg b.jpg -o report/ --size 256 --iterations 300
  impasto compare --style my.onnx --model other.onnx --content photos/ -o report/   (two fast models)
  impasto compare --algorithms --content a.jpg b.jpg --style candy.jpg the_wave.jpg -o methods.png
  impasto compare --style candy --content clip.mp4 -o report/ --max-frames 24 --size 256   (a video)

The fast model's objective (loss weights, VGG layers, style image and its size) is read from its
model card (<model>.json, written by `impasto train`/`impasto export`); the style image is looked
up where the training config says (relative to where you run this), else pass --style-image.
The iterative runs use L-BFGS from the photo; "worth N iterations" is the first iteration whose
loss is at most the fast model's. Speed-table figures for sizes other than --size are
extrapolated from the steady-state cost of --speed-measure timed iterations (the report
marks them); at --size the table shows the full runs' own times.
Defaults: --size 512 and --iterations 500 for the report; --size 256 and --iterations 150 per cell
with --algorithms; --size 256, --iterations 30 a frame and --max-frames 24 for a video (four
runs: fast and iterative, each per frame and with temporal consistency). The objective options
below apply to --algorithms only (the reports always use the fast model's own training
objective); --lr is the L-BFGS step (0.5 for the photo report)."""

# The methods figure's column weights, as impasto.compare.explore defines them (a test checks they
# agree; not imported, so that building the parser never loads torch).
HISTOGRAM_WEIGHT = 0.5
MRF_WEIGHT = 1.0


def _ints(text: str) -> list[int]:
    from impasto.errors import ImpastoError, shown
    try:
        return [int(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise ImpastoError(f"expected whole numbers separated by commas, not {shown(text)}") from None


def register(sub) -> None:
    p = add_parser(sub, "compare", help="report: fast model vs iterative (quality, speed, pictures, plots)",
                       description=__doc__, epilog=EPILOG)
    p.add_argument("--style", nargs="+", required=True,
                   help="bundled style name or model.onnx (with --algorithms: style images, paired with --content)")
    p.add_argument("--content", nargs="+", required=True, help="photos, or a folder of photos")
    p.add_argument("-o", "--output", required=True,
                   help="report folder (with --algorithms: the figure, .png)")
    p.add_argument("--model", action="append", default=[], metavar="ONNX",
                   help="another fast model to compare on the same objective (repeatable)")
    p.add_argument("--style-image", help="the painting the model was trained on (default: from its model card)")
    p.add_argument("--blend", metavar="NAME",
                   help="the style of a multi-style model (--style multi.onnx) to compare (default: none, "
                        "for a single-style model)")
    p.add_argument("--models", metavar="DIR", help="folder of bundled styles (default: the package's zoo)")
    p.add_argument("--snapshots", default="0,25,50,100,200,300,500",
                   help="iterations to keep images of")
    p.add_argument("--speed-sizes", default="256,512,1024", help="speed-table sizes in px")
    p.add_argument("--speed-iterations", default="100,300,500", help="iteration counts in the speed table")
    p.add_argument("--speed-measure", type=integer(2, 1000), default=12,
                   help="iterations timed per size; the steady-state cost of their later half extrapolates")
    p.add_argument("--fast-repeats", type=integer(1, 1000), default=5, help="fast-model timings per size (median)")
    p.add_argument("--backend", default="ort", help="fast-model engine: ort (reference), openvino, auto, ...")
    p.add_argument("--threads", type=integer(1, 1024), help="onnxruntime threads (default: all)")
    p.add_argument("--quiet", action="store_true", help="less output")
    g = p.add_argument_group("algorithm comparison (--algorithms)")
    g.add_argument("--algorithms", action="store_true",
                   help="render the methods figure: rows = content/style pairs, columns = methods")
    g.add_argument("--methods", nargs="+", default=["gatys", "histogram", "mrf", "fast"],
                   choices=["gatys", "histogram", "mrf", "fast"], help="the figure's columns")
    g.add_argument("--hist-weight", type=number(0), default=HISTOGRAM_WEIGHT,
                   help="histogram weight of the 'Gatys + histogram' column")
    g.add_argument("--mrf-column-weight", type=number(0), default=MRF_WEIGHT, dest="mrf_column_weight",
                   help="MRF weight of the MRF column")
    v = p.add_argument_group("video (when --content is a video)")
    v.add_argument("--max-frames", type=integer(0), default=24, metavar="N",
                   help="compare on the first N frames (0 = the whole clip)")
    v.add_argument("--first-frame-iterations", type=integer(0, 1_000_000), metavar="N",
                   help="iterations for the first frame of the iterative runs (default: 2x --iterations)")
    v.add_argument("--temporal-strength", type=number(0, 1), metavar="S",
                   help="fast path: share of the warped previous frame kept (default as impasto stylize)")
    v.add_argument("--temporal-weight", type=number(0), metavar="W",
                   help="iterative path: weight of the temporal loss (default as impasto optimize)")
    v.add_argument("--photo-network", action="store_true",
                   help="fast path: the style's photo network even when a video network lies beside it "
                        "(as impasto stylize)")
    run_options = add_run_arguments(p)
    run_options["iterations"].help = ("loss evaluations (default: 500 for the report, 150 per cell with "
                                      "--algorithms, 30 a frame for a video)")
    run_options["size"].help = ("longest side in px (default: 512 for the report, 256 with --algorithms "
                                "and for a video)")
    add_objective_arguments(p)
    p.set_defaults(run=run, iterations=None, size=None)


def _photos(entries):
    from pathlib import Path

    from impasto import images
    from impasto.errors import ImpastoError
    out = []
    for e in entries:
        p = Path(e)
        if p.is_dir():
            found = images.list_images(p)
            if not found:
                raise ImpastoError(f"{p}: no images in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise ImpastoError(f"{e}: no such file or folder")
    return out


def run(args) -> int:
    from pathlib import Path

    from impasto.errors import ImpastoError

    if args.algorithms:
        return _run_algorithms(args)
    from impasto.serve.zoo import resolve_style
    from impasto.compare.photo import CompareOptions, compare

    if len(args.style) != 1:
        raise ImpastoError("give one fast model with --style (more with --model), or use --algorithms")
    from impasto.video import is_video
    if any(is_video(c) for c in args.content):
        return _run_video(args)
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ImpastoError(f"{out}: the report goes into a folder; this is a file")
    options = CompareOptions(
        size=args.size or 512, iterations=args.iterations if args.iterations is not None else 500,
        snapshots=_ints(args.snapshots), precision=auto_precision(args.precision), lr=args.lr or 0.5,
        speed_sizes=_ints(args.speed_sizes), speed_iterations=_ints(args.speed_iterations),
        speed_measure=args.speed_measure, fast_repeats=args.fast_repeats, backend=args.backend,
        threads=args.threads, seed=args.seed).check()
    model = resolve_style(args.style[0], args.models)
    photos = _photos(args.content)
    log = (lambda s: None) if args.quiet else print
    data = compare(photos, model, out, options, extra_models=args.model, style_image=args.style_image,
                   vgg_weights=args.vgg_weights, style_search=[model.parent], log=log, style_name=args.blend)
    for name, s in data["summary"].items():
        worth = ", ".join(str(w) if w is not None else f">{options.iterations}" for w in s["worth_iterations"])
        print(f"{name}: worth {worth} iterations (per photo); mean fast loss {s['fast_loss_mean']:.4g}")
    print(f"wrote {out / 'index.html'}")
    return 0


def _run_video(args) -> int:
    from pathlib import Path

    from impasto.errors import ImpastoError
    from impasto.serve.zoo import resolve_style, video_model
    from impasto.compare.video import VideoCompareOptions, compare_video

    if len(args.content) != 1:
        raise ImpastoError("give one video with --content (photos and videos are compared separately)")
    if args.model or args.blend:
        raise ImpastoError("--model and --blend are for photos; a video is compared with one fast model")
    if not Path(args.content[0]).is_file():
        raise ImpastoError(f"{args.content[0]}: no such file")
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise ImpastoError(f"{out}: the report goes into a folder; this is a file")
    options = VideoCompareOptions(
        size=args.size or 256, max_frames=args.max_frames or None,
        iterations=args.iterations if args.iterations is not None else 30,
        first_iterations=args.first_frame_iterations, precision=auto_precision(args.precision),
        temporal_strength=args.temporal_strength, temporal_weight=args.temporal_weight, backend=args.backend,
        threads=args.threads, seed=args.seed, progress=not args.quiet).check()
    model = resolve_style(args.style[0], args.models)
    if not args.photo_network:   # the network `impasto stylize` paints this video with
        model = video_model(model)
    log = (lambda s: None) if args.quiet else print
    data = compare_video(args.content[0], model, out, options, style_image=args.style_image,
                         vgg_weights=args.vgg_weights, style_search=[model.parent], log=log)
    for r in data["runs"]:
        print(f"{r['name']:>22}: {r['frames_per_second']:7.3g} frames/s, flicker {r['flicker']['abs']:.3g} abs, "
              f"{r['flicker']['sq']:.3g} squared, "
              f"loss {r['loss']['total']:.4g}")
    print(f"{'input video':>22}: flicker {data['input_flicker']['abs']:.3g} abs, "
          f"{data['input_flicker']['sq']:.3g} squared (for scale)")
    print(f"wrote {out / 'index.html'}")
    return 0


def _run_algorithms(args) -> int:
    from impasto import images
    from impasto.compare import explore
    from impasto.errors import ImpastoError

    contents, styles = _photos(args.content), _photos(args.style)
    if len(styles) == 1:
        styles = styles * len(contents)
    elif len(contents) == 1:
        contents = contents * len(styles)
    if len(contents) != len(styles):
        raise ImpastoError(f"{len(contents)} content photos and {len(styles)} style images: give as many of each "
                           "(they pair up in order), or one of either")
    images.format_for(args.output)
    args.iterations = args.iterations if args.iterations is not None else 150
    args.size = args.size or 256
    base = config_from_args(args)
    log = (lambda s: None) if args.quiet else print
    explore.compare_algorithms(
        list(zip(contents, styles)), args.output, base, args.methods,
        histogram_weight=args.hist_weight, mrf_weight=args.mrf_column_weight,
        models_folder=args.models, backend=args.backend, log=log)
    print(f"wrote {args.output}")
    return 0
