"""Where VGG weights come from, each source with the input preprocessing it was trained with.

Sources: torchvision's ImageNet download, a torchvision-layout state dict (.pth/.pt/.safetensors),
a Keras .h5 (standard "notop" layout and the block/layers/conv2d layout), and a tensorflow-vgg
style .npy (dict of layer name -> [W, b]). Choose with `--vgg-weights PATH|torchvision` or the
IMPASTO_VGG_WEIGHTS environment variable.
"""

from __future__ import annotations

import functools
import os
import pickle
import re
import socket
from pathlib import Path

import h5py
import numpy as np
import torch
import torchvision
from safetensors import safe_open
from safetensors.torch import save_file

from impasto.errors import ImpastoError

from .vgg import BLOCKS, VGGWeights, conv_names, layer_names

ENV_VAR = "IMPASTO_VGG_WEIGHTS"

HOW_TO_SUPPLY = (
    "supply VGG weights with --vgg-weights PATH or the IMPASTO_VGG_WEIGHTS environment variable "
    "(a torchvision .pth/.safetensors state dict, a Keras VGG16/VGG19 .h5, or a tensorflow-vgg "
    ".npy), or go online once so torchvision can download its ImageNet weights")


def _arch_for_count(n: int, where: str) -> str:
    for arch in BLOCKS:
        if len(conv_names(arch)) == n:
            return arch
    raise ImpastoError(f"{where}: found {n} 3x3 convolution layers; VGG16 has 13 and VGG19 has 16")


def _check(convs: dict, arch: str, where: str, truncated: bool = False) -> dict:
    """Shapes of a VGG's convolutions. `truncated`: the file stops at some layer (a pack holds
    only the layers up to the deepest loss layer); what it has must still be a prefix."""
    names = conv_names(arch)
    if truncated:
        names = names[:len(convs)]
    missing = [n for n in names if n not in convs]
    if missing or not names:
        raise ImpastoError(f"{where}: missing VGG layers {', '.join(missing or conv_names(arch))}")
    prev = 3
    for name in names:
        w, b = convs[name]
        if w.ndim != 4 or w.shape[1] != prev or w.shape[2:] != (3, 3) or b.shape != (w.shape[0],):
            raise ImpastoError(f"{where}: layer {name} has shape {tuple(w.shape)}, not a VGG layer")
        prev = w.shape[0]
    return {n: (w.float().contiguous(), b.float().contiguous()) for n, (w, b) in convs.items()}


# ---- torchvision layout: "features.N.weight" or "N.weight" -----------------------------------

def _torchvision_index_map(arch: str) -> dict[int, str]:
    return {i: n for i, n in enumerate(layer_names(arch)) if n.startswith("conv")}


def _from_state_dict(state: dict, where: str, preprocessing: str) -> VGGWeights:
    state = {k: v for k, v in state.items() if torch.is_tensor(v)}
    named = {}
    for key, value in state.items():
        m = re.search(r"(conv\d_\d)\.(weight|bias)$", key)
        if m:
            named.setdefault(m.group(1), {})[m.group(2)] = value
    if named:
        convs = {k: (v["weight"], v["bias"]) for k, v in named.items() if {"weight", "bias"} <= set(v)}
        arch = _arch_for_count(len(convs), where)
        return VGGWeights(arch, _check(convs, arch, where), preprocessing, where)
    indexed = {}
    for key, value in state.items():
        m = re.fullmatch(r"(?:features\.)?(\d+)\.(weight|bias)", key)
        if m and (m.group(2) == "bias" or value.ndim == 4):
            indexed.setdefault(int(m.group(1)), {})[m.group(2)] = value
    kernels = {i: v for i, v in indexed.items() if v.get("weight") is not None and v["weight"].shape[2:] == (3, 3)}
    if not kernels:
        raise ImpastoError(f"{where}: no VGG convolution weights found (expected torchvision's "
                           "'features.N.weight' keys or 'convB_I.weight' names)")
    arch = _arch_for_count(len(kernels), where)
    index = _torchvision_index_map(arch)
    try:
        convs = {index[i]: (kernels[i]["weight"], kernels[i]["bias"]) for i in kernels}
    except KeyError:
        raise ImpastoError(f"{where}: layer indices {sorted(kernels)} are not torchvision's {arch} layout") from None
    return VGGWeights(arch, _check(convs, arch, where), preprocessing, where)


def _load_pth(path: Path) -> VGGWeights:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors, zip errors, refused globals
        raise ImpastoError(f"{path}: cannot read as a PyTorch state dict ({exc})") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ImpastoError(f"{path}: expected a state dict, found {type(state).__name__}")
    return _from_state_dict(state, str(path), "torchvision")


def _load_safetensors(path: Path) -> VGGWeights:
    """A torchvision-layout state dict; or, when the header's metadata names its `arch` and
    `preprocessing` (as `save_safetensors` writes them), named convB_I layers in that
    preprocessing, possibly only the first ones (a loss network needs no deeper layer)."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as exc:
        raise ImpastoError(f"{path}: cannot read as safetensors ({exc})") from None
    arch, preprocessing = meta.get("arch"), meta.get("preprocessing", "torchvision")
    if preprocessing not in ("caffe", "torchvision"):
        raise ImpastoError(f"{path}: unknown preprocessing {preprocessing!r} in its metadata")
    if arch is None:
        return _from_state_dict(state, str(path), preprocessing)
    if arch not in BLOCKS:
        raise ImpastoError(f"{path}: unknown VGG architecture {arch!r} in its metadata")
    convs = {n: (state[f"{n}.weight"], state[f"{n}.bias"]) for n in conv_names(arch)
             if f"{n}.weight" in state and f"{n}.bias" in state}
    return VGGWeights(arch, _check(convs, arch, str(path), truncated=True), preprocessing, str(path))


def save_safetensors(weights: VGGWeights, path: str | os.PathLike, last: str | None = None,
                     dtype: torch.dtype = torch.float16) -> Path:
    """Write `weights` (up to conv layer `last`) as named safetensors with their arch and
    preprocessing in the metadata: a small, self-describing loss network."""
    names = conv_names(weights.arch)
    if last is not None:
        if last not in names:
            raise ImpastoError(f"{last!r} is not a {weights.arch} convolution; choose from {', '.join(names)}")
        names = names[:names.index(last) + 1]
    state = {}
    for n in names:
        w, b = weights.convs[n]
        state[f"{n}.weight"], state[f"{n}.bias"] = w.to(dtype).contiguous(), b.to(dtype).contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata={"arch": weights.arch, "preprocessing": weights.preprocessing})
    return path


# ---- Keras .h5 --------------------------------------------------------------------------------

_H5_PATTERNS = (
    re.compile(r"block(\d)_conv(\d)"),                       # Keras applications notop
    re.compile(r"block(\d)/layers/conv2d(?:_(\d))?/"),        # Keras 3 nested blocks (HED file)
    re.compile(r"conv(\d)_(\d)"),
)


def _h5_name(path: str) -> str | None:
    for i, pat in enumerate(_H5_PATTERNS):
        m = pat.search(path)
        if m:
            block = int(m.group(1))
            idx = int(m.group(2) or 0) + 1 if i == 1 else int(m.group(2))
            return f"conv{block}_{idx}"
    return None


def _load_h5(path: Path) -> VGGWeights:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ImpastoError(f"{path}: cannot read as HDF5 ({exc})") from None
    found: dict[str, dict[str, np.ndarray]] = {}
    with f:
        def visit(name, obj):
            if not isinstance(obj, h5py.Dataset):
                return
            conv = _h5_name(name)
            if conv is None:
                return
            arr = np.asarray(obj)
            if arr.ndim == 4 and arr.shape[:2] == (3, 3):
                found.setdefault(conv, {})["w"] = arr
            elif arr.ndim == 1:
                found.setdefault(conv, {})["b"] = arr
        f.visititems(visit)
    convs = {n: (torch.from_numpy(d["w"].transpose(3, 2, 0, 1).copy()), torch.from_numpy(d["b"].copy()))
             for n, d in found.items() if "w" in d and "b" in d}
    if not convs:
        raise ImpastoError(f"{path}: no VGG convolution layers found in this .h5 file")
    arch = _arch_for_count(len(convs), str(path))
    # Keras' VGG weights were converted from Caffe: BGR, 0..255, mean-subtracted.
    return VGGWeights(arch, _check(convs, arch, str(path)), "caffe", str(path))


# ---- tensorflow-vgg .npy (a pickled dict), read without executing arbitrary pickles -----------

class _NumpyOnlyUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
        ("copyreg", "_reconstructor"), ("builtins", "object"),
    }

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a weights file")
        return super().find_class(module, name)


def _load_npy(path: Path) -> VGGWeights:
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                           else np.lib.format.read_array_header_2_0)
            shape, _, dtype = read_header(f)
            if not dtype.hasobject:
                raise ImpastoError(f"{path}: a plain array, not a dict of VGG layers")
            obj = _NumpyOnlyUnpickler(f, encoding="latin1").load()
    except ImpastoError:
        raise
    except Exception as exc:
        raise ImpastoError(f"{path}: cannot read as a tensorflow-vgg .npy ({exc})") from None
    if isinstance(obj, np.ndarray) and obj.dtype == object and obj.shape == ():
        obj = obj.item()
    if not isinstance(obj, dict):
        raise ImpastoError(f"{path}: expected a dict of layer name -> [W, b]")
    convs = {}
    for name, pair in obj.items():
        name = name.decode() if isinstance(name, bytes) else str(name)
        if re.fullmatch(r"conv\d_\d", name):
            w, b = pair[0], pair[1]
            convs[name] = (torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))).float(),
                           torch.from_numpy(np.asarray(b)).float())
    if not convs:
        raise ImpastoError(f"{path}: no convB_I layers in this .npy file")
    arch = _arch_for_count(len(convs), str(path))
    # tensorflow-vgg converts Caffe weights and feeds BGR 0..255 minus the mean.
    return VGGWeights(arch, _check(convs, arch, str(path)), "caffe", str(path))


# ---- torchvision download --------------------------------------------------------------------

def _online(host: str = "download.pytorch.org", timeout: float = 3.0) -> bool:
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _load_torchvision(arch: str) -> VGGWeights:
    enum = {"vgg16": torchvision.models.VGG16_Weights.IMAGENET1K_V1,
            "vgg19": torchvision.models.VGG19_Weights.IMAGENET1K_V1}[arch]
    cached = Path(torch.hub.get_dir()) / "checkpoints" / Path(enum.url).name
    if not cached.exists() and not _online():
        raise ImpastoError(f"no VGG weights: torchvision's {arch} weights are not cached and "
                           f"the download site cannot be reached; {HOW_TO_SUPPLY}")
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)  # a stalled download must fail, not hang forever
    try:
        state = enum.get_state_dict(progress=True)
    except Exception as exc:
        raise ImpastoError(f"downloading torchvision's {arch} weights failed ({exc}); {HOW_TO_SUPPLY}") from None
    finally:
        socket.setdefaulttimeout(old)
    w = _from_state_dict(state, f"torchvision:{arch}", "torchvision")
    return w


# ---- entry point ------------------------------------------------------------------------------

LOADERS = {".pth": _load_pth, ".pt": _load_pth, ".bin": _load_pth, ".safetensors": _load_safetensors,
           ".h5": _load_h5, ".hdf5": _load_h5, ".npy": _load_npy}


@functools.lru_cache(maxsize=4)
def _load_cached(spec: str, arch: str, mtime: float) -> VGGWeights:
    if spec == "torchvision":
        return _load_torchvision(arch)
    path = Path(spec)
    loader = LOADERS.get("".join(path.suffixes[-1:]).lower())
    if loader is None:
        raise ImpastoError(f"{path}: unknown weights format; use one of {', '.join(sorted(LOADERS))}")
    return loader(path)


def resolve_spec(spec: str | None) -> str:
    """The weights the user asked for: the option, else the environment, else torchvision."""
    spec = spec or os.environ.get(ENV_VAR) or "torchvision"
    return spec


def load_vgg_weights(spec: str | None = None, arch: str = "vgg19") -> VGGWeights:
    """Load VGG convolution weights. `arch` applies to torchvision; files carry their own."""
    spec = resolve_spec(spec)
    if arch not in BLOCKS:
        raise ImpastoError(f"unknown VGG architecture {arch!r}; use vgg16 or vgg19")
    if spec != "torchvision":
        path = Path(spec).expanduser()
        if not path.is_file():
            raise ImpastoError(f"VGG weights file {spec} does not exist; {HOW_TO_SUPPLY}")
        return _load_cached(str(path.resolve()), arch, path.stat().st_mtime)
    return _load_cached(spec, arch, 0.0)
