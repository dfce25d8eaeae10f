"""The bundled styles' model cards as one page a person reads: `models/zoo/README.md`.

Written from the JSON cards only (never by hand), so the page says what the cards say:

    python -m impasto.models.zoo.card_page [FOLDER]      # rewrites FOLDER/README.md

Each style gets its painting, the held-out side-by-side that `bench/fast_vs_iterative.py
--card` leaves next to the card (photo | fast | L-BFGS where it reaches the fast network's loss
| L-BFGS at its last iteration), and its numbers: held-out style quality, L-BFGS iterations it is worth, the
compute it got (device, steps, images seen, hours, every stage's config hash) and latency.
A multi-style network gets one section: its sheet (every style on one photo, and a blend) and
one row of numbers per style. A style's video network (`<style>.video.onnx`, trained with the
temporal term; `impasto stylize` paints videos with it) is shown in its style's section, with its
per-frame flicker beside the photo network's.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from impasto.files import atomic_write_bytes

HERE = Path(__file__).resolve().parent
PAGE = "README.md"
VIDEO_CARD = ".video.json"   # the card of a style's video network, beside the style's own


def _pct(x) -> str:
    return f"{x:.1%}" if isinstance(x, (int, float)) else "not measured"


def _painting_side(style_quality: dict) -> str:
    """The painting's side when its Grams were taken: the measure depends on it."""
    side = style_quality.get("style_side")
    return f", the painting's Grams at {side} px" if side else ""


def _style_section(card: dict) -> list[str]:
    name = card["style"]
    q = card.get("quality", {})
    sq, fvi = q.get("style_quality", {}), q.get("fast_vs_iterative", {})
    lines = [f"## {name}", ""]
    if card.get("style_thumbnail"):
        lines += [f'<img src="{card["style_thumbnail"]}" alt="the painting: {name}" height="160"> '
                  f'<img src="{card.get("preview", "")}" alt="{name}, one pass" height="160">', ""]
    comparison = fvi.get("comparison")
    if comparison:
        lines += [f"{' | '.join(comparison['columns'])} (held-out photo {comparison['photo']}, "
                  f"{fvi.get('size')} px):", "", f"![{name}: photo, fast, iterative]({comparison['image']})", ""]
    lines += ["| | |", "|---|---|"]
    if sq:
        lines.append(f"| style reduction, held-out | **{_pct(sq.get('style_reduction'))}** "
                     f"({sq.get('photos')} photos at {sq.get('size')} px{_painting_side(sq)}; "
                     f"{sq.get('measure', '')}) |")
        lines.append(f"| content error, held-out | {sq.get('content_error', float('nan')):.2f} |")
    from_noise = q.get("fast_vs_iterative_from_noise")
    for start, measured in (("the photo", fvi), ("noise, Johnson's protocol", from_noise)):
        if measured:
            per_photo = ", ".join(str(r.get("lbfgs_iterations_matched")) for r in measured.get("photos", []))
            lines.append(f"| worth L-BFGS iterations from {start} (median) | "
                         f"**{measured.get('lbfgs_iterations_matched_median')}** ({per_photo}; "
                         f"{len(measured.get('photos', []))} held-out photos at {measured.get('size')} px) |")
    return lines + _compute_rows(card) + [""]


def _flicker(card: dict, clip: str) -> float | None:
    return card.get("quality", {}).get("flicker", {}).get("clips", {}).get(clip, {}).get("per frame", {}).get("abs")


def _video_section(video: dict, photo: dict) -> list[str]:
    """A style's video network against its photo network: per-frame flicker and held-out style."""
    lines = ["", f"**Video network** (`{photo['style']}.video.onnx`): trained with the "
             f"temporal term; `impasto stylize` paints videos with it (`--photo-network` to use the one above).", "",
             "| | photo network | video network |", "|---|---|---|",
             f"| network | {photo.get('arch')} | {video.get('arch')} |"]   # it may come from an earlier photo network
    for clip in ("pan", "parallax"):
        before, after = _flicker(photo, clip), _flicker(video, clip)
        if before is not None and after is not None:
            lines.append(f"| per-frame flicker, {clip} clip (abs, 0-255) | {before:.2f} | "
                         f"**{after:.2f}** ({after / before:.2f}x) |")
    style = lambda c: c.get("quality", {}).get("style_quality", {}).get("style_reduction")  # noqa: E731
    lines.append(f"| style reduction, held-out | {_pct(style(photo))} | {_pct(style(video))} |")
    lines += ["", "| video network | |", "|---|---|"] + _compute_rows(video)
    return lines


def _compute_rows(card: dict) -> list[str]:
    """Compute, network and latency rows of a card's table."""
    compute, lines = card.get("compute", {}), []
    if compute:
        lines.append(f"| compute | {compute.get('steps')} steps, {compute.get('images_seen')} images seen, "
                     f"{compute.get('hours')} h on {compute.get('device')} |")
        stages = compute.get("stages", [])
        for i, st in enumerate(stages, 1):
            extra = " (raw Gram loss, not relative)" if st.get("style_relative") is False else ""
            extra += f", style layers {', '.join(st['style_layers'])}" if st.get("style_layers") else ""
            extra += f", {len(st['styles'])} styles at once" if st.get("styles") else ""
            extra += f", histogram weight {st['histogram_weight']:g}" if st.get("histogram_weight") else ""
            if st.get("temporal_weight"):
                block = st.get("temporal_lowpass", 1)
                extra += f", temporal weight {st['temporal_weight']:g} " + (
                    f"on {block} px blocks" if block > 1 else "per pixel")
            extra += (f", learning rate decayed to 0 over steps {st['lr_decay'][0]}-{st['lr_decay'][1]}"
                      if st.get("lr_decay") else "")
            extra += f", trained on what a {st['edge_margin']} px edge margin shows" if st.get("edge_margin") else ""
            extra += f", {st['image_size']} px crops" if st.get("image_size") else ""
            extra += f" at batch {st['batch_size']}" if st.get("batch_size") else ""
            extra += f", photos at {st['resize_size']} px" if st.get("resize_size") else ""
            extra += f", {st['precision']}" if st.get("precision") else ""
            extra += (f", gradients clipped at a norm of {st['gradient_clip_val']:g}"
                      if st.get("gradient_clip_val") else "")
            if i > 1 and st.get("arch") and st["arch"] != stages[i - 2].get("arch"):
                extra += f", the network grown to {st['arch']} from the stage before"
            lines.append(f"| stage {i} | {st.get('steps')} steps at style weight {st.get('style_weight'):g}"
                         f"{extra}, config `{st.get('config_hash')}` |")
    lines.append(f"| network | {card.get('arch')}, {card.get('parameters'):,} parameters |")
    backends = {k: v for k, v in card.get("backends", {}).items() if not k.startswith("_")}
    if backends:
        cond = card["backends"].get("_conditions", {})
        lines.append(f"| latency at {cond.get('size', '?')} | " +
                     ", ".join(f"{k} {v['latency_ms']:.0f} ms" for k, v in backends.items()) + " |")
    return lines


def _multi_section(card: dict) -> list[str]:
    name, styles = card["style"], card["styles"]
    q = card.get("quality", {})
    sq = q.get("style_quality", {})
    per_style, worth = sq.get("per_style", {}), q.get("fast_vs_iterative", {}).get("per_style", {})
    lines = [f"## {name}: {len(styles)} styles in one network", ""]
    if card.get("sheet"):
        lines += [f"![{name}: every style on one photo]({card['sheet']})", "", card.get("sheet_caption", ""), ""]
    from_noise = q.get("fast_vs_iterative_from_noise", {}).get("per_style", {})
    lines += ["| style | style reduction, held-out | content error | worth L-BFGS iterations from the photo |"
              + (" from noise, Johnson's protocol |" if from_noise else ""),
              "|---|---|---|---|" + ("---|" if from_noise else "")]
    for style in styles:
        r, w = per_style.get(style, {}), worth.get(style, {})
        error = r.get("content_error")
        noise = from_noise.get(style, {}).get("lbfgs_iterations_matched_median", "not measured")
        lines.append(f"| {style} | **{_pct(r.get('style_reduction'))}** | "
                     f"{f'{error:.2f}' if isinstance(error, float) else 'not measured'} | "
                     f"{w.get('lbfgs_iterations_matched_median', 'not measured')} |"
                     + (f" {noise} |" if from_noise else ""))
    if sq:
        lines += ["", f"Held-out: {sq.get('photos')} photos at {sq.get('size')} px{_painting_side(sq)} "
                  f"({sq.get('measure', '')}); "
                  f"mean style reduction **{_pct(sq.get('style_reduction'))}**.", ""]
    for style, w in worth.items():
        comparison = w.get("comparison")
        if comparison:
            lines += [f"{style}: {' | '.join(comparison['columns'])} (held-out photo {comparison['photo']}, "
                      f"{w.get('size')} px):", "", f"![{name} {style}: photo, fast, iterative]({comparison['image']})", ""]
    return lines + ["| | |", "|---|---|"] + _compute_rows(card) + [""]


def render(folder: Path = HERE) -> str:
    cards, video = [], {}
    for path in sorted(folder.glob("*.json")):
        card = json.loads(path.read_text())
        if "style" not in card:
            continue
        if path.name.endswith(VIDEO_CARD):
            video[path.name[:-len(VIDEO_CARD)]] = card
        else:
            cards.append(card)
    head = ["# The bundled styles: model cards", "",
            "Written by `python -m impasto.models.zoo.card_page` from the JSON cards beside it; do not edit.",
            "Held-out means photos no network was trained on (`bench/style_quality.py`: "
            "`../shared/data/content`; `bench/fast_vs_iterative.py`: the held-out COCO photos).", ""]
    sections = [_multi_section(c) if c.get("styles") else
                _style_section(c) + (_video_section(video[c["style"]], c) + [""] if c["style"] in video else [])
                for c in cards]
    return "\n".join(head + [line for section in sections for line in section])


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args and args[0].startswith("-"):   # --help, or a mistyped option: not a folder to write into
        print(__doc__)
        return 0 if args[0] in ("-h", "--help") else 2
    folder = Path(args[0]) if args else HERE
    if not folder.is_dir():
        print(f"{folder}: no such folder of model cards", file=sys.stderr)
        return 2
    atomic_write_bytes(folder / PAGE, render(folder).encode())
    print(f"wrote {folder / PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
