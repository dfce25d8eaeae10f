"""The comparison report: one self-contained HTML page plus its plots, next to the images.

Everything the page shows lies in the report folder and is linked relatively (images/..,
plots/..), so the folder can be zipped, moved, and opened from disk in any browser, no server.
Plots are matplotlib PNGs (Agg backend, no display needed).
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Sequence

import numpy as np

from impasto import images

from .metrics import fmt_float

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;max-width:1200px;
     padding:0 1em;color:#222;line-height:1.45}
h1{font-size:1.6em} h2{margin-top:2em;border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.8em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.3em .6em;text-align:right} th{background:#f4f4f4}
td.l,th.l{text-align:left}
.grid{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start}
.grid figure{margin:0;width:180px} .grid img{width:180px;height:auto;display:block;border:1px solid #ccc}
.grid figcaption{font-size:.78em;color:#444}
.note{color:#555;font-size:.9em} .plot{max-width:100%;height:auto}
code{background:#f4f4f4;padding:0 .25em}
"""


def _e(x) -> str:
    return html.escape(str(x))


def _plots_dir(out: Path) -> Path:
    d = out / "plots"
    d.mkdir(parents=True, exist_ok=True)
    return d


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend, chosen when a figure is first drawn (not on
    import, which would switch the backend of whatever program imports this module)."""
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt
    return plt


def loss_plot(photo: dict, models: Sequence[str], path: Path, precision: str) -> Path:
    """Loss against iterations (log scale), the fast models' losses as horizontal lines, and the
    iteration where the iterative run first reaches each of them marked."""
    plt = pyplot()
    curve = photo["curve"]
    it = np.arange(len(curve))
    fig, ax = plt.subplots(figsize=(7.5, 4.2), dpi=110)
    totals = [r["total"] for r in curve]
    ax.plot(it, totals, color="#1f4e9c", lw=2, label="iterative (L-BFGS): total")
    if any(b > a for a, b in zip(totals, totals[1:])):  # L-BFGS without line search is not monotone
        ax.plot(it, np.minimum.accumulate(totals), color="#000", lw=.8, alpha=.6, label="iterative: best so far")
    for term, style in (("content", ":"), ("style", "--"), ("tv", "-.")):
        if term in curve[0]:
            ax.plot(it, [max(r[term], 1e-12) for r in curve], color="#1f4e9c", lw=1, ls=style, alpha=.6,
                    label=f"iterative: {term}")
    colours = ["#d62728", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b"]
    for i, name in enumerate(models):
        f = photo["fast"][name]
        c = colours[i % len(colours)]
        level = f["total_run_precision"]
        ax.axhline(level, color=c, lw=1.6, label=f"fast {name}: {level:.4g} ({f['seconds'] * 1000:.0f} ms)")
        n = f["worth_iterations"]
        if n is not None:
            ax.axvline(n, color=c, lw=1, ls="--", alpha=.7)
            ax.plot([n], [curve[n]["total"]], "o", color=c)
            ax.annotate(f"worth {n} iterations", (n, curve[n]["total"]), xytext=(8, 10),
                        textcoords="offset points", color=c, fontsize=9)
    ax.set_yscale("log")
    ax.set_xlabel("iteration (L-BFGS objective evaluations)")
    ax.set_ylabel(f"loss ({precision})")
    ax.set_title(f"{photo['photo']} ({photo['width']}x{photo['height']})", fontsize=10)
    ax.grid(True, which="both", alpha=.25)
    ax.legend(fontsize=7.5, loc="upper right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _caption(p: dict, key: str, short: bool) -> str:
    """The caption of one image of a photo's row: two short lines in the grid, one line on the page."""
    if key == "content":
        return p["photo"] if short else "content photo"
    if key.startswith("fast:"):
        f = p["fast"][key[5:]]
        ms, loss = f["seconds"] * 1000, f["metrics"]["total"]
        return f"fast {key[5:]}\n{ms:.0f} ms, loss {loss:.3g}" if short else f"fast {key[5:]}: {ms:.0f} ms, loss {loss:.4g}"
    n = int(key[5:])
    m = p["snapshots"][n]
    if short:
        return f"iter {n}\n{m['seconds']:.1f} s, loss {m['total']:.3g}"
    return f"iterative {n} it.: {m['seconds']:.1f} s, loss {m['total']:.4g}"


def grid_figure(data: dict, out: Path, path: Path, thumb: float = 1.9) -> Path:
    """One row per photo: content | fast model(s) | iterative snapshots, captioned (a PNG for docs
    and slides; the HTML page shows the same images at full size)."""
    plt = pyplot()
    photos = data["photos"]
    cols = ["content"] + [f"fast:{m}" for m in data["models"]]
    shots = sorted({n for p in photos for n in p["snapshots"]})
    cols += [f"iter:{n}" for n in shots]
    aspect = float(np.mean([p["height"] / p["width"] for p in photos]))
    fig, axes = plt.subplots(len(photos), len(cols), figsize=(thumb * len(cols), (thumb * aspect + .45) * len(photos)),
                             squeeze=False, dpi=100)
    for r, p in enumerate(photos):
        for c, key in enumerate(cols):
            ax = axes[r][c]
            ax.set_xticks([]), ax.set_yticks([])
            rel = p["files"].get(key)
            if rel is None:
                ax.axis("off")
                continue
            ax.imshow(images.load(out / rel))
            ax.set_title(_caption(p, key, short=True), fontsize=7)
    fig.tight_layout(pad=.3)
    fig.savefig(path)
    plt.close(fig)
    return path


def _speed_html(data: dict) -> str:
    speed = data["speed"]
    if not speed:
        return ""
    ns = data["options"]["speed_iterations"]
    models = data["models"]
    head = ("<tr><th>size</th>" + "".join(f"<th>fast {_e(m)} (ms)</th>" for m in models)
            + "<th>iterative s / iteration</th>"
            + "".join(f"<th>iterative {n} it. (s)</th>" for n in ns)
            + "".join(f"<th>speed-up at {n} it.</th>" for n in ns) + "</tr>")
    body = []
    for r in speed:
        cells = [f"<td>{r['size']} px<br><span class=note>{r['width']}x{r['height']}</span></td>"]
        cells += [f"<td>{r[f'fast_ms[{m}]']:.1f}</td>" for m in models]
        cells.append(f"<td>{r['per_iteration_s']:.3f}</td>")
        for n in ns:
            mark = "" if r[f"source[{n}]"] == "measured" else "*"
            full = r.get(f"measured_s[{n}]")
            check = r.get(f"check[{n}]")
            extra = (f"<br><span class=note>full runs: {full:.1f} (est./full {check:.2f})</span>"
                     if full is not None and check is not None else "")
            cells.append(f"<td>{r[f'iterative_s[{n}]']:.1f}{mark}{extra}</td>")
        cells += [f"<td>{r[f'speedup[{n}]']:,.0f}x</td>" for n in ns]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return ("<table>" + head + "".join(body) + "</table>"
            "<p class=note>Fast: median of {rep} onnxruntime runs after a warm-up ({backend}). Iterative: "
            "L-BFGS on the same objective in {prec}. Unmarked: timed (within the {k} iterations timed at that "
            "size, or, at the comparison size, the full runs above). * = extrapolated: the {k} timed iterations "
            "+ the remaining ones at the steady-state cost (the median of the later half of the timed "
            "iterations; the first ones pay one-off costs). \"full runs\": the full runs' own time, which the "
            "table shows at the comparison size; the estimate made the same way as for the other sizes is "
            "checked against it (est./full). "
            "Speed-up = iterative seconds / fast latency of the first model.</p>").format(
        rep=data["options"]["fast_repeats"], backend=_e(data["backend"]), prec=_e(data["options"]["precision"]),
        k=data["options"]["speed_measure"])


def _metrics_html(photo: dict, models: Sequence[str]) -> str:
    cols = ("total", "content", "style", "tv", "ssim", "color_distance")
    head = "<tr><th class=l>image</th><th>seconds</th>" + "".join(f"<th>{c}</th>" for c in cols) + "</tr>"
    rows = []

    def tr(label, secs, m):
        return ("<tr><td class=l>" + _e(label) + "</td><td>" + (f"{secs:.3g}" if secs is not None else "-")
                + "</td>" + "".join(f"<td>{fmt_float(m.get(c))}</td>" for c in cols) + "</tr>")
    rows.append(tr("content photo", None, photo["content"]))
    for name in models:
        f = photo["fast"][name]
        rows.append(tr(f"fast {name}", f["seconds"], f["metrics"]))
    for n, m in sorted(photo["snapshots"].items()):
        rows.append(tr(f"iterative, {n} iterations", m["seconds"], m))
    return "<table>" + head + "".join(rows) + "</table>"


def write_report(data: dict, out: Path) -> Path:
    """index.html + plots/*.png + grid.png in `out` (the images are already there)."""
    out = Path(out)
    plots = _plots_dir(out)
    models = data["models"]
    prec = data["options"]["precision"]
    for p in data["photos"]:
        p["files"]["plot"] = loss_plot(p, models, plots / f"loss_{p['slug']}.png", prec).relative_to(out).as_posix()
    grid_rel = grid_figure(data, out, plots / "grid.png").relative_to(out).as_posix()
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(data['title'])}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{_e(data['title'])}</h1>",
             f"<p class=note>{_e(data['created'])} &middot; {len(data['photos'])} photo(s) at {data['options']['size']} px "
             f"(longest side) &middot; {_e(_machine_text(data['machine']))} &middot; L-BFGS step "
             f"{data['options']['lr']}, {_e(prec)}</p>"]
    parts += _summary_html(data, models, prec)
    parts += _objective_html(data)
    parts.append("<h2>Speed</h2>" + _speed_html(data))
    parts += _images_html(data, models, grid_rel)
    parts.append(
        "<h2>Data</h2><p><a href=\"metrics.csv\">metrics.csv</a> &middot; <a href=\"metrics.json\">metrics.json</a> "
        "(everything on this page, with the loss at every iteration).</p>"
        "<p class=note>Metrics: losses are the objective's weighted terms, evaluated in fp32 (so they can differ "
        "slightly from the curve when the run used bf16). SSIM: mean structural similarity of the luma to the "
        "content photo (Gaussian window, sigma 1.5; 1 = identical). colour_distance: sliced Wasserstein-1 "
        "distance between the image's and the style image's pixel colours in CIELAB (64 directions; about "
        "Delta-E units; lower = closer to the painting's palette).</p></body></html>")
    page = out / "index.html"
    page.write_text("\n".join(parts))
    return page


def _summary_html(data: dict, models: Sequence[str], prec: str) -> list[str]:
    """The summary table: per photo, each fast model's loss and what it is worth."""
    parts = []
    parts.append("<h2>Summary</h2><table><tr><th class=l>photo</th>"
                 + "".join(f"<th>fast {_e(m)}: loss</th><th>worth N iterations</th><th>iterative time to match (s)</th>"
                           f"<th>speed-up at match</th>" for m in models)
                 + f"<th>iterative loss at {data['options']['iterations']}</th></tr>")
    for p in data["photos"]:
        cells = [f"<td class=l>{_e(p['photo'])}</td>"]
        for m in models:
            f = p["fast"][m]
            n = f["worth_iterations"]
            cells += [f"<td>{f['total_run_precision']:.4g}</td>",
                      f"<td>{n if n is not None else '&gt; ' + str(p['iterations_run'])}</td>",
                      f"<td>{fmt_float(f['iterative_seconds_to_match'])}</td>",
                      f"<td>{(format(f['speedup_at_match'], ',.0f') + 'x') if f['speedup_at_match'] else '-'}</td>"]
        cells.append(f"<td>{p['curve'][-1]['total']:.4g}</td>")
        parts.append("<tr>" + "".join(cells) + "</tr>")
    parts.append("</table>")
    parts.append(
        "<p class=note>\"Worth N iterations\": the first iteration at which the iterative optimiser, started from "
        "the photo, reaches a loss at most the fast model's, on the same objective, both measured in "
        f"{_e(prec)}. An iteration is one objective evaluation (VGG forward + backward). Time to match includes "
        "setting the content target. The fast model's time is one onnxruntime pass.</p>")
    return parts


def _objective_html(data: dict) -> list[str]:
    """The objective the fast model was trained with, and its card's facts."""
    parts = []
    obj = data["objective"]
    parts.append("<h2>Objective</h2><p>The one the fast model was trained with, rebuilt from its model card "
                 f"(<code>{_e(data['model']['file'])}</code>):</p><table>"
                 + "".join(f"<tr><th class=l>{_e(k)}</th><td class=l>{_e(_value_text(v))}</td></tr>"
                           for k, v in obj.items())
                 + "</table>")
    if data["model"].get("card"):
        parts.append("<p class=note>Model: " + ", ".join(f"{_e(k)} {_e(v)}" for k, v in data["model"]["card"].items())
                     + "</p>")
    return parts


def _images_html(data: dict, models: Sequence[str], grid_rel: str) -> list[str]:
    """The overview grid, then per photo its images, loss plot and metrics."""
    parts = []
    parts.append(f"<h2>Images</h2><p><a href=\"{_e(grid_rel)}\"><img class=plot src=\"{_e(grid_rel)}\" "
                 "alt=\"overview grid\"></a></p>")
    for p in data["photos"]:
        parts.append(f"<h3>{_e(p['photo'])}</h3><div class=grid>")
        order = ["content"] + [f"fast:{m}" for m in models] + [f"iter:{n}" for n in sorted(p["snapshots"])]
        for key in order:
            rel = p["files"][key]
            cap = _caption(p, key, short=False)
            parts.append(f"<figure><a href=\"{_e(rel)}\"><img src=\"{_e(rel)}\" alt=\"{_e(cap)}\" loading=lazy></a>"
                         f"<figcaption>{_e(cap)}</figcaption></figure>")
        parts.append("</div>")
        parts.append(f"<p><img class=plot src=\"{_e(p['files']['plot'])}\" alt=\"loss against iterations\"></p>")
        parts.append(_metrics_html(p, models))
    return parts


def _value_text(v) -> str:
    if isinstance(v, (list, tuple)):
        return ", ".join(str(x) for x in v)
    return "-" if v is None else str(v)


def _machine_text(m: dict) -> str:
    load = m.get("load_average")
    text = f"{m.get('cpu')}, {m.get('cores')} cores, torch {m.get('torch')} with {m.get('torch_threads')} threads"
    if load:
        text += f", load average {load[0]} at the end (timings on a busy machine run slow)"
    return text


def finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


# =========================================================================== the video report

VIDEO_COLOURS = {"fast, per frame": "#f4a582", "fast + temporal": "#d62728",
                 "iterative, per frame": "#92c5de", "iterative + temporal": "#1f4e9c"}


def video_plot(data: dict, path: Path) -> Path:
    """Flicker per frame pair (left) and the objective's loss per frame (right), one line per run."""
    plt = pyplot()
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 3.8), dpi=110)
    for r in data["runs"]:
        c = VIDEO_COLOURS.get(r["name"])
        a.plot(np.arange(1, len(r["flicker_per_pair"]) + 1), [f["abs"] for f in r["flicker_per_pair"]], color=c,
               lw=1.6, label=r["name"])
        b.plot([s["total"] for s in r["loss_per_frame"]], color=c, lw=1.6, label=r["name"])
    a.axhline(data["input_flicker"]["abs"], color="#777", ls=":", lw=1.2, label="input video (for scale)")
    a.set_yscale("log")
    a.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    a.set_xlabel("frame (error against the previous one)")
    a.set_ylabel("mean absolute change (0-255 levels)")
    a.set_title("flicker (lower is steadier)", fontsize=10)
    b.set_yscale("log")
    b.set_xlabel("frame")
    b.set_ylabel("objective loss (fp32)")
    b.set_title("style objective per frame (lower is closer to the objective)", fontsize=10)
    for ax in (a, b):
        ax.grid(True, which="both", alpha=.25)
        ax.legend(fontsize=7.5)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_video_report(data: dict, out: Path) -> Path:
    """index.html + plots/video.png next to the four videos and their stills."""
    out = Path(out)
    plot = video_plot(data, _plots_dir(out) / "video.png").relative_to(out).as_posix()
    o = data["options"]
    first = data["runs"][0]
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{_e(data['title'])}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>{_e(data['title'])}</h1>",
             f"<p class=note>{_e(data['created'])} &middot; {first['frames']} frames at {first['width']}x{first['height']}"
             f" &middot; iterative: {o['iterations']} L-BFGS evaluations a frame ({_e(o['precision'])}) &middot; "
             f"{_e(_machine_text(data['machine']))}</p>",
             "<h2>Summary</h2><table><tr><th class=l>run</th><th>frames/s</th><th>ms a frame</th>"
             "<th>flicker abs</th><th>flicker squared</th><th>steadier than per frame (abs / squared)</th>"
             "<th>flicker / input's (abs)</th><th>loss</th>"
             "<th>content</th><th>style</th></tr>"]
    scale = data["input_flicker"]
    for r in data["runs"]:
        red = r.get("flicker_reduction") or {}
        steadier = (f"{red['abs']:.1f}x / {red['sq']:.1f}x" if r["temporal"] and red.get("abs") and red.get("sq")
                    else "-")
        parts.append(
            f"<tr><td class=l>{_e(r['name'])}</td><td>{r['frames_per_second']:.3g}</td>"
            f"<td>{1000 / r['frames_per_second']:.0f}</td><td>{fmt_float(r['flicker']['abs'])}</td>"
            f"<td>{fmt_float(r['flicker']['sq'])}</td><td>{steadier}</td>"
            f"<td>{(format(r['flicker']['abs'] / scale['abs'], '.1f') + 'x') if scale['abs'] else '-'}</td>"
            f"<td>{r['loss']['total']:.4g}</td><td>{r['loss']['content']:.4g}</td><td>{r['loss']['style']:.4g}</td></tr>")
    parts.append(f"<tr><td class=l>input video</td><td>-</td><td>-</td><td>{fmt_float(scale['abs'])}</td>"
                 f"<td>{fmt_float(scale['sq'])}</td><td>-</td><td>1x</td><td>-</td><td>-</td><td>-</td></tr></table>")
    parts.append(
        "<p class=note>Flicker: the change between consecutive output frames once the motion is undone, frame "
        "t-1 warped to t by the <em>input</em> video's optical flow (DIS) and compared on pixels the "
        "forward-backward check marks reliable, in 0-255 levels: the mean absolute difference (what a viewer "
        "sees) and the mean squared one (it weighs big jumps more, so it flatters smoothing that spreads them). The input video's own error is there for scale: flow errors and sensor noise keep "
        "it above zero, and an output that follows the motion lands near it. Loss: the fast model's training objective on each output frame against its input frame, in fp32, "
        "averaged over the frames. Speed excludes scoring and the flicker measurement.</p>")
    parts.append(f"<h2>Over time</h2><p><img class=plot src=\"{_e(plot)}\" alt=\"flicker and loss per frame\"></p>")
    parts.append("<h2>Videos</h2><div class=grid>")
    for r in data["runs"]:
        parts.append(f"<figure><video src=\"{_e(r['file'])}\" controls loop muted playsinline width=180></video>"
                     f"<figcaption><a href=\"{_e(r['file'])}\">{_e(r['name'])}</a></figcaption></figure>")
    parts.append("</div><h2>Stills</h2>")
    for which in ("first", "last"):
        if which not in data["input_stills"]:
            continue
        parts.append(f"<h3>{which} frame</h3><div class=grid>")
        cells = [("input", data["input_stills"][which])] + [(r["name"], r["stills"][which]) for r in data["runs"]
                                                             if which in r["stills"]]
        for cap, rel in cells:
            parts.append(f"<figure><a href=\"{_e(rel)}\"><img src=\"{_e(rel)}\" alt=\"{_e(cap)}\"></a>"
                         f"<figcaption>{_e(cap)}</figcaption></figure>")
        parts.append("</div>")
    obj = data["objective"]
    parts.append("<h2>Objective</h2><table>"
                 + "".join(f"<tr><th class=l>{_e(k)}</th><td class=l>{_e(_value_text(v))}</td></tr>"
                           for k, v in obj.items())
                 + "</table><h2>Data</h2><p><a href=\"metrics.csv\">metrics.csv</a> (per run and frame) &middot; "
                   "<a href=\"metrics.json\">metrics.json</a> (everything on this page)</p></body></html>")
    page = out / "index.html"
    page.write_text("\n".join(parts))
    return page
