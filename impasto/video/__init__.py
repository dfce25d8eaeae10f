"""Video, in one home: read and write (`io`), optical flow (`flow`), warping (`warp`), the flicker
metric (`flicker`) and the frame loop every video path shares (`frames`). No torch: `impasto
stylize` and the server use it too.

The reading and writing API is re-exported here (`from impasto import video; video.probe(...)`).
"""

from .io import (CONTAINERS, VIDEO_EXTENSIONS, Frame, FrameProgress, VideoInfo, VideoReader, VideoWriter,
                 check_output, fit_size, is_video, probe, read_frames)

__all__ = ["CONTAINERS", "VIDEO_EXTENSIONS", "Frame", "FrameProgress", "VideoInfo", "VideoReader", "VideoWriter",
           "check_output", "fit_size", "is_video", "probe", "read_frames"]
