"""python -m impasto.training.fast CHECKPOINT CARD.json: write the training half of a model card."""

from __future__ import annotations

import argparse
from typing import Optional

from impasto.models.zoo.card import card_from_meta, write_card

from .checkpoint import load_fast_checkpoint


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m impasto.training.fast", description=__doc__)
    p.add_argument("checkpoint", help="a checkpoint written by `impasto train`")
    p.add_argument("card", help="the model card JSON to create or update")
    a = p.parse_args(argv)
    _, meta = load_fast_checkpoint(a.checkpoint)
    write_card(a.card, card_from_meta(meta), merge_nested=True)
    print(f"wrote {a.card}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
