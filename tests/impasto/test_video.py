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
    assert flicker.pair_error(a, b, pair) < 0.2 * np.mean((a - b) ** 2)
    assert np.abs(warped - b)[8:-8, 8:-8].mean() < 0.03


def test_temporal_error_plain_function(photo):
    frames = list(clip_frames(photo, 4, W, H))
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
