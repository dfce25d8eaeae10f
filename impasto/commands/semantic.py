"""Semantic options of `impasto optimize` (not a subcommand of its own): where which style goes.

`add_semantic_arguments(p)` adds the option group to the optimize parser; `maybe_run(args)` runs
the semantic modes when one of these options is set and returns the exit code, else None (the
plain optimize goes on).
"""

from __future__ import annotations

import argparse

from .options import check_result_size, config_from_args, integer, number, write_result

SEMANTIC_EPILOG = """\
semantic modes (maps are colour-coded PNG/JPEG images, one flat colour per region):
  region:  impasto optimize --content photo.jpg --content-map photo_sem.png \\
             --style painting.jpg --style-map painting_sem.png -o out.png
  hard mask, style only the water, the rest stays the photo:
           impasto optimize ... --labels '#0000ff' --keep-outside -o out.png
  two masks, two styles:
           impasto optimize --content c.jpg --mask m1.png --mask m2.png --style a.jpg --style b.jpg -o out.png
  soft (gradient) masks: add --semantic-mode soft (grey mask values weigh the styles; --mask-blur PX
           feathers the edges of map regions)
  patch:   --semantic-mode patch (each tile of the photo takes the style of the best-matching patch)
  doodle to painting (no --content; the map is the picture to paint):
           impasto optimize --content-map doodle_sem.png --style Monet.jpg --style-map Monet_sem.png \\
             --preset configs/iterative/doodle.yaml -o painting.png
  MRF matching rule in any mode: --mrf-weight 1 --mrf-matching nearest|bidirectional|contiguity"""

# the MRF matching rules of impasto.models.semantic_losses, named here so that building the
# parser never imports torch (tests/test_package.py checks the two lists agree)
MATCHING_RULES = ("nearest", "bidirectional", "contiguity")

# options whose presence switches `impasto optimize` to the semantic runner
_TRIGGERS = ("content_map", "style_map", "mask", "semantic_mode", "mrf_matching", "preset")


def add_semantic_arguments(p: argparse.ArgumentParser, content: argparse.Action) -> None:
    """Adds the semantic group to optimize's parser; `content` is its --content option, which becomes
    optional here (a doodle has no content photo)."""
    content.required = False
    content.help = "the photo to paint (default: none, to paint a doodle from --content-map alone)"
    p.epilog = (p.epilog or "") + "\n\n" + SEMANTIC_EPILOG
    g = p.add_argument_group("semantic (where which style goes; see docs/semantic.md)")
    g.add_argument("--preset", metavar="YAML", help="options from a preset file, e.g. configs/iterative/doodle.yaml "
                   "(options given on the command line win; default: none)")
    g.add_argument("--content-map", metavar="PATH", help="colour-coded map of the content (or the doodle) (default: none)")
    g.add_argument("--style-map", action="append", metavar="PATH", help="map of a style image (one per --style) (default: none)")
    g.add_argument("--mask", action="append", metavar="PATH",
                   help="grey mask on the content, white = styled; mask i takes --style i (default: none)")
    g.add_argument("--semantic-mode", choices=["region", "soft", "patch", "doodle"],
                   help="region (hard masks), soft (gradient masks), patch, doodle (default: region; doodle "
                        "without --content)")
    g.add_argument("--keep-outside", action="store_true", default=None,
                   help="hard mask: pixels outside the styled regions stay exactly the content")
    g.add_argument("--labels", nargs="+", metavar="COLOUR", help="style only these map colours (#rrggbb) (default: all)")
    g.add_argument("--unmatched", choices=["global", "skip", "error"],
                   help="a content label with no style region: whole-style statistics (default), content only, or error")
    g.add_argument("--mask-threshold", type=number(0, 1), help="hard region from a grey mask: value above this (default: 0.5)")
    g.add_argument("--mask-blur", type=number(0, 1000), help="soft mode from maps: blur region edges by this many px (default: 0)")
    g.add_argument("--mrf-matching", choices=list(MATCHING_RULES), help="MRF patch matching rule (default: nearest)")
    g.add_argument("--mrf-layers", nargs="+", metavar="LAYER", help="MRF layers (default: relu3_1 relu4_1)")
    g.add_argument("--semantic-weight", type=number(0), help="weight of the map channels in MRF matching (default: 10)")
    g.add_argument("--contiguity", type=number(0),
                   help="bonus for coherent matches with --mrf-matching contiguity (default: 0.3)")
    g.add_argument("--patch-grid", type=integer(1, 64), help="patch mode: tiles per side (default: 3)")
    g.add_argument("--patch-overlap", type=number(0, lt=1), help="patch mode: overlap of tiles, fraction of a step (default: 0.5)")
    p.set_defaults(optimize_parser=p)


def requested(args) -> bool:
    return any(getattr(args, n, None) not in (None, False, []) for n in _TRIGGERS)


_UNSET = object()


def given_on_command_line(parser: argparse.ArgumentParser, argv) -> set[str]:
    """The dests of the options the user typed in `argv` (the subcommand's own arguments), whatever
    their value: argparse fills a dest with its default only when the namespace lacks it, so a
    namespace preset to a sentinel keeps the sentinel exactly where nothing was given."""
    def sentinel(action):  # actions that add to the value they find (append, count) start from None
        return None if isinstance(action, (argparse._AppendAction, argparse._CountAction)) else _UNSET
    probe = argparse.Namespace(**{a.dest: sentinel(a) for a in parser._actions if a.dest != argparse.SUPPRESS})
    unset = dict(vars(probe))
    try:
        parsed, _ = parser.parse_known_args(list(argv), namespace=probe)
    except SystemExit:
        return set()
    return {k for k, v in vars(parsed).items() if k in unset and v is not unset[k]}


def apply_preset(args, parser: argparse.ArgumentParser) -> None:
    """Preset values (YAML keys = option names with - or _) fill the options not given on the
    command line (an option typed with its default value, e.g. `--size 512`, still wins)."""
    import yaml

    from impasto.errors import ImpastoError

    try:
        with open(args.preset) as f:
            preset = yaml.safe_load(f) or {}
    except OSError as exc:
        raise ImpastoError(f"{args.preset}: cannot read preset ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise ImpastoError(f"{args.preset}: not valid YAML ({exc})") from None
    if not isinstance(preset, dict):
        raise ImpastoError(f"{args.preset}: a preset is a mapping of option: value")
    argv = getattr(args, "argv", None)    # the subcommand's own arguments, set by impasto.cli
    given = given_on_command_line(parser, argv) if argv is not None else set()
    for key, value in preset.items():
        dest = str(key).replace("-", "_")
        if not hasattr(args, dest) or dest in ("content", "style", "output", "preset"):
            raise ImpastoError(f"{args.preset}: unknown option {key!r}")
        if argv is None and getattr(args, dest) == parser.get_default(dest):
            setattr(args, dest, value)        # no command line known: only defaults are filled
        elif argv is not None and dest not in given:
            setattr(args, dest, value)


def maybe_run(args):
    """Exit code of the semantic run, or None when no semantic option is set."""
    from impasto.errors import ImpastoError

    if not requested(args):
        if not args.content:
            raise ImpastoError("--content is required (or --content-map alone, to paint a doodle)")
        return None
    if args.preset:
        apply_preset(args, args.optimize_parser)
    return run(args)


def run(args) -> int:
    from pathlib import Path

    from impasto import images
    from impasto.training.iterative.semantic import SemanticConfig, load_inputs, stylize_semantic

    images.format_for(args.output)
    if args.snapshot_every and not args.snapshot_dir:
        args.snapshot_dir = str(Path(args.output).with_suffix("")) + "_snapshots"
    if not args.content and args.init == "content":
        args.init = "noise"
    inputs = load_inputs(args.content, args.style, args.content_map, args.style_map or (), args.mask or ())
    picture = inputs.content if inputs.content is not None else inputs.content_map.labels
    config = config_from_args(args, natural_side=max(picture.shape[:2]))
    if args.mrf_layers:
        config.mrf_layers = tuple(args.mrf_layers)
    mode = args.semantic_mode or ("doodle" if not args.content else "region")
    extra = {k: getattr(args, k) for k in ("keep_outside", "unmatched", "mask_threshold", "mask_blur",
                                          "mrf_matching", "semantic_weight", "contiguity", "patch_grid",
                                          "patch_overlap") if getattr(args, k) is not None}
    if args.labels:
        extra["labels"] = tuple(args.labels)
    scfg = SemanticConfig(mode=mode, **extra)
    check_result_size(picture, config, args.max_output_pixels)
    result = stylize_semantic(inputs, config, scfg, progress=not args.quiet)
    return write_result(result, args.output, f"{mode}, ")
