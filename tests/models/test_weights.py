"""VGG weight sources: every supported file layout loads to the same network."""

import os
import pickle
import subprocess
import sys

import h5py
import numpy as np
import pytest
import torch

from impasto.errors import ImpastoError
from impasto.models.vgg import VGGEncoder, layer_names
from impasto.models.weights import VGGWeights, load_vgg_weights

LAYERS = ["relu1_1", "relu2_2", "relu3_3", "relu4_2", "relu5_1"]


@pytest.fixture(scope="module")
def probe():
    torch.manual_seed(0)
    return torch.rand(1, 3, 40, 48)


def _activations(weights, x):
    with torch.no_grad():
        return VGGEncoder(weights, LAYERS)(x)


def _assert_same(a, b):
    for n in LAYERS:
        assert torch.allclose(a[n], b[n], rtol=1e-4, atol=1e-3), n


def test_real_hed_weights_give_a_trained_vgg16(vgg_weights, probe):
    assert vgg_weights.arch == "vgg16" and vgg_weights.preprocessing == "caffe"
    assert set(vgg_weights.convs) == {n for n in layer_names("vgg16") if n.startswith("conv")}
    # trained first-layer filters are far from zero-mean noise: colour blobs with large biases
    w, b = vgg_weights.convs["conv1_1"]
    assert w.shape == (64, 3, 3, 3) and w.abs().mean() > 0.05
    feats = _activations(vgg_weights, probe)
    assert feats["relu5_1"].shape == (1, 512, 2, 3)


def test_keras_notop_layout_matches(vgg_weights, probe, tmp_path):
    """The standard Keras applications file: block1_conv1/block1_conv1_W_1:0 ... (kH, kW, in, out)."""
    path = tmp_path / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
    with h5py.File(path, "w") as f:
        for name, (w, b) in vgg_weights.convs.items():
            block, idx = name[4], name[6]
            g = f.create_group(f"block{block}_conv{idx}")
            g.create_dataset(f"block{block}_conv{idx}_W_1:0", data=w.permute(2, 3, 1, 0).numpy())
            g.create_dataset(f"block{block}_conv{idx}_b_1:0", data=b.numpy())
    loaded = load_vgg_weights(str(path))
    assert loaded.preprocessing == "caffe"
    _assert_same(_activations(loaded, probe), _activations(vgg_weights, probe))


def test_tensorflow_vgg_npy_matches(vgg_weights, probe, tmp_path):
    path = tmp_path / "vgg16.npy"
    d = {n: [w.permute(2, 3, 1, 0).numpy(), b.numpy()] for n, (w, b) in vgg_weights.convs.items()}
    d["fc6"] = [np.zeros((4, 4), np.float32), np.zeros(4, np.float32)]  # ignored
    np.save(path, d, allow_pickle=True)
    loaded = load_vgg_weights(str(path))
    _assert_same(_activations(loaded, probe), _activations(vgg_weights, probe))


def _as_torchvision(w: VGGWeights) -> VGGWeights:
    return VGGWeights(w.arch, w.convs, "torchvision", w.source)


def test_torchvision_state_dicts_match(vgg_weights, probe, tmp_path):
    from safetensors.torch import save_file
    index = {n: i for i, n in enumerate(layer_names("vgg16"))}
    state = {}
    for name, (w, b) in vgg_weights.convs.items():
        state[f"features.{index[name]}.weight"] = w.clone()
        state[f"features.{index[name]}.bias"] = b.clone()
    state["classifier.0.weight"] = torch.zeros(4, 4)  # a full VGG checkpoint: the head is ignored
    torch.save(state, tmp_path / "vgg16.pth")
    save_file(state, str(tmp_path / "vgg16.safetensors"))
    expected = _activations(_as_torchvision(vgg_weights), probe)
    for name in ("vgg16.pth", "vgg16.safetensors"):
        loaded = load_vgg_weights(str(tmp_path / name))
        assert loaded.preprocessing == "torchvision"
        _assert_same(_activations(loaded, probe), expected)


def test_vgg19_is_recognised_from_a_file(tmp_path, probe):
    torch.manual_seed(1)
    d, cin = {}, 3
    for name in (n for n in layer_names("vgg19") if n.startswith("conv")):
        cout = {"1": 64, "2": 128, "3": 256, "4": 512, "5": 512}[name[4]]
        d[name] = [np.random.randn(3, 3, cin, cout).astype(np.float32) * 0.05, np.zeros(cout, np.float32)]
        cin = cout
    np.save(tmp_path / "vgg19.npy", d, allow_pickle=True)
    w = load_vgg_weights(str(tmp_path / "vgg19.npy"))
    assert w.arch == "vgg19"
    out = VGGEncoder(w, ["relu5_4"])(probe)
    assert out["relu5_4"].shape[1] == 512


def test_npy_refuses_code_in_the_pickle(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))
    path = tmp_path / "evil.npy"
    np.save(path, np.array({"conv1_1": Evil()}, dtype=object), allow_pickle=True)
    with pytest.raises(ImpastoError, match="refusing|cannot read"):
        load_vgg_weights(str(path))


def test_bad_weight_files_get_clear_errors(tmp_path):
    with pytest.raises(ImpastoError, match="does not exist"):
        load_vgg_weights(str(tmp_path / "nothing.h5"))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(ImpastoError, match="HDF5"):
        load_vgg_weights(str(junk))
    odd = tmp_path / "weights.xyz"
    odd.write_bytes(b"x")
    with pytest.raises(ImpastoError, match="unknown weights format"):
        load_vgg_weights(str(odd))
    partial = tmp_path / "partial.pth"
    torch.save({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)}, partial)
    with pytest.raises(ImpastoError, match="convolution layers"):
        load_vgg_weights(str(partial))


@pytest.mark.slow
def test_offline_without_weights_fails_fast_with_advice(tmp_path):
    """No file configured and no cached download: a clear error, quickly, never a hang."""
    from impasto.models.weights import _online
    if _online():
        pytest.skip("this machine can reach the download site")
    env = dict(os.environ, TORCH_HOME=str(tmp_path), IMPASTO_VGG_WEIGHTS="")
    # Timed from after the imports: torch's import alone can take half a minute on a loaded machine.
    code = ("import sys, time\nfrom impasto.models.weights import load_vgg_weights\nstart = time.monotonic()\n"
            "try:\n    load_vgg_weights(None)\n"
            "finally:\n    print(f'elapsed {time.monotonic() - start:.1f}', file=sys.stderr)")
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    elapsed = float(proc.stderr.rsplit("elapsed ", 1)[1].split()[0])
    assert elapsed < 20, proc.stderr
    assert proc.returncode != 0
    assert "--vgg-weights" in proc.stderr and "IMPASTO_VGG_WEIGHTS" in proc.stderr
