"""Style quality on held-out photos, measured apart from any training objective.

    python bench/style_quality.py [models/zoo/candy.onnx ...] [--photos ../shared/data/content]
        [--size 384] [--json out.json]

For each fast network (default: every bundled style) and each photo, with the full VGG16 of
IMPASTO_VGG_WEIGHTS at Gatys' layers (not the relu1_2..relu4_3 the networks were trained on);
a multi-style network is measured style by style (one-hot weights), as "zoo8/candy":

- style: Gram-distance reduction, 1 - D(output) / D(photo), where D is the mean over relu1_1 ..
  relu5_1 of the Gram distance to the painting relative to the painting's Gram norm. 0% means
  no closer to the painting than the photo was; a colour grade scores low because the deep
  layers (strokes, shapes) do not move.
- content: relative relu4_2 feature error ||F(output) - F(photo)|| / ||F(photo)||.
- with --mirrored, the style figure also in the mirror: the photo, its painting and the
  painting it is held to, all mirrored left to right. A VGG whose filters came in mirror pairs
  would give the same figure; the HED VGG16 does not, and a network that leans on the diagonal
  its Grams favour scores lower in the mirror (docs/training.md, the one-diagonal grain).

Photos default to ../shared/data/content, which no bundled network was trained on.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from impasto import images
from impasto.errors import ImpastoError
from impasto.models.losses import GATYS_STYLE, gram
from impasto.models.tensors import to_tensor
from impasto.models.vgg import VGGEncoder
from impasto.models.weights import load_vgg_weights

REPO = Path(__file__).resolve().parents[1]
CONTENT_LAYER = "relu4_2"
STYLE_SIDE = 512   # the painting's longest side when its Grams are taken (default; --style-side)


class StyleQuality:
    """Scores outputs against one painting: (Gram-distance reduction, content error)."""

    def __init__(self, style: np.ndarray, weights: str | None = None):
        """`style`: the painting, as `images.load(path, max_side=STYLE_SIDE)` gives it."""
        w = load_vgg_weights(weights, arch="vgg16")
        self.vgg = VGGEncoder(w, GATYS_STYLE + (CONTENT_LAYER,))
        self.targets = self._grams(style)

    @torch.no_grad()
    def _grams(self, image: np.ndarray) -> dict[str, torch.Tensor]:
        feats = self.vgg(to_tensor(image))
        return {n: gram(feats[n])[0] for n in GATYS_STYLE} | {CONTENT_LAYER: feats[CONTENT_LAYER]}

    def distance(self, grams: dict[str, torch.Tensor]) -> float:
        return float(np.mean([float((grams[n] - self.targets[n]).norm() / self.targets[n].norm())
                              for n in GATYS_STYLE]))

    def mirrored(self, style: np.ndarray) -> "StyleQuality":
        """The same measure held to the mirrored painting (score it on mirrored arrays)."""
        twin = copy.copy(self)          # shares the loaded VGG
        twin.targets = self._grams(_mirror(style))
        return twin

    def score(self, photo: np.ndarray, output: np.ndarray) -> dict[str, float]:
        p, o = self._grams(photo), self._grams(output)
        f = p[CONTENT_LAYER]
        return {"style_reduction": 1.0 - self.distance(o) / self.distance(p),
                "content_error": float((o[CONTENT_LAYER] - f).norm() / f.norm())}


def _mirror(image: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(image[:, ::-1])


def evaluate(onnx_files: list[Path], photos: list[Path], size: int, weights_file: str | None = None,
             style_side: int = STYLE_SIDE, mirrored: bool = False) -> dict:
    from impasto.serve.runtime import OrtEngine
    from impasto.serve.stylize import stylize_array
    from impasto.models.zoo.card import read_card
    results = {}
    loaded = [(p, images.load(str(p), max_side=size)) for p in photos]
    for f in onnx_files:
        engine = OrtEngine(f)
        for name, style_path, weights in styles_of(f, read_card(f), engine.styles):
            style = images.load(str(style_path), max_side=style_side)
            q = StyleQuality(style, weights_file)
            twin = q.mirrored(style) if mirrored else None
            rows = []
            for p, photo in loaded:
                out = stylize_array(engine, photo, style_weights=weights)
                rows.append({"photo": p.name, **q.score(photo, out)})
                if twin:
                    rows[-1]["style_reduction_mirrored"] = twin.score(_mirror(photo), _mirror(out))["style_reduction"]
            results[name] = {
                "painting": style_path.name,
                "style_reduction": statistics.mean(r["style_reduction"] for r in rows),
                "content_error": statistics.mean(r["content_error"] for r in rows),
                "photos": rows}
            extra = ""
            if twin:
                results[name]["style_reduction_mirrored"] = statistics.mean(r["style_reduction_mirrored"] for r in rows)
                extra = f", in the mirror {results[name]['style_reduction_mirrored']:6.1%}"
            print(f"{name:>20}: style reduction {results[name]['style_reduction']:6.1%}{extra}, "
                  f"content error {results[name]['content_error']:.2f}  ({len(rows)} photos at {size} px)", flush=True)
    if results:
        print(f"{'mean':>20}: style reduction {statistics.mean(r['style_reduction'] for r in results.values()):6.1%}")
    return results


def styles_of(onnx: Path, card: dict, styles: list[str]):
    """(row name, painting, style weights) for every style a model paints: one for a
    single-style network, each one-hot style of a multi-style one ("zoo8/candy")."""
    if not styles:
        yield onnx.stem, _style_image(card.get("style_image") or _painted_style(onnx), onnx.stem, onnx), None
        return
    paintings = card.get("style_images") or [f"{s}.jpg" for s in styles]
    for i, (style, painting) in enumerate(zip(styles, paintings)):
        yield f"{onnx.stem}/{style}", _style_image(painting, style, onnx), np.eye(len(styles), dtype=np.float32)[i]


def _painted_style(onnx: Path) -> str | None:
    """The painting a card-less network was trained on, from its ONNX metadata: a network
    exported as net.onnx is still held to candy.jpg, not to the lossy thumbnail beside it
    (on candy the thumbnail's JPEG grain read 3.4 points lower)."""
    from impasto.export.onnx_export import read_metadata
    style = read_metadata(onnx).get("style")
    return f"{style}.jpg" if style else None


def _style_image(painting: str | None, stem: str, onnx: Path) -> Path:
    name = Path(painting or f"{stem}.jpg").name
    for candidate in (REPO.parent / "shared" / "data" / "style" / name, onnx.parent / f"{stem}.style.jpg"):
        if candidate.is_file():
            return candidate
    raise SystemExit(f"{stem}: painting {name} not found")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", type=Path, help="ONNX files (default: every bundled style)")
    ap.add_argument("--photos", type=Path, default=REPO.parent / "shared" / "data" / "content",
                    help="a folder of held-out photos (default: %(default)s)")
    ap.add_argument("--size", type=int, default=384, help="longest side of each photo (default: %(default)s)")
    ap.add_argument("--style-side", type=int, default=STYLE_SIDE,
                    help="longest side of the painting when its Grams are taken: the stroke scale the "
                         "outputs are held to (default: %(default)s)")
    ap.add_argument("--mirrored", action="store_true",
                    help="also measure the style in the mirror (photo, painting of it and painting mirrored)")
    ap.add_argument("--limit", type=int, default=None, help="at most this many photos (default: all)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    a = ap.parse_args()
    torch.set_num_threads(2)
    models = a.models or sorted((REPO / "models" / "zoo").glob("*.onnx"))
    photos = sorted(p for p in a.photos.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[: a.limit]
    try:
        results = evaluate(models, photos, a.size, style_side=a.style_side, mirrored=a.mirrored)
    except ImpastoError as e:     # no VGG weights, an unreadable photo: one line, not a traceback
        print(f"style_quality: {e}", file=sys.stderr)
        return 2
    if a.json:
        a.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
