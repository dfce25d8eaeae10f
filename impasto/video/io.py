"""Read and write videos frame by frame: RGB float arrays in 0..1, never the whole clip in memory.

PyAV (FFmpeg's libraries, shipped with their codecs in the wheel) does the work; numpy + Pillow
otherwise, no torch, so `impasto stylize` and the server can use it. Containers: mp4/m4v, mov,
mkv, webm, avi and animated GIF. A writer keeps the source's frame timestamps (so its frame rate,
constant or variable) and copies its audio track: packets are remuxed as they are when the output
container can hold the codec, transcoded (AAC, or Opus for webm) otherwise; GIF has no audio.

    with VideoReader("in.mp4", max_side=512) as reader, \
            VideoWriter("out.mp4", reader.info, size=reader.size, audio_from="in.mp4") as writer:
        for frame in reader:
            writer.write(paint(frame.image), frame)
"""

from __future__ import annotations

import itertools
import os
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Optional, Union

import av
import numpy as np
from PIL import Image
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from impasto.errors import ImpastoError
from impasto.files import existing_file

PathLike = Union[str, os.PathLike]

# Output container per extension: (FFmpeg muxer, video codec, audio codec or None).
CONTAINERS = {
    ".mp4": ("mp4", "libx264", "aac"),
    ".m4v": ("mp4", "libx264", "aac"),
    ".mov": ("mov", "libx264", "aac"),
    ".mkv": ("matroska", "libx264", "aac"),
    ".webm": ("webm", "libvpx-vp9", "libopus"),
    ".avi": ("avi", "mpeg4", "mp3"),
    ".gif": ("gif", "gif", None),
}
VIDEO_EXTENSIONS = tuple(CONTAINERS)
# Audio codecs each container takes as they are (remuxed without re-encoding).
REMUX_AUDIO = {
    "mp4": {"aac", "mp3", "opus", "alac", "flac", "ac3", "eac3"},
    "mov": {"aac", "mp3", "alac", "ac3", "pcm_s16le", "pcm_s16be", "pcm_s24le", "pcm_f32le"},
    "matroska": None,  # anything
    "webm": {"opus", "vorbis"},
    "avi": {"mp3", "ac3", "pcm_s16le"},
    "gif": set(),
}
MAX_FRAME_PIXELS = 40_000_000  # same bound as still images (impasto.images)
DEFAULT_CRF = 18               # x264/VP9 quality: visually transparent, so flicker is the style's


def _av():
    av.logging.set_level(av.logging.FATAL)  # we raise our own errors; no FFmpeg chatter
    return av


def _why(exc: Exception) -> str:
    """FFmpeg's reason, without the errno and path noise."""
    text = getattr(exc, "strerror", None) or str(exc)
    log = str(exc).rsplit("last error log:", 1)
    if len(log) == 2:
        text += ":" + log[1].split("]", 1)[-1]
    return text.strip()


def is_video(path: PathLike) -> bool:
    """True for a video file by its extension; a .gif only when it has more than one frame
    (a still GIF stays an image)."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in CONTAINERS:
        return False
    if ext != ".gif":
        return True
    try:
        with Image.open(p) as img:
            return getattr(img, "n_frames", 1) > 1
    except Exception:
        return False


def check_output(path: PathLike) -> str:
    """The muxer for an output path; an ImpastoError for an extension that is no video."""
    ext = Path(path).suffix.lower()
    if ext not in CONTAINERS:
        raise ImpastoError(f"{path}: unknown video extension {ext or '(none)'}; use one of "
                           + ", ".join(VIDEO_EXTENSIONS))
    return CONTAINERS[ext][0]


@dataclass
class VideoInfo:
    path: str
    width: int
    height: int
    fps: Fraction                 # average frame rate
    frames: int                   # frame count from the header or duration (an estimate; 0: unknown)
    duration: Optional[float]     # seconds
    codec: str
    time_base: Fraction
    audio_codec: Optional[str] = None
    rotation: int = 0             # degrees the stored frames are turned to display upright

    @property
    def has_audio(self) -> bool:
        return self.audio_codec is not None

    def describe(self) -> str:
        audio = f", audio {self.audio_codec}" if self.audio_codec else ", no audio"
        n = f"{self.frames} frames" if self.frames else "frames unknown"
        return f"{self.width}x{self.height} {self.codec} at {float(self.fps):.3g} fps, {n}{audio}"


@dataclass
class Frame:
    image: np.ndarray             # HxWx3 float32 RGB 0..1
    index: int
    pts: Optional[int]            # in info.time_base, from the first frame (0)
    time: float                   # seconds from the first frame


def _open_input(path: PathLike):
    av = _av()
    p = existing_file(path, str(path), "a video file")
    try:
        container = av.open(str(p), "r")
    except av.FFmpegError as exc:
        raise ImpastoError(f"{path}: not a video, or damaged beyond reading ({_why(exc)})") from None
    if not container.streams.video:
        container.close()
        raise ImpastoError(f"{path}: contains no video stream")
    return container


def _info(path: PathLike, container) -> VideoInfo:
    vs = container.streams.video[0]
    cc = vs.codec_context
    width, height = cc.width, cc.height
    if width <= 0 or height <= 0:
        raise ImpastoError(f"{path}: the video stream declares no frame size (damaged header?)")
    if width * height > MAX_FRAME_PIXELS:
        raise ImpastoError(f"{path}: frames are {width}x{height}, over the limit of "
                           f"{MAX_FRAME_PIXELS / 1e6:.0f} megapixels", 413)
    fps = vs.average_rate or vs.guessed_rate or vs.base_rate or Fraction(25)
    fps = Fraction(fps)
    duration = None
    if vs.duration and vs.time_base:
        duration = float(vs.duration * vs.time_base)
    elif container.duration:
        duration = container.duration / 1_000_000
    frames = int(vs.frames or 0)
    if not frames and duration:
        frames = int(round(duration * fps))
    audio = container.streams.audio[0].codec_context.name if container.streams.audio else None
    return VideoInfo(str(path), width, height, fps, frames, duration, cc.name,
                     Fraction(vs.time_base or Fraction(1, 1000)), audio)


def probe(path: PathLike) -> VideoInfo:
    """Size (as displayed), frame rate, frame count and codecs, from the header and the first
    frame; ImpastoError if it is not a readable video."""
    with VideoReader(path) as reader:
        return reader.info


def fit_size(width: int, height: int, max_side: Optional[int], even: bool = False) -> tuple[int, int]:
    """(width, height) scaled so that the longer side is `max_side` (None: unchanged); `even`
    rounds each side to a multiple of 2, as 4:2:0 codecs need."""
    if max_side:
        scale = max_side / max(width, height)
        width, height = max(2, round(width * scale)), max(2, round(height * scale))
    if even:
        width, height = width + width % 2, height + height % 2
    return width, height


class VideoReader:
    """Iterate over a video's frames as RGB float arrays, decoding one at a time.

    `max_side` resizes each frame (longest side; aspect kept, sides rounded to even numbers so
    that the result can be written with 4:2:0 codecs). Raises ImpastoError for missing, empty,
    damaged or frameless files, with the frame number where decoding failed.
    """

    def __init__(self, path: PathLike, max_side: Optional[int] = None):
        self.path = str(path)
        self.container = _open_input(path)
        self.count = 0
        self.warning: Optional[str] = None   # set when the stream ends far short of its header
        try:
            self.info = _info(path, self.container)
            stream = self.container.streams.video[0]
            # (no frame threading: closing a frame-threaded decoder mid-stream can hang in PyAV)
            self._frames = self.container.decode(stream)
            # The first frame is decoded now: a file that has none fails here, before any work,
            # and its display rotation (phones store portrait video sideways) is known.
            self._first = self._next()
            if self._first is None:
                raise ImpastoError(f"{self.path}: contains no decodable video frames (empty or damaged)")
            self.rotation = _rotation_steps(self._first)
            if self.rotation % 2:
                self.info.width, self.info.height = self.info.height, self.info.width
            self.info.rotation = 90 * self.rotation
        except BaseException:
            self.close()
            raise
        self.size = fit_size(self.info.width, self.info.height, max_side, even=bool(max_side))

    def _next(self):
        av = _av()
        try:
            return next(self._frames)
        except StopIteration:
            return None
        except (av.FFmpegError, ValueError) as exc:
            raise ImpastoError(f"{self.path}: damaged video: decoding stopped after frame "
                               f"{self.count} ({_why(exc)})") from None

    def __enter__(self) -> "VideoReader":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        # End the decoding generator before its container: one left suspended and collected
        # later would run on a closed container (and could wait forever on decoder threads).
        frames = getattr(self, "_frames", None)
        if frames is not None:
            frames.close()
            self._frames = None
        self._first = None
        self.container.close()

    def __iter__(self) -> Iterator[Frame]:
        width, height = self.size
        if self.rotation % 2:   # resize in the stored orientation, then turn upright
            width, height = height, width
        stored = (self.info.height, self.info.width) if self.rotation % 2 else (self.info.width, self.info.height)
        resize = (width, height) != stored
        first_pts = None
        tb = self.info.time_base
        frame, self._first = self._first, None
        if frame is None:
            raise ImpastoError(f"{self.path}: a VideoReader can be iterated once")
        while frame is not None:
            kwargs = {"width": width, "height": height, "interpolation": "AREA"} if resize else {}
            rgb = frame.to_ndarray(format="rgb24", **kwargs)
            if self.rotation:
                rgb = np.rot90(rgb, self.rotation)
            pts = frame.pts
            if pts is not None:
                if first_pts is None:
                    first_pts = pts
                pts -= first_pts
            t = float(pts * tb) if pts is not None else self.count / float(self.info.fps)
            yield Frame(rgb.astype(np.float32) * (1.0 / 255.0), self.count, pts, t)
            self.count += 1
            frame = self._next()
        expected = self.info.frames
        if expected and self.count < 0.9 * expected - 1:
            self.warning = (f"{self.path}: the video ended after {self.count} of about {expected} frames "
                            "(a truncated file?); the output has the frames that could be read")


def _rotation_steps(frame) -> int:
    """Quarter turns counterclockwise that make a decoded frame upright (from its display
    matrix: FFmpeg's convention, as its own autorotate applies it); 0 when there is none."""
    angle = getattr(frame, "rotation", 0) or 0
    return int(round(angle / 90.0)) % 4


def read_frames(path: PathLike, max_side: Optional[int] = None) -> Iterator[np.ndarray]:
    """The frames of a video, one RGB float array at a time."""
    with VideoReader(path, max_side) as reader:
        for frame in reader:
            yield frame.image


_PAL_ORDER: Optional[list[int]] = None


def _palette_order(av) -> list[int]:
    """Byte order PyAV expects for pal8 palettes (it has varied between releases): found once
    by a round trip of a two-colour frame rather than assumed."""
    global _PAL_ORDER
    if _PAL_ORDER is None:
        idx = np.array([[0, 1]], np.uint8)
        rgba = np.zeros((256, 4), np.uint8)
        rgba[0] = (10, 100, 200, 255)
        rgba[1] = (250, 30, 70, 255)
        want = rgba[:2, :3]
        _PAL_ORDER = [0, 1, 2, 3]
        for order in itertools.permutations(range(4)):
            frame = av.VideoFrame.from_ndarray((idx, np.ascontiguousarray(rgba[:, list(order)])), format="pal8")
            if np.array_equal(frame.to_ndarray(format="rgb24")[0], want):
                _PAL_ORDER = list(order)
                break
    return _PAL_ORDER


class VideoWriter:
    """Encode RGB float frames into a video file, written atomically (a temporary file renamed
    into place on close; a failure leaves no half-written output).

    `template` (a VideoInfo) gives the frame rate and time base; pass each source Frame to
    `write` so its timestamp is kept. `audio_from` copies that file's first audio track.
    """

    def __init__(self, path: PathLike, template: VideoInfo, size: Optional[tuple[int, int]] = None,
                 audio_from: Optional[PathLike] = None, crf: int = DEFAULT_CRF):
        av = _av()
        self.av = av
        self.path = Path(path)
        self.muxer = check_output(path)
        _, vcodec, self.audio_codec = CONTAINERS[self.path.suffix.lower()]
        width, height = size or (template.width, template.height)
        self.width, self.height = width, height
        self.fps = template.fps
        # AVI stores no timestamps, only a rate: there each frame is one tick of 1/fps.
        self.cfr = self.muxer == "avi"
        self.time_base = 1 / Fraction(self.fps) if self.cfr else template.time_base
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, self.tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".part")
        os.close(fd)
        self.count = 0
        self._closed = False
        self._last_pts = -1
        self._audio_end: Optional[float] = None   # None: all of the source's audio
        try:
            self.container = av.open(self.tmp, "w", format=self.muxer)
            self.stream = self.container.add_stream(vcodec, rate=self.fps)
            self.stream.width, self.stream.height = width, height
            if vcodec == "gif":
                self.stream.pix_fmt = "pal8"
            elif vcodec in ("libx264", "libvpx-vp9"):
                # 4:2:0 needs even sides; odd-sized sources keep their size in 4:4:4.
                self.stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
                opts = {"crf": str(crf)}
                if vcodec == "libx264":
                    opts["preset"] = "veryfast"
                else:
                    opts.update({"b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "1"})
                self.stream.options = opts
            else:
                self.stream.pix_fmt = "yuv420p"
                self.stream.bit_rate = 8_000_000
            self.stream.codec_context.time_base = self.time_base
            self._audio = _AudioCopier(av, self.container, audio_from, self.muxer, self.audio_codec) \
                if audio_from and self.audio_codec else None
        except ImpastoError:
            self._abort()
            raise
        except (av.FFmpegError, ValueError) as exc:
            self._abort()
            raise ImpastoError(f"{path}: cannot create the video ({_why(exc)})") from None

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self._abort()

    def _frame(self, image: np.ndarray):
        av = self.av
        if image.shape[:2] != (self.height, self.width):
            raise ImpastoError(f"frame is {image.shape[1]}x{image.shape[0]}, the video {self.width}x{self.height}")
        rgb = (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if self.stream.pix_fmt != "pal8":
            return av.VideoFrame.from_ndarray(rgb, format="rgb24")
        # One palette per frame, no dithering: dither noise would itself flicker.
        pal_img = Image.fromarray(rgb).quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
        idx = np.asarray(pal_img, dtype=np.uint8)
        colours = np.array(pal_img.getpalette()[:768], np.uint8).reshape(-1, 3)
        rgba = np.zeros((256, 4), np.uint8)
        rgba[:len(colours), :3] = colours
        rgba[:, 3] = 255
        return av.VideoFrame.from_ndarray((idx, np.ascontiguousarray(rgba[:, _palette_order(av)])), format="pal8")

    def write(self, image: np.ndarray, source: Optional[Frame] = None) -> None:
        """Append one frame; `source` (the input Frame it was made from) keeps its timestamp."""
        frame = self._frame(image)
        if source is not None and source.pts is not None and not self.cfr:
            pts = source.pts
        else:
            pts = round(self.count / (self.fps * self.time_base))
        pts = max(pts, self._last_pts + 1)  # strictly increasing, whatever the source did
        self._last_pts = pts
        frame.pts = pts
        frame.time_base = self.time_base
        try:
            for packet in self.stream.encode(frame):
                self.container.mux(packet)
            if self._audio is not None:
                self._audio.copy_until(float(pts * self.time_base))
        except self.av.FFmpegError as exc:
            self._abort()
            raise ImpastoError(f"{self.path}: encoding failed at frame {self.count} ({_why(exc)})") from None
        self.count += 1

    @property
    def copies_audio(self) -> bool:
        """True when the source's audio track is being copied into this video."""
        return self._audio is not None and self._audio.out_stream is not None

    def end_audio_with_video(self) -> None:
        """Cut the audio where the frames written so far end (for a run stopped early)."""
        self._audio_end = float((self._last_pts * self.time_base) + 1 / Fraction(self.fps))

    def close(self) -> Path:
        """Flush the encoders and move the finished file into place."""
        if self._closed:
            return self.path
        if self.count == 0:
            self._abort()
            raise ImpastoError(f"{self.path}: no frames were written")
        try:
            for packet in self.stream.encode():
                self.container.mux(packet)
            if self._audio is not None:
                self._audio.copy_until(self._audio_end, final=True)
            self.container.close()
        except self.av.FFmpegError as exc:
            self._abort()
            raise ImpastoError(f"{self.path}: finishing the video failed ({_why(exc)})") from None
        self._closed = True
        os.replace(self.tmp, self.path)
        return self.path

    def _abort(self) -> None:
        if self._closed:
            return
        self._closed = True
        for thing in (getattr(self, "_audio", None), getattr(self, "container", None)):
            try:
                if thing is not None:
                    thing.close()
            except Exception:
                pass
        Path(self.tmp).unlink(missing_ok=True)


class _AudioCopier:
    """Streams the first audio track of a source into the output, interleaved with the video:
    before each video frame goes out, the audio up to that frame's time follows it."""

    def __init__(self, av, output, source: PathLike, muxer: str, fallback_codec: str):
        self.av = av
        self.output = output
        self.input = av.open(str(source), "r")
        self.packets = None
        self.out_stream = None
        if not self.input.streams.audio:
            return
        self.in_stream = self.input.streams.audio[0]
        name = self.in_stream.codec_context.name
        allowed = REMUX_AUDIO.get(muxer, set())
        self.remux = allowed is None or name in allowed
        if self.remux:
            self.out_stream = output.add_stream_from_template(self.in_stream)
        else:
            rate = 48000 if fallback_codec == "libopus" else (self.in_stream.codec_context.sample_rate or 48000)
            self.out_stream = output.add_stream(fallback_codec, rate=rate)
            layout = self.in_stream.codec_context.layout.name if self.in_stream.codec_context.layout else "stereo"
            if layout not in ("mono", "stereo"):
                layout = "stereo"
            self.out_stream.layout = layout
            fmt = self.out_stream.codec_context.codec.audio_formats[0].name
            self.resampler = av.AudioResampler(format=fmt, layout=layout, rate=rate)
        self.packets = self.input.demux(self.in_stream)
        self.pending = None

    def _mux(self, packet) -> None:
        if self.remux:
            packet.stream = self.out_stream
            self.output.mux(packet)
            return
        for frame in packet.decode():
            frame.pts = None
            for resampled in self.resampler.resample(frame):
                for out in self.out_stream.encode(resampled):
                    self.output.mux(out)

    def copy_until(self, seconds: Optional[float], final: bool = False) -> None:
        """Mux the audio packets up to `seconds` (None: all that is left); `final` then flushes
        the encoder and drops the rest."""
        if self.packets is None:
            return
        while True:
            packet = self.pending
            self.pending = None
            if packet is None:
                try:
                    packet = next(self.packets)
                except StopIteration:
                    packet = None
                except self.av.FFmpegError:
                    packet = None  # damaged audio: keep what was copied, the video matters
                if packet is None:
                    break
            if packet.dts is None or packet.size == 0:
                continue
            t = float(packet.pts * packet.time_base) if packet.pts is not None else 0.0
            if seconds is not None and t > seconds:
                self.pending = packet
                break
            self._mux(packet)
        if not final:
            return
        self.packets = None
        if not self.remux:
            for resampled in self.resampler.resample(None):
                for out in self.out_stream.encode(resampled):
                    self.output.mux(out)
            for out in self.out_stream.encode(None):
                self.output.mux(out)

    def close(self) -> None:
        self.input.close()


class FrameProgress:
    """A per-frame progress bar (rich) with a short status text; silent when disabled."""

    def __init__(self, total: int, label: str, enabled: bool = True):
        self.enabled = enabled
        if not enabled:
            return
        self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[fps]}"), TimeRemainingColumn(),
                            TextColumn("{task.fields[status]}"), transient=False)
        self.bar.start()
        self.task = self.bar.add_task(label, total=total or None, fps="", status="")

    def update(self, done: int, fps: float = 0.0, status: str = "") -> None:
        if self.enabled:
            self.bar.update(self.task, completed=done, fps=f"{fps:.2f} fps" if fps else "", status=status)

    def status(self, text: str) -> None:
        """Change only the status text (e.g. the iteration within a frame)."""
        if self.enabled:
            self.bar.update(self.task, status=text)

    def close(self) -> None:
        if self.enabled:
            self.bar.stop()
