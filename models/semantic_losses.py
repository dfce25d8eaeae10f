"""Losses that know *where*: region Grams (hard and soft masks) and the semantic MRF.

- `masked_grams`: all K masked Gram matrices of one feature map in one batched pass, each
  normalised by the sum of its mask (per-region normalisation: a small region's style is as
  strong as a large one's). A custom autograd function keeps memory at one chunk of masked
  features instead of K full copies.
- `hard_region_grams`: the same for a partition into regions, computed on each region's own
  cells (a gather, no multiplication by zeros): its cost is about one full-image Gram whatever K.
- `RegionStyleLoss`: per-region Gram loss on chosen layers, hard or soft.
- `SemanticMRFLoss` (Li & Wand 2016; Champandard 2016): patch matching on features with the
  semantic map concatenated as extra channels, three matching rules: nearest, bidirectional
  (Liao et al. 2017) and nearest with a contiguity bonus (Luan et al. 2018).
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from impasto.errors import ImpastoError

from .losses import fp32, extract_patches

MATCHING_RULES = ("nearest", "bidirectional", "contiguity")


# ----------------------------------------------------------------------------- masked Grams

class _MaskedGram(torch.autograd.Function):
    """G_k = sum_p m_k(p) f_p f_p^T for K masks, without keeping K masked copies of f.

    forward: (C, N) features, (K, N) masks -> (K, C, C) in fp32; masks are constants (no gradient).
    backward: dL/df = sum_k (S_k f) * m_k with S_k = dG_k + dG_k^T, chunked over k.
    The products run in `dtype`: bf16 puts them on the CPU's bf16 units (2-4x faster than fp32
    here); the matmuls accumulate in fp32, so the Grams differ from fp32 ones by ~0.4% of their
    largest entry, the rounding of f and m (bench/bench_soft_masks.py measures the loss difference).
    """

    @staticmethod
    def forward(ctx, f: torch.Tensor, m: torch.Tensor, chunk: int, dtype: torch.dtype) -> torch.Tensor:
        fl, ml = f.to(dtype), m.to(dtype)
        ctx.save_for_backward(fl, ml)
        ctx.chunk = chunk
        k, (c, n) = m.shape[0], f.shape
        out = f.new_empty(k, c, c)
        ft = fl.t()
        for s in range(0, k, chunk):
            mf = fl[None] * ml[s:s + chunk, None, :]                  # (k', C, N)
            out[s:s + chunk] = (mf.reshape(-1, n) @ ft).reshape(-1, c, c)  # one matmul per chunk
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        f, m = ctx.saved_tensors
        k, (c, n) = m.shape[0], f.shape
        sym = (grad + grad.transpose(1, 2)).to(f.dtype)
        gf = torch.zeros(c, n, dtype=torch.float32, device=f.device)
        for s in range(0, k, ctx.chunk):
            sf = (sym[s:s + ctx.chunk].reshape(-1, c) @ f).reshape(-1, c, n)  # (k', C, N)
            gf += (sf * m[s:s + ctx.chunk, None, :]).sum(0, dtype=torch.float32)
        return gf, None, None, None


def masked_grams(features: torch.Tensor, masks: torch.Tensor, chunk: int = 4, eps: float = 1e-6,
                 dtype: Optional[torch.dtype] = None) -> torch.Tensor:
    """(1, C, H, W) features and (K, H, W) masks in 0..1 -> (K, C, C) fp32 Grams, G_k / sum(m_k).

    A 0/1 mask gives exactly the Gram of its region's pixels divided by the region's pixel count.
    `dtype` of the products: default bf16 inside CPU bf16 autocast (the optimisation loop's
    `--precision bf16`), fp32 otherwise.
    """
    if features.shape[0] != 1:
        raise ImpastoError("masked_grams takes one image at a time")
    if dtype is None:
        dtype = torch.bfloat16 if torch.is_autocast_enabled("cpu") else torch.float32
    c = features.shape[1]
    f = fp32(features).reshape(c, -1)
    m = masks.float().reshape(masks.shape[0], -1)
    with torch.autocast("cpu", enabled=False):
        g = _MaskedGram.apply(f, m, chunk, dtype)
    return g / m.sum(1).clamp_min(eps)[:, None, None]


def masked_grams_plain(features: torch.Tensor, masks: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Reference: plain autograd, one masked copy per mask (what the batched version replaces)."""
    c = features.shape[1]
    f = fp32(features).reshape(c, -1)
    out = []
    for mk in masks.reshape(masks.shape[0], -1).to(f.dtype):
        with torch.autocast("cpu", enabled=False):
            out.append(((f * mk) @ f.t()) / mk.sum().clamp_min(eps))
    return torch.stack(out)


def hard_region_grams(features: torch.Tensor, masks: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """The same Grams as `masked_grams` for the masks of a partition (hard regions brought to a
    layer's resolution: 1 inside, 0 outside, fractions only in the cells along region edges),
    computed on each region's own cells (gathered), not by multiplying the image by zeros: the
    cost is about one full-image Gram whatever the number of regions. (K, C, C)."""
    c = features.shape[1]
    f = fp32(features).reshape(c, -1)
    m = masks.reshape(masks.shape[0], -1).to(f.dtype)
    out = []
    with torch.autocast("cpu", enabled=False):
        for mk in m:
            idx = torch.nonzero(mk > 0).squeeze(1)
            if idx.numel() == 0:
                out.append(f.new_zeros(c, c))
                continue
            part = f.index_select(1, idx)
            w = mk.index_select(0, idx)
            out.append((part * w) @ part.t() / w.sum().clamp_min(eps))
    return torch.stack(out)


# ----------------------------------------------------------------------------- region style loss

class RegionStyleLoss(nn.Module):
    """Gram loss per region: region k of the output is compared with its own style target.

    Targets are given per layer as (K, C, C) Grams already normalised per region (see
    `masked_grams` / `hard_region_grams`). The output side is a partition of labels (hard) or
    K masks (soft); each region's term is weighted by `region_weights` and damped when a
    region covers less than one feature cell at a coarse layer (its Gram would be noise).
    """

    def __init__(self, layers: Sequence[str], weight: float = 1.0,
                 layer_weights: Optional[Sequence[float]] = None, mode: str = "hard", chunk: int = 4):
        super().__init__()
        if mode not in ("hard", "soft"):
            raise ImpastoError(f"region mode must be hard or soft, not {mode!r}")
        self.layers, self.weight, self.mode, self.chunk = tuple(layers), weight, mode, chunk
        self.layer_weights = tuple(layer_weights) if layer_weights is not None else (1.0,) * len(self.layers)
        self.targets: dict[str, torch.Tensor] = {}
        self.guides: dict[str, torch.Tensor] = {}
        self.region_weights: dict[str, torch.Tensor] = {}

    def set_targets(self, targets: dict[str, torch.Tensor], guides: dict[str, torch.Tensor],
                    region_weights: Optional[torch.Tensor] = None) -> None:
        """targets: {layer: (K, C, C)}; guides: {layer: (K, h, w)} masks at each layer's resolution
        (`models.vgg.layer_masks`): a partition's one-hot masks (hard) or any 0..1 masks."""
        self.targets = {n: targets[n].detach().float() for n in self.layers}
        self.guides = {n: guides[n].detach().float() for n in self.layers}
        for n in self.layers:
            k = self.targets[n].shape[0]
            rw = region_weights.float() if region_weights is not None else torch.ones(k)
            size = self.guides[n].reshape(k, -1).sum(1)
            self.region_weights[n] = rw * size.clamp(max=1.0)  # < 1 cell: fade out

    def region_grams(self, feats: dict[str, torch.Tensor], layer: str) -> torch.Tensor:
        if self.mode == "hard":
            return hard_region_grams(feats[layer], self.guides[layer])
        return masked_grams(feats[layer], self.guides[layer], self.chunk)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for n, lw in zip(self.layers, self.layer_weights):
            g = self.region_grams(feats, n)
            per_region = ((g - self.targets[n]) ** 2).mean(dim=(1, 2))
            total = total + lw * (self.region_weights[n] * per_region).sum()
        return self.weight * total


# ----------------------------------------------------------------------------- semantic MRF

def _normalised(p: torch.Tensor) -> torch.Tensor:
    return p / p.flatten(1).norm(dim=1).clamp_min(1e-8).view(-1, *([1] * (p.ndim - 1)))


class SemanticMRFLoss(nn.Module):
    """MRF patch loss (Li & Wand 2016) with optional semantic channels (Champandard 2016).

    For matching, every feature patch is the concatenation of its (normalised) VGG features and
    the one-hot semantic map at that layer times `semantic_weight`; the loss pulls the output's
    feature patches toward their matched style patches (features only). Matching rules:
      nearest        each output patch takes the style patch of highest normalised correlation;
      bidirectional  also each style patch pulls the output patch most like it (Liao et al.
                     2017: output->style and style->output), so every style patch is used;
      contiguity     nearest, then prefer a style patch whose neighbours are the matches of the
                     output patch's neighbours (Luan et al. 2018) by `contiguity` x agreement.
    Without maps (None) it is the plain MRF loss with the chosen matching rule.
    """

    def __init__(self, layers: Sequence[str] = ("relu3_1", "relu4_1"), weight: float = 1.0,
                 patch_size: int = 3, stride: int = 1, matching: str = "nearest",
                 semantic_weight: float = 10.0, contiguity: float = 0.3, backward_weight: float = 1.0):
        super().__init__()
        if matching not in MATCHING_RULES:
            raise ImpastoError(f"MRF matching must be one of {', '.join(MATCHING_RULES)}, not {matching!r}")
        if semantic_weight < 0 or contiguity < 0:
            raise ImpastoError("semantic weight and contiguity bonus must not be negative")
        self.layers, self.weight, self.patch_size, self.stride = tuple(layers), weight, patch_size, stride
        self.matching, self.semantic_weight, self.contiguity = matching, semantic_weight, contiguity
        self.backward_weight = backward_weight
        self.patches: dict[str, torch.Tensor] = {}   # (L, C, k, k) style feature patches
        self.kernels: dict[str, torch.Tensor] = {}   # (L, C+S, k, k) normalised matching kernels
        self.coords: dict[str, torch.Tensor] = {}    # (L, 3) image index, row, col of each patch
        self.lookup: dict[str, torch.Tensor] = {}    # (images, H', W') -> patch index (or -1)
        self.out_sem: dict[str, Optional[torch.Tensor]] = {}

    def _sem_scale(self, c: int, s: int) -> float:
        # a feature patch is unit-norm; each semantic channel of a one-hot patch has norm k per
        # patch cell row, so scale to make semantic_weight=1 about as strong as the features
        return self.semantic_weight / (self.patch_size * max(1.0, s ** 0.5))

    def set_target(self, style_feats: Sequence[dict[str, torch.Tensor]],
                   style_maps: Optional[Sequence[Optional[dict[str, torch.Tensor]]]] = None,
                   output_map: Optional[dict[str, torch.Tensor]] = None) -> None:
        """style_feats: per style image {layer: (1, C, H, W)}; style_maps: per style image
        {layer: (1, S, H, W)} semantic channels (or None); output_map: {layer: (1, S, h, w)}."""
        k = self.patch_size
        semantic = output_map is not None and style_maps is not None and self.semantic_weight > 0
        for n in self.layers:
            feats, kers, coords = [], [], []
            grids = []
            for i, f in enumerate(style_feats):
                x = fp32(f[n].detach())
                p = extract_patches(x, k, self.stride)
                feats.append(p)
                ker = _normalised(p)
                sm = None
                if semantic:
                    sm = style_maps[i][n].float() if style_maps[i] is not None else None
                    if sm is None:
                        raise ImpastoError("semantic MRF needs a map for every style image")
                    sp = extract_patches(sm, k, self.stride) * self._sem_scale(x.shape[1], sm.shape[1])
                    ker = torch.cat([ker, sp], 1)
                hh = (x.shape[2] - k) // self.stride + 1
                ww = (x.shape[3] - k) // self.stride + 1
                keep = torch.ones(hh * ww, dtype=torch.bool)
                if semantic:
                    # style patches whose label the output does not have are never wanted
                    present = output_map[n].float().flatten(2).amax(2)[0] > 0   # (S,)
                    centre = sm[0, :, k // 2::self.stride, k // 2::self.stride][:, :hh, :ww].argmax(0)
                    keep = present[centre.reshape(-1)]
                    if not keep.any():
                        keep[:] = True
                rr, cc = torch.meshgrid(torch.arange(hh), torch.arange(ww), indexing="ij")
                co = torch.stack([torch.full_like(rr, i), rr, cc], -1).reshape(-1, 3)
                feats[-1] = p[keep]
                kers.append(ker[keep])
                coords.append(co[keep])
                grids.append((hh, ww, keep))
            self.patches[n] = torch.cat(feats)
            self.kernels[n] = torch.cat(kers)
            self.coords[n] = torch.cat(coords)
            hmax, wmax = max(g[0] for g in grids), max(g[1] for g in grids)
            lookup = torch.full((len(grids), hmax, wmax), -1, dtype=torch.long)
            offset = 0
            for i, (hh, ww, keep) in enumerate(grids):
                ids = torch.full((hh * ww,), -1, dtype=torch.long)
                ids[keep] = torch.arange(offset, offset + int(keep.sum()))
                offset += int(keep.sum())
                lookup[i, :hh, :ww] = ids.reshape(hh, ww)
            self.lookup[n] = lookup
            if semantic:
                om = output_map[n].float()
                self.out_sem[n] = om * self._sem_scale(0, om.shape[1])
            else:
                self.out_sem[n] = None

    def _scores(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """(1, L, H', W') normalised correlation (+ semantic agreement) of output patches with
        every style patch, computed as one convolution."""
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            xd = x.detach()
            # normalise each output patch's feature part: divide by its local norm
            norm = F.avg_pool2d(xd.pow(2).sum(1, keepdim=True), self.patch_size, self.stride).mul(
                self.patch_size ** 2).sqrt().clamp_min(1e-8)
            ks = self.kernels[layer]
            c = xd.shape[1]
            scores = F.conv2d(xd, ks[:, :c].contiguous(), stride=self.stride) / norm
            if self.out_sem.get(layer) is not None:
                scores = scores + F.conv2d(self.out_sem[layer], ks[:, c:].contiguous(), stride=self.stride)
            return scores

    def _contiguity(self, scores: torch.Tensor, idx: torch.Tensor, layer: str) -> torch.Tensor:
        """Re-pick each match among candidates proposed by the neighbours (Luan et al. 2018):
        candidate from neighbour at offset d is (its match) - d; score = correlation +
        bonus * (fraction of the 8 neighbours whose match equals candidate + their offset)."""
        coords, lookup = self.coords[layer], self.lookup[layer]
        hq, wq = idx.shape
        pos = coords[idx]  # (H', W', 3)
        offsets = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
        neigh = [(dy, dx) for dy, dx in offsets if (dy, dx) != (0, 0)]

        def shifted(t: torch.Tensor, dy: int, dx: int, fill) -> torch.Tensor:
            """t[r + dy, c + dx] (positions outside get `fill`)."""
            out = torch.full_like(t, fill)
            ys, yd = (slice(dy, None), slice(0, hq - dy)) if dy >= 0 else (slice(0, hq + dy), slice(-dy, None))
            xs, xd = (slice(dx, None), slice(0, wq - dx)) if dx >= 0 else (slice(0, wq + dx), slice(-dx, None))
            out[yd, xd] = t[ys, xs]
            return out

        def to_index(p: torch.Tensor) -> torch.Tensor:
            img, r, c = p[..., 0], p[..., 1], p[..., 2]
            ok = (img >= 0) & (r >= 0) & (c >= 0) & (r < lookup.shape[1]) & (c < lookup.shape[2])
            li = lookup[img.clamp(0, lookup.shape[0] - 1), r.clamp(0, lookup.shape[1] - 1), c.clamp(0, lookup.shape[2] - 1)]
            return torch.where(ok, li, torch.full_like(li, -1))

        best_idx, best_score = idx, None
        flat = scores[0].reshape(scores.shape[1], -1)
        for dy, dx in offsets:
            # candidate: the match of neighbour (dy, dx), moved back by (dy, dx)
            cand_pos = shifted(pos, dy, dx, -1).clone()
            cand_pos[..., 1] -= dy
            cand_pos[..., 2] -= dx
            cand = to_index(cand_pos)
            if (dy, dx) == (0, 0):
                cand = idx
            valid = cand >= 0
            sc = flat.gather(0, cand.clamp_min(0).reshape(1, -1)).reshape(hq, wq)
            agree = torch.zeros(hq, wq)
            cpos = coords[cand.clamp_min(0)]
            for ny, nx in neigh:
                npos = shifted(pos, ny, nx, -1)
                same = (npos[..., 0] == cpos[..., 0]) & (npos[..., 1] == cpos[..., 1] + ny) & \
                       (npos[..., 2] == cpos[..., 2] + nx)
                agree += same.float()
            total = torch.where(valid, sc + self.contiguity * agree / len(neigh), torch.full_like(sc, -1e9))
            if best_score is None:
                best_score, best_idx = total, cand
            else:
                better = total > best_score
                best_score = torch.where(better, total, best_score)
                best_idx = torch.where(better, cand, best_idx)
        return best_idx

    def match(self, x: torch.Tensor, layer: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(forward matches (B, H', W'), scores (B, L, H', W'))."""
        scores = self._scores(x, layer)
        idx = scores.argmax(dim=1)
        if self.matching == "contiguity" and self.contiguity > 0:
            idx = torch.stack([self._contiguity(scores[b:b + 1], idx[b], layer) for b in range(idx.shape[0])])
        return idx, scores

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        k = self.patch_size
        for n in self.layers:
            x = fp32(feats[n])
            idx, scores = self.match(x, n)
            out_patches = F.unfold(x, k, stride=self.stride)          # (B, C*k*k, H'W')
            style = self.patches[n].flatten(1)                          # (L, C*k*k)
            target = style[idx.flatten(1)].transpose(1, 2)              # (B, C*k*k, H'W')
            loss = F.mse_loss(out_patches, target)
            if self.matching == "bidirectional":
                # style -> output: every style patch pulls the output patch that resembles it most
                back = scores.flatten(2).argmax(dim=2)                  # (B, L)
                chosen = out_patches.gather(2, back[:, None, :].expand(-1, out_patches.shape[1], -1))
                loss = loss + self.backward_weight * F.mse_loss(chosen, style.t()[None].expand_as(chosen))
            total = total + loss
        return self.weight * total
