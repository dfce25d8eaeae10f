"""Checked numbers for command-line options: every numeric option names its range, and a value
outside it (or nan/inf) is refused at parse time with one line and exit 2.

    p.add_argument("--lr", type=number(gt=0), ...)
    p.add_argument("--size", type=integer(16, MAX_SIDE), ...)

argparse turns the ArgumentTypeError raised here into "argument --lr: <message>".
"""

from __future__ import annotations

import argparse
import math

from .errors import shown

# The longest side any command accepts for a result; the pixel count has its own limit
# (images.DEFAULT_MAX_OUTPUT_PIXELS, raised with --max-output-megapixels).
MAX_SIDE = 32768


def _describe(lo, hi, gt, lt) -> str:
    parts = []
    if gt is not None:
        parts.append(f"> {gt:g}")
    elif lo is not None:
        parts.append(f">= {lo:g}")
    if lt is not None:
        parts.append(f"< {lt:g}")
    elif hi is not None:
        parts.append(f"<= {hi:g}")
    return " and ".join(parts)


def _checked(kind, lo, hi, gt, lt):
    what = "a whole number" if kind is int else "a number"
    rule = _describe(lo, hi, gt, lt)

    def parse(text: str):
        try:
            value = kind(text)
        except (TypeError, ValueError):
            raise argparse.ArgumentTypeError(f"expected {what}{' ' + rule if rule else ''}, not {shown(text)}")
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number{' ' + rule if rule else ''}, "
                                             f"not {shown(text)}")
        if ((lo is not None and value < lo) or (hi is not None and value > hi)
                or (gt is not None and value <= gt) or (lt is not None and value >= lt)):
            raise argparse.ArgumentTypeError(f"must be {rule}, not {shown(text)}")
        return value
    parse.__name__ = "integer" if kind is int else "number"  # argparse names the type in some errors
    return parse


def number(lo: float | None = None, hi: float | None = None, *, gt: float | None = None,
           lt: float | None = None):
    """A finite float in [lo, hi] (gt/lt: strict bounds)."""
    return _checked(float, lo, hi, gt, lt)


def integer(lo: int | None = None, hi: int | None = None):
    """A whole number in [lo, hi]."""
    return _checked(int, lo, hi, None, None)


def megapixels(text: str) -> int:
    """--max-output-megapixels: a positive number of megapixels, returned as a pixel count."""
    return int(number(gt=0, hi=1e5)(text) * 1e6)


class Parser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line (no usage block) and never echo a huge value."""

    def error(self, message: str):
        if len(message) > 300:
            message = message[:300] + "..."
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")
