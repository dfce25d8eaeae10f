"""The iterative path on a video: each frame optimised from the warped previous result, with the
temporal loss (real VGG)."""

from __future__ import annotations

import pytest

from impasto import video

from helpers import FPS, write_clip


@pytest.mark.slow
def test_iterative_video_temporal_loss_reduces_flicker(tmp_path, photo, weights_path, data, one_thread):
    from impasto import images
    from impasto.training.iterative.optimize import OptimizeConfig
    from impasto.training.iterative.video import stylize_video
    short = write_clip(tmp_path / "short.mp4", photo, n=4, w=64, h=48, audio=False)
    style = images.load(data / "style" / "starry_night.jpg", max_side=96)
    config = OptimizeConfig(iterations=8, size=64, vgg_weights=weights_path, style_weight=1e-3)
    on = stylize_video(short, tmp_path / "on.mp4", [style], config, progress=False)
    off = stylize_video(short, tmp_path / "off.mp4", [style], config, temporal=False, progress=False)
    for result in (on, off):
        info = video.probe(result.output)
        assert (info.width, info.height, info.fps, result.frames) == (64, 48, FPS, 4)
    assert on.flicker.sq * 2 < off.flicker.sq and on.flicker.abs * 1.5 < off.flicker.abs


@pytest.mark.slow
def test_cli_optimize_video(tmp_path, photo, weights_path, data, one_thread):
    from impasto.cli import main
    short = write_clip(tmp_path / "short.mov", photo, n=3, w=48, h=32, audio=False)
    out = tmp_path / "painted.mp4"
    code = main(["optimize", "--content", str(short), "--style", str(data / "style" / "candy.jpg"),
                 "--size", "48", "--iterations", "3", "--first-frame-iterations", "4", "--quiet",
                 "--vgg-weights", weights_path, "-o", str(out)])
    assert code == 0
    info = video.probe(out)
    assert (info.width, info.height) == (48, 32) and len(list(video.read_frames(out))) == 3
