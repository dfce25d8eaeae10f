"""The `impasto` command. Each subcommand lives in impasto/commands/<name>.py with
`register(subparsers)` and `run(args)`; heavy libraries are imported only inside `run`, so
`impasto --help` and the torch-free commands start fast."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from .commands.options import HelpFormatter, Parser
from .errors import ImpastoError
from .interrupts import ignore_further_interrupts

COMMANDS = (
    "optimize", "reconstruct", "train", "train_multi", "pack", "train_gpu", "export", "stylize", "styles", "serve", "compare",
    "explore",
)

DESCRIPTION = """\
Paint a photo in the style of an artwork.

  fast (one pass, bundled styles):   impasto stylize photo.jpg --style candy -o out.jpg
  iterative (any painting):          impasto optimize --content photo.jpg --style painting.jpg -o out.png
  train your own fast style:         impasto train --config configs/fast/candy.yaml
  serve it over HTTP with a web page: impasto serve

Run `impasto COMMAND --help` for each command's options and examples."""


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="impasto", description=DESCRIPTION, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=f"impasto {__import__('impasto').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"impasto.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if extra and not getattr(args, "accepts_extra", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.extra = extra
    argv = list(sys.argv[1:] if argv is None else argv)
    # the subcommand's own arguments (only --version and --help come before the command's name),
    # so that a command can tell an option the user typed from one left at its default
    args.argv = argv[argv.index(args.command) + 1:] if args.command in argv else argv
    try:
        return args.run(args) or 0
    except ImpastoError as exc:
        print(f"impasto {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader stopped reading (`impasto train -h | head`): end quietly, as Unix tools do;
        # stdout goes to devnull so that the interpreter's last flush does not fail again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        ignore_further_interrupts()  # a second Ctrl-C while we report and exit: no traceback
        print(f"\nimpasto {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
