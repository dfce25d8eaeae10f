"""`impasto styles`: the bundled styles with their model cards."""

from __future__ import annotations

from .options import add_parser


def register(sub) -> None:
    p = add_parser(sub, "styles", help="list the bundled styles and their model cards",
                       description="List the styles `impasto stylize` and `impasto serve` can use; "
                                   "given a multi-style model, the styles inside it (what --blend names).",
                       epilog="examples:\n  impasto styles\n  impasto styles multi            "
                              "(the styles inside a multi-style model)\n"
                              "  impasto styles runs/multi.onnx --json")
    p.add_argument("model", nargs="?", help="a multi-style model (name or .onnx file): list the styles "
                                            "inside it (default: list the folder's models)")
    p.add_argument("--models", help="a folder of STYLE.onnx files (default: the bundled zoo)")
    p.add_argument("--json", action="store_true", help="print the cards as JSON")
    p.set_defaults(run=run)


def _fmt_backends(card: dict) -> str:
    b = card.get("backends") or {}
    short = {"onnxruntime-fp32": "ort", "onnxruntime-fp16": "ort16", "onnxruntime-int8": "ort8",
             "openvino-fp32": "ov", "openvino-bf16": "ov-bf16"}
    parts = [f"{short.get(k, k)} {v['latency_ms']:.0f}" for k, v in b.items()
             if not k.startswith("_") and isinstance(v, dict) and "latency_ms" in v]
    size = (b.get("_conditions") or {}).get("size", "")
    return (" ".join(parts) + f" ms @{size.split('x')[0]}px") if parts else ""


def run(args) -> int:
    import json

    from impasto.serve import zoo
    if args.model:
        return list_inside(args)
    entries = zoo.list_styles(args.models)
    if args.json:
        print(json.dumps([{"name": e["name"], "file": str(e["path"].name), "card": e["card"],
                           "video": e["video"].name if e["video"] else None} for e in entries], indent=2))
        return 0
    if not entries:
        print(f"no styles in {zoo.model_dir(args.models)}")
        return 0
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"styles in {zoo.model_dir(args.models)}", show_lines=False)
    for col in ("style", "arch", "style image", "steps", "wall time", "speed"):
        table.add_column(col)
    if any(e["styles"] for e in entries):
        table.add_column("styles inside (--blend)")
    for i, e in enumerate(entries):
        c = e["card"]
        wall = c.get("wall_time_s")
        # a video network beside the style: `impasto stylize VIDEO` paints with it
        table.add_row(e["name"] + (" (default)" if i == 0 else "") + (" +video" if e["video"] else ""),
                      str(c.get("arch", "?")),
                      str(c.get("style_image", "")), str(c.get("steps", "")),
                      f"{wall / 60:.0f} min" if isinstance(wall, (int, float)) else "",
                      _fmt_backends(c), *([", ".join(e["styles"])] if table.columns[-1].header.startswith("styles")
                                          else []))
    Console().print(table)
    return 0


def list_inside(args) -> int:
    """The styles inside one model, in the order of its style-weight input (from the ONNX file)."""
    import json

    from impasto.errors import ImpastoError
    from impasto.serve import zoo
    from impasto.serve.runtime import load_engine
    path = zoo.resolve_style(args.model, args.models)
    engine = load_engine(path, "ort")
    if not engine.styles:
        raise ImpastoError(f"{path.name} is a single-style model ({path.stem}); `impasto styles` lists "
                           "the folder's models")
    if args.json:
        print(json.dumps({"model": path.stem, "styles": engine.styles,
                          "spatial": zoo.spatial_path(path).is_file()}, indent=2))
        return 0
    print(f"{path.stem}: {len(engine.styles)} styles (--style {path.stem} --blend NAME:WEIGHT,...)")
    for name in engine.styles:
        print(f"  {name}")
    if zoo.spatial_path(path).is_file():
        print(f"per-pixel blending (--style-mask): {zoo.spatial_path(path).name}")
    return 0
