"""A blind naming test: would a viewer name the painting from the fast result?

    python bench/naming_test.py prepare OUT [models/zoo/candy.onnx ...] [--viewers 4]
        [--per-style 1] [--grades 1] [--iterative 1] [--iterations 300] [--size 512] [--seed 0]
    python bench/naming_test.py score OUT OUT/viewer_*/answers.txt [--json score.json]

The bar's last line ("a person would name the painting from the fast result") asks a person, not
a loss. `prepare` writes what to show people: held-out photos painted by every fast network (each
style of a multi-style one), shuffled under numbered names, and a line-up of every painting in
../shared/data/style (crops of a painting listed once), numbered. Mixed in among them, unmarked:

- grades: the photo's colours carried onto the painting's whole colour distribution (Pitie et
  al. 2005, iterative distribution transfer), nothing else: the painting's palette in the
  painting's proportions, on the photo's shapes. If viewers name the painting from its grade
  as often as from the fast result, the network's look is its palette: a colour grade, the
  failure the bar is there to catch.
- iterative: L-BFGS on the photo's pixels (Gatys et al., 300 iterations), the teacher: how
  nameable the painting is when the objective is met in full.

Each viewer sees a painting at most once (OUT/viewer_1, viewer_2, ...): one who has seen
candy's strokes in one item would otherwise match candy's palette in another. A viewer's folder
is all they may see: items/, lineup/, lineup.png, INSTRUCTIONS.md and answers.txt to fill in
("item_07: 12", "item_07: 12?" for a guess, or "item_07: none"). OUT/key.json says what each
item is; keep it from them. `score` pools the sheets and prints, per condition and per painting,
how often the right painting was named, and named without a `?`, against chance (one in the
line-up's size).
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from style_quality import styles_of  # noqa: E402

from impasto import images  # noqa: E402
from impasto.errors import ImpastoError  # noqa: E402
from impasto.models.zoo.card import read_card  # noqa: E402
from impasto.serve.runtime import Engine, load_engine  # noqa: E402
from impasto.serve.stylize import stylize_array  # noqa: E402
from impasto.training.iterative.optimize import OptimizeConfig, build_objective, stylize  # noqa: E402

SHARED = REPO.parent / "shared" / "data"
ANSWER = re.compile(r"^\s*(item_\d+)\s*:\s*([^\s#?]*)(\??)")
INSTRUCTIONS = """\
# Which painting?

Each picture in items/ is a photo made to look like one of the paintings in lineup/ (the same
paintings, numbered, are on lineup.png), or like none of them. For each item, write the number of
the painting it imitates into answers.txt, or `none` if it imitates none you can see. Put a `?`
after a number you are guessing ("item_07: 12?"). A short reason may follow a `#`
("item_07: 12  # the swirls"). Judge each item on its own: a painting may be behind several
items or behind none. Judge by eye, as a person would: do not measure the pictures with a
program. Do not look for other files; only items/ and lineup/ are part of the test.
"""


def default_models() -> list[Path]:
    """The bundled photo networks: not the video networks (the same styles, steadier) nor the
    spatial export of zoo8 (the same network, weights per pixel)."""
    return sorted(p for p in (REPO / "models" / "zoo").glob("*.onnx")
                  if not p.name.endswith((".video.onnx", ".spatial.onnx")))


def lineup(folder: Path) -> list[Path]:
    """Every painting in `folder`, a painting's crops (starry_night_crop, rain-princess-cropped)
    left out: they would be a second right answer."""
    found = images.list_images(folder)
    stems = {p.stem for p in found}
    return [p for p in found if not (re.search(r"[-_]crop(ped)?$", p.stem)
                                     and re.sub(r"[-_]crop(ped)?$", "", p.stem) in stems)]


def plan(models: list[Path], paintings: list[Path], photos: list[Path], per_style: int, grades: int,
         iterative: int) -> list[dict]:
    """What each item will be, before any is painted: photos taken in turn, so a painting's items
    show different photos while there are photos enough."""
    names = {p.name for p in paintings}
    items, taken = [], 0

    def photo() -> str:
        nonlocal taken
        taken += 1
        return photos[(taken - 1) % len(photos)].name

    styles = []
    for model in models:
        for name, painting, weights in styles_of(model, read_card(model), engine_for(str(model)).styles):
            if painting.name not in names:
                raise ImpastoError(f"{name}: its painting {painting.name} is not in the line-up")
            styles.append((model, name, painting, weights))
    for model, name, painting, weights in styles:
        items += [{"condition": "fast", "network": str(model), "style": name, "painting": painting.name,
                   "style_index": None if weights is None else int(np.argmax(weights)), "photo": photo()}
                  for _ in range(per_style)]
    for painting in dict.fromkeys(s[2].name for s in styles):
        items += [{"condition": "grade", "painting": painting, "photo": photo()} for _ in range(grades)]
        items += [{"condition": "iterative", "painting": painting, "photo": photo()} for _ in range(iterative)]
    return items


def engine_for(network: str) -> Engine:
    return load_engine(network, backend="ort", threads=2)     # load_engine keeps it for the next item


def paint(item: dict, photo: np.ndarray, painting: np.ndarray, config: OptimizeConfig, objective) -> np.ndarray:
    if item["condition"] == "fast":
        engine = engine_for(item["network"])
        weights = None
        if item["style_index"] is not None:
            weights = np.eye(len(engine.styles), dtype=np.float32)[item["style_index"]]
        return stylize_array(engine, photo, style_weights=weights)
    if item["condition"] == "grade":
        return palette_transfer(photo, painting)
    return stylize(photo, [painting], config, progress=True, objective=objective).image   # minutes each


def palette_transfer(photo: np.ndarray, painting: np.ndarray, rounds: int = 30, seed: int = 0) -> np.ndarray:
    """The photo's pixels moved, a rotation at a time, until their colours are distributed as the
    painting's (Pitie et al.): along each axis of a random rotation of RGB, every pixel takes the
    painting's value at its own rank. A mean-and-covariance grade keeps one blend of colours; this
    keeps a painting of separate colours separate."""
    rng = np.random.default_rng(seed)
    src = photo.reshape(-1, 3).astype(np.float64)
    ref = painting.reshape(-1, 3).astype(np.float64)
    for _ in range(rounds):
        rotation, _ = np.linalg.qr(rng.standard_normal((3, 3)))
        a, b = src @ rotation, ref @ rotation
        matched = np.empty_like(a)
        for k in range(3):
            ranks = np.empty(len(a))
            ranks[np.argsort(a[:, k], kind="stable")] = (np.arange(len(a)) + 0.5) / len(a)
            matched[:, k] = np.interp(ranks, (np.arange(len(b)) + 0.5) / len(b), np.sort(b[:, k]))
        src = src + (matched - a) @ rotation.T
    return np.clip(src, 0, 1).reshape(photo.shape).astype(np.float32)


def deal(items: list[dict], viewers: int) -> list[list[dict]]:
    """Items to viewers, each painting at most once per viewer: a viewer who has named the
    painting in one item cannot match another item to it by its palette. A painting's items go
    to viewers in turn from an offset that moves with the painting, so each viewer gets a mix of
    conditions. One viewer sees everything."""
    if viewers == 1:
        return [items]
    by_painting: dict[str, list[dict]] = defaultdict(list)
    for it in items:
        by_painting[it["painting"]].append(it)
    hands: list[list[dict]] = [[] for _ in range(viewers)]
    for offset, (painting, group) in enumerate(by_painting.items()):
        if len(group) > viewers:
            raise ImpastoError(f"{painting}: {len(group)} items for {viewers} viewers; each viewer sees "
                               f"a painting once, so ask for fewer items or more viewers")
        for j, it in enumerate(group):
            hands[(j + offset) % viewers].append(it)
    return hands


def prepare(out: Path, models: list[Path], photos_dir: Path, paintings_dir: Path, per_style: int,
            grades: int, iterative: int, size: int, seed: int, iterations: int = 300,
            viewers: int = 1) -> list[dict]:
    """Plan the items, deal them to the viewers, write their folders and the key, then paint."""
    paintings = lineup(paintings_dir)
    photos = [p for p in images.list_images(photos_dir)
              if _longest_side(p) >= size]      # an item smaller than the rest would stand out
    if not photos:
        raise ImpastoError(f"{photos_dir}: no photo of {size} px or more")
    rng = random.Random(seed)
    rng.shuffle(photos)
    items = plan(models, paintings, photos, per_style, grades, iterative)
    hands = deal(items, viewers)
    rng.shuffle(items)                      # conditions and styles interleaved, nothing in the order
    numbers = list(range(1, len(paintings) + 1))
    rng.shuffle(numbers)                    # the line-up's order says nothing either
    labels = {p.name: n for p, n in zip(paintings, numbers)}
    width = len(str(len(items)))
    for i, item in enumerate(items, 1):     # numbered across viewers: their answers can be pooled
        item["item"] = f"item_{i:0{width}d}"
        item["answer"] = labels[item["painting"]]
    folders = [out / "viewer"] if viewers == 1 else [out / f"viewer_{v}" for v in range(1, viewers + 1)]
    first = folders[0]
    (first / "lineup").mkdir(parents=True, exist_ok=True)
    shown = {labels[p.name]: images.load(str(p), max_side=384) for p in paintings}
    for number, picture in shown.items():
        images.save(picture, first / "lineup" / f"{number:02d}.png")
    write_sheet(shown, first / "lineup.png")
    for folder, hand in zip(folders, hands):
        if folder != first:             # the same line-up for everyone, drawn once
            shutil.copytree(first / "lineup", folder / "lineup")
            shutil.copy(first / "lineup.png", folder / "lineup.png")
        (folder / "items").mkdir(exist_ok=True)
        (folder / "INSTRUCTIONS.md").write_text(INSTRUCTIONS)
        hand.sort(key=lambda it: it["item"])
        (folder / "answers.txt").write_text("".join(f"{it['item']}: \n" for it in hand))
        for it in hand:
            it["viewer"] = folder.name
    key = {"lineup": {str(n): name for name, n in labels.items()}, "items": items}
    (out / "key.json").write_text(json.dumps(key, indent=2) + "\n")   # first: whose items are done shows early
    config = OptimizeConfig(size=size, iterations=iterations)
    objective = build_objective(config) if iterative else None
    for i, item in enumerate(items, 1):
        photo = images.load(str(photos_dir / item["photo"]), max_side=size)
        painting = images.load(str(paintings_dir / item["painting"]), max_side=512)
        images.save(paint(item, photo, painting, config, objective),
                    out / item["viewer"] / "items" / f"{item['item']}.png")
        print(f"{item['item']} painted ({i}/{len(items)}, {item['viewer']})", flush=True)
    return items


def _longest_side(path: Path) -> int:
    with Image.open(path) as im:        # the header only
        return max(im.size)


def write_sheet(shown: dict[int, np.ndarray], path: Path, tile: int = 200) -> None:
    """All the paintings on one page, in number order, each with its number under it."""
    cols = 6
    rows = -(-len(shown) // cols)
    sheet = Image.new("RGB", (cols * tile, rows * (tile + 24)), "white")
    draw = ImageDraw.Draw(sheet)
    font = ImageFont.load_default(size=20)
    for k, number in enumerate(sorted(shown)):
        thumb = Image.fromarray(images.to_uint8(shown[number]))
        thumb.thumbnail((tile - 8, tile - 8))
        x, y = (k % cols) * tile, (k // cols) * (tile + 24)
        sheet.paste(thumb, (x + (tile - thumb.width) // 2, y + (tile - thumb.height) // 2))
        draw.text((x + tile // 2, y + tile + 12), str(number), fill="black", font=font, anchor="mm")
    sheet.save(path)


def read_answers(paths: list[Path], key: dict) -> dict[str, tuple[str | None, bool]]:
    """item -> (painting named or None for `none`, sure), from one sheet per viewer; every item
    answered once, every number in the line-up. A `?` after the number marks a guess."""
    known = {it["item"] for it in key["items"]}
    answers: dict[str, tuple[str | None, bool]] = {}
    for path in paths:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            m = ANSWER.match(line)
            if not m or m.group(1) not in known:
                raise ImpastoError(f"{path}:{n}: expected 'item_NN: <painting number or none>', got {line!r}")
            if m.group(1) in answers:
                raise ImpastoError(f"{path}:{n}: {m.group(1)} answered twice")
            value, sure = m.group(2).lower(), not m.group(3)
            if value == "none":
                answers[m.group(1)] = (None, sure)
            elif value.lstrip("0") in key["lineup"]:
                answers[m.group(1)] = (key["lineup"][value.lstrip("0")], sure)
            else:
                raise ImpastoError(f"{path}:{n}: {m.group(2) or 'nothing'} is not a painting's number "
                                   f"(1-{len(key['lineup'])}) nor 'none'")
    missing = sorted(known - answers.keys())
    if missing:
        raise ImpastoError(f"{', '.join(map(str, paths))}: no answer for {', '.join(missing)}")
    return answers


def score(key: dict, answers: dict[str, tuple[str | None, bool]]) -> dict:
    """How many items had their painting named, and named without a `?`, per condition and per
    (condition, style)."""
    by_condition, by_style = defaultdict(list), defaultdict(list)
    for it in key["items"]:
        named, sure = answers[it["item"]]
        hit = (named == it["painting"], named == it["painting"] and sure)
        by_condition[it["condition"]].append(hit)
        by_style[(it["condition"], it.get("style") or Path(it["painting"]).stem)].append(hit)

    def tally(hits):
        return {"named": sum(h for h, _ in hits), "sure": sum(s for _, s in hits), "items": len(hits),
                "share": sum(h for h, _ in hits) / len(hits)}
    return {"chance": 1 / len(key["lineup"]),
            "conditions": {c: tally(h) for c, h in by_condition.items()},
            "styles": {f"{c}:{s}": tally(h) for (c, s), h in sorted(by_style.items())},
            "answers": {it["item"]: {"shown": it["painting"], "named": answers[it["item"]][0],
                                     "sure": answers[it["item"]][1], "condition": it["condition"],
                                     "style": it.get("style") or Path(it["painting"]).stem}
                        for it in key["items"]}}


def report(result: dict) -> None:
    print(f"chance: {result['chance']:.1%} (one of {round(1 / result['chance'])} paintings)")
    for c, r in result["conditions"].items():
        print(f"{c:>10}: named {r['named']}/{r['items']} ({r['share']:.0%}), {r['sure']} of them sure")
    for s, r in result["styles"].items():
        wrong = [(a["named"] or "none") + ("" if a["sure"] else "?") for a in result["answers"].values()
                 if f"{a['condition']}:{a['style']}" == s and a["named"] != a["shown"]]
        print(f"  {s:<28} {r['named']}/{r['items']} ({r['sure']} sure)"
              + (f"  taken for {', '.join(wrong)}" if wrong else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="paint the items and write the viewers' folders and the key")
    p.add_argument("out", type=Path, help="a new folder: a folder per viewer, key.json for you")
    p.add_argument("models", nargs="*", type=Path, help="ONNX files (default: the bundled photo networks)")
    p.add_argument("--photos", type=Path, default=SHARED / "content",
                   help="held-out photos (default: %(default)s)")
    p.add_argument("--paintings", type=Path, default=SHARED / "style",
                   help="the line-up: every painting in this folder (default: %(default)s)")
    p.add_argument("--per-style", type=int, default=1, help="fast items per style (default: %(default)s)")
    p.add_argument("--grades", type=int, default=1,
                   help="colour-graded photos per painting, the palette-only control (default: %(default)s)")
    p.add_argument("--iterative", type=int, default=1,
                   help="L-BFGS results per painting (default: %(default)s)")
    p.add_argument("--iterations", type=int, default=300,
                   help="L-BFGS iterations of each (default: %(default)s, the bar's)")
    p.add_argument("--size", type=int, default=512,
                   help="longest side of every item; at 320 px strokes are coarse for the picture "
                        "and styles blur together (default: %(default)s)")
    p.add_argument("--viewers", type=int, default=4,
                   help="viewers, each shown every painting at most once (1: one viewer sees "
                        "everything) (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="the shuffle (default: %(default)s)")
    s = sub.add_parser("score", help="score the viewers' answers against the key")
    s.add_argument("out", type=Path, help="the folder prepare wrote")
    s.add_argument("answers", type=Path, nargs="+", help="the viewers' answers.txt, one per viewer")
    s.add_argument("--json", type=Path, default=None, help="write the figures here")
    a = ap.parse_args()
    try:
        if a.command == "prepare":
            counts = (a.per_style, a.grades, a.iterative, a.iterations)
            if a.viewers < 1 or a.size < 16 or min(counts) < 0 or not any(counts[:3]):
                raise ImpastoError("--viewers, --size (16 or more) and at least one item per painting "
                                   "are needed; no count may be negative")
            if a.out.exists() and any(a.out.iterdir()):
                raise ImpastoError(f"{a.out}: not empty; prepare writes a new test")
            prepare(a.out, a.models or default_models(), a.photos, a.paintings, a.per_style, a.grades,
                    a.iterative, a.size, a.seed, a.iterations, a.viewers)
            print(f"show each viewer folder in {a.out} to one person; keep {a.out / 'key.json'} from them")
        else:
            key = json.loads((a.out / "key.json").read_text())
            result = score(key, read_answers(a.answers, key))
            report(result)
            if a.json:
                a.json.write_text(json.dumps(result, indent=2) + "\n")
    except (ImpastoError, OSError) as e:
        print(f"naming_test: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
