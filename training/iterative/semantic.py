"""Semantic modes of iterative stylisation: *where* which style goes.

- region  (hard masks): each region of the content (a label of its map, or a mask file) takes the
          Gram statistics of its own style region (same colour in the style map, or a whole style
          image per mask). `keep_outside` makes the regions hard masks: pixels outside every styled
          region stay the content's, exactly.
- soft    (gradient masks): mask values in 0..1 weight the Grams; all masked Grams of a layer come
          from one batched pass (models.semantic_losses.masked_grams).
- patch:  the content is cut into overlapping tiles; each tile takes the style of the style patch
          (of any size) whose map layout is most like its own, computed on the extracted
          sub-images; feathered windows over the overlaps keep seams invisible.
- doodle: no content photo, only its map (Champandard 2016): synthesis from noise with a semantic
          MRF loss (map as extra channels) plus region Grams for colour, coarse to fine.
Any mode can add the MRF loss (Li & Wand) with the matching rule of SemanticConfig.mrf_matching.
All of them run on `optimize_pixels`, the pixel loop of optimize.py, with an `Objective` of their own terms.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from impasto import images
from impasto.errors import ImpastoError
from impasto.models.losses import ContentLoss, TVLoss, fp32
from impasto.models.objective import Objective
from impasto.models.semantic import (LabelMatch, SemanticMap, SemanticWarning, load_map, mask_from_image,
                                     match_labels, resize_labels)
from impasto.models.semantic_losses import (MATCHING_RULES, RegionStyleLoss, SemanticMRFLoss, masked_grams)
from impasto.models.tensors import to_array, to_tensor
from impasto.models.vgg import VGGEncoder, layer_masks
from impasto.models.weights import load_vgg_weights

from .optimize import OptimizeConfig, OptimizeResult, Progress, optimize_pixels

MODES = ("region", "soft", "patch", "doodle")


@dataclass
class SemanticConfig:
    mode: str = "region"                    # region | soft | patch | doodle
    keep_outside: bool = False              # region/soft: pixels outside styled regions stay the content
    labels: Sequence[str] = ()              # only these map colours are styled (others: content only)
    unmatched: str = "global"               # content label absent from the style maps: global | skip | error
    mask_threshold: float = 0.5             # region mode with mask files: hard = mask > threshold
    mask_blur: float = 0.0                  # soft mode from maps: Gaussian blur (px) of the region edges
    mrf_matching: str = "nearest"           # nearest | bidirectional | contiguity
    semantic_weight: float = 10.0           # influence of the map channels in MRF matching
    contiguity: float = 0.3                 # bonus for coherent matches (matching=contiguity)
    mrf_patch: int = 3
    patch_grid: int = 3                     # patch mode: tiles per side
    patch_overlap: float = 0.5              # tile overlap as a fraction of the tile step
    patch_sizes: Sequence[float] = (0.35, 0.5, 0.7)  # style windows, as fractions of the style's side
    chunk: int = 4                          # masks per chunk in batched soft Grams (memory bound)

    def __post_init__(self):
        if self.mode not in MODES:
            raise ImpastoError(f"semantic mode must be one of {', '.join(MODES)}, not {self.mode!r}")
        if self.mrf_matching not in MATCHING_RULES:
            raise ImpastoError(f"MRF matching must be one of {', '.join(MATCHING_RULES)}, not {self.mrf_matching!r}")
        if self.patch_grid < 1 or not 0 <= self.patch_overlap < 4:
            raise ImpastoError("patch grid must be >= 1 and overlap in 0..4")
        if not 0 < self.mask_threshold < 1:
            raise ImpastoError("mask threshold must be between 0 and 1")


@dataclass
class SemanticInputs:
    """Images and guides at their own sizes (RGB float 0..1). `content` None means doodle."""
    content: Optional[np.ndarray]
    styles: list[np.ndarray]
    content_map: Optional[SemanticMap] = None
    style_maps: list[Optional[SemanticMap]] = field(default_factory=list)
    masks: list[np.ndarray] = field(default_factory=list)   # (H, W) 0..1 on the content, one per style

    def __post_init__(self):
        if not self.styles:
            raise ImpastoError("at least one style image is needed")
        if not self.style_maps:
            self.style_maps = [None] * len(self.styles)
        if len(self.style_maps) != len(self.styles):
            raise ImpastoError(f"{len(self.style_maps)} style maps for {len(self.styles)} style images; "
                               "give one map per style (in the same order)")
        if self.masks and len(self.masks) != len(self.styles):
            raise ImpastoError(f"{len(self.masks)} masks for {len(self.styles)} style images: "
                               "mask i takes style i, give one of each")
        if self.masks and self.content_map is not None:
            raise ImpastoError("give either a content map (colour regions) or masks, not both")
        if self.content is None and self.content_map is None:
            raise ImpastoError("without a content image a content map (the doodle) is needed")
        if any(m is not None for m in self.style_maps) and self.content_map is None:
            raise ImpastoError("style maps need a content map to match their colours against")
        if self.content_map is not None and any(m is None for m in self.style_maps) and self.content is None:
            raise ImpastoError("a doodle needs a map for every style image")


def load_inputs(content: Optional[str], styles: Sequence[str], content_map: Optional[str] = None,
                style_maps: Sequence[str] = (), masks: Sequence[str] = ()) -> SemanticInputs:
    """Read the files; each map is snapped and brought to its image's size (nearest neighbour)."""
    c = images.load(content) if content else None
    s = [images.load(p) for p in styles]
    if style_maps and len(style_maps) != len(styles):
        raise ImpastoError(f"{len(style_maps)} --style-map for {len(styles)} --style; give one per style")
    cm = None
    if content_map:
        size = (c.shape[1], c.shape[0]) if c is not None else None
        cm = load_map(content_map, size)
    sm = [load_map(p, (img.shape[1], img.shape[0])) for p, img in zip(style_maps, s)] if style_maps else []
    if masks and c is None:
        raise ImpastoError("masks apply to a content image (--content)")
    mk = [mask_from_image(p, (c.shape[1], c.shape[0])) for p in masks]
    return SemanticInputs(c, s, cm, sm, mk)


# ----------------------------------------------------------------------------- regions

@dataclass
class Regions:
    """The output's regions at one size, and what each takes from the styles."""
    targets: list[list[tuple[int, Optional[int]]]]    # per region: (style index, style label or None)
    names: list[str]
    labels: np.ndarray                                 # (H, W) region index, -1 = not styled
    masks: np.ndarray                                  # (R, H, W) float weights (soft; one-hot for hard)

    @property
    def count(self) -> int:
        return len(self.targets)

    def styled(self, soft: bool) -> np.ndarray:
        """(H, W) 1 where some style applies (hard) or the soft coverage."""
        if soft:
            return np.clip(self.masks.sum(0), 0, 1)
        return (self.labels >= 0).astype(np.float32)


def _blur(masks: np.ndarray, sigma: float) -> np.ndarray:
    if sigma <= 0:
        return masks
    r = max(1, int(3 * sigma))
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma ** 2))
    k = k / k.sum()
    t = torch.from_numpy(masks)[:, None]
    t = F.conv2d(F.pad(t, (r, r, 0, 0), mode="replicate"), k.view(1, 1, 1, -1))
    t = F.conv2d(F.pad(t, (0, 0, r, r), mode="replicate"), k.view(1, 1, -1, 1))
    return t[:, 0].numpy()


def plan_regions(inputs: SemanticInputs, scfg: SemanticConfig, size: tuple[int, int],
                 match: Optional[LabelMatch]) -> Regions:
    """Regions of the output at `size` (width, height)."""
    w, h = size
    if inputs.content_map is not None:
        lab = resize_labels(inputs.content_map.labels, size)
        region_of = np.full(inputs.content_map.num_labels, -1, dtype=np.int64)
        region_of[match.content] = np.arange(len(match))
        labels = region_of[lab]
        masks = np.stack([(labels == r) for r in range(len(match))]).astype(np.float32)
        if scfg.mode == "soft" and scfg.mask_blur > 0:
            masks = _blur(masks, scfg.mask_blur * max(w, h) / max(inputs.content_map.size))
        names = [f"#{''.join(f'{v:02x}' for v in c)}" for c in match.colours]
        return Regions(match.style, names, labels, masks)
    if inputs.masks:
        masks = np.stack([images.resize_to(m[..., None], size)[..., 0] for m in inputs.masks]).astype(np.float32)
        on = masks > scfg.mask_threshold
        labels = np.where(on.any(0), masks.argmax(0), -1)
        if scfg.mode != "soft":
            masks = np.stack([(labels == r) for r in range(len(masks))]).astype(np.float32)
        if not on.any(axis=(1, 2)).all():
            empty = [i + 1 for i in range(len(masks)) if not on[i].any()]
            warnings.warn(f"mask(s) {empty} cover nothing (all below {scfg.mask_threshold})", SemanticWarning)
        return Regions([[(i, None)] for i in range(len(masks))], [f"mask{i + 1}" for i in range(len(masks))],
                       labels, masks)
    # no guide at all: one region, all styles (classic transfer; with MRF matching rules)
    return Regions([[(i, None) for i in range(len(inputs.styles))]], ["all"],
                   np.zeros((h, w), dtype=np.int64), np.ones((1, h, w), dtype=np.float32))


def _style_region_masks(smap: Optional[SemanticMap], size: tuple[int, int]) -> torch.Tensor:
    """(1, K, H, W) one-hot masks of a style map at `size` (or one all-ones mask)."""
    w, h = size
    if smap is None:
        return torch.ones(1, 1, h, w)
    lab = torch.from_numpy(resize_labels(smap.labels, size))
    return F.one_hot(lab, smap.num_labels).permute(2, 0, 1)[None].float()


# ----------------------------------------------------------------------------- the runner

@dataclass
class _Scale:
    side: int
    size: tuple[int, int]         # (w, h) of the output


def _sizes(config: OptimizeConfig, shape: tuple[int, int]) -> list[_Scale]:
    h, w = shape
    out = []
    for side in config.sizes():
        s = side / max(h, w)
        out.append(_Scale(side, (max(16, round(w * s)), max(16, round(h * s)))))
    return out


def _snapshot(config: OptimizeConfig, i: int, n: int):
    if not (config.snapshot_every and config.snapshot_dir):
        return None
    folder = Path(config.snapshot_dir)
    folder.mkdir(parents=True, exist_ok=True)

    def save(step, x):
        if step % config.snapshot_every == 0:
            tag = f"s{i}_" if n > 1 else ""
            images.save(to_array(x), folder / f"{tag}iter_{step:05d}.png")
    return save


def region_colours(inputs: SemanticInputs, regions: Regions) -> np.ndarray:
    """(H, W, 3): each output region painted with the mean colour of the style regions it takes
    from (the palette of the painting laid out on the doodle)."""
    means = []
    for targets in regions.targets:
        cols = []
        for s, j in targets:
            img, smap = inputs.styles[s], inputs.style_maps[s]
            inside = img.reshape(-1, 3) if (j is None or smap is None) else img[smap.labels == j]
            cols.append(inside.mean(0) if len(inside) else img.reshape(-1, 3).mean(0))
        means.append(np.mean(cols, 0))
    means = np.array(means + [np.mean([s.reshape(-1, 3).mean(0) for s in inputs.styles], 0)], dtype=np.float32)
    return means[np.where(regions.labels >= 0, regions.labels, len(regions.targets))]


def _initial(config: OptimizeConfig, inputs: SemanticInputs, size: tuple[int, int],
             match: Optional[LabelMatch], scfg: SemanticConfig) -> np.ndarray:
    w, h = size
    rng = np.random.default_rng(config.seed)
    if inputs.content is None and config.init in ("noise", "content"):
        # doodle: noise around each region's style colour, so the coarse phase spends its
        # iterations on texture and layout, not on finding the palette
        base = region_colours(inputs, plan_regions(inputs, scfg, size, match))
        return np.clip(base + rng.uniform(-0.15, 0.15, (h, w, 3)), 0, 1).astype(np.float32)
    if config.init == "content":
        return images.resize_to(inputs.content, size)
    if config.init == "style":
        return images.resize_to(inputs.styles[0], size)
    if config.init == "noise":
        return rng.uniform(0, 1, (h, w, 3)).astype(np.float32)
    return images.resize_to(images.load(config.init), size)


def stylize_semantic(inputs: SemanticInputs, config: OptimizeConfig, scfg: SemanticConfig,
                     progress: bool = False, weights=None) -> OptimizeResult:
    """Run the chosen semantic mode over the scales of `config` (coarse to fine)."""
    if config.preserve_color:
        raise ImpastoError("--preserve-color is not available with the semantic options")
    if config.style_pyramid > 1:   # the semantic terms are masked per region, at one scale
        raise ImpastoError("--style-pyramid is not available with the semantic options")
    torch.manual_seed(config.seed)
    weights = weights or load_vgg_weights(config.vgg_weights, config.vgg_arch)
    mode = "doodle" if inputs.content is None else scfg.mode
    if mode == "doodle" and inputs.content is not None:
        raise ImpastoError("doodle mode paints a map, not a photo: leave out --content")
    if mode == "patch" and (inputs.content_map is None or any(m is None for m in inputs.style_maps)):
        raise ImpastoError("patch mode picks style patches by their maps: give --content-map and a "
                           "--style-map for every style")
    match = None
    if inputs.content_map is not None:
        match = match_labels(inputs.content_map, inputs.style_maps, scfg.unmatched, scfg.labels or None)
    shape = (inputs.content if inputs.content is not None else np.zeros(inputs.content_map.labels.shape)).shape[:2]
    scales = _sizes(config, shape)
    result, history, seconds, iters, backoffs = None, [], 0.0, 0, 0
    for i, sc in enumerate(scales):
        if mode == "patch":
            objective, finish = _patch_objective(inputs, config, scfg, sc.size, match, weights)
        else:
            objective, finish = _region_objective(inputs, config, scfg, sc.size, match, weights, mode)
        init = _initial(config, inputs, sc.size, match, scfg) if result is None else images.resize_to(result.image, sc.size)
        bar = Progress(config.iterations, f"{mode} {sc.side}px", progress)
        saver = _snapshot(config, i, len(scales))

        def on_step(step, x, row, saver=saver, finish=finish):
            bar.update({k: v for k, v in row.items() if k != "seconds"})
            if saver:
                saver(step, finish(x.detach()))
        try:
            result = optimize_pixels(objective, to_tensor(init), config.iterations, config.optimizer,
                                     config.learning_rate, config.precision, on_step)
        finally:
            bar.close()
        result.image = to_array(finish(to_tensor(result.image)))
        history += [dict(row, scale=sc.side) for row in result.history]
        seconds += result.seconds
        backoffs += result.backoffs
        iters += result.iterations
        if result.interrupted:
            break
    return OptimizeResult(result.image, history, iters, result.interrupted, seconds, result.final,
                          backoffs)


def _build_mrf(inputs: SemanticInputs, c: OptimizeConfig, scfg: SemanticConfig, regions: Regions,
               style_feats, style_sizes, mrf_layers, arch: str, doodle: bool) -> SemanticMRFLoss:
    """The MRF loss with the matching rule of `scfg`; semantic channels when every image has a map."""
    weight = c.mrf_weight if c.mrf_weight > 0 else 1.0
    semantic = inputs.content_map is not None and all(m is not None for m in inputs.style_maps)
    mrf = SemanticMRFLoss(mrf_layers, weight, scfg.mrf_patch, 1, scfg.mrf_matching,
                          scfg.semantic_weight if semantic else 0.0, scfg.contiguity)
    if not semantic:
        mrf.set_target(style_feats)
        return mrf
    r = regions.count
    out_ch = torch.from_numpy(np.stack([(regions.labels == k) for k in range(r)]).astype(np.float32))[None]
    style_ch = []
    for s, (smap, ssize) in enumerate(zip(inputs.style_maps, style_sizes)):
        onehot = _style_region_masks(smap, ssize)[0]          # (K_s, h, w)
        ch = torch.zeros(r + 1, *onehot.shape[1:])
        for k, t in enumerate(regions.targets):
            for s2, j in t:
                if s2 == s:
                    ch[k] = torch.maximum(ch[k], onehot[j] if j is not None else torch.ones_like(onehot[0]))
        ch[r] = (ch[:r].sum(0) == 0).float()                 # style labels nobody wants
        style_ch.append(layer_masks(ch[None], mrf_layers, arch))
    out_ch = torch.cat([out_ch, torch.zeros_like(out_ch[:, :1])], 1)
    mrf.set_target(style_feats, style_ch, layer_masks(out_ch, mrf_layers, arch))
    return mrf


def _region_objective(inputs: SemanticInputs, config: OptimizeConfig, scfg: SemanticConfig,
                      size: tuple[int, int], match: Optional[LabelMatch], weights, mode: str):
    """Objective for region / soft / doodle at one scale; returns (objective, finish) where
    finish(x) is the image actually shown (hard masks composite the untouched content back)."""
    c = config
    doodle = mode == "doodle"
    soft = mode == "soft"
    regions = plan_regions(inputs, scfg, size, match)
    style_layers = tuple(c.style_layers) if not doodle else tuple(n for n in c.style_layers if n in ("relu1_1", "relu2_1", "relu3_1"))
    style_layers = style_layers if c.style_weight > 0 else ()
    use_mrf = c.mrf_weight > 0 or doodle
    mrf_layers = tuple(c.mrf_layers) if use_mrf else ()
    content_layers = tuple(c.content_layers) if (c.content_weight > 0 and not doodle) else ()
    vgg = VGGEncoder(weights, set(style_layers) | set(mrf_layers) | set(content_layers), c.pooling)
    arch = weights.arch

    w, h = size
    style_side = max(16, round(max(w, h) * c.style_scale))
    styles = [images.resize(s, style_side) for s in inputs.styles]
    style_sizes = [(s.shape[1], s.shape[0]) for s in styles]
    with torch.no_grad():
        style_feats = [vgg(to_tensor(s)) for s in styles]
    # style-side masks: label one-hots (+ an all-ones mask at index K for "whole image" targets)
    style_masks_px = []
    for smap, ssize in zip(inputs.style_maps, style_sizes):
        m = _style_region_masks(smap, ssize)
        if smap is not None:
            m = torch.cat([m, torch.ones_like(m[:, :1])], 1)
        style_masks_px.append(m)
    targets_list = [[(s, j if j is not None else (style_masks_px[s].shape[1] - 1)) for s, j in t]
                    for t in regions.targets]

    region_loss = None
    if style_layers:
        style_layer_masks = [layer_masks(m, style_layers, arch) for m in style_masks_px]
        tg = {}
        with torch.no_grad():
            for n in style_layers:
                per_style = [masked_grams(f[n], m[n][0], scfg.chunk) for f, m in zip(style_feats, style_layer_masks)]
                tg[n] = torch.stack([sum(per_style[s][j] for s, j in t) / len(t) for t in targets_list])
        lw = c.style_layer_weights
        region_loss = RegionStyleLoss(style_layers, c.style_weight * c.intensity ** 0, lw, "soft" if soft else "hard", scfg.chunk)
        if c.intensity != 1.0:
            tg = {n: t * c.intensity for n, t in tg.items()}
        guides = layer_masks(torch.from_numpy(regions.masks)[None], style_layers, arch)
        region_loss.set_targets(tg, {n: g[0] for n, g in guides.items()})

    mrf = _build_mrf(inputs, c, scfg, regions, style_feats, style_sizes, mrf_layers, arch, doodle) if use_mrf else None

    content_loss = None
    base = None
    if inputs.content is not None:
        base = to_tensor(images.resize_to(inputs.content, size))
        if content_layers:
            content_loss = ContentLoss(content_layers, c.content_weight, c.content_normalize)
            with torch.no_grad():
                content_loss.set_target(vgg(base))
    tv = TVLoss(c.tv_weight) if c.tv_weight > 0 else None
    keep = None
    if scfg.keep_outside and base is not None:
        keep = torch.from_numpy(regions.styled(soft))[None, None]

    def finish(x: torch.Tensor) -> torch.Tensor:
        if keep is None:
            return x
        return base + keep * (x - base)

    terms = Objective(vgg, {"content": content_loss, "style": region_loss, "mrf": mrf, "tv": tv})

    def objective(x: torch.Tensor):
        return terms(finish(x))

    return objective, finish


# ----------------------------------------------------------------------------- patch mode

def tiles(length: int, n: int, overlap: float) -> tuple[int, list[int]]:
    """Tile size and starts covering [0, length) with n equal tiles, each `overlap` x the step
    longer than the step, so neighbours share a band to feather over."""
    if n == 1:
        return length, [0]
    size = min(length, int(math.ceil(length / n * (1 + overlap))))
    starts = [round(i * (length - size) / (n - 1)) for i in range(n)]
    return size, starts


def _window(h: int, w: int, feather: float) -> torch.Tensor:
    """(h, w) weights: 1 in the middle, raised-cosine ramps over `feather` of each side."""
    def ramp(n):
        k = max(1, int(round(n * feather)))
        t = torch.ones(n)
        r = 0.5 - 0.5 * torch.cos(torch.linspace(0, math.pi, k + 2)[1:-1])
        t[:k] = r
        t[n - k:] = torch.minimum(t[n - k:], r.flip(0))
        return t
    return ramp(h)[:, None] * ramp(w)[None, :]


def _layout(labels: np.ndarray, grid: int = 8) -> np.ndarray:
    return resize_labels(labels, (grid, grid))


def pick_style_patches(content_regions: np.ndarray, style_regions: list[np.ndarray], boxes: list[tuple[int, int, int, int]],
                       sizes: Sequence[float], aspect: float, stride_frac: float = 0.1) -> list[tuple[int, tuple[int, int, int, int]]]:
    """For each content tile box (y0, x0, h, w) pick (style index, style box) whose region layout
    (regions resized to an 8x8 grid) agrees most with the tile's; ties go to the larger window.
    Region ids are the content's matched regions (-1 = none) on both sides."""
    cands = []
    for s, reg in enumerate(style_regions):
        sh, sw = reg.shape
        for frac in sizes:
            ch = int(round(min(sh, sw / aspect) * frac * (1 / min(1.0, frac) if False else 1)))
            ch = max(8, min(sh, int(round(sh * frac))))
            cw = max(8, min(sw, int(round(ch * aspect))))
            if cw > sw:
                cw, ch = sw, max(8, int(round(sw / aspect)))
            step_y, step_x = max(1, int(sh * stride_frac)), max(1, int(sw * stride_frac))
            for y in range(0, sh - ch + 1, step_y):
                for x in range(0, sw - cw + 1, step_x):
                    cands.append((s, (y, x, ch, cw), _layout(reg[y:y + ch, x:x + cw])))
    if not cands:
        raise ImpastoError("style images too small for patch mode")
    lay = np.stack([c[2] for c in cands])                                  # (N, 8, 8)
    area = np.array([c[1][2] * c[1][3] for c in cands], dtype=np.float64)
    picks = []
    for (y0, x0, th, tw) in boxes:
        tl = _layout(content_regions[y0:y0 + th, x0:x0 + tw])
        agree = (lay == tl[None]).mean(axis=(1, 2))
        score = agree + 1e-3 * area / area.max()
        best = int(np.argmax(score))
        picks.append((cands[best][0], cands[best][1]))
    return picks


def _patch_objective(inputs: SemanticInputs, config: OptimizeConfig, scfg: SemanticConfig,
                     size: tuple[int, int], match: LabelMatch, weights):
    c = config
    w, h = size
    content = images.resize_to(inputs.content, size)
    regions = plan_regions(inputs, scfg, size, match)
    th, ys = tiles(h, scfg.patch_grid, scfg.patch_overlap)
    tw, xs = tiles(w, scfg.patch_grid, scfg.patch_overlap)
    boxes = [(y, x, th, tw) for y in ys for x in xs]
    style_side = max(16, round(max(w, h) * c.style_scale))
    styles = [images.resize(s, style_side) for s in inputs.styles]
    # style maps in the content's region ids
    style_regions = []
    for s, (smap, img) in enumerate(zip(inputs.style_maps, styles)):
        lab = resize_labels(smap.labels, (img.shape[1], img.shape[0]))
        to_region = np.full(smap.num_labels, -1, dtype=np.int64)
        for r, t in enumerate(regions.targets):
            for s2, j in t:
                if s2 == s and j is not None:
                    to_region[j] = r
        style_regions.append(to_region[lab])
    picks = pick_style_patches(regions.labels, style_regions, boxes, scfg.patch_sizes, tw / th)
    style_layers = tuple(c.style_layers)
    content_layers = tuple(c.content_layers) if c.content_weight > 0 else ()
    mrf_layers = tuple(c.mrf_layers) if c.mrf_weight > 0 else ()
    vgg = VGGEncoder(weights, set(style_layers) | set(content_layers) | set(mrf_layers), c.pooling)
    mrf = None
    if mrf_layers:
        with torch.no_grad():
            whole = [vgg(to_tensor(s)) for s in styles]
        mrf = _build_mrf(inputs, c, scfg, regions, whole, [(s.shape[1], s.shape[0]) for s in styles],
                         mrf_layers, weights.arch, False)
    feather = scfg.patch_overlap / (1 + scfg.patch_overlap) if scfg.patch_grid > 1 else 0.0
    win = _window(th, tw, max(feather, 1e-3))[None, None]
    win_layers = layer_masks(win, style_layers, weights.arch)
    # style patch targets: the style sub-images, resized to the tile size, in one batch
    crops = []
    for s, (y, x, ch, cw) in picks:
        crop = styles[s][y:y + ch, x:x + cw]
        crop = images.resize_to(crop, (max(16, round(tw * c.style_scale)), max(16, round(th * c.style_scale))))
        crops.append(to_tensor(crop))
    with torch.no_grad():
        sf = vgg(torch.cat(crops))
        targets = {n: _window_grams(sf[n], None) * c.intensity for n in style_layers}
    lw = c.style_layer_weights or (1.0,) * len(style_layers)
    base = to_tensor(content)
    content_loss = None
    if content_layers:
        content_loss = ContentLoss(content_layers, c.content_weight, c.content_normalize)
        with torch.no_grad():
            content_loss.set_target(vgg(base))
    tv = TVLoss(c.tv_weight) if c.tv_weight > 0 else None
    tiled = TiledStyleLoss(vgg, boxes, th, tw, style_layers, lw, targets, win_layers, c.style_weight)
    objective = Objective(vgg, {"style": tiled, "content": content_loss, "mrf": mrf, "tv": tv})
    return objective, (lambda x: x)


class TiledStyleLoss(torch.nn.Module):
    """Patch mode's style term: each content tile against the Grams of its own style patch, under a
    feathered window; a VGG pass of its own, over the batch of tiles."""

    layers = ()
    on_pixels = True

    def __init__(self, vgg: VGGEncoder, boxes, th: int, tw: int, style_layers: Sequence[str],
                 layer_weights: Sequence[float], targets: dict, windows: dict, weight: float):
        super().__init__()
        object.__setattr__(self, "vgg", vgg)   # the objective's encoder, not a second copy of it
        self.boxes, self.th, self.tw = boxes, th, tw
        self.style_layers, self.layer_weights = tuple(style_layers), tuple(layer_weights)
        self.targets, self.windows, self.weight = targets, windows, weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        th, tw = self.th, self.tw
        tiles = torch.cat([x[:, :, y:y + th, xx:xx + tw] for (y, xx, _, _) in self.boxes])
        feats_tiles = self.vgg(tiles)
        style = 0.0
        for n, lwn in zip(self.style_layers, self.layer_weights):
            g = _window_grams(feats_tiles[n], self.windows[n][0, 0])
            style = style + lwn * F.mse_loss(g, self.targets[n], reduction="none").mean(dim=(1, 2)).sum()
        return self.weight * style / len(self.boxes)


def _window_grams(feats: torch.Tensor, window: Optional[torch.Tensor]) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) Grams weighted by a (H, W) window, normalised by its sum."""
    b, ch, hh, ww = feats.shape
    f = fp32(feats).reshape(b, ch, hh * ww)
    with torch.autocast("cpu", enabled=False):
        if window is None:
            return torch.bmm(f, f.transpose(1, 2)) / (hh * ww)
        wv = window.reshape(1, 1, -1).to(f.dtype)
        return torch.bmm(f * wv, f.transpose(1, 2)) / wv.sum()
