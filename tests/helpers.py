"""What several test folders share: the repository root, a training checkpoint of a real (freshly
initialised) network, the shared photos, the HTTP server as a real process, and a short video clip
synthesised from a real photo (panned and zoomed, with noise and an AAC audio track)."""

from __future__ import annotations

import contextlib
import os
import signal
import shutil
import socket
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import av
import cv2
import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]


def default_sigint() -> None:
    """`preexec_fn` for a child that a test sends Ctrl-C: as from a terminal. A test run started
    in the background (`cmd &` without job control) ignores SIGINT, its children inherit that,
    and Python then never raises KeyboardInterrupt."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
        if getattr(net, "skip", None) is not None:   # the photo's path too (it starts at zero)
            net.skip.weight.normal_(0.0, 1.0)
    meta = {"style": style, "arch": arch, "style_image": "painting.jpg", "steps": 0,
            "config_hash": "0123abcd", "loss_terms": {}, "wall_time_s": 0.0, **extra_meta}
    torch.save({"impasto": meta, "state_dict": {"net." + k: v for k, v in net.state_dict().items()}}, path)
    return path


def _photos(data: Path) -> list[Path]:
    return sorted((data / "content").glob("*.jpg"))


def photos_in(data: Path) -> list[Path]:
    return sorted((data / "content").glob("*.jpg"))


def coco_photos(data: Path, folder: Path, n: int) -> Path:
    """The first n photos of the shared COCO sample, copied into folder."""
    for p in sorted((data / "coco_sample").glob("*.jpg"))[:n]:
        shutil.copy(p, folder / p.name)
    return folder


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


# ----------------------------------------------------------------------------- a video clip

W, H, N, FPS = 96, 64, 8, Fraction(12)


def clip_frames(photo: np.ndarray, n: int, w: int, h: int, seed: int = 0):
    """Camera moving right and down while zooming in, with a little noise."""
    rng = np.random.default_rng(seed)
    ph, pw = photo.shape[:2]
    for i in range(n):
        z = 1.0 + 0.012 * i
        cx, cy = pw * 0.45 + 1.5 * i, ph * 0.45 + 0.8 * i
        # output pixel (u, v) samples the photo at (cx + (u - w/2) / z, cy + (v - h/2) / z)
        m = np.array([[1 / z, 0, cx - w / 2 / z], [0, 1 / z, cy - h / 2 / z]], np.float32)
        frame = cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_CUBIC | cv2.WARP_INVERSE_MAP)
        yield np.clip(frame + rng.normal(0, 0.01, frame.shape), 0, 1).astype(np.float32)


def write_clip(path, photo, n=N, w=W, h=H, fps=FPS, audio=True):
    """Written with PyAV directly (not impasto's writer), with a 440 Hz AAC track."""
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "12"}
        if audio:
            aus = out.add_stream("aac", rate=44100)
            aus.layout = "mono"
        for frame in clip_frames(photo, n, w, h):
            rgb = (frame * 255 + 0.5).astype(np.uint8)
            for packet in vs.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if audio:
            rate = 44100
            t = np.arange(int(rate * n / fps)) / rate
            samples = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None]
            for k in range(0, samples.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples[:, k:k + 1024]), format="fltp",
                                                   layout="mono")
                frame.sample_rate, frame.pts = rate, k
                for packet in aus.encode(frame):
                    out.mux(packet)
            for packet in aus.encode():
                out.mux(packet)
    return path


def frame_times(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [round(float(f.pts * s.time_base), 4) for f in c.decode(s)]


# ----------------------------------------------------------------------------- hostile inputs (issue 15)

def cli(*args, timeout=300, **kw):
    """`impasto ARGS` in a subprocess, from the repository root."""
    return subprocess.run([sys.executable, "-m", "impasto.cli", *args], capture_output=True, text=True,
                          cwd=REPO, timeout=timeout, **kw)


def one_line_error(r, rc: int = 2) -> str:
    assert r.returncode == rc, (r.returncode, r.stderr[-2000:])
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, r.stderr[-2000:]
    assert "Traceback" not in r.stderr and "error:" in lines[0]
    return lines[0]


def make_multi_checkpoint(path: Path, styles=("red", "blue"), arch: str = "slim", seed: int = 0) -> Path:
    """A multi-style checkpoint (`impasto train-multi`'s format) of a freshly initialised network
    whose styles differ clearly: each style's norms get their own random scale and shift."""
    import torch
    from impasto.models.transformer import MultiStyleTransformerNet
    torch.manual_seed(seed)
    net = MultiStyleTransformerNet(arch, len(styles))
    with torch.no_grad():
        for norm in net.norms():
            norm.weight.uniform_(0.3, 2.0)
            norm.bias.uniform_(-0.8, 0.8)
    meta = {"style": "multi", "styles": list(styles), "style_images": [f"{s}.jpg" for s in styles],
            "arch": arch, "style_image": "", "steps": 0, "config_hash": "0123abcd", "loss_terms": {},
            "wall_time_s": 0.0}
    torch.save({"impasto": meta, "state_dict": {"net." + k: v for k, v in net.state_dict().items()}}, path)
    return path
