"""Video: real codecs (PyAV), real optical flow (OpenCV DIS), a real ONNX network in onnxruntime,
and real VGG for the iterative path, on a short clip the tests synthesise from a real photo
(panned and zoomed a few pixels per frame, with sensor-like noise, and an AAC audio track)."""

from __future__ import annotations

import subprocess
import sys
from fractions import Fraction

import numpy as np
import pytest

from impasto import video
from impasto.errors import ImpastoError
from impasto.video import flicker, flow, warp

W, H, N, FPS = 96, 64, 8, Fraction(12)


def _frames(photo: np.ndarray, n: int, w: int, h: int, seed: int = 0):
    """Camera moving right and down while zooming in, with a little noise."""
    import cv2
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
    import av
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=fps)
        vs.width, vs.height, vs.pix_fmt = w, h, "yuv420p"
        vs.options = {"crf": "12"}
        if audio:
            aus = out.add_stream("aac", rate=44100)
            aus.layout = "mono"
        for frame in _frames(photo, n, w, h):
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


@pytest.fixture(scope="module")
def photo(data):
    from impasto import images
    return images.load(data / "content" / "tubingen.jpg", max_side=256)


@pytest.fixture(scope="module")
def clip(tmp_path_factory, photo):
    return write_clip(tmp_path_factory.mktemp("clip") / "clip.mp4", photo)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A randomly initialised slim transformer exported to ONNX: a real network for onnxruntime."""
    import torch
    from impasto.export.onnx_export import export_onnx
    from impasto.models.transformer import TransformerNet
    torch.manual_seed(0)
    return export_onnx(TransformerNet("slim"), tmp_path_factory.mktemp("model") / "random_slim.onnx",
                       style="random_slim")


@pytest.fixture(scope="module")
def engine(model):
    from impasto.serve.runtime import load_engine
    return load_engine(model, "ort")


def frame_times(path):
    import av
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return [round(float(f.pts * s.time_base), 4) for f in c.decode(s)]


# ----------------------------------------------------------------------------- IO

def test_probe_reads_the_header(clip):
    info = video.probe(clip)
    assert (info.width, info.height, info.fps, info.frames) == (W, H, FPS, N)
    assert info.codec == "h264" and info.audio_codec == "aac"
    frames = list(video.read_frames(clip))
    assert len(frames) == N and frames[0].shape == (H, W, 3) and frames[0].dtype == np.float32
    assert 0.0 <= frames[0].min() and frames[0].max() <= 1.0


@pytest.mark.parametrize("ext", [".mp4", ".mov", ".webm", ".mkv", ".gif"])
def test_roundtrip_keeps_frames_size_rate_and_audio(tmp_path, clip, ext):
    out = tmp_path / f"copy{ext}"
    with video.VideoReader(clip) as reader, \
            video.VideoWriter(out, reader.info, size=reader.size, audio_from=clip) as writer:
        for frame in reader:
            writer.write(frame.image, frame)
    info = video.probe(out)
    assert (info.width, info.height) == (W, H)
    assert len(list(video.read_frames(out))) == N
    if ext == ".gif":  # GIF counts time in 1/100 s: 12 fps becomes 8 cs a frame at best
        assert abs(float(info.fps) - 12) < 0.6 and info.audio_codec is None
    else:
        assert info.fps == FPS
        # Relative times (mkv shifts the whole clip by the AAC priming delay); webm counts in ms.
        got, want = frame_times(out), frame_times(clip)
        assert [t - got[0] for t in got] == pytest.approx([t - want[0] for t in want], abs=1e-3)
        assert info.audio_codec == ("opus" if ext == ".webm" else "aac")  # webm takes Opus: transcoded
    original = list(video.read_frames(clip))
    copied = list(video.read_frames(out))
    assert np.mean([np.abs(a - b).mean() for a, b in zip(original, copied)]) < 0.03


def test_reader_resizes_to_even_sides(clip):
    with video.VideoReader(clip, max_side=50) as reader:
        frames = list(reader)
    assert reader.size == (50, 34) and frames[0].image.shape == (34, 50, 3)


def test_display_rotation_is_applied(tmp_path):
    """Phones store portrait video sideways with a display matrix; frames come out upright, as
    FFmpeg's own autorotate shows them, and the output needs no matrix."""
    import av
    stored = np.zeros((64, 96, 3), np.uint8)
    stored[:8, :8] = (255, 0, 0)                     # a red mark, top left as stored
    path = tmp_path / "portrait.mp4"
    with av.open(str(path), "w") as out:
        vs = out.add_stream("libx264", rate=10)
        vs.width, vs.height, vs.pix_fmt = 96, 64, "yuv420p"
        vs.set_display_rotation(-90)                  # shown turned 90 degrees clockwise
        for _ in range(3):
            for packet in vs.encode(av.VideoFrame.from_ndarray(stored, format="rgb24")):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    info = video.probe(path)
    assert (info.width, info.height, info.rotation) == (64, 96, 270)
    frame = next(video.read_frames(path))
    ys, xs = np.nonzero(frame[..., 0] > 0.8)
    assert frame.shape == (96, 64, 3) and ys.mean() < 10 and xs.mean() > 54   # now top right
    with video.VideoReader(path, max_side=48) as reader:
        assert reader.size == (32, 48) and next(iter(reader)).image.shape == (48, 32, 3)


def test_is_video(tmp_path, clip, photo):
    from PIL import Image
    assert video.is_video(clip) and not video.is_video(tmp_path / "x.jpg")
    still = tmp_path / "still.gif"
    Image.fromarray((photo * 255).astype(np.uint8)).save(still)
    assert not video.is_video(still)  # a one-frame GIF stays an image


def test_bad_videos_raise_clear_errors(tmp_path, clip):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video\n" * 50)
    data = clip.read_bytes()
    truncated = tmp_path / "truncated.mp4"   # the index (moov) is at the end: all of it is lost
    truncated.write_bytes(data[: len(data) // 2])
    for path, words in [(empty, "empty"), (text, "not a video"), (truncated, "not a video"),
                        (tmp_path / "missing.mp4", "no such file")]:
        with pytest.raises(ImpastoError, match=words):
            list(video.read_frames(path))
    with pytest.raises(ImpastoError, match="unknown video extension"):
        video.check_output(tmp_path / "out.xyz")


def test_writer_leaves_nothing_on_failure(tmp_path, clip):
    out = tmp_path / "out.mp4"
    info = video.probe(clip)
    with pytest.raises(RuntimeError):
        with video.VideoWriter(out, info) as writer:
            writer.write(np.zeros((H, W, 3), np.float32))
            raise RuntimeError("painter crashed")
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- flow and metric

def test_flow_recovers_a_known_shift(photo):
    a = photo[40:104, 40:136]
    b = photo[43:107, 35:131]          # b(y, x) = a(y + 3, x - 5): backward flow (-5, +3)
    pair = flow.flow_pair(a, b)
    inner = pair.flow[8:-8, 8:-8].reshape(-1, 2)
    assert np.allclose(np.median(inner, axis=0), [-5, 3], atol=0.3)
    assert pair.mask[:, :4].mean() < 0.2          # left edge came from outside frame a
    assert pair.reliable_fraction > 0.8
    warped = warp.warp(a, pair.flow)
    assert flicker.pair_error(a, b, pair) < 0.2 * np.mean((a - b) ** 2)
    assert np.abs(warped - b)[8:-8, 8:-8].mean() < 0.03


def test_temporal_error_plain_function(photo):
    frames = list(_frames(photo, 4, W, H))
    with pytest.raises(ImpastoError, match="needs the flows"):
        flicker.temporal_error(frames)
    assert flicker.temporal_error([frames[0]] * 3, inputs=[frames[0]] * 3) == pytest.approx(0.0, abs=1e-9)
    moving = flicker.temporal_error(frames, inputs=frames)
    zero_flows = [np.zeros((H, W, 2), np.float32)] * 3
    unaligned = flicker.temporal_error(frames, zero_flows, [np.ones((H, W), np.float32)] * 3)
    assert moving < 0.5 * unaligned           # the flow explains most of the motion
    pairs = [flow.flow_pair(frames[i - 1], frames[i]) for i in range(1, 4)]
    assert flicker.temporal_error(frames, pairs) == pytest.approx(moving)
    with pytest.raises(ImpastoError):
        flicker.temporal_error(frames, zero_flows[:2])


# ----------------------------------------------------------------------------- fast path

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
    # The same per-frame stylisation, measured during the run: smoothing cuts flicker by > 2x.
    assert plain.flicker == pytest.approx(smooth.flicker_raw, rel=1e-4)
    assert smooth.flicker * 2 < plain.flicker
    # ...and measured afterwards from the written files, as `impasto compare` would.
    measure = lambda out: flicker.video_temporal_error(video.read_frames(clip), video.read_frames(out))  # noqa: E731
    assert measure(smooth.output) * 2 < measure(plain.output)


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


def test_real_clip_if_available(tmp_path, data, engine):
    """A real clip, when the shared data has one (none ships today): the first 12 frames."""
    from impasto.serve.video import stylize_video
    clips = sorted(p for p in data.rglob("*") if p.suffix.lower() in (".mp4", ".mov", ".webm", ".mkv", ".avi"))
    if not clips:
        pytest.skip("no real video clip in the shared data")
    source = clips[0]
    info = video.probe(source)
    result = stylize_video(source, tmp_path / "real.mp4", engine, max_side=128, max_frames=12, progress=False)
    out = video.probe(result.output)
    assert 1 <= result.frames <= 12 and result.frames == len(list(video.read_frames(result.output)))
    assert out.fps == info.fps and max(out.width, out.height) == 128
    if result.flicker_raw:
        assert result.flicker < result.flicker_raw


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


# ----------------------------------------------------------------------------- iterative path

@pytest.fixture
def one_thread():
    """Frames of 64 px gain nothing from threads, and on a busy 2-core machine OpenMP's
    spinning threads slow the optimiser down many times over; restored afterwards."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


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
    assert on.flicker * 2 < off.flicker


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


@pytest.mark.slow
def test_compare_on_a_video_reports_flicker_speed_and_loss_for_each_run(tmp_path, clip, weights_path, data,
                                                                         one_thread):
    import csv
    import json
    import re

    from impasto.cli import main
    from impasto.serve.runtime import load_engine
    from impasto.serve.stylize import run_network
    from impasto.serve.zoo import resolve_style
    from impasto.compare.metrics import evaluate
    from impasto.compare.objective import build_fast_objective, training_params
    from impasto.models.zoo.card import load_card
    out = tmp_path / "report"
    style = data / "style" / "candy.jpg"
    code = main(["compare", "--style", "candy", "--content", str(clip), "-o", str(out), "--size", "64",
                 "--max-frames", "5", "--iterations", "5", "--first-frame-iterations", "8",
                 "--style-image", str(style), "--vgg-weights", weights_path, "--quiet"])
    assert code == 0
    report = json.loads((out / "metrics.json").read_text())
    runs = {r["name"]: r for r in report["runs"]}
    assert list(runs) == ["fast, per frame", "fast + temporal", "iterative, per frame", "iterative + temporal"]
    for r in runs.values():
        info = video.probe(out / r["file"])
        assert (r["frames"], info.width, info.height, info.fps) == (5, r["width"], r["height"], FPS)
        assert len(r["flicker_per_pair"]) == 4 and len(r["loss_per_frame"]) == 5 and r["frames_per_second"] > 0
        assert r["flicker"] == pytest.approx(np.mean(r["flicker_per_pair"]))
    # Temporal consistency shows in the numbers, for both paths.
    assert runs["fast + temporal"]["flicker"] * 2 < runs["fast, per frame"]["flicker"]
    assert runs["iterative + temporal"]["flicker"] * 1.5 < runs["iterative, per frame"]["flicker"]
    assert 0 < report["input_flicker"] < runs["fast, per frame"]["flicker"]

    # The loss of a frame is the fast model's objective on it, computed directly.
    model = resolve_style("candy")
    objective = build_fast_objective(training_params(load_card(model)), style, weights_path)
    first = next(iter(video.read_frames(clip, 64)))
    direct = evaluate(objective.loss, run_network(load_engine(model, "ort"), first), first)
    assert runs["fast, per frame"]["loss_per_frame"][0]["total"] == pytest.approx(direct["total"], rel=1e-3)

    page = (out / "index.html").read_text()
    refs = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert {r["file"] for r in runs.values()} <= set(refs) and "plots/video.png" in refs
    for ref in refs:
        assert (out / ref).is_file(), f"{ref} is referenced but missing"
    with open(out / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 * 5 and all(np.isfinite(float(r["total"])) for r in rows)


@pytest.mark.parametrize("extra, message", [
    (["--max-frames", "1"], "at least 2"),
    (["--temporal-strength", "1.5"], "--temporal-strength"),
    (["--model", "other.onnx"], "one fast model"),
])
def test_compare_video_bad_options_exit_2(tmp_path, clip, capsys, extra, message):
    from impasto.cli import main
    assert main(["compare", "--style", "candy", "--content", str(clip), "-o", str(tmp_path / "r"), *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
