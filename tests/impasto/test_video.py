"""Video I/O (real codecs through PyAV), optical flow (OpenCV DIS), warping and the flicker metric,
on a short clip synthesised from a real photo (tests/helpers.py)."""

from __future__ import annotations

import numpy as np
import pytest

from impasto import video
from impasto.errors import ImpastoError
from impasto.video import flicker, flow, warp

from helpers import FPS, H, N, W, clip_frames, frame_times


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
    error = flicker.pair_error(a, b, pair)
    assert error.sq < 0.2 * np.mean(((a - b) * 255) ** 2) and error.abs < 0.4 * np.abs(a - b).mean() * 255
    assert np.abs(warped - b)[8:-8, 8:-8].mean() < 0.03


def test_temporal_error_plain_function(photo):
    frames = list(clip_frames(photo, 4, W, H))
    with pytest.raises(ImpastoError, match="needs the flows"):
        flicker.temporal_error(frames)
    still = flicker.temporal_error([frames[0]] * 3, inputs=[frames[0]] * 3)
    assert still.abs == pytest.approx(0.0, abs=1e-6) and still.sq == pytest.approx(0.0, abs=1e-6)
    moving = flicker.temporal_error(frames, inputs=frames)
    zero_flows = [np.zeros((H, W, 2), np.float32)] * 3
    unaligned = flicker.temporal_error(frames, zero_flows, [np.ones((H, W), np.float32)] * 3)
    assert moving.sq < 0.5 * unaligned.sq and moving.abs < 0.7 * unaligned.abs  # the flow explains the motion
    pairs = [flow.flow_pair(frames[i - 1], frames[i]) for i in range(1, 4)]
    assert flicker.temporal_error(frames, pairs) == moving
    # Both ways, on 0-255 levels: a uniform change of 10 levels scores 10 and 100.
    flat = [np.full((H, W, 3), 0.5, np.float32), np.full((H, W, 3), 0.5 + 10 / 255, np.float32)]
    ten = flicker.temporal_error(flat, zero_flows[:1])
    assert ten.abs == pytest.approx(10, rel=1e-3) and ten.sq == pytest.approx(100, rel=1e-3)
    assert "10 abs, 100 squared" == str(ten)
    with pytest.raises(ImpastoError):
        flicker.temporal_error(frames, zero_flows[:2])


# ----------------------------------------------------------------------------- clips with known motion

def test_synthetic_pan_has_exact_flows(data):
    from impasto import images
    from impasto.video import synthetic
    photo = images.load(data / "content" / "chicago.jpg", max_side=300)
    clip = synthetic.pan(photo, n=5, width=96, height=64, step=3)
    assert len(clip.frames) == 5 and len(clip.pairs) == 4 and clip.frames[0].shape == (64, 96, 3)
    for t, pair in enumerate(clip.pairs, 1):
        assert np.all(pair.flow[..., 0] == 3) and np.all(pair.flow[..., 1] == 0)
        assert pair.mask[:, -3:].sum() == 0 and pair.mask[:, :-3].min() == 1   # new content on the right
        moved = warp.warp(clip.frames[t - 1], pair.flow)
        assert np.abs(moved - clip.frames[t])[:, :-3].max() < 1e-5
    assert flicker.temporal_error(clip.frames, clip.pairs).abs < 1e-4


def test_synthetic_parallax_marks_occlusions(tmp_path, data):
    from impasto import images
    from impasto.video import synthetic
    load = lambda name: images.load(data / "content" / name, max_side=300)  # noqa: E731
    clip = synthetic.parallax(load("tubingen.jpg"), load("golden_gate.jpg"), load("brad_pitt.jpg"), n=8,
                              width=96, height=72)
    for t, pair in enumerate(clip.pairs, 1):
        moved = warp.warp(clip.frames[t - 1], pair.flow)
        reliable = pair.mask > 0
        assert np.abs(moved - clip.frames[t])[reliable].max() < 1e-5     # exact wherever trusted
        assert 0.6 < reliable.mean() < 0.99                               # occlusions are marked
        speeds = set(np.unique(pair.flow[..., 0]).tolist())
        assert speeds <= {2.0, 5.0, -6.0} and len(speeds) >= 2          # layers move differently
    obj = clip.covers[4][2]
    assert 0.05 < obj.mean() < 0.4                                       # the object is in view
    assert clip.region(2)[3].sum() > obj.sum()                           # where it is and was, grown
    path = clip.write(tmp_path / "parallax.mp4")
    info = video.probe(path)
    assert (info.width, info.height, info.frames) == (96, 72, 8)
    decoded = list(video.read_frames(path))
    assert np.abs(decoded[4] - clip.frames[4]).mean() < 0.02


def test_synthetic_clip_rejects_tiny_sizes(data):
    from impasto.video import synthetic
    with pytest.raises(ImpastoError, match="at least 2 frames"):
        synthetic.compose([], 1, 64, 64)
