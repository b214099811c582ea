"""`EmotionPredictor`: video file or frames in, zero-shot emotion probabilities out.

The expensive part (decode, face detection, frame encoding, temporal pooling) is done once per
video and cached as a `VideoEncoding`; scoring against a class set is a matrix product, so
editing class descriptions re-scores a video without re-encoding it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import queue
import threading
import time
import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .classes import ClassSet, preset
from .model import EmoCLIP, FastImageTower, FastTemporal, cpu_has_native_bf16, image_tower_gflops
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
PRECISIONS = ("auto", "fp32", "bf16")
BF16_MIN_COSINE = 0.999  # "auto" keeps bf16 only when its embeddings stay this close to fp32
AUTO_BF16_MIN_GFLOPS = 0.5  # smaller towers (test models) gain nothing from bf16: stay fp32
PREFETCH_DEPTH = 48  # sampled frames decoded/detected ahead of the encoder (bounded memory)
MIN_EARLY_BATCH = 8  # the smallest batch encoded while decode/detect has nothing ready (see _FrameCollector.run)
SINGLE_THREAD_DECODE_PIXELS = 1280 * 720  # videos up to this size decode on one FFmpeg thread
POOL_CHUNK = 16  # sequences gathered and pooled per step (bounded memory on long timelines)
MIN_POOL_PART = 3  # pooling runs data parallel when every worker gets at least this many sequences
SMALL_BATCH = 4  # batches this small (live webcam frames) run with `live_threads` intra-op threads
SMALL_TEXT_BATCH = 16  # so do text encodings of this few new descriptions (an edited class set)
DECODE_MAX_SIDE = 1920  # frames are decoded up to 1080p as they are; face detection downsizes its own copy


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
        precision: Image-tower precision: ``"fp32"``, ``"bf16"`` or ``"auto"`` (bf16 on a CPU with
            native bf16 when a start-up check on a fixed random batch gives embeddings within cosine
            `BF16_MIN_COSINE` of fp32, else fp32). None reads ``EMOCLIP_PRECISION`` (default
            ``"auto"``). Text and temporal models stay fp32. The choice is made on first use and
            reported by `precision` / `precision_info` and in each prediction's ``video`` metadata.
        prefetch: Decode and detect faces in a background thread, `PREFETCH_DEPTH` frames ahead
            of the encoder (None reads ``EMOCLIP_PREFETCH``, default on).
        live_threads: Intra-op threads for small work: batches of at most `SMALL_BATCH` frames
            (live webcam frames, single windows) and text encodings of at most `SMALL_TEXT_BATCH`
            new descriptions (class edits), set for the calling thread only. Small GEMMs gain
            little from a second thread, and on a busy CPU each of their ~100-200 parallel regions
            waits for its second thread to be scheduled (measured: one description 20-30 ms on one
            thread vs 660-1060 ms on two while other jobs ran). None reads
            ``EMOCLIP_LIVE_THREADS`` (default 1); 0 keeps torch's setting everywhere.
        encode_workers: Batches of frames are split into this many parts encoded at once, each by
            a worker thread with one intra-op thread (data parallel, no barrier between cores), so
            a busy core slows only its own part. None reads ``EMOCLIP_ENCODE_WORKERS``, default
            torch's intra-op thread count; 1 encodes the whole batch with torch's threads.
        interpolate_faces: Run the face detector on every other sampled frame when it can be
            spared: a frame's boxes are the midpoints of the detections before and after it when
            those pair up one to one with IoU >= 0.6 (`FaceCropper.crop_pair`); otherwise it is
            detected too. Halves detection on steady footage (at 7.5 sampled fps a face moves a few
            pixels between samples, well inside the crop margin). None reads
            ``EMOCLIP_INTERPOLATE_FACES`` (default on).

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
        precision: str | None = None,
        prefetch: bool | None = None,
        live_threads: int | None = None,
        encode_workers: int | None = None,
        interpolate_faces: bool | None = None,
    ) -> None:
        if face_fallback not in ("center", "skip"):
            raise ValueError(f"face_fallback must be 'center' or 'skip', not {face_fallback!r}")
        precision = (precision or os.environ.get("EMOCLIP_PRECISION") or "auto").strip().lower()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if prefetch is None:
            prefetch = _env_flag("EMOCLIP_PREFETCH", True)
        self.requested_precision = precision
        self.prefetch = bool(prefetch)
        if live_threads is None:
            live_threads = int(os.environ.get("EMOCLIP_LIVE_THREADS", "1") or 0)
        self.live_threads = max(0, int(live_threads))
        if encode_workers is None:
            encode_workers = int(os.environ.get("EMOCLIP_ENCODE_WORKERS", "0") or 0) or torch.get_num_threads()
        self.encode_workers = max(1, int(encode_workers))
        if interpolate_faces is None:
            interpolate_faces = _env_flag("EMOCLIP_INTERPOLATE_FACES", True)
        self.interpolate_faces = bool(interpolate_faces)
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
        self._tower: _Tower | None = None

    # ------------------------------------------------------------------ public API
    @property
    def model_name(self) -> str:
        return self.model.config.name

    @property
    def precision(self) -> str:
        """The image tower's precision in use, ``"fp32"`` or ``"bf16"`` (decided on first call)."""
        return self._image_tower().precision

    @property
    def precision_info(self) -> dict[str, Any]:
        """How the precision was chosen: requested, chosen, reason, cosine to fp32, implementation."""
        t = self._image_tower()
        return {"requested": self.requested_precision, "precision": t.precision, "reason": t.reason,
                "cosine": t.cosine, "implementation": t.implementation}

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
        names = classes.names
        tracks = []
        with self._threads_for(0):  # a few small matrix products: one thread (see live_threads)
            clip = probabilities(encoding.clip_embedding[None], text, scale)[0]
            windows = (probabilities(encoding.window_embeddings, text, scale) if len(encoding.window_starts)
                       else torch.zeros(0, len(text)))
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

    def score_embeddings(self, embeddings: np.ndarray | torch.Tensor, classes: ClassSet | None = None) -> np.ndarray:
        """Probabilities of bare video embeddings against a class set (same formula as `score`).

        Args:
            embeddings: (N, D) or (D,) video embeddings, e.g. `pool` outputs of a live stream or
                `Prediction.embedding`s saved earlier (normalised here).
            classes: The class set (default: the model's own).

        Returns:
            (N, C) float32 probabilities, rows summing to 1 ((C,) for a (D,) input).
        """
        classes = classes or self.default_classes()
        video = torch.as_tensor(np.asarray(embeddings, dtype=np.float32))
        single = video.ndim == 1
        if video.ndim not in (1, 2) or video.shape[-1] != self.model.embed_dim:
            raise ValueError(f"embeddings must be (N, {self.model.embed_dim}) or ({self.model.embed_dim},), "
                             f"got {tuple(video.shape)}")
        text = self.class_embeddings(classes)
        scale = self.model.logit_scale.detach().float().cpu()
        with self._threads_for(0):
            probs = probabilities(video[None] if single else video, text, scale).numpy()
        return probs[0] if single else probs

    def class_embeddings(self, classes: ClassSet) -> torch.Tensor:
        """(C, D) normalised embeddings of a class set's classes and compounds (cached by text)."""
        store = getattr(self.text_cache, "_store", None)
        new = len({t for t in classes.texts if store is None or t not in store})
        with self._threads_for(0 if new <= SMALL_TEXT_BATCH else SMALL_BATCH + 1):
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
        return self._encode_tensor(x)

    def _encode_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) normalised frames -> (N, D) float32 embeddings, data parallel when worth it."""
        tower = self._image_tower()
        parts = min(self.encode_workers, len(x) // (SMALL_BATCH + 1))
        if parts <= 1 or x.device.type != "cpu":
            with self._threads_for(len(x)):
                return tower(x).float().cpu()
        return _data_parallel(tower, x, parts).float().cpu()

    def _pool_batch(self, jobs: list[tuple[torch.Tensor, np.ndarray]]) -> torch.Tensor:
        """`pool` of many sequences given as ``(frames (M, D), picks (B, T))`` pairs: (sum B, D).

        Sequences are gathered `POOL_CHUNK` at a time (a long video's timeline is never
        materialised whole) and each chunk is pooled data parallel over the encode workers.
        """
        rows = [(frames, pick) for frames, picks in jobs for pick in np.asarray(picks, dtype=np.int64)]
        out = []
        for start in range(0, len(rows), POOL_CHUNK):
            chunk = torch.stack([frames[torch.from_numpy(pick)] for frames, pick in rows[start : start + POOL_CHUNK]])
            parts = min(self.encode_workers, len(chunk) // MIN_POOL_PART)
            out.append(_data_parallel(self.pool, chunk, parts) if parts > 1 else self.pool(chunk))
        return torch.cat(out)

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
        fast = _fast_temporal(self.model)
        with self._threads_for(0 if fast is not None else len(x)):  # folded pooling is small work
            if fast is not None:
                out = torch.nn.functional.normalize(fast(x.float()), dim=-1)
            else:
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
    @contextlib.contextmanager
    def _threads_for(self, batch: int) -> Iterator[None]:
        """`live_threads` intra-op threads for a small batch, in this thread only (OpenMP's setting is per thread)."""
        n = self.live_threads
        if not n or batch > SMALL_BATCH or torch.get_num_threads() <= n:
            yield
            return
        previous = torch.get_num_threads()
        torch.set_num_threads(n)
        try:
            yield
        finally:
            torch.set_num_threads(previous)

    def _image_tower(self) -> _Tower:
        tower = self._tower
        if tower is None or not tower.current():
            tower = self._tower = _resolve_tower(self.model, self.requested_precision)
        return tower

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
        h.update(f"{self.model_name}|{self.face_fallback}|{self.max_faces}|{fps}|{self.precision}|"
                 f"{self.interpolate_faces}".encode())
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
            max_side = DECODE_MAX_SIDE if cfg.face_detection else None
            # max_duration again while decoding: a header can lie about (or lack) the duration
            # up to 720p one decoder thread: it decodes beside an encoder that keeps every core busy,
            # and FFmpeg's frame threads would cost more CPU than they save; larger frames (where the
            # decoder is the slower stage) get FFmpeg's threads
            threads = 1 if info.width * info.height <= SINGLE_THREAD_DECODE_PIXELS else 0
            return iter_frames(path, cfg.sample_fps, max_frames=lim.max_sampled_frames, max_side=max_side,
                               max_duration=lim.max_duration, decode_threads=threads), meta
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
        meta["precision"] = self.precision
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


class _Tower:
    """The image tower a predictor encodes with: a callable plus how and why it was chosen."""

    def __init__(self, model: EmoCLIP, fn: Callable[[torch.Tensor], torch.Tensor] | None, precision: str, reason: str,
                 cosine: float | None, implementation: str) -> None:
        self.fn, self.precision, self.reason = fn, precision, reason
        self.cosine, self.implementation = cosine, implementation
        self._model = weakref.ref(model)
        self._versions = _visual_versions(model)

    def current(self) -> bool:
        """False once the model's image-tower weights were replaced or edited in place."""
        model = self._model()
        return model is not None and _visual_versions(model) == self._versions

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if self.fn is not None:
            return self.fn(images)
        model = self._model()  # fp32: the model's own tower (held weakly: the cache must not keep it alive)
        if model is None:
            raise RuntimeError("the model of this image tower was garbage-collected")
        return model.encode_image(images)


def _visual_versions(model: EmoCLIP) -> tuple:
    return tuple((p.data_ptr(), p._version, p.device.type) for p in model.backbone.visual.parameters())


_TOWERS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> {precision: _Tower}
_TEMPORALS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # model -> FastTemporal | None
_CACHE_LOCK = threading.Lock()


def _resolve_tower(model: EmoCLIP, requested: str) -> _Tower:
    """The (shared, per model) image tower for a requested precision; see `EmotionPredictor`."""
    with _CACHE_LOCK:
        towers = _TOWERS.setdefault(model, {})
        tower = towers.get(requested)
        if tower is not None and tower.current():
            return tower
        tower = _choose_tower(model, requested)
        towers[requested] = tower
        return tower


def _choose_tower(model: EmoCLIP, requested: str) -> _Tower:
    fp32 = None  # the model's own encode_image
    if requested == "fp32":
        return _Tower(model, fp32, "fp32", "requested", None, "open_clip")
    device = model.logit_scale.device.type
    if requested == "auto":
        if device != "cpu":
            return _Tower(model, fp32, "fp32", f"auto: bf16 is only chosen on CPU (device {device})", None, "open_clip")
        if not _native_bf16():
            return _Tower(model, fp32, "fp32", "auto: this CPU has no native bf16 (avx512_bf16/amx_bf16)", None, "open_clip")
        gflops = image_tower_gflops(model.backbone.visual)
        if gflops < AUTO_BF16_MIN_GFLOPS:
            return _Tower(model, fp32, "fp32", f"auto: the image tower is too small for bf16 to pay ({gflops:.2g} GFLOP/frame)",
                          None, "open_clip")
    fn, implementation = _bf16_tower(model)
    cosine = _bf16_cosine(model, fn)
    if requested == "auto" and not cosine >= BF16_MIN_COSINE:
        return _Tower(model, fp32, "fp32", f"auto: bf16 embeddings reached cosine {cosine:.5f} < {BF16_MIN_COSINE} of fp32",
                      cosine, "open_clip")
    reason = "requested" if requested == "bf16" else f"auto: native bf16, cosine {cosine:.5f} >= {BF16_MIN_COSINE} of fp32"
    return _Tower(model, fn, "bf16", reason, cosine, implementation)


def _native_bf16() -> bool:
    return cpu_has_native_bf16()


def _bf16_tower(model: EmoCLIP) -> tuple[Callable[[torch.Tensor], torch.Tensor], str]:
    """A bf16 copy of the image tower (the model itself stays fp32): oneDNN-packed when possible."""
    import copy

    visual = model.backbone.visual
    fast = FastImageTower.build(visual, torch.bfloat16)
    if fast is not None:
        return fast, "onednn-packed"
    with torch.no_grad():
        plain = copy.deepcopy(visual).to(torch.bfloat16).eval()
    return (lambda x: plain(x.to(torch.bfloat16)).float()), "open_clip"


@torch.inference_mode()
def _bf16_cosine(model: EmoCLIP, fn: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """Smallest cosine between fp32 and `fn` embeddings of a fixed batch of smooth random images."""
    cfg = model.config.preprocess
    size = cfg.image_size
    gen = torch.Generator().manual_seed(0)
    low = torch.rand(4, 3, 7, 7, generator=gen)
    images = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    images = (images + 0.08 * torch.randn(images.shape, generator=gen)).clamp(0, 1)
    x = (images - torch.tensor(cfg.mean).view(1, 3, 1, 1)) / torch.tensor(cfg.std).view(1, 3, 1, 1)
    x = x.to(model.logit_scale.device)
    ref = model.encode_image(x).float()
    out = fn(x).float()
    return float(torch.nn.functional.cosine_similarity(ref, out, dim=-1).min())


def _fast_temporal(model: EmoCLIP) -> FastTemporal | None:
    """The model's folded temporal transformer (shared, rebuilt if its weights change), or None."""
    temporal = model.temporal
    if temporal is None or model.logit_scale.device.type != "cpu" or not FastTemporal.worthwhile(temporal):
        return None
    with _CACHE_LOCK:
        fast = _TEMPORALS.get(model)
        versions = tuple((p.data_ptr(), p._version) for p in temporal.parameters())
        if fast is None or fast.versions != versions or fast.temporal is not temporal:
            fast = _TEMPORALS[model] = FastTemporal(temporal)
        return fast


_POOL: ThreadPoolExecutor | None = None


def _encode_pool() -> ThreadPoolExecutor:
    """Worker threads for data-parallel encoding (shared by all predictors; one intra-op thread each)."""
    global _POOL
    with _CACHE_LOCK:
        if _POOL is None:
            _POOL = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="emoclip-encode")
        return _POOL


def _env_flag(name: str, default: bool) -> bool:
    """A boolean environment setting: 0/false/no/off are False, anything else True."""
    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


def _data_parallel(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, parts: int) -> torch.Tensor:
    """`fn(x)` as `parts` single-threaded calls on row slices of `x`, concatenated; the calling
    thread computes the first slice, the shared worker pool the others."""
    chunks = x.tensor_split(parts)
    pool = _encode_pool()
    futures = [pool.submit(_single_threaded, fn, c) for c in chunks[1:]]
    try:
        first = _single_threaded(fn, chunks[0])
    finally:
        rest = [f.result() for f in futures]
    return torch.cat([first, *rest])


def _single_threaded(tower: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    previous = torch.get_num_threads()
    torch.set_num_threads(1)  # OpenMP's thread count is per calling thread: others are unaffected
    try:
        with torch.inference_mode():
            return tower(x)
    finally:
        torch.set_num_threads(previous)


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


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


_END = object()


class _Prefetch:
    """Runs `items` in a background thread, at most `depth` items ahead of the consumer.

    Iterate it like `items`. Exceptions from `items` are re-raised in the consumer; `close()` (also
    called when the consumer stops early or fails) stops the thread and closes `items`. `ready()`
    says how many items are waiting, so the consumer can act while the producer is still busy.
    """

    def __init__(self, items: Iterator[Any], depth: int) -> None:
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._stop = threading.Event()
        self._done = False
        self._exhausted = threading.Event()
        self._thread = threading.Thread(target=self._work, name="emoclip-decode", daemon=True)
        self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _work(self) -> None:
        try:
            for item in self._items:
                if not self._put(item):
                    break
            else:
                self._exhausted.set()
                self._put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self._put(_Failure(exc))
        finally:
            self._items.close()

    def ready(self) -> int:
        """Items produced and not yet taken (0 while the producer is still working on the next)."""
        return self._queue.qsize()

    def exhausted(self) -> bool:
        """Every item has been produced: what `ready` counts is all that is left."""
        return self._exhausted.is_set()

    def __iter__(self) -> _Prefetch:
        return self

    def __next__(self) -> Any:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END:
            self._done = True
            raise StopIteration
        if isinstance(item, _Failure):
            self._done = True
            raise item.exc
        return item

    def close(self) -> None:
        self._done = True
        self._stop.set()
        self._thread.join()


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
        self.interpolated = 0  # frames whose face boxes were interpolated, not detected

    def run(self, frames: Iterator[SampledFrame], duration: float, progress: Progress | None) -> None:
        produced = self._produce(frames)
        prefetch = _Prefetch(produced, PREFETCH_DEPTH) if self.p.prefetch else None
        if prefetch is not None:  # decode + detect in a thread, a bounded queue ahead of the encoder
            produced = prefetch
        bs = self.p.batch_size
        try:
            for frame_time, items in produced:
                self.pending += items
                full = len(self.pending) >= bs
                if prefetch is not None:
                    waiting = prefetch.ready()
                    # an idle encoder does not wait for a full batch while the producer is still busy
                    # (the start of every video): it takes what there is, from MIN_EARLY_BATCH crops on
                    starved = len(self.pending) >= MIN_EARLY_BATCH and not waiting
                    # nor leaves a small remainder for a last, inefficient batch: at the end of the
                    # video the last crops join the batch before (up to 1.5 batches)
                    tail = full and prefetch.exhausted() and len(self.pending) + waiting <= bs + bs // 2
                    if (full or starved) and not tail:
                        self._flush()
                elif full:
                    self._flush()
                if progress and duration > 0:
                    progress(min(0.99, frame_time / duration), f"analysed {frame_time:.1f} of {duration:.1f} s")
        finally:
            produced.close()
        self._flush()
        if not self.times:
            raise VideoDecodeError("the video has no decodable frames")

    def _produce(self, frames: Iterator[SampledFrame]) -> Iterator[tuple[float, list[tuple[int, int | None, np.ndarray]]]]:
        """Decode, detect and crop: yields (frame time, [(frame position, track id, crop)]).

        With face interpolation on, every other frame is held until the next one is detected, and
        `FaceCropper.crop_pair` decides whether it needs a detection of its own.
        """
        from .faces import center_crop

        held: SampledFrame | None = None
        try:
            t_prev = time.perf_counter()
            for frame in frames:
                t_decoded = time.perf_counter()
                self.timings["decode"] += t_decoded - t_prev
                if self.cropper is None:
                    yield self._record(frame, [(0, center_crop(frame.image, self.size))], True)
                elif held is not None:
                    pos = len(self.times)
                    first, second, interpolated = self.cropper.crop_pair(held.image, pos, frame.image, pos + 1)
                    self.interpolated += interpolated
                    yield self._record(held, *self._items(first))
                    yield self._record(frame, *self._items(second))
                    held = None
                elif self.p.interpolate_faces and self.times:
                    held = frame  # cropped with the next frame
                else:
                    yield self._record(frame, *self._items(self.cropper(frame.image, len(self.times))))
                self.timings["detect"] += time.perf_counter() - t_decoded
                t_prev = time.perf_counter()
            if held is not None:
                yield self._record(held, *self._items(self.cropper(held.image, len(self.times))))
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # release the decoder now, also when the consumer stopped early

    @staticmethod
    def _items(crops: list) -> tuple[list[tuple[int | None, np.ndarray]], bool]:
        return [(c.track_id, c.image) for c in crops], any(c.track_id is not None for c in crops)

    def _record(self, frame: SampledFrame, items: list[tuple[int | None, np.ndarray]],
                has_face: bool) -> tuple[float, list[tuple[int, int | None, np.ndarray]]]:
        """Book one frame (time, face flag, thumbnail): the (time, [(position, track id, crop)]) to yield."""
        pos = len(self.times)
        if items and (not self.thumbnails or frame.time - self.thumbnails[-1][0] >= 0.5):
            import cv2

            thumb = cv2.resize(items[0][1], (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA)
            self.thumbnails.append((frame.time, thumb))
        self.has_face.append(has_face)
        self.times.append(frame.time)
        return frame.time, [(pos, tid, img) for tid, img in items]

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
        # the clip, every window and every track are pooled in one batched call
        jobs = [(frame_emb, sample_indices(len(seq), T)[None])]  # the clip
        starts, ends, picks = self._window_picks(frame_times, meta)
        if picks:
            jobs.append((frame_emb, np.stack(picks)))  # (W, T) picks: each frame encoded once, reused
        tracks, track_rows = self._track_sequences(times, pid, positions, jobs)
        pooled = self.p._pool_batch(jobs)
        clip, windows = pooled[0], pooled[1 : 1 + len(picks)]
        tracks = [(tid, n, t0_, t1_, pooled[row], primary) for (tid, n, t0_, t1_, primary), row in zip(tracks, track_rows)]
        self.timings["temporal"] += time.perf_counter() - t0
        return VideoEncoding(
            key=key, times=times, has_face=np.asarray(self.has_face, dtype=bool),
            frame_embeddings=frame_emb, frame_times=frame_times, clip_embedding=clip,
            window_starts=starts, window_ends=ends, window_embeddings=windows, tracks=tracks,
            thumbnails=_spread(self.thumbnails, 12),
            video=meta | {"duration": _duration(times, meta), "faces_interpolated": self.interpolated},
            timings=dict(self.timings), fallback=self.p.face_fallback, detection=self.detection,
            warnings=warnings,
        )

    def _window_picks(self, t: np.ndarray, meta: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Timeline windows that hold frames: starts, ends and each one's T picks into `t`."""
        cfg = self.p.config
        duration = _duration(np.asarray(self.times), meta)
        starts, ends, picks = [], [], []
        for s, e in window_spans(duration, cfg.window_seconds, cfg.hop_seconds):
            idx = np.flatnonzero((t >= s - 1e-6) & (t < e - 1e-6))
            if len(idx):
                starts.append(s)
                ends.append(e)
                picks.append(idx[sample_indices(len(idx), cfg.num_frames)])
        return np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64), picks

    def _track_sequences(self, times: np.ndarray, pid: int | None, primary_positions: np.ndarray,
                         jobs: list[tuple[torch.Tensor, np.ndarray]]) -> tuple[list[tuple[int, int, float, float, bool]], list[int]]:
        """Each face track's (id, frames, first time, last time, is primary) and its row in the
        pooled batch. Tracks' pooling jobs are appended to `jobs`; the subject's track reuses the
        clip's row (0) when it covers the same frames."""
        if self.cropper is None:
            return [], []
        T = self.p.config.num_frames
        next_row = sum(len(picks) for _, picks in jobs)
        tracks, rows = [], []
        for track in self.cropper.tracks:
            seq = sorted((pos, e) for pos, tid, e in self.entries if tid == track.id)
            if not seq:
                continue
            positions = [pos for pos, _ in seq]
            tracks.append((track.id, len(seq), float(times[seq[0][0]]), float(times[seq[-1][0]]), track.id == pid))
            if track.id == pid and np.array_equal(positions, primary_positions):
                rows.append(0)
                continue
            jobs.append((torch.stack([e for _, e in seq]), sample_indices(len(seq), T)[None]))
            rows.append(next_row)
            next_row += 1
        return tracks, rows


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
