"""Seconds per L-BFGS iteration: impasto's iterative stylisation against a plain reference.

The reference is the textbook loop: fp32, an nn.Sequential VGG, and the content and style
targets recomputed inside every evaluation. Both runs use the same weights, layers, loss
weights and L-BFGS settings, in the same process, so the ratio is what the engineering buys.
Both final images are scored with one fp32 objective to show the speed costs no quality.

    python bench/bench_iterative.py --sizes 256 512 --iterations 30
"""

from __future__ import annotations

import argparse
import os
import time

import torch
import torch.nn.functional as F
from torch import nn

from impasto import images
from impasto.models.losses import GATYS_CONTENT, GATYS_STYLE
from impasto.models.tensors import to_tensor
from impasto.models.vgg import layer_names
from impasto.models.weights import load_vgg_weights
from impasto.training.iterative.optimize import OptimizeConfig, build_objective, stylize

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "..", "..", "shared", "data")


def plain_vgg(weights) -> nn.Sequential:
    layers = []
    names = layer_names(weights.arch)
    last = max(names.index(n) for n in GATYS_STYLE + GATYS_CONTENT)
    cin = 3
    for name in names[: last + 1]:
        if name.startswith("conv"):
            w, b = weights.convs[name]
            conv = nn.Conv2d(cin, w.shape[0], 3, padding=1)
            conv.weight.data.copy_(w)
            conv.bias.data.copy_(b)
            cin = w.shape[0]
            layers.append(conv)
        elif name.startswith("relu"):
            layers.append(nn.ReLU())
        else:
            layers.append(nn.MaxPool2d(2, 2))
    net = nn.Sequential(*layers).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def reference_run(weights, content, style, config: OptimizeConfig):
    """The plain loop: everything fp32, all targets recomputed every evaluation."""
    net = plain_vgg(weights)
    names = layer_names(weights.arch)
    mean = torch.tensor([103.939, 116.779, 123.68]).view(1, 3, 1, 1)

    def features(x):
        x = x.flip(1) * 255.0 - mean
        out = {}
        for name, layer in zip(names, net):
            x = layer(x)
            out[name] = x
        return out

    def gram(f):
        b, c, h, w = f.shape
        f = f.reshape(b, c, h * w)
        return f @ f.transpose(1, 2) / (h * w)

    def tv(x):
        return ((x[..., :, 1:] - x[..., :, :-1]) ** 2).mean() + ((x[..., 1:, :] - x[..., :-1, :]) ** 2).mean()

    x = content.clone().requires_grad_(True)
    opt = torch.optim.LBFGS([x], lr=1.0, max_iter=config.iterations, max_eval=config.iterations,
                            tolerance_grad=1e-9, tolerance_change=1e-12, history_size=50)
    count = [0]

    def closure():
        opt.zero_grad()
        with torch.no_grad():
            x.clamp_(0, 1)
            c_feats = features(content)
            s_feats = features(style)
        feats = features(x)
        loss = sum(F.mse_loss(feats[n], c_feats[n]) for n in GATYS_CONTENT) * config.content_weight
        loss = loss + config.style_weight * sum(F.mse_loss(gram(feats[n]), gram(s_feats[n])) for n in GATYS_STYLE)
        loss = loss + config.tv_weight * tv(x)
        loss.backward()
        count[0] += 1
        return loss

    start = time.perf_counter()
    opt.step(closure)
    seconds = time.perf_counter() - start
    with torch.no_grad():
        x.clamp_(0, 1)
    return x.detach(), seconds / count[0]


def score(weights, image, content, style, config):
    objective = build_objective(config, weights)
    objective.set_targets(content, [style])
    with torch.no_grad():
        return float(objective(image)[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", type=int, default=[256, 512])
    parser.add_argument("--iterations", type=int, default=30)
    parser.add_argument("--content", default=os.path.join(DATA, "content", "tubingen.jpg"))
    parser.add_argument("--style", default=os.path.join(DATA, "style", "starry_night.jpg"))
    parser.add_argument("--vgg-weights", default=os.environ.get("IMPASTO_VGG_WEIGHTS"))
    args = parser.parse_args()
    weights = load_vgg_weights(args.vgg_weights)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, weights {weights.arch}/{weights.preprocessing}")
    print(f"{'size':>5} {'reference s/it':>15} {'impasto s/it':>13} {'speed-up':>9} {'ref loss':>10} {'ours loss':>10} {'loss diff':>9}")
    for size in args.sizes:
        c_img = images.load(args.content, size)
        s_img = images.load(args.style, size)
        config = OptimizeConfig(size=size, iterations=args.iterations, vgg_weights=args.vgg_weights)
        content, style = to_tensor(c_img), to_tensor(s_img)
        ref_image, ref_per_it = reference_run(weights, content, style, config)
        result = stylize(c_img, [s_img], config)
        ours_per_it = result.seconds / result.iterations
        ref_loss = score(weights, ref_image, content, style, config)
        our_loss = score(weights, to_tensor(result.image), content, style, config)
        print(f"{size:>5} {ref_per_it:>15.3f} {ours_per_it:>13.3f} {ref_per_it / ours_per_it:>8.2f}x "
              f"{ref_loss:>10.4g} {our_loss:>10.4g} {100 * (our_loss - ref_loss) / ref_loss:>+8.2f}%")


if __name__ == "__main__":
    main()
