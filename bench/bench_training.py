"""Fast-style training throughput: our training step against a plain reference loop, one run.

    python bench/bench_training.py [--size 256] [--batch 4] [--steps 3] [--threads N]

Reference: fp32, NCHW, the style image's Gram targets recomputed every step (a VGG pass over the
painting each step), the same Objective terms. Ours: FastStyleModule's step: bf16 autocast,
channels-last, Gram targets computed once. Both train the same network from the same weights on
the same batches of real photos, so the losses are comparable step by step:
  - ours in fp32 must match the reference within 1% at every step (same maths, other layout),
  - ours in bf16 within the stated tolerance (BF16_TOLERANCE).
A last line compares with the reference training the published Johnson network, for the total
gain of the slim default. Prints ratios (machines here are shared and noisy; ratios hold).
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
BF16_TOLERANCE = 0.05   # relative, per step: bf16 VGG activations vs fp32


def photos(size: int, batch: int, steps: int) -> list[torch.Tensor]:
    from impasto.training.fast.data import PhotoDataModule
    dm = PhotoDataModule(str(REPO.parent / "shared" / "data" / "coco_sample"), holdout=8, image_size=size,
                         resize_size=size, batch_size=batch)
    dm.setup()
    n = batch * steps
    xs = [dm.train_set[(i, 0, i)]["image"] for i in range(n)]
    return [torch.stack(xs[i * batch:(i + 1) * batch]) for i in range(steps)]


def timed_steps(step, opt, batches):
    """Run `step(x) -> loss` with an optimiser step per batch: the losses and the seconds of each step."""
    losses, times = [], []
    for x in batches:
        t = time.perf_counter()
        total = step(x)
        opt.zero_grad()
        total.backward()
        opt.step()
        times.append(time.perf_counter() - t)
        losses.append(float(total.detach()))
    return losses, times


def reference_loop(net, style, batches, weights):
    """The plain loop: fp32, NCHW, targets recomputed each step."""
    from impasto.training.fast.module import build_perceptual_loss
    loss_fn = build_perceptual_loss(os.environ.get("IMPASTO_VGG_WEIGHTS"), *weights)
    loss_fn.vgg.to(memory_format=torch.contiguous_format)
    loss_fn.vgg.channels_last = False                 # no layout tricks

    def step(x):
        loss_fn.set_targets(styles=[style])           # Gram of the painting, every step
        return loss_fn(net(x), content=x)[0]
    return timed_steps(step, torch.optim.Adam(net.parameters(), lr=1e-3), batches)


def our_loop(module, batches, bf16: bool):
    def step(x):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            return module.compute_loss(x)[0]
    return timed_steps(step, module.configure_optimizers(), batches)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--steps", type=int, default=3, help="timed steps per loop (after one warm-up step)")
    ap.add_argument("--style", default=str(REPO.parent / "shared" / "data" / "style" / "candy.jpg"))
    ap.add_argument("--style-size", type=int, default=384)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-johnson", action="store_true", help="skip the Johnson reference line")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    os.environ.setdefault("IMPASTO_VGG_WEIGHTS", str(REPO.parent / "shared" / "weights" / "vgg16_hed_bsds500.weights.h5"))
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    from impasto.training.fast.module import FastStyleModule, load_style_image

    batches = photos(a.size, a.batch, a.steps + 1)
    cw, sw, tv = 1.0, 30.0, 0.0
    torch.manual_seed(0)
    ours = FastStyleModule(a.style, arch="slim", style_size=a.style_size, content_weight=cw, style_weight=sw,
                           tv_weight=tv, lr=1e-3, channels_last=True)
    ours.prepare_loss(torch.device("cpu"))
    init = copy.deepcopy(ours.net.state_dict())
    style = load_style_image(a.style, a.style_size)

    def fresh(arch="slim"):
        from impasto.models.transformer import TransformerNet
        torch.manual_seed(0)
        net = TransformerNet(arch)
        if arch == "slim":
            net.load_state_dict(init)
        return net

    print(f"training step, {a.size} px, batch {a.batch}, {a.steps} timed steps (+1 warm-up), "
          f"{torch.get_num_threads()} threads", flush=True)
    ref_l, ref_t = reference_loop(fresh(), style, batches, (cw, sw, tv))
    print(f"  reference (fp32, NCHW, Gram per step, slim net): {sum(ref_t[1:]) / a.steps:.3f} s/step", flush=True)

    ours.net.load_state_dict(init)
    f32_l, f32_t = our_loop(ours, batches, bf16=False)
    print(f"  ours fp32 (channels-last, cached Gram):         {sum(f32_t[1:]) / a.steps:.3f} s/step", flush=True)

    ours.net.load_state_dict(init)
    bf_l, bf_t = our_loop(ours, batches, bf16=True)
    print(f"  ours bf16 (the default: bf16-mixed):            {sum(bf_t[1:]) / a.steps:.3f} s/step", flush=True)

    ref_s, f32_s, bf_s = (sum(t[1:]) / a.steps for t in (ref_t, f32_t, bf_t))
    d32 = max(abs(x - y) / abs(y) for x, y in zip(f32_l, ref_l))
    dbf = max(abs(x - y) / abs(y) for x, y in zip(bf_l, ref_l))
    print(f"steps/s ratio vs reference: fp32 {ref_s / f32_s:.2f}x, bf16 {ref_s / bf_s:.2f}x  (target >= 3x)")
    print(f"losses per step: reference {[round(v, 1) for v in ref_l]}")
    print(f"                 ours fp32 {[round(v, 1) for v in f32_l]}  max rel diff {d32:.2e} (must be < 1e-2)")
    print(f"                 ours bf16 {[round(v, 1) for v in bf_l]}  max rel diff {dbf:.2e} "
          f"(tolerance {BF16_TOLERANCE:.0e})")
    ok = d32 < 1e-2 and dbf < BF16_TOLERANCE
    if not a.no_johnson:
        jl, jt = reference_loop(fresh("johnson"), style, batches[:2], (cw, sw, tv))
        print(f"reference loop training the published Johnson net: {jt[1]:.3f} s/step -> "
              f"slim default in bf16 is {jt[1] / bf_s:.2f}x faster per step")
    print("PASS" if ok else "FAIL: losses differ beyond tolerance")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
