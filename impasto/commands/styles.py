"""`impasto styles`: the bundled styles with their model cards."""

from __future__ import annotations

from .options import add_parser


def register(sub) -> None:
    p = add_parser(sub, "styles", help="list the bundled styles and their model cards",
                       description="List the styles `impasto stylize` and `impasto serve` can use.")
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
    entries = zoo.list_styles(args.models)
    if args.json:
        print(json.dumps([{"name": e["name"], "file": str(e["path"].name), "card": e["card"]}
                          for e in entries], indent=2))
        return 0
    if not entries:
        print(f"no styles in {zoo.model_dir(args.models)}")
        return 0
    from rich.console import Console
    from rich.table import Table
    table = Table(title=f"styles in {zoo.model_dir(args.models)}", show_lines=False)
    for col in ("style", "arch", "style image", "steps", "wall time", "speed"):
        table.add_column(col)
    for i, e in enumerate(entries):
        c = e["card"]
        wall = c.get("wall_time_s")
        table.add_row(e["name"] + (" (default)" if i == 0 else ""), str(c.get("arch", "?")),
                      str(c.get("style_image", "")), str(c.get("steps", "")),
                      f"{wall / 60:.0f} min" if isinstance(wall, (int, float)) else "",
                      _fmt_backends(c))
    Console().print(table)
    return 0
