"""Figures that answer "what does this knob do" and "which method": parameter grids and the
algorithm comparison.

`explore` renders a labelled grid over any two options of the iterative objective (by default the
style/content weight ratio down the rows and the TV weight across the columns), one iterative
run per cell, each cell captioned with its time and loss terms.

`compare_algorithms` renders one figure with a row per content/style pair and a column per method
on the same inputs: Gatys; Gatys + histogram loss (Risser et al.); MRF (Li & Wand: patch loss
instead of Gram matrices); and the bundled fast model where one exists for that style. Every cell
is also scored on one common yardstick, the plain Gatys objective (content, Gram style, TV), so the
captions compare like with like.

TV weights. The issue's 0 / 0.001 / 0.01 are neural-style (jcjohnson) values for a TV loss
summed over 0..255 pixels next to a content weight of 5; this project's `TVLoss` is the *mean*
squared neighbour difference of 0..1 pixels (`OptimizeConfig.tv_weight` default 1.0), so those
literal numbers would do nothing here. The default columns keep the issue's decade spacing on
this project's scale: 0 (off), `TV_COLUMNS[1]` (a light touch) and `TV_COLUMNS[2]` (clearly
smoothed), chosen by measuring the TV term against the other terms (docs/compare.md).
"""

from __future__ import annotations

import dataclasses
import json
import os
import textwrap
import time
import typing
from pathlib import Path
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from impasto import images
from impasto.errors import ImpastoError
from impasto.models.tensors import to_tensor
from impasto.models.weights import load_vgg_weights
from impasto.serve.runtime import load_engine
from impasto.serve.stylize import run_network
from impasto.serve.zoo import list_styles
from impasto.training.iterative.optimize import OptimizeConfig, build_objective, stylize

from .report import pyplot

# Defaults (see the module docstring and docs/compare.md for how they were chosen).
RATIO_ROWS = (1e-5, 1e-4, 1e-3)          # style/content weight ratio; the project default is 1e-4
TV_COLUMNS = (0.0, 100.0, 1000.0)       # this project's mean-normalised TV on 0..1 pixels
HISTOGRAM_WEIGHT = 0.5                   # Gatys + histogram column (its term ~ the Gram term on the photo)
MRF_WEIGHT = 1.0                         # MRF column (Gram style loss off)
MAX_CELLS = 49

ALIASES = {"ratio": "ratio", "style_content_ratio": "ratio", "tv": "tv_weight", "histogram": "histogram_weight",
           "hist": "histogram_weight", "mrf": "mrf_weight", "swd": "swd_weight", "style": "style_weight",
           "content": "content_weight"}
NOT_SWEEPABLE = {"snapshot_dir", "snapshot_every", "vgg_weights", "vgg_arch", "scales", "size"}


def _fields() -> dict:
    hints = typing.get_type_hints(OptimizeConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(OptimizeConfig) if f.name not in NOT_SWEEPABLE}


def sweepable() -> list[str]:
    return ["ratio"] + sorted(_fields())


def canonical(name: str) -> str:
    key = name.strip().replace("-", "_").lower()
    key = ALIASES.get(key, key)
    if key != "ratio" and key not in _fields():
        raise ImpastoError(f"cannot sweep {name!r}; choose from: {', '.join(sweepable())}")
    return key


def _parse_value(name: str, text: str):
    text = text.strip()
    if name == "ratio":
        kind = float
    else:
        kind = _fields()[name]
    origin = typing.get_origin(kind)
    args = typing.get_args(kind)
    if origin is typing.Union and type(None) in args:  # Optional[...]
        if text.lower() in ("none", "off", ""):
            return None
        kind = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(kind), typing.get_args(kind)
    try:
        if kind in (float,):
            return float(text)
        if kind in (int,):
            return int(text)
        if kind in (str,):
            if not text:
                raise ValueError("empty")
            return text
        if origin in (Sequence, list, tuple, typing.Sequence) or str(origin).endswith("Sequence'>"):
            inner = args[0] if args else str
            parts = [p for p in text.split("+") if p]
            if not parts:
                raise ValueError("empty")
            return tuple(inner(p) for p in parts)
    except ValueError:
        raise ImpastoError(f"bad value {text!r} for {name}") from None
    raise ImpastoError(f"cannot sweep {name!r} (type {kind})")


def parse_sweep(spec: str) -> tuple[str, list]:
    """'tv_weight=0,10,100' -> ('tv_weight', [0.0, 10.0, 100.0]). Layer lists join with '+':
    'style_layers=relu1_1+relu2_1,relu3_1+relu4_1'."""
    if "=" not in spec:
        raise ImpastoError(f"a sweep looks like NAME=V1,V2,... (e.g. tv_weight=0,10,100), not {spec!r}")
    name, _, values = spec.partition("=")
    key = canonical(name)
    vals = [_parse_value(key, v) for v in values.split(",")]
    if not vals or values.strip() == "":
        raise ImpastoError(f"no values given for {name}")
    return key, vals


def apply(config, changes: dict):
    """A copy of the config with swept values applied ('ratio' sets style_weight = ratio x
    content_weight, after any content_weight change). Validation runs again."""
    plain = {k: v for k, v in changes.items() if k != "ratio"}
    cfg = dataclasses.replace(config, **plain)
    if "ratio" in changes:
        cfg = dataclasses.replace(cfg, style_weight=changes["ratio"] * cfg.content_weight)
    assert isinstance(cfg, OptimizeConfig)
    return cfg


def label(name: str, value) -> str:
    if isinstance(value, (tuple, list)):
        value = "+".join(str(v) for v in value)
    elif isinstance(value, float):
        value = f"{value:g}"
    return f"{'style/content' if name == 'ratio' else name.replace('_weight', '')} = {value}"


# Each loss term's letter in the captions, and its name in the legend.
TERM_LETTERS = {"content": ("c", "content"), "style": ("s", "style"), "tv": ("t", "TV"),
                "histogram": ("h", "histogram"), "mrf": ("m", "MRF"), "swd": ("w", "sliced Wasserstein")}


def _legend(terms: Sequence[str]) -> str:
    return ", ".join(" ".join(TERM_LETTERS[k]) for k in terms if k in TERM_LETTERS)


def _caption(seconds: float, terms: dict) -> str:
    if seconds < 1:
        parts = [f"{seconds * 1000:.0f} ms"]
    else:
        parts = [f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"]
    parts += [f"{TERM_LETTERS.get(k, (k,))[0]} {v:.2g}" for k, v in terms.items()
              if k not in ("seconds", "scale", "total", "best")]
    return ", ".join(parts)


def _figure(cells: list[list[Optional[np.ndarray]]], row_labels: Sequence[str], col_labels: Sequence[str],
            captions: list[list[str]], title: str, path: Path, thumb: Optional[float] = None) -> Path:
    plt = pyplot()
    nr, nc = len(cells), len(cells[0])
    shown = [im for row in cells for im in row if im is not None]
    aspect = float(np.mean([im.shape[0] / im.shape[1] for im in shown])) if shown else 1.0
    if thumb is None:
        # Cells at their own pixel size (100 dpi), 220-400 px wide: fine texture, which is what
        # TV or a histogram weight changes, vanishes when a cell is shrunk.
        width = max((im.shape[1] for im in shown), default=220)
        thumb = min(max(width / 100, 2.2), 4.0)
    width_in = thumb * nc + 0.9
    wrapped = textwrap.fill(title, max(40, int(width_in * 13)))
    lines = wrapped.count("\n") + 1
    # each title line gets its own height, so a long title does not squeeze the cells together
    height_in = (thumb * aspect + 0.75) * nr + 0.42 + 0.18 * lines
    fig, axes = plt.subplots(nr, nc, figsize=(width_in, height_in), squeeze=False, dpi=100)
    for r in range(nr):
        for c in range(nc):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if cells[r][c] is None:
                ax.text(0.5, 0.5, captions[r][c] or "n/a", ha="center", va="center", fontsize=8, color="#666",
                        wrap=True, transform=ax.transAxes)
            else:
                ax.imshow(cells[r][c])
                ax.set_xlabel(captions[r][c], fontsize=6.5)
            if r == 0:
                ax.set_title(col_labels[c], fontsize=9, fontweight="bold")
            if c == 0:
                ax.set_ylabel(row_labels[r], fontsize=9, fontweight="bold")
    fig.suptitle(wrapped, fontsize=8.5)
    top = 1 - (0.18 * lines + 0.1) / height_in
    fig.tight_layout(rect=(0, 0, 1, top), pad=0.4)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


def explore(content: str | os.PathLike, style: str | os.PathLike, output: str | os.PathLike,
            rows: tuple[str, Sequence] = ("ratio", RATIO_ROWS), cols: tuple[str, Sequence] = ("tv_weight", TV_COLUMNS),
            base=None, log: Callable[[str], None] = print) -> dict:
    """Render the grid figure to `output` (PNG); cell images and a JSON of the cells go into
    `<output stem>_cells/`. Returns {"rows", "cols", "cells": [[{...}]], "figure"}."""

    base = base or OptimizeConfig()
    rname, rvals = canonical(rows[0]), list(rows[1])
    cname, cvals = canonical(cols[0]), list(cols[1])
    if rname == cname:
        raise ImpastoError(f"rows and columns sweep the same option ({rname}); choose two different ones")
    if not rvals or not cvals:
        raise ImpastoError("each sweep needs at least one value")
    if len(rvals) * len(cvals) > MAX_CELLS:
        raise ImpastoError(f"{len(rvals)} x {len(cvals)} cells is too many (at most {MAX_CELLS})")
    output = Path(output)
    images.format_for(output)
    # Validate every cell's config before minutes of work.
    configs = [[apply(base, {rname: rv, cname: cv}) for cv in cvals] for rv in rvals]
    photo = images.load(content)
    painting = images.load(style)
    weights = load_vgg_weights(base.vgg_weights, base.vgg_arch)
    cell_dir = output.with_name(output.stem + "_cells")
    cell_dir.mkdir(parents=True, exist_ok=True)
    grid, caps, record = [], [], []
    total = len(rvals) * len(cvals)
    for i, (rv, row_cfgs) in enumerate(zip(rvals, configs)):
        grid.append([]), caps.append([]), record.append([])
        for j, (cv, cfg) in enumerate(zip(cvals, row_cfgs)):
            log(f"  cell {i * len(cvals) + j + 1}/{total}: {label(rname, rv)}, {label(cname, cv)}")
            t = time.perf_counter()
            res = stylize(photo, [painting], cfg, objective=build_objective(cfg, weights))
            secs = time.perf_counter() - t
            last = dict(res.final or (res.history[-1] if res.history else {}))   # the image returned
            images.save(res.image, cell_dir / f"r{i}_c{j}.png")
            grid[-1].append(res.image)
            caps[-1].append(_caption(secs, last))
            record[-1].append({"row": rv, "col": cv, "seconds": secs, "iterations": res.iterations,
                               "terms": {k: v for k, v in last.items() if k not in ("seconds", "scale", "best")},
                               "image": f"{cell_dir.name}/r{i}_c{j}.png"})
    shown = dict.fromkeys(k for row in record for cell in row for k in cell["terms"])
    title = (f"{Path(content).name} in the style of {Path(style).name}: {base.iterations} L-BFGS iterations at "
             f"{base.size} px; caption: time, weighted loss terms ({_legend(shown)})")
    _figure(grid, [label(rname, v) for v in rvals], [label(cname, v) for v in cvals], caps, title, output)
    data = {"rows": {"option": rname, "values": rvals}, "cols": {"option": cname, "values": cvals},
            "base": _config_dict(base), "cells": record, "figure": output.name}
    (cell_dir / "cells.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    return data


def _config_dict(cfg) -> dict:
    d = dataclasses.asdict(cfg)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()
            if k not in ("snapshot_dir", "snapshot_every")}


# =========================================================================== algorithm comparison

METHODS = ("gatys", "histogram", "mrf", "fast")
METHOD_TITLES = {"gatys": "Gatys", "histogram": "Gatys + histogram", "mrf": "MRF (Li & Wand)",
                 "fast": "fast model"}


def method_config(method: str, base, histogram_weight: float = HISTOGRAM_WEIGHT, mrf_weight: float = MRF_WEIGHT):
    if method == "gatys":
        return dataclasses.replace(base, histogram_weight=0.0, mrf_weight=0.0)
    if method == "histogram":
        return dataclasses.replace(base, histogram_weight=histogram_weight, mrf_weight=0.0)
    if method == "mrf":
        return dataclasses.replace(base, style_weight=0.0, histogram_weight=0.0, mrf_weight=mrf_weight)
    raise ImpastoError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")


def find_fast_model(style: Path, folder: Optional[str] = None) -> Optional[Path]:
    """The bundled fast model trained on this style image (matched by the card's style image file
    name, else by the style name), or None."""
    stem = Path(style).stem.lower()
    for s in list_styles(folder):
        card_image = Path(str(s["card"].get("style_image", ""))).stem.lower()
        if card_image == stem or s["name"].lower() == stem:
            return Path(s["path"])
    return None


def compare_algorithms(pairs: Sequence[tuple[str | os.PathLike, str | os.PathLike]], output: str | os.PathLike,
                       base=None, methods: Sequence[str] = METHODS, histogram_weight: float = HISTOGRAM_WEIGHT,
                       mrf_weight: float = MRF_WEIGHT, models_folder: Optional[str] = None,
                       backend: str = "ort", log: Callable[[str], None] = print) -> dict:
    """Rows = content/style pairs, columns = methods; writes the figure (PNG) and a JSON of the cells."""

    base = base or OptimizeConfig()
    if not pairs:
        raise ImpastoError("no content/style pairs given")
    for m in methods:
        if m not in METHODS:
            raise ImpastoError(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    output = Path(output)
    images.format_for(output)
    weights = load_vgg_weights(base.vgg_weights, base.vgg_arch)
    yardstick_cfg = method_config("gatys", base)
    cell_dir = output.with_name(output.stem + "_cells")
    cell_dir.mkdir(parents=True, exist_ok=True)
    grid, caps, record = [], [], []
    for i, (content, style) in enumerate(pairs):
        content, style = Path(content), Path(style)
        photo = images.resize(images.load(content), base.size)
        painting = images.load(style)
        yard = build_objective(yardstick_cfg, weights)
        side = max(16, round(base.size * base.style_scale))
        yard.set_targets(to_tensor(photo), [to_tensor(images.resize(painting, side))])
        row_imgs, row_caps, row_rec = [], [], []
        for method in methods:
            log(f"  {content.name} / {style.name}: {METHOD_TITLES[method]}")
            own = {}
            if method == "fast":
                model = find_fast_model(style, models_folder)
                if model is None:
                    row_imgs.append(None)
                    row_caps.append(f"no fast model for\n{style.name}")
                    row_rec.append({"method": method, "image": None})
                    continue
                engine = load_engine(model, backend)
                run_network(engine, photo)  # warm-up
                t = time.perf_counter()
                img = run_network(engine, photo)
                secs = time.perf_counter() - t
                own["model"] = model.name
            else:
                cfg = method_config(method, base, histogram_weight, mrf_weight)
                t = time.perf_counter()
                res = stylize(photo, [painting], cfg, objective=build_objective(cfg, weights))
                secs = time.perf_counter() - t
                img = res.image
                last = res.final or (res.history[-1] if res.history else {})
                own = {k: v for k, v in last.items() if k in ("histogram", "mrf")}
            with torch.no_grad():
                _, terms = yard(to_tensor(img))
            gatys = {k: float(v) for k, v in terms.items()}
            name = f"r{i}_{method}.png"
            images.save(img, cell_dir / name)
            row_imgs.append(img)
            cap = _caption(secs, gatys)
            if own.get("histogram") is not None:
                cap += f"\nown: h {own['histogram']:.2g}"
            if own.get("mrf") is not None:
                cap += f"\nown: mrf {own['mrf']:.2g}"
            row_caps.append(cap)
            row_rec.append({"method": method, "seconds": secs, "gatys_terms": gatys, "own_terms": own,
                            "image": f"{cell_dir.name}/{name}"})
        grid.append(row_imgs), caps.append(row_caps)
        record.append({"content": content.name, "style": style.name, "cells": row_rec})
    title = (f"{base.iterations} L-BFGS iterations at {base.size} px (fast: one onnxruntime pass). Caption: time; "
             "terms of the plain Gatys objective for every cell (c content, s style, t TV)")
    _figure(grid, [f"{Path(c).stem} / {Path(s).stem}" for c, s in pairs], [METHOD_TITLES[m] for m in methods],
            caps, title, output)
    data = {"methods": list(methods), "histogram_weight": histogram_weight, "mrf_weight": mrf_weight,
            "base": _config_dict(base), "rows": record, "figure": output.name}
    (cell_dir / "cells.json").write_text(json.dumps(data, indent=1, default=str) + "\n")
    return data
