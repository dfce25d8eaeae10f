"""`impasto optimize`: iterative stylisation of one photo with any painting (Gatys et al.)."""

from __future__ import annotations

from .options import (add_objective_arguments, add_parser, add_run_arguments, check_result_size, config_from_args,
                      inputs_of, integer, number, write_result)
from .semantic import add_semantic_arguments, maybe_run
from .video_options import add_video_arguments, report

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
Ctrl-C stops early and still writes the image reached so far (a second Ctrl-C is ignored
while it writes). -o may not name --content, --style or a map unless --overwrite-input; it may
name --init, to refine a result in place."""


def register(sub) -> None:
    p = add_parser(sub, "optimize", help="iterative stylisation with any style image (slow, flexible)",
                   description=__doc__, epilog=EPILOG)
    content = p.add_argument("--content", required=True, help="the photo to paint")
    p.add_argument("--style", required=True, action="append", help="a style image (repeat to blend several)")
    p.add_argument("--style-weights", nargs="+", type=number(0), metavar="W",
                   help="blend weights, one per --style (default: equal)")
    p.add_argument("-o", "--output", required=True, help="output image (.png, .jpg, .webp, ...)")
    p.add_argument("--preserve-color", choices=["luminance", "histogram"],
                   help="keep the photo's colours: transfer luminance only, or recolour the style first "
                        "(default: off)")
    p.add_argument("--snapshot-every", type=integer(0), default=0, metavar="N",
                   help="save the image every N iterations (0 = never)")
    p.add_argument("--snapshot-dir", help="where snapshots go (default: next to the output)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_run_arguments(p)
    add_objective_arguments(p)
    add_video_arguments(p, iterative=True)
    add_semantic_arguments(p, content)   # maps, masks, patch, doodle, MRF rules
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from impasto import images
    from impasto.training.iterative.optimize import stylize
    from impasto.video import is_video

    images.refuse_overwriting_inputs(args.output, inputs_of(args), args.overwrite_input)
    code = maybe_run(args)  # a semantic option is set: the semantic runner does the work
    if code is not None:
        return code
    if is_video(args.content):
        return run_video(args)

    images.format_for(args.output)  # fail on a bad extension before minutes of work
    if args.snapshot_every and not args.snapshot_dir:
        args.snapshot_dir = str(Path(args.output).with_suffix("")) + "_snapshots"
    content = images.load(args.content)
    config = config_from_args(args, natural_side=max(content.shape[:2]))
    check_result_size(content, config, args.max_output_pixels)
    styles = [images.load(s) for s in args.style]
    result = stylize(content, styles, config, args.style_weights, progress=not args.quiet)
    return write_result(result, args.output)


def run_video(args) -> int:
    """`impasto optimize --content VIDEO ... -o OUT.mp4`: the video branch."""
    import time
    from pathlib import Path

    from impasto import images
    from impasto import video as vio
    from impasto.errors import ImpastoError
    from impasto.training.iterative.video import stylize_video

    out = Path(args.output)
    if out.is_dir() or out.suffix.lower() not in vio.CONTAINERS:
        raise ImpastoError(f"{out}: for a video --content, -o must be a video file ("
                           + ", ".join(vio.VIDEO_EXTENSIONS) + ")")
    if getattr(args, "scales", None) and len(args.scales) > 1:
        print("note: --scales is for photos; a video is optimised at the last scale only")
    info = vio.probe(args.content)
    config = config_from_args(args, natural_side=max(info.width, info.height))
    styles = [images.load(s) for s in args.style]
    if not args.quiet:
        print(f"{args.content}: {info.describe()}; "
              + ("temporal loss on" if args.temporal else "no temporal consistency"))
    t0 = time.perf_counter()
    try:
        result = stylize_video(args.content, out, styles, config, args.style_weights, temporal=args.temporal,
                               temporal_weight=args.temporal_strength, first_iterations=args.first_frame_iterations,
                               flow_method=args.flow, measure=args.measure_flicker, progress=not args.quiet,
                               max_frames=args.max_frames)
    except KeyboardInterrupt:
        print(f"stopped after {time.perf_counter() - t0:.0f} s, before the first frame was done; "
              f"{out} was not written")
        return 130
    return report(result)
