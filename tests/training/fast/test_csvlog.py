"""metrics.csv across kills and resumes (issue 15): training.fast.csvlog wired into `impasto train`."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time

import pytest

from helpers import REPO, cli


@pytest.mark.slow
def test_resume_keeps_every_metrics_row_once(data, tmp_path, weights_path):
    """Kill a training run (SIGKILL), resume it, resume the finished run again: every step's
    training row is in csv/metrics.csv exactly once."""
    photos = tmp_path / "photos"
    photos.mkdir()
    for p in sorted((data / "coco_sample").glob("*.jpg"))[:10]:
        (photos / p.name).write_bytes(p.read_bytes())
    run = tmp_path / "run"

    def args(steps, *extra):
        return ["train", "--model.style_image", str(data / "style" / "candy.jpg"), "--model.style_name", "tiny",
                "--model.style_size", "64", "--data.source", str(photos), "--data.holdout", "2",
                "--data.image_size", "64", "--data.batch_size", "2", "--trainer.max_steps", str(steps),
                "--trainer.precision", "32-true", "--trainer.val_check_interval", "4",
                "--trainer.log_every_n_steps", "1", "--trainer.enable_progress_bar", "false",
                "--trainer.enable_model_summary", "false", "--run_dir", str(run), "--save_every_n_steps", "3",
                "--threads", "1", *extra]

    def steps() -> list[int]:
        path = run / "csv" / "metrics.csv"
        if not path.exists():
            return []
        return [int(r["step"]) for r in csv.DictReader(open(path)) if r.get("train/loss")]

    proc = subprocess.Popen([sys.executable, "-m", "impasto.cli", *args(1000)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if (run / "checkpoints" / "last.ckpt").exists() and max(steps(), default=0) >= 7:
            break
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read()[-2000:]
    proc.kill()
    proc.wait(60)
    proc.stderr.close()
    logged = steps()
    assert len(logged) == len(set(logged)) and max(logged) >= 7

    env = {**os.environ, "HF_DATASETS_OFFLINE": "1"}
    r = cli(*args(14, "--resume", "last"), env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(steps()) == list(range(14)), steps()
    r = cli(*args(14, "--resume", "last"), env=env)  # resuming a finished run keeps the history
    assert r.returncode == 0, r.stderr[-3000:]
    assert sorted(steps()) == list(range(14)), steps()
