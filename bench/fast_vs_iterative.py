"""The quality bar: how many L-BFGS iterations is a fast style network worth?

    python bench/fast_vs_iterative.py runs/candy/checkpoints/best.ckpt [--photos 3] [--size 256]
        [--iterations 150] [--init photo|noise] [--card models/zoo/candy.json]
    python bench/fast_vs_iterative.py runs/zoo8/checkpoints/last.ckpt --style udnie   # one style of many
    python bench/fast_vs_iterative.py models/zoo/starry_night.onnx --init noise        # a bundled network

On held-out photos (the first `holdout` photos of the training folder, which training never
saw), evaluate the checkpoint's own objective (its VGG, layers and loss weights, style targets from
its style image at its style size) on the fast network's output, then run L-BFGS on the pixels on
the same objective, and report the first iteration (one loss and gradient evaluation each) whose
loss is at or below the fast network's. Both sides run under the same precision (bf16 autocast by
default, as training does).

Where L-BFGS starts: `--init photo` (default) starts from the photo itself, whose content loss is
already zero: the stricter measure. `--init noise` is Johnson et al.'s protocol (white noise,
their section 4.1; here the mean ImageNet colour plus faint noise, as neural-style's random init),
under which they report 50-100 for their GPU-trained networks.

Under each photo it prints the style term split by layer, for the network and for L-BFGS at the
matching iteration: at an equal total, which layers the network pays for (docs/training.md,
"Where the worth is lost").

Writes a side-by-side PNG per photo: photo | fast | L-BFGS at the matching iteration | L-BFGS at
the last iteration. With --card, merges the result into the model card (the noise start under its
own key) and, from the photo start, writes the first photo's side-by-side next to it as
<style>.compare.jpg (the card's picture; --iterations 300 for the bar's "content | fast |
iterative (300 iterations)").
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def start_image(photo: torch.Tensor, init: str, seed: int) -> torch.Tensor:
    """Where L-BFGS starts: the photo, or Johnson's white noise (the mean ImageNet colour and
    faint Gaussian noise, as neural-style's `-init random`, so no photo detail leaks in)."""
    if init == "photo":
        return photo
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    noise = torch.randn(photo.shape, generator=torch.Generator().manual_seed(seed))
    return (mean + 0.01 * noise).clamp(0, 1)


def style_by_layer(loss, image: torch.Tensor) -> dict[str, float]:
    """The style term split by VGG layer, each part weighted as the term weighs it (they sum to it):
    where a network falls short of L-BFGS at an equal total. Of a Gram pyramid, its first level."""
    term = loss.term("style")
    with torch.no_grad():
        parts = term.layer_losses(loss.vgg(image))
    half = 0.5 if term.reduction == "paper" else 1.0
    return {n: round(half * term.weight * lw * float(parts[n]), 2) for n, lw in zip(term.layers, term.layer_weights)}


def objective_from_card(network: str, meta: dict) -> dict:
    """An exported network (.onnx) carries its weights, not its objective: take the objective it
    was trained on (loss weights, layers, painting, style size) from the model card beside it."""
    from impasto.models.zoo.card import card_path, read_card
    card = read_card(network)
    if not card or "error" in card:
        raise SystemExit(f"{network}: an exported network does not hold its training objective, and "
                         f"{card_path(network).name} beside it is {'unreadable' if card else 'missing'}; "
                         "pass the training checkpoint instead")
    model_cfg = card.get("config", {}).get("model", {})
    if "loss_weights" not in card or not (model_cfg.get("style_image") or model_cfg.get("style_images")):
        raise SystemExit(f"{card_path(network)}: the card lacks the training objective (loss_weights, config.model); "
                         "pass the training checkpoint instead")
    meta = {**meta, "config": card["config"], "loss_weights": card["loss_weights"],
            "steps": card.get("steps", meta["steps"]), "style_size": model_cfg.get("style_size"),
            "style_image": model_cfg.get("style_image", "")}
    if model_cfg.get("style_images"):
        meta["style_images"] = model_cfg["style_images"]
    if card.get("edge_margin") is not None:
        meta["edge_margin"] = card["edge_margin"]
    return meta


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint", help="a training checkpoint, or an exported .onnx with its model card beside it")
    ap.add_argument("--photos", type=int, default=3, help="how many held-out photos")
    ap.add_argument("--size", type=int, default=256, help="shorter side and centre crop of each photo")
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto",
                    help="auto: bf16 only on CPUs with bf16 units (default: %(default)s)")
    ap.add_argument("--source", default=None, help="photo folder (default: the checkpoint's data.source)")
    ap.add_argument("--out", default=None, help="folder for the side-by-side PNGs (default: next to the checkpoint)")
    ap.add_argument("--card", default=None, help="merge the result into this model card JSON")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--init", choices=("photo", "noise"), default="photo",
                    help="where L-BFGS starts: the photo, or white noise as in Johnson et al. "
                         "(default: %(default)s)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise start (default: %(default)s)")
    ap.add_argument("--style", default=None, help="a multi-style network's style to measure (its own painting)")
    ap.add_argument("--edge-margin", type=int, default=None,
                    help="paint each photo reflect-padded by this margin and cropped back, as the runtime "
                         "does (default: the margin the network was trained with, else none)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

    from impasto import images
    from impasto.models.tensors import to_array
    from impasto.training.fast.data import PhotoDataModule
    from impasto.models.zoo.card import write_card
    from impasto.training.fast.checkpoint import load_fast_checkpoint
    from impasto.models.losses import GATYS_STYLE
    from impasto.training.fast.module import MRF_LAYERS, build_perceptual_loss, load_style_image, with_margin
    from impasto.training.iterative.optimize import optimize_pixels

    net, meta = load_fast_checkpoint(a.checkpoint)
    if "loss_weights" not in meta:
        meta = objective_from_card(a.checkpoint, meta)
    cfg = meta.get("config") or {}
    model_cfg, data_cfg = cfg.get("model", {}), cfg.get("data", {})
    source = a.source or data_cfg.get("source", str(REPO.parent / "shared" / "data" / "coco_sample"))
    holdout = int(data_cfg.get("holdout", 8))
    # A run that validated on a folder of its own (a pack's holdout/, `impasto train-gpu`) trained on
    # every photo of `source`: its held-out photos are that folder's.
    val_source = None if a.source else data_cfg.get("val_source")
    if val_source and not Path(val_source).is_dir():
        raise SystemExit(f"the network was validated on {val_source}, which is not here: give --source, a folder "
                         f"whose first {holdout} photos it never trained on (../shared/data/coco_sample)")
    dm = PhotoDataModule(source, holdout=holdout, val_source=val_source, image_size=a.size, val_size=a.size,
                         batch_size=1)
    dm.setup()
    n = min(a.photos, len(dm.val_set))
    w = meta["loss_weights"]
    loss = build_perceptual_loss(model_cfg.get("vgg_weights"), w["content"], w["style"], w["tv"], w["histogram"],
                                 model_cfg.get("content_layers", ("relu2_2",)),
                                 model_cfg.get("style_layers", ("relu1_2", "relu2_2", "relu3_3", "relu4_3")),
                                 model_cfg.get("style_layer_weights"),
                                 style_relative=model_cfg.get("style_relative", False),
                                 mrf_weight=w.get("mrf", 0.0), mrf_layers=model_cfg.get("mrf_layers", MRF_LAYERS),
                                 swd_weight=w.get("swd", 0.0), swd_layers=model_cfg.get("swd_layers", GATYS_STYLE),
                                 style_pyramid=model_cfg.get("style_pyramid", 1))
    if loss.term("swd") is not None:   # one draw of directions: L-BFGS needs the same function
        loss.terms["swd"].fresh = False
    styles = meta.get("styles") or []
    if styles and a.style not in styles:
        raise SystemExit(f"{a.checkpoint} paints {len(styles)} styles ({', '.join(styles)}): pick one with --style")
    if a.style and not styles:
        raise SystemExit(f"{a.checkpoint} paints one style ({meta['style']}); --style is for multi-style networks")
    if styles:   # one style of many: its painting, its one-hot row of the style weights
        name, painting = a.style, meta["style_images"][styles.index(a.style)]
        one_hot = torch.eye(len(styles))[styles.index(a.style)][None]
        network = lambda x: net(x, one_hot)
    else:
        name, painting, network = meta["style"], meta["style_image"], net
    # A network trained with an edge margin paints a band there that only the margin hides:
    # measure what the runtime shows, not the band.
    margin = meta.get("edge_margin", 0) if a.edge_margin is None else a.edge_margin
    paint = lambda x: with_margin(x, margin, network)
    style = load_style_image(painting, meta.get("style_size"))
    from impasto.hardware import auto_precision
    a.precision = auto_precision(a.precision)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=a.precision == "bf16")
    out_dir = Path(a.out) if a.out else Path(a.checkpoint).parent.parent / "fast_vs_iterative"
    names = dm.holdout_paths()

    print(f"{name} ({meta['arch']}, {meta['steps']} steps): {n} held-out photos at {a.size} px, "
          f"L-BFGS from the {a.init} up to {a.iterations} iterations, {a.precision}, edge margin {margin} px, "
          f"objective {' + '.join(loss.terms)}", flush=True)
    matched, rows = [], []
    for i in range(n):
        photo = dm.val_set[i]["image"][None]
        loss.set_targets(content=photo, styles=[style])
        with torch.no_grad(), autocast:
            fast = paint(photo).float()
            fast_total, fast_terms = loss(fast)
        fast_total = float(fast_total)
        t = time.perf_counter()
        snaps = {}
        start = start_image(photo, a.init, a.seed + i)
        res = optimize_pixels(lambda x: loss(x), start, a.iterations, "lbfgs", precision=a.precision,
                              on_step=lambda k, x, row: snaps.__setitem__(k, x.detach().clone())
                              if row["total"] <= fast_total and not snaps else None)
        lbfgs_s = time.perf_counter() - t
        totals = [h["total"] for h in res.history]
        hit = next((k + 1 for k, v in enumerate(totals) if v <= fast_total), None)
        start_loss = totals[0]
        matched.append(hit if hit is not None else float("inf"))
        rows.append({"photo": Path(names[i]).name, "fast_loss": round(fast_total, 2),
                     "fast_terms": {k: round(float(v), 2) for k, v in fast_terms.items()},
                     "start_loss": round(start_loss, 2), "lbfgs_final_loss": round(totals[-1], 2),
                     "lbfgs_iterations_matched": hit, "lbfgs_s_per_iteration": round(lbfgs_s / len(totals), 3)})
        print(f"  {Path(names[i]).name}: fast {fast_total:.1f} | {a.init} {start_loss:.1f} | L-BFGS "
              f"{totals[-1]:.1f} after {len(totals)} -> fast model = {hit if hit else f'>{len(totals)}'} "
              f"iterations ({lbfgs_s / len(totals):.2f} s each)", flush=True)
        with autocast:
            rows[-1]["fast_style_by_layer"] = style_by_layer(loss, fast)
            rows[-1]["lbfgs_style_by_layer_at_match"] = style_by_layer(loss, snaps[hit].to(photo.dtype)) if hit else None
        print("    style by layer, fast" + (f" | L-BFGS at {hit}: " if hit else ": ") + ", ".join(
            f"{n} {v:.0f}" + (f" | {rows[-1]['lbfgs_style_by_layer_at_match'][n]:.0f}" if hit else "")
            for n, v in rows[-1]["fast_style_by_layer"].items()), flush=True)
        strip = [photo, fast, snaps.get(hit, torch.from_numpy(res.image).permute(2, 0, 1)[None])
                 if hit else start, torch.from_numpy(res.image).permute(2, 0, 1)[None]]
        strip = to_array(torch.cat([s.float().clamp(0, 1) for s in strip], dim=3))
        images.save(strip, out_dir / f"{name}_{Path(names[i]).stem}.png")
        if a.card and a.init == "photo" and i == 0:  # the card's side-by-side: a small JPEG next to it
            # one style of a multi-style model: zoo8.candy.compare.jpg, beside the single candy's own
            stem = f"{meta['style']}.{name}" if styles else name
            comparison = Path(a.card).with_name(f"{stem}.compare.jpg")
            images.save(strip, comparison, quality=85)
    med = statistics.median(matched)
    summary = {"lbfgs_iterations_matched_median": med if med != float("inf") else None,
               "photos": rows, "size": a.size, "precision": a.precision, "edge_margin": margin,
               "init": a.init,
               "note": f"L-BFGS on pixels from the {a.init}, same objective; iterations = loss evaluations"}
    print(f"median: the fast model is worth {med} L-BFGS iterations (Johnson et al.: 50-100)")
    # the card keeps each protocol under its own key; its picture is the photo start's
    key = "fast_vs_iterative" if a.init == "photo" else "fast_vs_iterative_from_noise"
    if a.card and a.init == "photo":
        hit = rows[0]["lbfgs_iterations_matched"]
        summary["comparison"] = {"image": comparison.name, "photo": rows[0]["photo"],
                                 "columns": ["photo", "fast", f"L-BFGS at {hit} (the fast loss)" if hit
                                             else "photo (L-BFGS never reached the fast loss)",
                                             f"L-BFGS at {a.iterations}"]}
    if a.card:
        if styles:   # the card keeps one summary per style
            earlier = (json.loads(Path(a.card).read_text()) if Path(a.card).is_file() else {}).get("quality", {})
            per_style = {**earlier.get(key, {}).get("per_style", {}), name: summary}
            summary = {"per_style": per_style}
        write_card(a.card, {"quality": {key: summary}}, merge_nested=True)
        print(f"merged into {a.card}")
    print(json.dumps(rows[0]))
    return 0


if __name__ == "__main__":
    from impasto.errors import ImpastoError
    try:
        sys.exit(main())
    except ImpastoError as exc:   # missing weights, unreadable files: say so, no traceback
        sys.exit(f"error: {exc}")
