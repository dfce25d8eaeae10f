"""Perceptual loss terms as small composable modules, shared by the iterative and the fast path.

Each term names the VGG layers it reads (`layers`) and returns its weighted value from a dict of
features; a term on the pixels themselves (TV) has no layers and says so (`on_pixels`). The
`Objective` (objective.py) runs the VGG once for the union of layers and sums the named terms.
Style-side targets (Gram matrices, histograms, patches) are computed once, never per step.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from impasto.errors import ImpastoError


GATYS_CONTENT = ("relu4_2",)
GATYS_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
JOHNSON_CONTENT = ("relu2_2",)
JOHNSON_STYLE = ("relu1_2", "relu2_2", "relu3_3", "relu4_3")


def fp32(x: torch.Tensor) -> torch.Tensor:
    return x.float() if x.dtype != torch.float32 else x


def gram(features: torch.Tensor, norm: str = "chw", bf16: bool = False) -> torch.Tensor:
    """(B, C, H, W) -> (B, C, C) in fp32 (bf16 sums over many pixels lose the style).

    norm "chw": divide by C*H*W (Johnson). norm "pixels": divide by H*W, so images of very
    different sizes give comparable Grams (with `intensity` in StyleLoss setting the strength).
    bf16: when bf16 autocast is on, multiply in bf16 (the CPU's bf16 units; the matmul still
    sums in fp32, and the result is rounded to bf16, ~0.4% of an entry). For fast-network
    training, where a step's noise dwarfs that; the iterative optimiser keeps fp32 Grams.
    """
    b, c, h, w = features.shape
    dev = features.device.type
    low = bf16 and torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) == torch.bfloat16
    f = features.to(torch.bfloat16) if low else fp32(features)
    with torch.autocast(dev, enabled=False):
        if f.is_contiguous(memory_format=torch.channels_last) and not f.is_contiguous():
            # (B, HW, C) is a free view of channels-last memory: no copy, and the gradient comes
            # back in the same layout (adding it to the next layer's costs no transpose).
            f = f.permute(0, 2, 3, 1).reshape(b, h * w, c)
            g = torch.bmm(f.transpose(1, 2), f).float()
        else:
            f = f.reshape(b, c, h * w)
            g = torch.bmm(f, f.transpose(1, 2)).float()
    if norm == "chw":
        return g / (c * h * w)
    if norm == "pixels":
        return g / (h * w)
    raise ImpastoError(f"gram normalisation must be 'chw' or 'pixels', not {norm!r}")


def blend_weights(n: int, weights: Optional[Sequence[float]]) -> list[float]:
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise ImpastoError(f"{len(weights)} style weights given for {n} style images")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ImpastoError("style weights must be non-negative and not all zero")
    s = float(sum(weights))
    return [float(w) / s for w in weights]


class ContentLoss(nn.Module):
    """Feature reconstruction: MSE between activations (or Gatys' 1/(2*N*D) sum of squares)."""

    def __init__(self, layers: Sequence[str] = GATYS_CONTENT, weight: float = 1.0, normalize: str = "mean"):
        super().__init__()
        if normalize not in ("mean", "gatys"):
            raise ImpastoError(f"content normalisation must be 'mean' or 'gatys', not {normalize!r}")
        self.layers, self.weight, self.normalize = tuple(layers), weight, normalize
        self.targets: dict[str, torch.Tensor] = {}

    def set_target(self, feats: dict[str, torch.Tensor]) -> None:
        self.targets = {n: feats[n].detach() for n in self.layers}

    def forward(self, feats: dict[str, torch.Tensor], targets: Optional[dict] = None) -> torch.Tensor:
        targets = targets if targets is not None else self.targets
        total = 0.0
        for n in self.layers:
            x, t = fp32(feats[n]), fp32(targets[n])
            if x.shape[-2:] != t.shape[-2:]:
                raise ImpastoError(f"content target at {n} is {tuple(t.shape[-2:])}, the image gives "
                                   f"{tuple(x.shape[-2:])}: set the content target at the output size")
            if self.normalize == "mean":
                total = total + F.mse_loss(x, t)
            else:
                b, c, h, w = x.shape
                total = total + ((x - t) ** 2).sum() / (2 * b * c * h * w)
        return self.weight * total


class StyleLoss(nn.Module):
    """Gram-matrix style loss, per-layer weights, several style images blended by weight.

    `intensity` scales the target Grams: above 1 asks for more texture energy than the
    painting has, below 1 for a gentler transfer.

    `relative`: each layer's error is divided by the mean square of its target Gram, so every
    layer counts by how far it is from the painting, not by the size of its activations. With
    raw errors (the default, as published) the shallowest layer carries nearly all of the loss
    under VGG weights whose activations shrink with depth (the Caffe-scaled HED VGG16: relu1_2
    is 99.8% of it at a photo), and a network trained on it learns the painting's colours
    but not its strokes.

    `scale`: the Grams are taken of the image (and the painting) average-pooled by this factor,
    a level of a Gram pyramid (Snelgrove 2017). The same layers then see shapes `scale` times
    their size, so motifs wider than relu5_1's view (candy's circles) are matched too;
    `Objective` runs the VGG once per scale.
    """

    def __init__(self, layers: Sequence[str] = GATYS_STYLE, weight: float = 1.0,
                 layer_weights: Optional[Sequence[float]] = None, gram_norm: str = "chw",
                 intensity: float = 1.0, reduction: str = "mean", relative: bool = False, scale: int = 1):
        super().__init__()
        if scale < 1:
            raise ImpastoError(f"a style term's scale is a pooling factor, 1 or more; got {scale}")
        self.scale = scale
        if reduction not in ("mean", "paper"):
            raise ImpastoError(f"style reduction must be 'mean' or 'paper', not {reduction!r}")
        self.reduction = reduction   # paper: sum over the Gram entries / (2 N^2), half the mean
        self.layers, self.relative = tuple(layers), relative
        if layer_weights is not None and len(layer_weights) != len(self.layers):
            raise ImpastoError(f"{len(layer_weights)} style layer weights given for {len(self.layers)} layers")
        self.layer_weights = tuple(layer_weights) if layer_weights is not None else (1.0,) * len(self.layers)
        self.weight, self.gram_norm, self.intensity = weight, gram_norm, intensity
        self.bf16_gram = False    # see gram(); fast training turns it on
        gram(torch.zeros(1, 1, 1, 1), gram_norm)  # validate early
        self.targets: dict[str, torch.Tensor] = {}
        self.scales: dict[str, float] = {}

    def set_target(self, style_feats: Sequence[dict[str, torch.Tensor]], blend: Optional[Sequence[float]] = None):
        blend = blend_weights(len(style_feats), blend)
        self.targets = {n: self.intensity * sum(w * gram(f[n], self.gram_norm) for w, f in zip(blend, style_feats)).detach()
                        for n in self.layers}
        self.scales = {n: 1.0 / float(t.pow(2).mean().clamp_min(1e-12)) if self.relative else 1.0
                       for n, t in self.targets.items()}

    def layer_losses(self, feats: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {n: self.scales.get(n, 1.0) * F.mse_loss(gram(feats[n], self.gram_norm, self.bf16_gram),
                                               self.targets[n].expand(feats[n].shape[0], -1, -1))
                for n in self.layers}

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        losses = self.layer_losses(feats)
        half = 0.5 if self.reduction == "paper" else 1.0
        return half * self.weight * sum(lw * losses[n] for n, lw in zip(self.layers, self.layer_weights))


def gram_pyramid(make_level, levels: int) -> dict[str, StyleLoss]:
    """A Gram pyramid's terms by name: "style" on the images as they are, then "style_x2",
    "style_x4", ... on both pooled by 2, 4, ...; `make_level(scale)` builds one level."""
    return {"style" if k == 0 else f"style_x{2 ** k}": make_level(2 ** k) for k in range(levels)}


class TVLoss(nn.Module):
    """Total variation: mean squared difference of neighbouring pixels (reduction "sum": the
    sum over pixels, as the papers write it; its weight then depends on the image size)."""

    layers = ()
    on_pixels = True

    def __init__(self, weight: float = 1.0, reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "sum"):
            raise ImpastoError(f"TV reduction must be 'mean' or 'sum', not {reduction!r}")
        self.weight, self.reduction = weight, reduction

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        image = fp32(image)
        dx = image[..., :, 1:] - image[..., :, :-1]
        dy = image[..., 1:, :] - image[..., :-1, :]
        if self.reduction == "sum":
            return self.weight * (dx.pow(2).sum() + dy.pow(2).sum())
        return self.weight * (dx.pow(2).mean() + dy.pow(2).mean())


def _resample_sorted(sorted_vals: torch.Tensor, n: int) -> torch.Tensor:
    """(C, M) sorted values -> (C, n): the same quantile function sampled at n points."""
    if sorted_vals.shape[1] == n:
        return sorted_vals
    return F.interpolate(sorted_vals[None], size=n, mode="linear", align_corners=True)[0]


@torch.no_grad()
def remap_by_rank(values: torch.Tensor, sorted_target: torch.Tensor) -> torch.Tensor:
    """(B, C, N) values, (C, N) sorted target -> (B, C, N): each value replaced by the target's
    value at its rank. The MSE to it has the value and gradient of the sorted values' error,
    without sort's backward."""
    order = values.argsort(dim=2)
    return torch.empty_like(values).scatter_(2, order, sorted_target.expand(values.shape[0], -1, -1))


class HistogramLoss(nn.Module):
    """Risser et al. 2017: remap each channel's activations to the style's histogram, then MSE.

    Exact histogram matching by sorting: the k-th smallest activation takes the style's value at
    the same quantile. Several styles blend by averaging quantile functions (the 1-D Wasserstein
    barycentre).
    """

    def __init__(self, layers: Sequence[str] = ("relu1_1", "relu4_1"), weight: float = 1.0, bins: int = 4096,
                 reduction: str = "mean"):
        super().__init__()
        if reduction not in ("mean", "paper"):
            raise ImpastoError(f"histogram reduction must be 'mean' or 'paper', not {reduction!r}")
        # paper: sum of squares / (2 N^2 D), normalised like the Gram term (N channels, D pixels)
        self.layers, self.weight, self.bins, self.reduction = tuple(layers), weight, bins, reduction
        self.targets: dict[str, torch.Tensor] = {}

    def set_target(self, style_feats: Sequence[dict[str, torch.Tensor]], blend: Optional[Sequence[float]] = None):
        blend = blend_weights(len(style_feats), blend)
        self.targets = {}
        for n in self.layers:
            q = 0
            for w, f in zip(blend, style_feats):
                x = fp32(f[n].detach())
                vals = x.transpose(0, 1).reshape(x.shape[1], -1).sort(dim=1).values
                q = q + w * _resample_sorted(vals, min(self.bins, vals.shape[1]))
            self.targets[n] = q

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for n in self.layers:
            x = fp32(feats[n])
            b, c, h, w = x.shape
            flat = x.reshape(b, c, h * w)
            mse = F.mse_loss(flat, remap_by_rank(flat, _resample_sorted(self.targets[n], h * w)))
            total = total + (mse / (2 * c) if self.reduction == "paper" else mse)
        return self.weight * total


def extract_patches(features: torch.Tensor, size: int, stride: int) -> torch.Tensor:
    """(1, C, H, W) -> (L, C, size, size) patches."""
    c = features.shape[1]
    p = F.unfold(features, size, stride=stride)  # (1, C*k*k, L)
    return p[0].t().reshape(-1, c, size, size)


class MRFLoss(nn.Module):
    """Li & Wand 2016: each output patch moves toward its nearest style patch.

    Nearest by normalised cross-correlation (a convolution with the normalised style patches as
    kernels), then MSE between the output patches and the matched style patches.
    """

    def __init__(self, layers: Sequence[str] = ("relu3_1", "relu4_1"), weight: float = 1.0,
                 patch_size: int = 3, stride: int = 1):
        super().__init__()
        self.layers, self.weight, self.patch_size, self.stride = tuple(layers), weight, patch_size, stride
        self.patches: dict[str, torch.Tensor] = {}
        self.kernels: dict[str, torch.Tensor] = {}

    def set_target(self, style_feats: Sequence[dict[str, torch.Tensor]], blend: Optional[Sequence[float]] = None):
        for n in self.layers:
            p = torch.cat([extract_patches(fp32(f[n].detach()), self.patch_size, self.stride) for f in style_feats])
            self.patches[n] = p
            norms = p.flatten(1).norm(dim=1).clamp_min(1e-8)
            self.kernels[n] = p / norms.view(-1, 1, 1, 1)

    def match(self, x: torch.Tensor, layer: str) -> torch.Tensor:
        """Index of the best style patch for every output patch position: (B, H', W')."""
        with torch.no_grad(), torch.autocast("cpu", enabled=False):
            scores = F.conv2d(x.detach(), self.kernels[layer])
            return scores.argmax(dim=1)

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        k = self.patch_size
        for n in self.layers:
            x = fp32(feats[n])
            idx = self.match(x, n)  # (B, H', W')
            b = x.shape[0]
            out_patches = F.unfold(x, k, stride=1)  # (B, C*k*k, H'W')
            target = self.patches[n].flatten(1)[idx.flatten(1)]  # (B, H'W', C*k*k)
            total = total + F.mse_loss(out_patches, target.transpose(1, 2))
        return self.weight * total


class SlicedWassersteinLoss(nn.Module):
    """Heitz et al. 2021: the sliced Wasserstein distance between the output's and the painting's
    feature distributions, per layer.

    The features (one C-vector per pixel) are projected on C random unit directions, and each
    projection's sorted values are matched to the painting's at the same quantiles: histogram
    matching (HistogramLoss) along random axes instead of the channel axes, so it sees how the
    channels go together. A Gram matrix holds only second moments, so a painting made of distinct
    colours (candy's blue ground, its red and cream circles) can be met by a blend of them; the
    full distribution cannot.

    `fresh`: new directions every call (training: a step's noise averages out over steps); off,
    one fixed draw per `seed` (the iterative path: L-BFGS needs the same function every call).
    Each layer's error is divided by the mean square of the painting's features there, so every
    layer counts alike (as StyleLoss's `relative`).
    """

    def __init__(self, layers: Sequence[str] = GATYS_STYLE, weight: float = 1.0, fresh: bool = True,
                 seed: int = 0):
        super().__init__()
        self.layers, self.weight, self.fresh = tuple(layers), weight, fresh
        self.generator = torch.Generator().manual_seed(seed)
        self.features: dict[str, list[torch.Tensor]] = {}
        self.blend: list[float] = []
        self.scales: dict[str, float] = {}
        self.fixed: dict[str, torch.Tensor] = {}
        self.cache: dict[tuple[str, int], torch.Tensor] = {}   # fixed directions: sorted targets

    def set_target(self, style_feats: Sequence[dict[str, torch.Tensor]], blend: Optional[Sequence[float]] = None):
        self.blend = blend_weights(len(style_feats), blend)
        # (C, pixels) per painting; projected anew with each draw of directions
        self.features = {n: [fp32(f[n].detach())[0].flatten(1) for f in style_feats] for n in self.layers}
        self.scales = {n: 1.0 / float(sum(w * x.pow(2).mean() for w, x in zip(self.blend, xs)).clamp_min(1e-12))
                       for n, xs in self.features.items()}
        self.fixed = {n: self._directions(xs[0].shape[0]) for n, xs in self.features.items()}
        self.cache = {}

    def _directions(self, c: int) -> torch.Tensor:
        d = torch.randn(c, c, generator=self.generator)
        return d / d.norm(dim=1, keepdim=True)

    @torch.no_grad()
    def _target(self, layer: str, dirs: torch.Tensor, count: int) -> torch.Tensor:
        """The paintings' sorted projections at `count` quantiles: (directions, count), their
        weighted mean when several are blended (the 1-D Wasserstein barycentre)."""
        return sum(w * _resample_sorted((dirs @ f.to(dirs.device)).sort(dim=1).values, count)
                   for w, f in zip(self.blend, self.features[layer]))

    def forward(self, feats: dict[str, torch.Tensor]) -> torch.Tensor:
        total = 0.0
        for n in self.layers:
            x = fp32(feats[n])
            b, c, h, w = x.shape
            dirs = (self._directions(c) if self.fresh else self.fixed[n]).to(x.device)
            with torch.autocast(x.device.type, enabled=False):   # bf16 would blur near-equal ranks
                projected = torch.einsum("dc,bcn->bdn", dirs, x.reshape(b, c, h * w))
                target = self.cache.get((n, h * w)) if not self.fresh else None
                if target is None:
                    target = self._target(n, dirs, h * w)
                    if not self.fresh:
                        self.cache[(n, h * w)] = target
            total = total + self.scales[n] * F.mse_loss(projected, remap_by_rank(projected, target))
        return self.weight * total
