"""What several test folders share: the repository root, a training checkpoint of a real (freshly
initialised) network, the shared photos, and the HTTP server as a real process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def make_checkpoint(path: Path, arch: str = "slim", style: str = "testing", seed: int = 0,
                    **extra_meta) -> Path:
    """A checkpoint in the training side's format, of a freshly initialised (real) network."""
    import torch
    from impasto.models.transformer import TransformerNet
    torch.manual_seed(seed)
    net = TransformerNet(arch)
    # Give the instance norms non-trivial affine parameters so that outputs carry structure.
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.InstanceNorm2d):
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    meta = {"style": style, "arch": arch, "style_image": "painting.jpg", "steps": 0,
            "config_hash": "0123abcd", "loss_terms": {}, "wall_time_s": 0.0, **extra_meta}
    torch.save({"impasto": meta, "state_dict": {"net." + k: v for k, v in net.state_dict().items()}}, path)
    return path


def _photos(data: Path) -> list[Path]:
    return sorted((data / "content").glob("*.jpg"))


def photos_in(data: Path) -> list[Path]:
    return sorted((data / "content").glob("*.jpg"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, models: Path, *extra: str, env: dict | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(models.parent / f"server-{self.port}.log", "w+")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "impasto.cli", "serve", "--port", str(self.port), "--models", str(models),
             *extra], stdout=self.log, stderr=subprocess.STDOUT, cwd=REPO,
            env={**os.environ, **(env or {})})
        deadline = time.time() + 120
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.output()}")
            with contextlib.suppress(httpx.HTTPError):  # not listening yet
                if httpx.get(self.url + "/healthz", timeout=2).status_code == 200:
                    return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not become healthy:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode
