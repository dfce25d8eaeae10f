"""`impasto export CHECKPOINT -o style.onnx`: ONNX with parity check, variants, card, Triton repo."""

from __future__ import annotations

from .options import add_parser, integer

EPILOG = """\
examples:
  impasto export runs/candy/last.ckpt -o models/zoo/candy.onnx --card models/zoo/candy.json \\
      --photos ../shared/data/content --preview ../shared/data/content/chicago.jpg
  impasto export runs/candy/last.ckpt -o candy.onnx --triton triton_repo
  impasto export runs/multi/checkpoints/last.ckpt -o models/zoo/multi.onnx --card models/zoo/multi.json
      (a multi-style network: the file takes style_weights as a second input, and
       multi.spatial.onnx next to it takes one mix per pixel)
"""


def register(sub) -> None:
    p = add_parser(sub, "export", help="export a trained fast network to ONNX (+ fp16/int8, Triton)",
                       description="Export a fast style network checkpoint to ONNX with dynamic "
                                   "batch/height/width, check it against PyTorch, and measure "
                                   "fp16/int8/OpenVINO variants.",
                       epilog=EPILOG)
    p.add_argument("checkpoint", help="a checkpoint written by `impasto train`")
    p.add_argument("-o", "--output", required=True, help="the .onnx file to write (atomically)")
    p.add_argument("--style", help="style name stored in the model (default: from the checkpoint)")
    p.add_argument("--arch", help="architecture, when the checkpoint does not say "
                   "(johnson, medium, slim, slim_wide, slim_dilated, slim_skip, slim_centred, "
                   "slim_wide_centred, slim_coarse, slim_wide_coarse) (default: the checkpoint's)")
    p.add_argument("--opset", type=integer(7, 99), default=None, help="ONNX opset (default: %(default)s = current)")
    p.add_argument("--photos", help="folder of real photos for the parity check and quality deltas (default: none, random inputs only)")
    p.add_argument("--calibration", help="folder of photos to calibrate int8 on (default: --photos)")
    p.add_argument("--no-variants", action="store_true", help="skip fp16/int8 variants and timings")
    p.add_argument("--keep-variants", action="store_true",
                   help="keep STYLE.fp16.onnx and STYLE.int8.onnx next to the output")
    p.add_argument("--card", help="model card (JSON) to merge the measurements into (default: none)")
    p.add_argument("--edge-margin", type=integer(0, 256), default=None, metavar="PX",
                   help="the reflected margin this network needs to keep its edge band off the picture, "
                        "stored in the model (default: none, so the runtime's 16)")
    p.add_argument("--preview", metavar="PHOTO", help="render a preview PNG next to the model (default: none)")
    p.add_argument("--size", type=integer(16, 8192), default=512, help="side of the timing input (default 512)")
    p.add_argument("--repeats", type=integer(1, 1000), default=3, help="timed runs per backend (median)")
    p.add_argument("--triton", metavar="DIR", help="also write a Triton model repository in DIR (default: none)")
    p.add_argument("--max-batch", type=integer(0, 4096), default=8, help="Triton max_batch_size (default 8)")
    p.set_defaults(run=run)


def run(args) -> int:
    from pathlib import Path

    from impasto import images
    from impasto.export.onnx_export import DEFAULT_OPSET
    from impasto.export.pipeline import export_style
    from impasto.export.triton import write_triton_repository

    photos = images.list_images(args.photos)[:8] if args.photos else []
    calibration = images.list_images(args.calibration)[:32] if args.calibration else photos
    report = export_style(args.checkpoint, args.output, style=args.style, arch=args.arch,
                          photos=photos, calibration=calibration,
                          variants=not args.no_variants and bool(calibration),
                          keep_variants=args.keep_variants,
                          card=Path(args.card) if args.card else None,
                          preview_photo=Path(args.preview) if args.preview else None,
                          measure_size=args.size, repeats=args.repeats, edge_margin=args.edge_margin,
                          opset=args.opset or DEFAULT_OPSET)
    if not args.no_variants and not calibration:
        print("no --photos/--calibration folder: skipped the int8/fp16 variants and timings")
    if args.triton:
        d = write_triton_repository(args.output, args.triton, report["style"], style=report["style"],
                                    max_batch_size=args.max_batch, styles=report.get("styles") or ())
        print(f"Triton model repository: {d} (see docs/serving.md)")
    return 0
