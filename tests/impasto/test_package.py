"""The distribution: a built wheel installs into a fresh venv as `impasto` with its subpackages,
and nothing with a generic name (models, training, ...) lands in site-packages."""

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from helpers import REPO


@pytest.mark.slow
def test_wheel_installs_and_imports(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(wheels)], check=True, timeout=300)
    wheel = next(wheels.glob("impasto-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"impasto"}
    for sub in ("models", "models/zoo", "training", "training/fast", "training/iterative", "export", "serve",
                "compare", "video", "commands"):
        assert f"impasto/{sub}/__init__.py" in names
    assert "impasto/models/zoo/candy.style.jpg" in names   # what compare needs, away from the checkout

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # the heavy dependencies come from the test's own environment; impasto only from the wheel
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    with zipfile.ZipFile(wheel) as zf:
        zf.extractall(site)
    code = ("import impasto, impasto.models, impasto.training.iterative.optimize, impasto.compare.photo, "
            "impasto.video.frames, impasto.cli; "
            "print(impasto.__file__); print(impasto.models.__file__)")
    out = subprocess.run([str(py), "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert all(line.startswith(site) for line in out.stdout.split())
    assert not (Path(site) / "models").exists() and not (Path(site) / "training").exists()


@pytest.mark.slow
def test_cli_help_teaches_and_starts_without_torch():
    code = ("import sys; from impasto.cli import build_parser; build_parser(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
    helptext = subprocess.run([sys.executable, "-m", "impasto.cli", "--help"], capture_output=True,
                              text=True, timeout=60).stdout
    assert "optimize" in helptext and "impasto stylize" in helptext


def test_semantic_matching_rules_named_in_the_cli_match_the_losses():
    from impasto.commands import semantic
    from impasto.models import semantic_losses
    assert semantic.MATCHING_RULES == semantic_losses.MATCHING_RULES
