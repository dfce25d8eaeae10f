"""Soft (gradient) masks at 512 px: batched masked Grams vs one full-image pass per mask.

For K = 1, 2, 4, 8, 16 soft masks (a smooth partition of the image), one loss evaluation
(VGG forward + masked Gram losses on relu1_1..relu5_1 + backward to the pixels, bf16 autocast as
in the optimisation loop) is timed two ways:
  batched  one VGG pass; all K masked Grams of a layer from `masked_grams` (chunked custom
           autograd, memory of one chunk of masked features, products in bf16);
  plain    what the batched way replaces: each mask is its own full-image pass (VGG forward,
           masked features, fp32 Gram), the K losses summed, one backward.
The batched row also reports what its bf16 Grams cost in accuracy: the loss and its gradient
against the same features with fp32 Grams.
Each configuration runs in its own process so that its peak memory (VmHWM above the resident
set before the first pass) is its own. Prints ratios measured in this one run; asserts nothing.

    IMPASTO_VGG_WEIGHTS=... python bench/bench_soft_masks.py [--size 512] [--masks 1 2 4 8 16]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def soft_masks(k: int, h: int, w: int):
    """K smooth masks summing to one: a softmax over distances to K centres on a spiral."""
    import math

    import torch
    ys, xs = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    centres = [(0.5 + 0.35 * math.sin(2.4 * i) * (i + 1) / k, 0.5 + 0.35 * math.cos(2.4 * i) * (i + 1) / k)
               for i in range(k)]
    d = torch.stack([-((ys - cy) ** 2 + (xs - cx) ** 2) / 0.02 for cy, cx in centres])
    return torch.softmax(d, 0)


def _rss_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def measure(way: str, k: int, size: int, reps: int) -> dict:
    import torch

    from impasto import images
    from impasto.models.semantic_losses import RegionStyleLoss, masked_grams, masked_grams_plain
    from impasto.models.tensors import to_tensor
    from impasto.models.vgg import VGGEncoder, layer_masks
    from impasto.models.weights import load_vgg_weights

    torch.manual_seed(0)
    weights = load_vgg_weights(None)
    vgg = VGGEncoder(weights, LAYERS)
    data = os.environ.get("IMPASTO_SHARED", os.path.join(os.path.dirname(__file__), "..", "..", "shared"))
    img = images.load(os.path.join(data, "data", "doodle", "Monet.jpg"))
    img = images.resize_to(img, (size, size))
    x0 = to_tensor(img)
    masks = soft_masks(k, size, size)[None]
    lm = layer_masks(masks, LAYERS, weights.arch)
    with torch.no_grad():
        sf = vgg(to_tensor(images.resize_to(img[:, ::-1].copy(), (size, size))))
        targets = {n: masked_grams(sf[n], lm[n][0]) for n in LAYERS}
    loss = RegionStyleLoss(LAYERS, 1e-4, mode="soft")
    loss.set_targets(targets, {n: lm[n][0] for n in LAYERS})
    x = x0.clone().requires_grad_(True)

    def batched():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return loss(vgg(x))

    def plain():
        total = 0.0
        with torch.autocast("cpu", dtype=torch.bfloat16):
            for i in range(k):
                feats = vgg(x)  # its own full-image pass
                for n in LAYERS:
                    g = masked_grams_plain(feats[n], lm[n][0, i:i + 1])
                    total = total + ((g - targets[n][i:i + 1]) ** 2).mean()
        return 1e-4 * total

    fn = batched if way == "batched" else plain
    fn().backward()  # warm-up (allocator, oneDNN kernels)
    x.grad = None
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset the peak (VmHWM) to the current resident set
    base = _rss_kb("VmRSS")
    times = []
    for _ in range(reps):
        t = time.perf_counter()
        fn().backward()
        times.append(time.perf_counter() - t)
        x.grad = None
    row = {"way": way, "k": k, "seconds": min(times), "peak_mb": (_rss_kb("VmHWM") - base) / 1024}
    if way == "batched":
        row.update(bf16_error(vgg, loss, x))
    return row


def bf16_error(vgg, loss, x) -> dict:
    """Loss and pixel-gradient of bf16 masked Grams against fp32 ones on the same features."""
    import torch
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats = vgg(x)
        fast = loss(feats)
    (g_fast,) = torch.autograd.grad(fast, x, retain_graph=True)
    with torch.autocast("cpu", enabled=False):
        exact = loss(feats)                  # same bf16 features, fp32 Grams
    (g_exact,) = torch.autograd.grad(exact, x)
    cos = torch.nn.functional.cosine_similarity(g_fast.double().flatten(), g_exact.double().flatten(), dim=0)
    return {"loss_rel_diff": abs(fast.item() - exact.item()) / exact.item(), "grad_cosine": cos.item()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", type=int, default=512)
    p.add_argument("--masks", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--plain-max", type=int, default=16, help="largest K measured the plain way")
    p.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: way k
    args = p.parse_args()
    if args.one:
        import torch
        torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
        way, k = args.one[0], int(args.one[1])
        reps = args.reps if way == "batched" or k <= 4 else 1
        print(json.dumps(measure(way, k, args.size, reps)))
        return
    rows = {}
    for k in args.masks:
        for way in ("batched", "plain"):
            if way == "plain" and k > args.plain_max:
                continue
            out = subprocess.run([sys.executable, __file__, "--one", way, str(k), "--size", str(args.size),
                                  "--reps", str(args.reps)], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rows[(way, k)] = r
            extra = (f"  bf16 Grams vs fp32: loss {r['loss_rel_diff']:.2%} apart, gradient cosine {r['grad_cosine']:.5f}"
                     if "loss_rel_diff" in r else "")
            print(f"  {way:7s} K={k:2d}: {r['seconds']:7.2f} s/iter  peak +{r['peak_mb']:7.0f} MB{extra}", flush=True)
    b1 = rows[("batched", args.masks[0])]
    print(f"\nsoft masks at {args.size}x{args.size}, VGG16 relu1_1..relu5_1, bf16 autocast, one process per row")
    print(f"{'K':>3} {'batched s':>10} {'x K=1':>6} {'plain s':>9} {'plain/batched':>14} {'batched MB':>11} {'plain MB':>9}")
    for k in args.masks:
        b = rows[("batched", k)]
        pl = rows.get(("plain", k))
        print(f"{k:3d} {b['seconds']:10.2f} {b['seconds'] / b1['seconds']:6.2f} "
              + (f"{pl['seconds']:9.2f} {pl['seconds'] / b['seconds']:14.2f}" if pl else f"{'-':>9} {'-':>14}")
              + f" {b['peak_mb']:11.0f} " + (f"{pl['peak_mb']:9.0f}" if pl else f"{'-':>9}"))
    if 8 in args.masks and ("plain", 8) in rows:
        b8, p8 = rows[("batched", 8)]["seconds"], rows[("plain", 8)]["seconds"]
        print(f"\ntargets: 8 masks cost {b8 / b1['seconds']:.2f}x one mask (target <= 3x); "
              f"plain/batched at 8 masks {p8 / b8:.2f}x (target >= 3x)")


if __name__ == "__main__":
    main()
