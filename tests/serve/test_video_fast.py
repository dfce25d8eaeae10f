"""The fast path on a video: a real ONNX network in onnxruntime, frame by frame, with the temporal
smoother; the CLI's video branch."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from impasto import video
from impasto.errors import ImpastoError
from impasto.video import flicker

from helpers import FPS, H, N, W, frame_times


def test_fast_video_keeps_count_size_rate_audio_and_smoothing_halves_flicker(tmp_path, clip, engine):
    from impasto.serve.video import stylize_video
    smooth = stylize_video(clip, tmp_path / "smooth.mp4", engine, progress=False)
    plain = stylize_video(clip, tmp_path / "plain.mp4", engine, temporal=False, progress=False)
    for result in (smooth, plain):
        info = video.probe(result.output)
        assert (info.width, info.height, info.fps, result.frames) == (W, H, FPS, N)
        assert len(list(video.read_frames(result.output))) == N
        assert frame_times(result.output) == frame_times(clip)
        assert info.audio_codec == "aac" and result.audio
    # The same per-frame stylisation, measured during the run: smoothing cuts flicker by > 2x,
    # both ways.
    assert plain.flicker.abs == pytest.approx(smooth.flicker_raw.abs, rel=1e-4)
    assert plain.flicker.sq == pytest.approx(smooth.flicker_raw.sq, rel=1e-4)
    assert smooth.flicker.abs * 2 < plain.flicker.abs and smooth.flicker.sq * 2 < plain.flicker.sq
    # ...and measured afterwards from the written files, as `impasto compare` would.
    measure = lambda out: flicker.video_temporal_error(video.read_frames(clip), video.read_frames(out))  # noqa: E731
    assert measure(smooth.output).abs * 2 < measure(plain.output).abs


@pytest.mark.slow
def test_cli_stylize_video(tmp_path, clip, model):
    out = tmp_path / "cli.webm"
    proc = subprocess.run([sys.executable, "-m", "impasto.cli", "stylize", str(clip), "--style", str(model),
                           "--backend", "ort", "--size", "48", "--temporal-strength", "0.5", "-q", "-o", str(out)],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "flicker" in proc.stdout
    info = video.probe(out)
    assert (info.width, info.height, info.fps) == (48, 32, FPS)
    assert len(list(video.read_frames(out))) == N


@pytest.mark.slow
def test_cli_paints_a_video_with_the_style_s_video_network_when_one_is_bundled(tmp_path, clip, model, style_models):
    import shutil
    folder = tmp_path / "zoo"
    folder.mkdir()
    shutil.copy(model, folder / "tiny.onnx")
    run = lambda *extra: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "impasto.cli", "stylize", str(clip), "--style", "tiny", "--models", str(folder),
         "--backend", "ort", "--size", "48", "--max-frames", "2", "--no-flicker", *extra,
         "-o", str(tmp_path / "out.mp4")], capture_output=True, text=True, timeout=120)
    alone = run()
    assert alone.returncode == 0 and "style tiny (" in alone.stdout, alone.stderr
    shutil.copy(style_models / "alpha.onnx", folder / "tiny.video.onnx")
    video_net, photo_net = run(), run("--photo-network")
    assert video_net.returncode == 0 and "style tiny.video (" in video_net.stdout, video_net.stderr
    assert photo_net.returncode == 0 and "style tiny (" in photo_net.stdout, photo_net.stderr
    listed = subprocess.run([sys.executable, "-m", "impasto.cli", "styles", "--models", str(folder), "--json"],
                            capture_output=True, text=True, timeout=60)
    styles = json.loads(listed.stdout)   # the video network is a variant, not a style of its own
    assert [(s["name"], s["video"]) for s in styles] == [("tiny", "tiny.video.onnx")]


@pytest.mark.slow
def test_cli_bad_video_exits_2_without_traceback(tmp_path, model):
    bad = tmp_path / "broken.mov"
    bad.write_bytes(b"\x00\x00\x00\x18ftypqt  " + bytes(200))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    for src in (bad, empty):
        proc = subprocess.run([sys.executable, "-m", "impasto.cli", "stylize", str(src), "--style", str(model),
                               "-o", str(tmp_path / "out.mp4")], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 2
        assert "Traceback" not in proc.stderr and "error:" in proc.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_ctrl_c_keeps_the_frames_done(tmp_path, clip, engine):
    from impasto.serve.stylize import stylize_array
    from impasto.video.frames import process_video
    calls = []

    def paint(image):
        if len(calls) == 5:
            raise KeyboardInterrupt
        calls.append(1)
        return stylize_array(engine, image)

    result = process_video(clip, tmp_path / "partial.mp4", paint, progress=False)
    assert result.interrupted and result.frames == 5
    preview = process_video(clip, tmp_path / "preview.mp4", lambda im: stylize_array(engine, im), max_frames=3,
                            progress=False)
    assert preview.frames == 3 and len(list(video.read_frames(preview.output))) == 3
    info = video.probe(result.output)
    assert len(list(video.read_frames(result.output))) == 5 and info.audio_codec == "aac"
    assert info.duration < 6.5 / 12   # the audio stops with the video


def test_parallax_clip_with_occlusions(tmp_path, parallax_clip, engine):
    """The clip real video resembles: layers at different speeds and an object crossing in front."""
    from impasto.serve.video import stylize_video
    source = parallax_clip.write(tmp_path / "parallax.mp4")
    info = video.probe(source)
    result = stylize_video(source, tmp_path / "styled.mp4", engine, max_side=128, max_frames=12, progress=False)
    out = video.probe(result.output)
    assert result.frames == 12 == len(list(video.read_frames(result.output)))
    assert out.fps == info.fps and max(out.width, out.height) == 128
    assert result.flicker.abs < result.flicker_raw.abs and result.flicker.sq < result.flicker_raw.sq


def _smoothed_and_per_frame(clip, engine):
    from impasto.serve.stylize import stylize_array
    from impasto.serve.video import TemporalSmoother
    raw = [stylize_array(engine, f) for f in clip.frames]
    smoother = TemporalSmoother()
    return [smoother(f, s) for f, s in zip(clip.frames, raw)], raw


def test_smoothing_halves_what_a_viewer_sees_on_a_known_pan(pan_clip, bundled_engine):
    """Flicker once the known pan is undone (the true flow): mean absolute change <= 0.5x."""
    smooth, raw = _smoothed_and_per_frame(pan_clip, bundled_engine)
    smoothed, per_frame = (flicker.temporal_error(x, pan_clip.pairs) for x in (smooth, raw))
    assert smoothed.abs <= 0.5 * per_frame.abs and smoothed.sq <= 0.5 * per_frame.sq


def test_smoothing_leaves_no_trails_behind_a_moving_object(parallax_clip, bundled_engine):
    """Where the object is or was a frame ago, the smoothed video changes no more than per frame."""
    smooth, raw = _smoothed_and_per_frame(parallax_clip, bundled_engine)
    region = parallax_clip.region(2)
    smoothed, per_frame = (flicker.temporal_error(x, parallax_clip.pairs, regions=region) for x in (smooth, raw))
    assert smoothed.abs <= 1.0 * per_frame.abs


@pytest.mark.slow
def test_fast_video_path_runs_without_torch(tmp_path, clip, model):
    code = ("import sys; sys.modules['torch'] = None\n"
            "from impasto.serve.runtime import load_engine\n"
            "from impasto.serve.video import stylize_video\n"
            f"r = stylize_video({str(clip)!r}, {str(tmp_path / 'nt.mp4')!r}, load_engine({str(model)!r}, 'ort'),"
            " progress=False)\n"
            "assert r.frames == 8 and r.flicker is not None\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_temporal_strength_is_checked(tmp_path, clip, engine):
    from impasto.serve.video import stylize_video
    with pytest.raises(ImpastoError, match="between 0 and 1"):
        stylize_video(clip, tmp_path / "x.mp4", engine, strength=1.5, progress=False)
