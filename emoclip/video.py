"""Streaming video decoding with OpenCV (FFmpeg backend); numpy only, no torch.

The public face of `video_probe` (opening, validation, metadata, errors) and `video_frames`
(time-based sampling, streaming decoding), whose public names it re-exports.

Frames are decoded one at a time and never all held in memory (except by `read_frames`, which is
meant for short clips). Every frame that leaves this module is an upright ``(H, W, 3)`` uint8 RGB
array with values in [0, 255].

Sampling is time-based and deterministic: with ``sample_fps`` the target times are ``start``,
``start + 1/sample_fps``, ... and a frame is kept when its timestamp is the first at or after the
next target. Timestamps come from the decoder (``CAP_PROP_POS_MSEC``, the frame's presentation time)
when they are sane and increasing, so variable-frame-rate files are sampled by real time; otherwise
they fall back to ``index / fps``. Frames that are not kept are only ``grab()``-ed (decoded, never
colour-converted).

Rotation: phone videos carry a display rotation (mp4 ``tkhd`` matrix / display-matrix side data).
OpenCV's FFmpeg backend applies it itself when ``CAP_PROP_ORIENTATION_AUTO`` is on (the default in
OpenCV 4.x); we switch it on explicitly and, if a backend refuses, switch it off and rotate with
``cv2.rotate`` instead, so a frame is rotated exactly once. `VideoInfo.rotation` reports the
metadata angle (``CAP_PROP_ORIENTATION_META``), while `VideoInfo.width`/`height` describe the
upright frames that `iter_frames` yields.
"""

from __future__ import annotations

from .video_frames import (
    FrameClock,
    SampledFrame,
    TimeSampler,
    iter_frames,
    read_frames,
    sample_indices,
)
from .video_probe import (
    LimitError,
    VideoDecodeError,
    VideoInfo,
    image_kind,
    normalize_rotation,
    open_capture,
    probe_video,
)

__all__ = [
    "FrameClock",
    "LimitError",
    "SampledFrame",
    "TimeSampler",
    "VideoDecodeError",
    "VideoInfo",
    "image_kind",
    "iter_frames",
    "normalize_rotation",
    "open_capture",
    "probe_video",
    "read_frames",
    "sample_indices",
]
