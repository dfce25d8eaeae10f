"""`impasto pack SHARED OUT`: a training pack that travels to a GPU machine with the code."""

from __future__ import annotations

from pathlib import Path

from .options import add_parser


def register(sub) -> None:
    p = add_parser(sub, "pack", help="write a training pack (loss network + photos + paintings) for a GPU machine",
                   description="Everything fast-style training needs, within 64 MiB with the code: the\n"
                               "VGG16 convolutions up to the deepest loss layer (fp16 safetensors that carry\n"
                               "their preprocessing), the training and held-out photos, the paintings.\n\n"
                               "example:\n  impasto pack ../shared packs/coco\n"
                               "  impasto train-gpu --pack packs/coco        # there")
    p.add_argument("shared", type=Path, help="the shared folder (data/coco_sample, data/style, weights/)")
    p.add_argument("out", type=Path, help="the pack folder to write")
    p.add_argument("--photos", type=int, default=1000, help="at most this many training photos")
    p.add_argument("--holdout", type=int, default=8, help="held-out photos (the first, sorted by name)")
    p.add_argument("--side", type=int, default=384,
                   help="shorter side of the photos in pixels (384: the scale the bundled networks finished at; "
                        "the GPU profile crops 256 px of photos brought to 320)")
    p.add_argument("--style-side", type=int, default=512, help="longest side of the paintings in pixels")
    p.add_argument("--last-conv", default="conv5_1",
                   help="deepest VGG16 convolution kept (conv5_1: the Gatys layers; conv4_3: Johnson's alone)")
    p.set_defaults(run=run)


def run(args) -> int:
    from impasto.training.fast.pack import make_pack
    info = make_pack(args.shared, args.out, photos=args.photos, holdout=args.holdout, side=args.side,
                     style_side=args.style_side, last_conv=args.last_conv)
    print(f"wrote {args.out}: {info['photos']} photos, {info['holdout']} held out, {len(info['styles'])} paintings, "
          f"{info['bytes'] / 2**20:.1f} MiB")
    return 0
