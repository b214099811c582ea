"""`EmotionPredictor`: video file or frames in, zero-shot emotion probabilities out.

The expensive part (decode, face detection, frame encoding, temporal pooling) is done once per
video and cached as a `VideoEncoding`; scoring against a class set is a matrix product, so
editing class descriptions re-scores a video without re-encoding it.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .classes import ClassSet, preset
from .model import EmoCLIP
from .preprocess import to_tensor
from .results import FaceSummary, Prediction, Timeline, TrackPrediction
from .video import (
    LimitError,  # defined in .video (raised there too), re-exported here
    SampledFrame,
    VideoDecodeError,
    iter_frames,
    probe_video,
    sample_indices,
)
from .zeroshot import TextEmbeddingCache, class_embeddings, probabilities

Progress = Callable[[float, str], None]
VideoInput = str | os.PathLike | np.ndarray | Sequence[np.ndarray]
THUMBNAIL_SIZE = 96


class NoFaceError(ValueError):
    """No face was found in any sampled frame and the fallback is "skip"."""


@dataclass(frozen=True)
class VideoLimits:
    """Limits checked before any heavy work; None means unlimited."""

    max_bytes: int | None = None
    max_duration: float | None = None  # seconds
    max_pixels: int | None = None  # width * height
    max_sampled_frames: int | None = None


@dataclass
class VideoEncoding:
    """Everything `EmotionPredictor.score` needs about one video (no class information).

    Attributes:
        key: Cache key (content fingerprint + settings).
        times: (N,) times in seconds of all sampled frames.
        has_face: (N,) whether each sampled frame had a detected face.
        frame_embeddings: (M, D) un-normalised embeddings of the subject's frames.
        frame_times: (M,) their times.
        clip_embedding: (D,) L2-normalised clip embedding (T frames spread over the clip).
        window_starts: (W,) timeline window starts; window_ends: (W,) their ends.
        window_embeddings: (W, D) L2-normalised window embeddings.
        tracks: Per face track: (track_id, num_frames, start, end, (D,) embedding, primary).
        thumbnails: (time, (96, 96, 3) uint8 RGB crop) pairs along the clip.
        video: Metadata (name, duration, fps, width, height, rotation).
        timings: Seconds per stage.
    """

    key: str
    times: np.ndarray
    has_face: np.ndarray
    frame_embeddings: torch.Tensor
    frame_times: np.ndarray
    clip_embedding: torch.Tensor
    window_starts: np.ndarray
    window_ends: np.ndarray
    window_embeddings: torch.Tensor
    tracks: list[tuple[int, int, float, float, torch.Tensor, bool]]
    thumbnails: list[tuple[float, np.ndarray]]
    video: dict[str, Any]
    timings: dict[str, float]
    fallback: str
    detection: bool
    warnings: list[str] = field(default_factory=list)


class EmotionPredictor:
    """Zero-shot facial-expression recognition on videos (a facade over model, faces, video).

    Args:
        model: A loaded `EmoCLIP`; its config decides preprocessing (frame rate, window length,
            whether to detect faces).
        batch_size: Frames per image-tower forward pass.
        face_fallback: What to do with frames without a face: ``"center"`` (full-frame centre
            crop) or ``"skip"``.
        max_faces: Faces tracked per frame.
        limits: Input limits checked before decoding.
        video_cache_size: Encoded videos kept for re-scoring.

    Example:
        >>> predictor = EmotionPredictor(emoclip.load_model("emoclip-vitb32"))
        >>> prediction = predictor.predict("clip.mp4", emoclip.preset("mafw-11"))
        >>> prediction.top, prediction.timeline.probabilities.shape  # ('happiness', (W, 11))
    """

    def __init__(
        self,
        model: EmoCLIP,
        *,
        batch_size: int = 32,
        face_fallback: str = "center",
        max_faces: int = 4,
        limits: VideoLimits | None = None,
        video_cache_size: int = 8,
    ) -> None:
        if face_fallback not in ("center", "skip"):
            raise ValueError(f"face_fallback must be 'center' or 'skip', not {face_fallback!r}")
        self.model = model.eval()
        self.config = model.config.preprocess
        self.batch_size = batch_size
        self.face_fallback = face_fallback
        self.max_faces = max_faces
        self.limits = limits or VideoLimits()
        self.text_cache = TextEmbeddingCache(model)
        self._videos: OrderedDict[str, VideoEncoding] = OrderedDict()
        self._video_cache_size = video_cache_size
        self._lock = threading.Lock()
        self._detector = None
        self._detector_lock = threading.Lock()

    # ------------------------------------------------------------------ public API
    @property
    def model_name(self) -> str:
        return self.model.config.name

    def default_classes(self) -> ClassSet:
        """The class set the model's config asks for (inline set, else its preset)."""
        if self.model.config.classes:
            return ClassSet.from_dict(self.model.config.classes)
        return preset(self.model.config.default_classes)

    def predict(
        self,
        video: VideoInput,
        classes: ClassSet | None = None,
        *,
        fps: float | None = None,
        progress: Progress | None = None,
    ) -> Prediction:
        """Encode (or reuse the cached encoding of) `video` and score it against `classes`.

        Args:
            video: A video file path, or RGB frames (T, H, W, 3) uint8 sampled at `fps`.
            classes: Class set to score; None for the model's default set.
            fps: Frame rate of `video` when it is an array (default: the model's sample rate).
            progress: Called with (fraction done, message) while decoding and encoding.

        Returns:
            Clip probabilities, timeline, per-track results, clip embedding, timings.
        """
        encoding = self.encode(video, fps=fps, progress=progress)
        return self.score(encoding, classes)

    def encode(self, video: VideoInput, *, fps: float | None = None, progress: Progress | None = None) -> VideoEncoding:
        """The cached encoding of `video`, computing it if needed (see `predict`)."""
        key = self._key(video, fps)
        with self._lock:
            if key in self._videos:
                self._videos.move_to_end(key)
                return _named(self._videos[key], video)
        encoding = self._encode(video, key, fps, progress)
        with self._lock:
            self._videos[key] = encoding
            while len(self._videos) > self._video_cache_size:
                self._videos.popitem(last=False)
        return encoding

    def score(self, encoding: VideoEncoding, classes: ClassSet | None = None) -> Prediction:
        """Score an encoded video against a class set (no video work: cheap).

        Returns:
            A `Prediction`; its timings combine the encoding's stages with this call's text/score.
        """
        classes = classes or self.default_classes()
        warnings = list(encoding.warnings) + classes.validate()
        t0 = time.perf_counter()
        text = self.class_embeddings(classes)
        t1 = time.perf_counter()
        scale = self.model.logit_scale.detach().float().cpu()
        clip = probabilities(encoding.clip_embedding[None], text, scale)[0]
        windows = probabilities(encoding.window_embeddings, text, scale) if len(encoding.window_starts) else torch.zeros(0, len(text))
        names = classes.names
        tracks = []
        for track_id, n, start, end, emb, primary in encoding.tracks:
            probs = probabilities(emb[None], text, scale)[0]
            tracks.append(TrackPrediction(track_id, n, start, end, dict(zip(names, probs.tolist())), primary))
        t2 = time.perf_counter()
        timings = dict(encoding.timings) | {"text": t1 - t0, "score": t2 - t1}
        faces = FaceSummary(
            sampled_frames=len(encoding.times),
            frames_with_face=int(encoding.has_face.sum()),
            frames_without_face=int((~encoding.has_face).sum()),
            no_face_times=[float(t) for t in encoding.times[~encoding.has_face]],
            tracks=len(encoding.tracks),
            fallback=encoding.fallback,
            detection=encoding.detection,
        )
        return Prediction(
            model=self.model_name,
            classes=names,
            probabilities=dict(zip(names, clip.tolist())),
            timeline=Timeline(encoding.window_starts, encoding.window_ends, windows.numpy()),
            tracks=tracks,
            embedding=encoding.clip_embedding.numpy().copy(),
            faces=faces,
            timings=timings,
            video=dict(encoding.video),
            warnings=warnings,
        )

    def class_embeddings(self, classes: ClassSet) -> torch.Tensor:
        """(C, D) normalised embeddings of a class set's classes and compounds (cached by text)."""
        return class_embeddings(classes, self.text_cache)

    @torch.inference_mode()
    def encode_images(self, crops: np.ndarray | Sequence[np.ndarray]) -> torch.Tensor:
        """Frame embeddings of square crops.

        Args:
            crops: (N, S, S, 3) uint8 RGB crops, S = the model's image size.

        Returns:
            (N, D) float32 un-normalised embeddings.
        """
        x = to_tensor(crops, self.config).to(self.model.logit_scale.device)
        return self.model.encode_image(x).float().cpu()

    @torch.inference_mode()
    def pool(self, frame_embeddings: torch.Tensor) -> torch.Tensor:
        """Video embeddings of windows of frame embeddings.

        Args:
            frame_embeddings: (B, T, D) or (T, D) un-normalised frame embeddings.

        Returns:
            (B, D) or (D,) L2-normalised video embeddings.
        """
        single = frame_embeddings.ndim == 2
        x = frame_embeddings[None] if single else frame_embeddings
        out = self.model.aggregate(x.to(self.model.logit_scale.device), normalize=True).float().cpu()
        return out[0] if single else out

    def crop_frame(self, image: np.ndarray) -> tuple[np.ndarray | None, bool]:
        """The largest face of one RGB frame as a model-sized crop (for live streams).

        Returns:
            ``(crop (S, S, 3) uint8 or None, face_found)``; without a face the crop is the
            centre crop, or None when the fallback is "skip".
        """
        from .faces import center_crop, crop_square

        size = self.config.image_size
        if not self.config.face_detection:
            return center_crop(image, size), True
        with self._detector_lock:
            boxes = self._shared_detector().detect(image)
        if boxes:
            return crop_square(image, boxes[0], margin=self.config.face_margin, size=size), True
        return (center_crop(image, size) if self.face_fallback == "center" else None), False

    def close(self) -> None:
        """Release the face detector."""
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    # ------------------------------------------------------------------ internals
    def _shared_detector(self):
        from .faces import FaceDetector

        with self._lock:
            if self._detector is None:
                self._detector = FaceDetector()
        return self._detector

    def _locked_detector(self) -> _LockedDetector:
        return _LockedDetector(self._shared_detector(), self._detector_lock)

    def _key(self, video: VideoInput, fps: float | None) -> str:
        h = hashlib.sha1()
        if isinstance(video, (str, os.PathLike)):
            path = Path(video)
            if not path.is_file():
                raise VideoDecodeError(f"video file not found: {path.name}")
            size = path.stat().st_size
            h.update(str(size).encode())
            with open(path, "rb") as fh:
                h.update(fh.read(1 << 20))
                if size > 2 << 20:
                    fh.seek(-(1 << 20), os.SEEK_END)
                    h.update(fh.read())
        else:
            arr = np.ascontiguousarray(np.asarray(video))
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
        h.update(f"{self.model_name}|{self.face_fallback}|{self.max_faces}|{fps}".encode())
        return h.hexdigest()

    def _frames(self, video: VideoInput, fps: float | None) -> tuple[Iterator[SampledFrame], dict[str, Any]]:
        cfg, lim = self.config, self.limits
        if isinstance(video, (str, os.PathLike)):
            path = Path(video)
            size = path.stat().st_size
            if lim.max_bytes is not None and size > lim.max_bytes:
                raise LimitError(f"the file is {size / 1e6:.1f} MB; the limit is {lim.max_bytes / 1e6:.1f} MB")
            info = probe_video(path, max_pixels=lim.max_pixels)  # checked before decoding a frame
            if lim.max_pixels is not None and info.width * info.height > lim.max_pixels:
                raise LimitError(f"the video is {info.width}x{info.height}; the limit is {lim.max_pixels / 1e6:.1f} megapixels")
            if lim.max_duration is not None and info.duration > lim.max_duration:
                raise LimitError(f"the video lasts {info.duration:.0f} s; the limit is {lim.max_duration:.0f} s")
            meta = {"name": path.name, "duration": info.duration, "fps": info.fps, "width": info.width,
                    "height": info.height, "rotation": info.rotation}
            max_side = 1280 if cfg.face_detection else None
            # max_duration again while decoding: a header can lie about (or lack) the duration
            return iter_frames(path, cfg.sample_fps, max_frames=lim.max_sampled_frames, max_side=max_side,
                               max_duration=lim.max_duration), meta
        frames = list(video) if not isinstance(video, np.ndarray) else video
        if len(frames) == 0:
            raise VideoDecodeError("no frames were given")
        rate = fps or cfg.sample_fps
        meta = {"name": "frames", "duration": len(frames) / rate, "fps": rate,
                "width": int(frames[0].shape[1]), "height": int(frames[0].shape[0]), "rotation": 0}
        return _array_frames(frames, rate, cfg.sample_fps), meta

    def _encode(self, video: VideoInput, key: str, fps: float | None, progress: Progress | None) -> VideoEncoding:
        start = time.perf_counter()
        frames, meta = self._frames(video, fps)
        collected = _FrameCollector(self, self.config.face_detection)
        try:
            collected.run(frames, meta.get("duration") or 0.0, progress)
        finally:
            collected.close()
        enc = collected.finish(key, meta)
        enc.timings["total"] = time.perf_counter() - start
        if progress:
            progress(1.0, "done")
        return enc


def _array_frames(frames: Sequence[np.ndarray] | np.ndarray, rate: float, sample_fps: float) -> Iterator[SampledFrame]:
    """Sample in-memory frames at `sample_fps` (all of them when `rate` <= `sample_fps`)."""
    step = max(1.0, rate / sample_fps)
    next_pick, k = 0.0, 0
    for i, image in enumerate(frames):
        if i + 1e-9 < next_pick:
            continue
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise VideoDecodeError(f"frames must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}")
        yield SampledFrame(index=k, source_index=i, time=i / rate, image=image)
        next_pick += step
        k += 1


class _LockedDetector:
    """One MediaPipe detector shared by concurrent requests, one frame at a time."""

    def __init__(self, detector: Any, lock: threading.Lock) -> None:
        self._detector, self._lock = detector, lock

    def detect(self, image: np.ndarray) -> list:
        with self._lock:
            return self._detector.detect(image)

    def close(self) -> None:  # the predictor owns the detector
        pass


class _FrameCollector:
    """Streams sampled frames through face cropping and batched encoding, keeping embeddings only."""

    def __init__(self, predictor: EmotionPredictor, detection: bool) -> None:
        self.p = predictor
        self.detection = detection
        self.size = predictor.config.image_size
        self.cropper = None
        if detection:
            from .faces import FaceCropper

            self.cropper = FaceCropper(size=self.size, margin=predictor.config.face_margin,
                                       fallback=predictor.face_fallback, max_faces=predictor.max_faces,
                                       detector=predictor._locked_detector())
        self.times: list[float] = []
        self.has_face: list[bool] = []
        self.pending: list[tuple[int, int | None, np.ndarray]] = []  # (frame position, track id, crop)
        self.entries: list[tuple[int, int | None, torch.Tensor]] = []
        self.thumbnails: list[tuple[float, np.ndarray]] = _Thumbnails()
        self.timings = {"decode": 0.0, "detect": 0.0, "encode": 0.0, "temporal": 0.0}

    def run(self, frames: Iterator[SampledFrame], duration: float, progress: Progress | None) -> None:
        from .faces import center_crop

        t_prev = time.perf_counter()
        for frame in frames:
            t_decoded = time.perf_counter()
            self.timings["decode"] += t_decoded - t_prev
            pos = len(self.times)
            if self.cropper is not None:
                crops = self.cropper(frame.image, pos)
                items = [(c.track_id, c.image) for c in crops]
                self.has_face.append(any(c.track_id is not None for c in crops))
            else:
                items = [(0, center_crop(frame.image, self.size))]
                self.has_face.append(True)
            self.times.append(frame.time)
            self.pending += [(pos, tid, img) for tid, img in items]
            if items and (not self.thumbnails or frame.time - self.thumbnails[-1][0] >= 0.5):
                import cv2

                thumb = cv2.resize(items[0][1], (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)
                self.thumbnails.append((frame.time, thumb))
            t_prev = time.perf_counter()
            self.timings["detect"] += t_prev - t_decoded
            if len(self.pending) >= self.p.batch_size:
                self._flush()
                t_prev = time.perf_counter()
            if progress and duration > 0:
                progress(min(0.99, frame.time / duration), f"analysed {frame.time:.1f} of {duration:.1f} s")
        self._flush()
        if not self.times:
            raise VideoDecodeError("the video has no decodable frames")

    def _flush(self) -> None:
        if not self.pending:
            return
        t0 = time.perf_counter()
        emb = self.p.encode_images(np.stack([img for _, _, img in self.pending]))
        self.entries += [(pos, tid, e) for (pos, tid, _), e in zip(self.pending, emb)]
        self.pending = []
        self.timings["encode"] += time.perf_counter() - t0

    def close(self) -> None:
        if self.cropper is not None:
            self.cropper.close()

    def _primary(self) -> tuple[int | None, list[tuple[int, torch.Tensor]]]:
        """The subject's (frame position, embedding) sequence."""
        primary = self.cropper.primary_track() if self.cropper is not None else None
        pid = primary.id if primary is not None else None
        by_pos: dict[int, torch.Tensor] = {}
        for pos, tid, emb in self.entries:
            if self.cropper is None or tid == pid or (tid is None and pos not in by_pos):
                by_pos.setdefault(pos, emb)
        return pid, sorted(by_pos.items())

    def finish(self, key: str, meta: dict[str, Any]) -> VideoEncoding:
        t0 = time.perf_counter()
        times = np.asarray(self.times, dtype=np.float64)
        pid, seq = self._primary()
        warnings = []
        if not seq:
            raise NoFaceError("no face was found in any sampled frame (face fallback is 'skip'); "
                              "choose the centre-crop fallback to analyse the whole frame")
        if self.detection and not any(self.has_face):
            warnings.append("no face was found in any frame: the whole frame (centre crop) was analysed")
        positions = np.array([pos for pos, _ in seq])
        frame_emb = torch.stack([e for _, e in seq])  # (M, D)
        frame_times = times[positions]
        T = self.p.config.num_frames
        clip = self.p.pool(frame_emb[torch.as_tensor(sample_indices(len(seq), T))])
        starts, ends, windows = self._windows(frame_emb, frame_times, meta)
        tracks = self._tracks(times, pid)
        self.timings["temporal"] += time.perf_counter() - t0
        return VideoEncoding(
            key=key, times=times, has_face=np.asarray(self.has_face, dtype=bool),
            frame_embeddings=frame_emb, frame_times=frame_times, clip_embedding=clip,
            window_starts=starts, window_ends=ends, window_embeddings=windows, tracks=tracks,
            thumbnails=_spread(self.thumbnails, 12), video=meta | {"duration": _duration(times, meta)},
            timings=dict(self.timings), fallback=self.p.face_fallback, detection=self.detection,
            warnings=warnings,
        )

    def _windows(self, emb: torch.Tensor, t: np.ndarray, meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, torch.Tensor]:
        cfg = self.p.config
        duration = _duration(np.asarray(self.times), meta)
        spans = window_spans(duration, cfg.window_seconds, cfg.hop_seconds)
        starts, ends, picks = [], [], []
        for s, e in spans:
            idx = np.flatnonzero((t >= s - 1e-6) & (t < e - 1e-6))
            if len(idx):
                starts.append(s)
                ends.append(e)
                picks.append(idx[sample_indices(len(idx), cfg.num_frames)])
        if not picks:
            return np.zeros(0), np.zeros(0), torch.zeros(0, emb.shape[1])
        gathered = emb[torch.as_tensor(np.stack(picks))]  # (W, T, D): each frame encoded once, reused
        pooled = torch.cat([self.p.pool(chunk) for chunk in gathered.split(64)])
        return np.asarray(starts), np.asarray(ends), pooled

    def _tracks(self, times: np.ndarray, pid: int | None) -> list[tuple[int, int, float, float, torch.Tensor, bool]]:
        if self.cropper is None:
            return []
        out = []
        T = self.p.config.num_frames
        for track in self.cropper.tracks:
            seq = sorted((pos, e) for pos, tid, e in self.entries if tid == track.id)
            if not seq:
                continue
            emb = torch.stack([e for _, e in seq])
            pooled = self.p.pool(emb[torch.as_tensor(sample_indices(len(seq), T))])
            out.append((track.id, len(seq), float(times[seq[0][0]]), float(times[seq[-1][0]]), pooled, track.id == pid))
        return out


def window_spans(duration: float, window: float, hop: float) -> list[tuple[float, float]]:
    """Overlapping ``(start, end)`` windows covering ``[0, duration]``.

    Windows of `window` seconds every `hop` seconds; a clip shorter than one window gets one
    window over the whole clip; a final window is aligned to the end when the last regular one
    stops more than half a hop short of it.
    """
    if duration <= window:
        return [(0.0, max(duration, 1e-3))]
    spans = [(s, s + window) for s in np.arange(0.0, duration - window + 1e-9, hop)]
    if duration - spans[-1][1] > hop / 2:
        spans.append((duration - window, duration))
    return [(float(s), float(e)) for s, e in spans]


def _duration(times: np.ndarray, meta: dict[str, Any]) -> float:
    step = 1.0 / max(float(meta.get("fps") or 1.0), 1e-3)
    observed = float(times[-1]) + step if len(times) else 0.0
    return max(observed, float(meta.get("duration") or 0.0)) if observed else float(meta.get("duration") or 0.0)


class _Thumbnails(list):
    """(time, thumbnail) pairs in bounded memory: past `cap` of them every other one is dropped
    and later ones are kept only as far apart as the survivors, so any clip length stays evenly
    covered (a plain list grew by 55 kB per second of video)."""

    def __init__(self, cap: int = 96) -> None:
        super().__init__()
        self.cap, self.spacing = cap, 0.0

    def append(self, item: tuple[float, np.ndarray]) -> None:
        if self and item[0] - self[-1][0] < self.spacing - 1e-9:
            return
        super().append(item)
        if len(self) > self.cap:
            del self[1::2]
            self.spacing = (self[-1][0] - self[0][0]) / max(len(self) - 1, 1)


def _named(encoding: VideoEncoding, video: VideoInput) -> VideoEncoding:
    """A cached encoding under the name of the file asked for: the cache is keyed by content, so
    a copy of a video under another name must not report the first file's name."""
    if isinstance(video, (str, os.PathLike)) and encoding.video.get("name") != Path(video).name:
        import dataclasses

        return dataclasses.replace(encoding, video=encoding.video | {"name": Path(video).name})
    return encoding


def _spread(items: list, k: int) -> list:
    if len(items) <= k:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, k).round().astype(int)]


def iter_videos(paths: Iterable[str | os.PathLike]) -> Iterator[Path]:
    """Expand folders into the video files they contain (sorted), keep files as they are."""
    exts = {".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv"}
    for p in map(Path, paths):
        if p.is_dir():
            yield from sorted(q for q in p.rglob("*") if q.suffix.lower() in exts)
        else:
            yield p
