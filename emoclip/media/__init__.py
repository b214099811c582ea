"""Media I/O: videos, still images, frame folders and what an input is; numpy, OpenCV and Pillow only,
no torch.

- `probe`: opening and probing a video (errors, signatures, rotation, limits).
- `frames`: time-based sampling and streaming decoding.
- `images`: still images (EXIF, alpha, modes, header limits) and folders of numbered frames.
- `inputs`: what an input is (video, photo, frame folder, frames) and how it becomes frames.

The package exports the video names below lazily (``import emoclip.media`` imports no OpenCV).

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

from typing import TYPE_CHECKING

from emoclip._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        **dict.fromkeys(
            [
                "FrameClock",
                "SampledFrame",
                "TimeSampler",
                "iter_frames",
                "read_frames",
                "sample_indices",
            ],
            "frames",
        ),
        **dict.fromkeys(
            [
                "LimitError",
                "VideoDecodeError",
                "VideoInfo",
                "image_kind",
                "normalize_rotation",
                "open_capture",
                "probe_video",
            ],
            "probe",
        ),
    },
)

if TYPE_CHECKING:  # for type checkers and IDEs (`X as X` marks an explicit re-export)
    from emoclip.media.frames import (
        FrameClock as FrameClock,
        SampledFrame as SampledFrame,
        TimeSampler as TimeSampler,
        iter_frames as iter_frames,
        read_frames as read_frames,
        sample_indices as sample_indices,
    )
    from emoclip.media.probe import (
        LimitError as LimitError,
        VideoDecodeError as VideoDecodeError,
        VideoInfo as VideoInfo,
        image_kind as image_kind,
        normalize_rotation as normalize_rotation,
        open_capture as open_capture,
        probe_video as probe_video,
    )
