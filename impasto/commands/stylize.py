"""`impasto stylize PHOTO|DIR --style NAME|model.onnx -o OUT`: the fast path, no torch."""

from __future__ import annotations

from .options import MAX_SIDE, add_parser, integer, megapixels, number
from .video_options import add_video_arguments, report

EPILOG = """\
examples:
  impasto stylize photo.jpg -o out.jpg                       (the default bundled style)
  impasto stylize photo.jpg --style mosaic --size 1024 --strength 0.8 -o out.png
  impasto stylize photos/ --style my_style.onnx -o painted/  (a folder, with a progress bar)
  impasto styles                                             (what --style can name)

multi-style models (one network, many styles; `impasto styles MODEL` lists them):
  impasto stylize photo.jpg --style multi --blend candy:0.7,udnie:0.3 -o mix.jpg
  impasto stylize photo.jpg --style candy:0.7,udnie:0.3 -o mix.jpg   (the same, on the model that has both)
  impasto stylize photo.jpg --blend udnie -o out.jpg         (the multi-style model that has udnie)
  impasto stylize photo.jpg --style multi --blend candy,udnie --style-mask sky.png -o out.jpg
      (white in the mask paints candy, black udnie, grey a mix; the mask has the photo's size)
"""


def register(sub) -> None:
    p = add_parser(sub, "stylize", aliases=["stylise"], help="paint photos with a fast style network",
                   description="Stylise a photo (or every photo in a folder) in one pass of a "
                               "fast style network, on onnxruntime or OpenVINO.", epilog=EPILOG)
    p.add_argument("input", help="a photo, or a folder of photos")
    p.add_argument("-o", "--output", required=True,
                   help="output file (its extension picks the format), or a folder for folder input")
    p.add_argument("-s", "--style", help="a bundled style name (see `impasto styles`), a .onnx file, or a "
                                         "mix of a multi-style model's styles as for --blend "
                                         "(default: the first bundled style)")
    p.add_argument("--blend", metavar="NAME:W,...",
                   help="a multi-style model's mix, e.g. candy:0.7,udnie:0.3 (weights >= 0, normalised to "
                        "sum 1; NAME alone is that style); without --style, the model that has them "
                        "(default: none, the model's first style)")
    p.add_argument("--style-mask", metavar="MASK",
                   help="a grey image that picks the style per pixel: white the first style of --blend "
                        "A,B, black the second (default: none)")
    p.add_argument("--size", type=integer(16, MAX_SIDE),
                   help=f"longest side of the result in px, 16..{MAX_SIDE} (default: the photo's)")
    p.add_argument("--max-output-megapixels", type=megapixels, default=None, metavar="MP", dest="max_output_pixels",
                   help="largest result in megapixels (default 40, e.g. 7700x5100); raise it for bigger prints")
    p.add_argument("--overwrite-input", action="store_true",
                   help="allow -o to name the input photo (refused otherwise, so a typo cannot destroy it)")
    p.add_argument("--strength", type=number(0, 1), default=1.0, help="0..1, blend with the photo (default 1)")
    p.add_argument("--preserve-color", "--preserve-colour", action="store_true", dest="preserve_color",
                   help="keep the photo's colours; take only the style's light and texture")
    p.add_argument("--tile", type=integer(0, MAX_SIDE), default=1024,
                   help="run photos larger than this many px a side in overlapping tiles (0 = never)")
    p.add_argument("--overlap", type=integer(0, MAX_SIDE), default=128, help="tile overlap in px (default 128)")
    p.add_argument("--edge-margin", type=integer(0, 256), default=None, metavar="PX",
                   help="reflected border run with the photo and cropped away, so the network's edge "
                        "artefacts fall outside the picture (default: the model's, else 16; 0 is ~20%% "
                        "faster at 512 px)")
    p.add_argument("--backend", default="auto", choices=["auto", "ort", "ort-cuda", "openvino", "openvino-fp32"],
                   help="inference backend")
    p.add_argument("--format", choices=["png", "jpg", "webp"], default=None,
                   help="output format in folder mode (default: png)")
    p.add_argument("--models", help="folder of bundled-style files (default: the package's zoo)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    add_video_arguments(p)
    p.set_defaults(run=run)


def run(args) -> int:
    import time
    from pathlib import Path

    from impasto import images
    from impasto.errors import ImpastoError
    from impasto.serve.stylize import Options, stylize_array
    from impasto.video import is_video
    style_as_blend(args)
    if Path(args.input).is_file():  # a photo or a video: -o must not replace it
        images.refuse_overwriting_inputs(args.output, [args.input], args.overwrite_input)
    if is_video(args.input):
        return run_video(args)

    options = Options(strength=args.strength, preserve_color=args.preserve_color, tile=args.tile,
                      overlap=args.overlap, margin=args.edge_margin).check()
    if args.size is not None and args.size < 16:
        raise ImpastoError(f"--size must be at least 16 px, not {args.size}")
    src, out = Path(args.input), Path(args.output)
    if not src.exists():
        raise ImpastoError(f"{src}: no such file or folder")
    max_out = args.max_output_pixels or images.DEFAULT_MAX_OUTPUT_PIXELS
    model, engine, mix = choose_model(args)

    if src.is_dir():
        if args.style_mask:
            raise ImpastoError("--style-mask paints one photo (the mask has its size), not a folder")
        photos = images.list_images(src)
        if not photos:
            raise ImpastoError(f"{src}: no images in this folder")
        if out.suffix and not out.is_dir():
            raise ImpastoError(f"{out}: for a folder of photos, -o must be a folder")
        ext = "." + (args.format or "png")
        names = {p.name for p in photos}
        for photo in photos:  # before any work: no result may land on a photo of the folder
            if photo.stem + ext in names:
                images.refuse_overwriting_inputs(out / (photo.stem + ext), [src / (photo.stem + ext)],
                                                 args.overwrite_input)
        out.mkdir(parents=True, exist_ok=True)
        failed = []
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                      TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[name]}"),
                      disable=args.quiet) as bar:
            task = bar.add_task(f"{model.stem}", total=len(photos), name="")
            for photo in photos:
                bar.update(task, name=photo.name)
                try:
                    arr = images.load(photo, max_side=args.size, max_output_pixels=max_out)
                    images.save(stylize_array(engine, arr, options, style_weights=mix(arr)),
                                out / (photo.stem + ext))
                except ImpastoError as exc:
                    failed.append(f"{photo.name}: {exc}")
                bar.advance(task)
        done = len(photos) - len(failed)
        print(f"stylised {done} of {len(photos)} photos with {model.stem} ({engine.describe()}) into {out}")
        for f in failed:
            print(f"  skipped {f}")
        return 0 if done else 2

    images.format_for(out)  # fail on a bad extension before doing the work
    t0 = time.perf_counter()
    arr = images.load(src, max_side=args.size, max_output_pixels=max_out)
    weights = mix(arr)   # a bad mask fails before the work
    progress = None
    if not args.quiet and options.tile and max(arr.shape[:2]) > options.tile:
        from rich.progress import Progress
        bar = Progress(transient=True)
        bar.start()
        task = bar.add_task(f"{src.name} in tiles", total=None)
        progress = lambda i, n: bar.update(task, completed=i, total=n)  # noqa: E731
    try:
        result = stylize_array(engine, arr, options, progress, style_weights=weights)
    finally:
        if progress:
            bar.stop()
    images.save(result, out)
    if not args.quiet:
        label = f"{model.stem} {args.blend}" if args.blend else model.stem
        print(f"{out}  ({result.shape[1]}x{result.shape[0]}, {label}, {engine.describe()}, "
              f"{time.perf_counter() - t0:.2f} s)")
    return 0


def style_as_blend(args) -> None:
    """`--style candy:0.7,udnie:0.3`, a mix where one style would go, is `--blend` of it (on the
    multi-style model that has those styles)."""
    from pathlib import Path

    from impasto.errors import ImpastoError
    style = args.style or ""
    if (":" in style or "," in style) and not Path(style).exists():
        if args.blend:
            raise ImpastoError(f"--style {style} is already a mix: give it once, or --style MODEL --blend MIX")
        args.style, args.blend = None, style


def choose_model(args):
    """(model path, engine, mix) for --style/--blend/--style-mask; mix(photo array) gives the
    style weights to paint it with (None for a single-style model)."""
    from pathlib import Path

    from impasto.errors import ImpastoError
    from impasto.serve import blend, zoo
    from impasto.serve.runtime import load_engine
    if args.style_mask and not args.blend:
        raise ImpastoError("--style-mask needs --blend FIRST,SECOND: the two styles the mask picks between")
    style = args.style
    if args.blend and not style:
        style = zoo.model_with_styles(blend.blend_names(args.blend), args.models)
    model = zoo.resolve_style(style, args.models)
    if args.style_mask:
        if not Path(args.style_mask).is_file():
            raise ImpastoError(f"{args.style_mask}: no such mask file")
        engine = load_engine(zoo.spatial_model(model), args.backend)
        first, second = blend.pair_for_mask(args.blend, engine.styles)
        return model, engine, lambda arr: blend.mask_weights(
            blend.load_mask(args.style_mask, arr.shape[1], arr.shape[0]), first, second, len(engine.styles))
    engine = load_engine(model, args.backend)
    weights = blend.parse_blend(args.blend, engine.styles) if args.blend else None
    return model, engine, lambda arr: weights


def run_video(args) -> int:
    """`impasto stylize VIDEO -o OUT.mp4`: the stylize command's video branch."""
    from pathlib import Path

    from impasto import video as vio
    from impasto.errors import ImpastoError
    from impasto.serve import zoo
    from impasto.serve.runtime import load_engine
    from impasto.serve.stylize import Options
    from impasto.serve.video import stylize_video

    out = Path(args.output)
    if out.is_dir() or out.suffix.lower() not in vio.CONTAINERS:
        raise ImpastoError(f"{out}: for a video input, -o must be a video file ("
                           + ", ".join(vio.VIDEO_EXTENSIONS) + ")")
    if args.size is not None and args.size < 16:
        raise ImpastoError(f"--size must be at least 16 px, not {args.size}")
    options = Options(strength=args.strength, preserve_color=args.preserve_color, tile=args.tile,
                      overlap=args.overlap, margin=args.edge_margin).check()
    info = vio.probe(args.input)  # a clear error for a broken file before the model loads
    if args.blend or args.style_mask:
        raise ImpastoError("--blend and --style-mask paint photos; a video takes one style (--style)")
    model = zoo.resolve_style(args.style, args.models)
    if not args.photo_network:
        model = zoo.video_model(model)
    engine = load_engine(model, args.backend)
    if not args.quiet:
        print(f"{args.input}: {info.describe()}; style {model.stem} ({engine.describe()}), "
              + ("temporal smoothing " + f"{args.temporal_strength:g}" if args.temporal else "no temporal smoothing"))
    result = stylize_video(args.input, out, engine, options, max_side=args.size, temporal=args.temporal,
                           strength=args.temporal_strength, flow_method=args.flow,
                           measure=args.measure_flicker, progress=not args.quiet, max_frames=args.max_frames)
    return report(result)
