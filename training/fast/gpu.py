"""Train every bundled style on one CUDA GPU in one go, within a time budget.

    impasto pack ../shared packs/coco                       # once, beside ../shared (~30 MiB)
    impasto train-gpu --pack packs/coco --minutes 12        # on the GPU machine

1. The shared base network of each architecture (configs/fast/base.yaml): it learns to give the
   photo back (content + pixel loss), in a minute.
2. Every style config (configs/fast/*.yaml but base and gpu), all at once on the one GPU, each
   started from its architecture's base, until the budget is spent (or its max_steps), and beside
   them the multi-style networks (`impasto train-gpu --multi`: configs/multistyle/zoo8.yaml by
   default), each an `impasto train-multi` from the base too.
3. Every style's video network (configs/fast/video.yaml on top, then the style's own
   configs/fast/video/<style>.yaml where there is one): its photo network fine-tuned with the
   temporal term, in the last `video_share` of the budget (0: none). The multi-style networks
   train on through it.

With `from_zoo` (`impasto train-gpu --from-zoo`) step 1 is skipped and every style goes on from
its bundled network, on the recipe its model card records, with configs/fast/gpu_zoo.yaml on top.

Each run is a plain `impasto train` (LightningCLI, bf16-mixed autocast, channels-last) of the
style's own config with the GPU profile on top (configs/fast/gpu.yaml: slim_wide, the widest
network within the latency bar, on Johnson's 256 px crops, batch 8), and the pack's photos,
paintings and VGG file in place of ../shared's.
Afterwards every network is written to OUT/results/<name>.ckpt (a style's video network:
<style>_video.ckpt) without the optimiser state (small enough to carry back; `impasto export` and
`bench/fast_vs_iterative.py` read it like any checkpoint), and OUT/results/summary.json says what
each run got: steps, images seen, seconds.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

import torch
import yaml

from impasto.errors import ImpastoError
from impasto.training.fast.module import FastStyleModule
from impasto.training.fast.multistyle import MultiStyleModule

IMPASTO = [sys.executable, "-c", "import sys; from impasto.cli import main; sys.exit(main(sys.argv[1:]))"]


PROFILES = ("base", "gpu", "gpu_zoo", "video")   # the files in configs/fast/ that are not styles


def style_configs(places: list[Path], only: list[str] | None) -> list[Path]:
    configs = [p for place in places for p in (sorted(place.glob("*.yaml")) if place.is_dir() else [place])
               if p.stem not in PROFILES]
    if only:
        missing = set(only) - {p.stem for p in configs}
        if missing:
            raise ImpastoError(f"no config for {', '.join(sorted(missing))} in {', '.join(map(str, places))}")
        configs = [p for p in configs if p.stem in only]
    return configs


def video_configs(style: Path, profiles: Sequence[Path], video_profile: Path) -> list[Path]:
    """The configs of a style's video network, in order: the style's, the GPU profiles, the video
    profile, and the style's own video recipe beside it (video/<style>.yaml) where there is one."""
    own = video_profile.with_suffix("") / style.name
    return [style, *profiles, video_profile, *([own] if own.is_file() else [])]


def zoo_config(style: str, zoo: Path, out: Path) -> Path:
    """The recipe a bundled network's card records (its last stage's model and data), starting from
    the bundled network itself, written as a config for `--from-zoo`."""
    card, network = zoo / f"{style}.json", zoo / f"{style}.onnx"
    if not (card.is_file() and network.is_file()):
        raise ImpastoError(f"--from-zoo: no bundled network for {style} ({network} and its card {card.name})")
    recorded = json.loads(card.read_text()).get("config") or {}
    if not recorded.get("model"):
        raise ImpastoError(f"--from-zoo: {card} records no training config to go on with")
    config = {"model": {**recorded["model"], "init_from": str(network)}, "data": recorded.get("data") or {}}
    path = out / "configs" / f"{style}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


PACKED_MODEL = ("style_image", "style_images", "vgg_weights")   # what pack_overrides puts the pack's files in
PACKED_DATA = ("source", "val_source")


def pack_overrides(pack: Path, config: dict, workers: int) -> list[str]:
    """The pack's files in place of the config's ../shared paths."""
    args = ["--data.source", str(pack / "photos"), "--data.val_source", str(pack / "holdout"),
            "--data.num_workers", str(workers), "--data.cache_images", "true",
            "--model.vgg_weights", str(pack / "vgg16.safetensors"), "--trainer.enable_progress_bar", "false"]
    model = config.get("model") or {}
    if model.get("style_image"):
        args += ["--model.style_image", str(pack / "styles" / (Path(model["style_image"]).stem + ".jpg"))]
    if model.get("style_images"):
        paintings = [str(pack / "styles" / (Path(s).stem + ".jpg")) for s in model["style_images"]]
        args += ["--model.style_images", "[" + ",".join(paintings) + "]"]
    return args


def _depth(layer: str) -> tuple[int, int]:
    """relu4_3 or conv4_3 -> (4, 3): the order of VGG16's layers."""
    block, index = layer[4:].split("_")
    return int(block), int(index)


def deepest_conv(config: dict) -> str | None:
    """The deepest VGG convolution that a config's explicit loss layers read (relu5_1 -> conv5_1)."""
    model = config.get("model") or {}
    layers = [name for key in ("style_layers", "content_layers") for name in (model.get(key) or [])]
    return "conv" + max(layers, key=_depth)[4:] if layers else None


def check_pack_depth(pack_info: dict, configs: dict[str, dict]) -> None:
    """Fail before any training when a config's loss layers lie deeper than the pack's VGG."""
    last = (pack_info.get("vgg") or {}).get("last", "conv5_3")
    for name, cfg in configs.items():
        need = deepest_conv(cfg)
        if need and _depth(need) > _depth(last):
            raise ImpastoError(f"{name}: its loss layers need VGG16 up to {need}, the pack stops at {last}; "
                               f"write the pack with `impasto pack --last-conv {need}`")


def slim_checkpoint(src: Path, dst: Path, recipe: dict | None = None) -> dict:
    """The network and its meta, without the optimiser's state (a third of the size). `recipe`: the
    run's config as written, before the pack's files took the place of its ../shared paths; the
    meta names those again (the painting itself, the photo folder whose first `holdout` photos are
    the held-out ones, the VGG weights of $IMPASTO_VGG_WEIGHTS), so that the card, `impasto export`
    and the benches read the network anywhere the shared data is, with no pack. Returns the meta."""
    ckpt = torch.load(src, map_location="cpu", weights_only=False)
    keep = {k: ckpt[k] for k in ("impasto", "state_dict", "global_step", "epoch") if k in ckpt}
    meta = keep.get("impasto") or {}
    if recipe and meta.get("config"):
        model, data = meta["config"].setdefault("model", {}), meta["config"].setdefault("data", {})
        for section, given, keys in ((model, recipe.get("model") or {}, PACKED_MODEL),
                                     (data, recipe.get("data") or {}, PACKED_DATA)):
            for key in keys:
                if key in section:
                    section[key] = given.get(key)
        for key in ("style_image", "style_images"):
            if meta.get(key) and model.get(key):
                meta[key] = model[key]
    keep["state_dict"] = {k: v for k, v in keep["state_dict"].items() if k.startswith("net.")}
    dst.parent.mkdir(parents=True, exist_ok=True)
    torch.save(keep, dst)
    return meta


def merged(config: dict, profile: dict) -> dict:
    """`profile` over `config`, section by section, as LightningCLI applies a second --config."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in config.items()}
    for key, value in profile.items():
        out[key] = {**(out.get(key) or {}), **value} if isinstance(value, dict) else value
    return out


def load_stack(configs: list[Path]) -> dict:
    """What LightningCLI makes of these configs given in order (for the checks made beforehand)."""
    out: dict = {}
    for config in configs:
        out = merged(out, yaml.safe_load(config.read_text()) or {})
    return out


def check_model_keys(configs: dict[str, dict], multi: set[str]) -> None:
    """Fail before any training when a stacked config sets a model option its network's module does
    not take (a single-style profile under a multi-style network, say): LightningCLI would refuse it
    only when that run starts, after the base networks."""
    for name, cfg in configs.items():
        module = MultiStyleModule if name in multi else FastStyleModule
        known = inspect.signature(module.__init__).parameters
        unknown = sorted(set(cfg.get("model") or {}) - set(known))
        if unknown:
            kind = "a multi-style network" if name in multi else "a single-style network"
            raise ImpastoError(f"{name}: {kind} takes no model option {', '.join(unknown)}; leave that profile out"
                               + (" or train no multi-style network (`--multi` alone)" if name in multi else ""))


def launch(configs: list[Path], run_dir: Path, extra: list[str], log: Path, command: str = "train") -> subprocess.Popen:
    log.parent.mkdir(parents=True, exist_ok=True)
    cmd = IMPASTO + [command] + [arg for c in configs for arg in ("--config", str(c))] + ["--run_dir", str(run_dir)]
    cmd += extra
    print("$", " ".join(cmd[3:]), flush=True)
    return subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})


def wait_all(procs: dict[str, subprocess.Popen], logs: dict[str, Path]) -> dict[str, int]:
    codes = {}
    while len(codes) < len(procs):
        for name, p in procs.items():
            if name not in codes and p.poll() is not None:
                codes[name] = p.returncode
                tail = logs[name].read_text(errors="replace").splitlines()[-3:]
                print(f"  {name}: exit {p.returncode}  | " + " | ".join(tail), flush=True)
        time.sleep(2)
    return codes


def hms(seconds: float) -> str:
    s = max(60, int(seconds))
    return f"00:{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def train_all(pack: Path, configs: list[Path], styles: list[str] | None = None, minutes: float = 12.0,
              base_steps: int = 800, workers: int = 2, out: Path = Path("runs/gpu"),
              base: Path = Path("configs/fast/base.yaml"),
              profiles: Sequence[Path] = (Path("configs/fast/gpu.yaml"),),
              multi: list[Path] = (), video_profile: Path = Path("configs/fast/video.yaml"),
              video_share: float = 0.25, from_zoo: Path | None = None) -> int:
    """The bases, then every style (and every multi-style network) at once, then every style's video
    network; 0 when every run ended well. `from_zoo` (a folder of bundled networks and their cards,
    with `profiles` configs/fast/gpu_zoo.yaml): each style goes on from its bundled network, on the
    recipe its card records, instead of from a base. `profiles` are laid on top of each config in
    order."""
    if not 0 <= video_share < 1:
        raise ImpastoError(f"video_share is the budget's share for the video networks, in [0, 1); got {video_share}")
    start = time.time()
    deadline = start + minutes * 60
    if not (pack / "pack.json").is_file():
        raise ImpastoError(f"{pack}: not a training pack (no pack.json); make one with `impasto pack`")
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    print(f"device: {device}; budget {minutes} min", flush=True)
    configs = style_configs(configs, styles)
    for m in multi:
        if not m.is_file():
            raise ImpastoError(f"{m}: no such multi-style config")
    if video_share and not video_profile.is_file():
        raise ImpastoError(f"{video_profile}: no such video profile")
    for p in profiles:
        if not Path(p).is_file():
            raise ImpastoError(f"{p}: no such profile")
    if from_zoo:   # each style's own recipe, as its card records it, in place of its config file
        configs = [zoo_config(c.stem, from_zoo, out) for c in configs]
    loaded = {c.stem: load_stack([c, *profiles]) for c in [*configs, *multi]}
    base_yaml = load_stack([base, *profiles])
    videos = {f"{c.stem}_video": video_configs(c, profiles, video_profile) for c in configs} if video_share else {}
    videos_loaded = {name: load_stack(stack) for name, stack in videos.items()}
    check_model_keys({**loaded, "base": base_yaml, **videos_loaded}, {m.stem for m in multi})
    check_pack_depth(json.loads((pack / "pack.json").read_text()), {**loaded, **videos_loaded})
    # relative paths stay relative: they end up in the model cards

    # 1. one base network per architecture the styles use
    from_base = [c for c in [*configs, *multi] if (loaded[c.stem].get("model") or {}).get("init_from")
                 and not (from_zoo and c in configs)]
    archs = sorted({(loaded[c.stem].get("model") or {}).get("arch", "slim") for c in from_base})
    procs, logs = {}, {}
    for arch in archs:
        name = f"base_{arch}"
        logs[name] = out / "logs" / f"{name}.log"
        # a base only copies photos, whatever style weight a profile lays on the styles
        procs[name] = launch([base, *profiles], out / name, pack_overrides(pack, base_yaml, workers) + [
            "--model.arch", arch, "--model.style_weight", "0", "--trainer.max_steps", str(base_steps),
            "--trainer.max_time", hms((deadline - time.time()) * 0.2)], logs[name])
    codes = wait_all(procs, logs)
    bases = {arch: out / f"base_{arch}" / "checkpoints" / "last.ckpt" for arch in archs}
    base_s = time.time() - start

    # 2. every style at once, each from its architecture's base (a multi-style network too: there
    # its config's own start, a painting network trained on a CPU, is not on the GPU machine)
    procs, logs = {}, {}
    remaining = deadline - time.time() - 45  # the slim copies and the summary
    for config in [*configs, *multi]:
        cfg = loaded[config.stem]
        share = remaining if config in multi else remaining * (1 - video_share)
        extra = pack_overrides(pack, cfg, workers) + ["--trainer.max_time", hms(share)]
        if config in from_base:
            start_from = bases[cfg["model"].get("arch", "slim")]
            if not start_from.is_file():
                print(f"  {config.stem}: skipped, its base network did not train", flush=True)
                continue
            extra += ["--model.init_from", str(start_from)]
        logs[config.stem] = out / "logs" / f"{config.stem}.log"
        procs[config.stem] = launch([config, *profiles], out / config.stem, extra, logs[config.stem],
                                    "train-multi" if config in multi else "train")
    codes.update(wait_all({c.stem: procs[c.stem] for c in configs if c.stem in procs}, logs))

    # 3. every style's video network, from its photo network, while the multi-style ones train on
    video = {}
    for config in configs if video_share else []:
        photo = out / config.stem / "checkpoints" / "last.ckpt"
        if not photo.is_file():
            continue
        name = f"{config.stem}_video"
        logs[name] = out / "logs" / f"{name}.log"
        extra = pack_overrides(pack, loaded[config.stem], workers) + [
            "--model.init_from", str(photo), "--trainer.max_time", hms(deadline - time.time() - 45)]
        video[name] = launch(videos[name], out / name, extra, logs[name])
    codes.update(wait_all({**{m.stem: procs[m.stem] for m in multi if m.stem in procs}, **video}, logs))
    procs.update(video)

    summary = {"device": device, "budget_minutes": minutes, "base_seconds": round(base_s, 1),
               "pack": json.loads((pack / "pack.json").read_text()), "runs": {}}
    for name in list(bases and [f"base_{x}" for x in archs]) + list(procs):
        last = out / name / "checkpoints" / "last.ckpt"
        if not last.is_file():
            summary["runs"][name] = {"exit": codes.get(name), "checkpoint": None}
            continue
        recipe = loaded.get(name.removesuffix("_video")) or (base_yaml if name.startswith("base_") else None)
        meta = slim_checkpoint(last, out / "results" / f"{name}.ckpt", recipe)
        summary["runs"][name] = {"exit": codes.get(name), **{k: meta.get(k) for k in (
            "steps", "images_seen", "wall_time_s", "loss_terms", "val_loss_terms", "config_hash")}}
    summary["seconds"] = round(time.time() - start, 1)
    (out / "results").mkdir(parents=True, exist_ok=True)
    (out / "results" / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps({k: {kk: v.get(kk) for kk in ("exit", "steps", "wall_time_s")} for k, v in summary["runs"].items()}))
    return 0 if all(c == 0 for c in codes.values()) else 1
