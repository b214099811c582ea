"""`EmotionPredictor`: video file or frames in, zero-shot emotion probabilities out.

The expensive part (decode, face detection, frame encoding, temporal pooling) is done once per
video and cached as a `VideoEncoding`; scoring against a class set is a matrix product, so
editing class descriptions re-scores a video without re-encoding it.

This module is the facade; what inputs are accepted and how they become frames is in `inputs`,
the encoding cache and its content keys in `cache`, ``EMOCLIP_*`` settings parsing in `settings`,
streaming a video into a `VideoEncoding` in `pipeline` (which knows the predictor only as its
`pipeline.Encoder` protocol), how the image tower runs (precision, data-parallel encoding) in
`precision`, a photo's faces in `photo`.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from ..classes import ClassSet, preset
from ..images import is_image_file
from ..model import EmoCLIP
from ..preprocess import to_tensor
from ..results import FaceSummary, Prediction, Timeline, TrackPrediction
from ..video import LimitError  # noqa: F401 - defined in .video (raised there too), re-exported here
from ..zeroshot import TextEmbeddingCache, class_embeddings, probabilities
from .cache import EncodingCache, content_key
from .inputs import (
    FRAME_FOLDER_FPS,  # noqa: F401 - defined in .inputs, re-exported here
    ImageInput,
    VideoInput,
    VideoLimits,  # defined in .inputs, re-exported here (the predictor's `limits`)
    clip_frames,
    expected_frames,
    iter_inputs,  # noqa: F401 - defined in .inputs, re-exported here
    read_still,
)
from .pipeline import (
    FrameCollector,
    LockedDetector,
    NoFaceError,  # noqa: F401 - defined in .pipeline (raised there), re-exported here
    Progress,
    VideoEncoding,  # defined in .pipeline (built there), re-exported here
    window_spans,  # noqa: F401 - defined in .pipeline, re-exported here
)
from .precision import (
    PRECISIONS,
    Tower,
    data_parallel,
    fast_temporal,
    resolve_tower,
    single_threaded,
)
from .settings import env_flag, env_float, env_number

if TYPE_CHECKING:
    from ..faces import FaceDetector

POOL_CHUNK = 16  # sequences gathered and pooled per step (bounded memory on long timelines)
MIN_POOL_PART = 3  # pooling runs data parallel when every worker gets at least this many sequences
SMALL_BATCH = 4  # batches this small (live webcam frames) run with `live_threads` intra-op threads
SMALL_TEXT_BATCH = 16  # so do text encodings of this few new descriptions (an edited class set)


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
            `precision.BF16_MIN_COSINE` of fp32, else fp32). An explicit ``"bf16"`` runs the same
            check and, when it fails, is refused: the first use raises RuntimeError with the
            cosine reached (``"auto"`` would fall back to fp32). None reads ``EMOCLIP_PRECISION``
            (default ``"auto"``). Text and temporal models stay fp32. The choice is made on first
            use and reported by `precision` / `precision_info` and in each prediction's ``video``
            metadata.
        prefetch: Decode and detect faces in a background thread, `pipeline.PREFETCH_DEPTH`
            frames ahead of the encoder (None reads ``EMOCLIP_PREFETCH``, default on). While that
            thread is behind, the encoder leaves it a core (``encode_workers - 1`` workers).
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
        min_face_score: Detections scoring less are not faces (README "Faces you can trust":
            real faces measured 0.75-0.95, text, skin-coloured objects, a cat 0.50 at most). None
            reads ``EMOCLIP_MIN_FACE_SCORE`` (default `faces.MIN_FACE_SCORE`, 0.6).
        min_track_frames: Sampled frames a face track needs to count as a person (shorter tracks
            are not reported and their frames count as frames without a face). None reads
            ``EMOCLIP_MIN_TRACK_FRAMES``, default `faces.min_track_frames` of the clip's sampled
            frames (10 %, at least 2, at most 8; 1 for a one-frame clip).
        min_face_coverage: A warning says so when a face is found in fewer than this share of the
            sampled frames. None reads ``EMOCLIP_MIN_FACE_COVERAGE`` (default 0.5).

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
        min_face_score: float | None = None,
        min_track_frames: int | None = None,
        min_face_coverage: float | None = None,
    ) -> None:
        if face_fallback not in ("center", "skip"):
            raise ValueError(f"face_fallback must be 'center' or 'skip', not {face_fallback!r}")
        precision = (precision or os.environ.get("EMOCLIP_PRECISION") or "auto").strip().lower()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
        if prefetch is None:
            prefetch = env_flag("EMOCLIP_PREFETCH", True)
        self.requested_precision = precision
        self.prefetch = bool(prefetch)
        if live_threads is None:
            live_threads = int(os.environ.get("EMOCLIP_LIVE_THREADS", "1") or 0)
        self.live_threads = max(0, int(live_threads))
        if encode_workers is None:
            encode_workers = (
                int(os.environ.get("EMOCLIP_ENCODE_WORKERS", "0") or 0) or torch.get_num_threads()
            )
        self.encode_workers = max(1, int(encode_workers))
        if interpolate_faces is None:
            interpolate_faces = env_flag("EMOCLIP_INTERPOLATE_FACES", True)
        self.interpolate_faces = bool(interpolate_faces)
        from ..faces import MIN_FACE_SCORE

        self.min_face_score = env_float(
            "EMOCLIP_MIN_FACE_SCORE", min_face_score, MIN_FACE_SCORE, 0.0, 1.0
        )
        self.min_face_coverage = env_float(
            "EMOCLIP_MIN_FACE_COVERAGE", min_face_coverage, 0.5, 0.0, 1.0
        )
        if min_track_frames is None and (os.environ.get("EMOCLIP_MIN_TRACK_FRAMES") or "").strip():
            min_track_frames = env_number("EMOCLIP_MIN_TRACK_FRAMES", int)
        if min_track_frames is not None and int(min_track_frames) < 1:
            raise ValueError(f"min_track_frames must be at least 1, got {min_track_frames}")
        self.min_track_frames = None if min_track_frames is None else int(min_track_frames)
        self.model = model.eval()
        self.config = model.config.preprocess
        self.batch_size = batch_size
        self.face_fallback = face_fallback
        self.max_faces = max_faces
        self.limits = limits or VideoLimits()
        self.text_cache = TextEmbeddingCache(model)
        self._videos = EncodingCache(video_cache_size)
        self._lock = threading.Lock()
        self._detector: FaceDetector | None = None
        self._detector_lock = threading.Lock()
        self._tower: Tower | None = None

    # ------------------------------------------------------------------ public API
    @property
    def model_name(self) -> str:
        return self.model.config.name

    @property
    def precision(self) -> str:
        """The image tower's precision in use, ``"fp32"`` or ``"bf16"`` (decided on first call).

        Raises:
            RuntimeError: ``"bf16"`` was requested and failed the start-up check (the message says why).
        """
        return self.image_tower().precision

    @property
    def precision_info(self) -> dict[str, Any]:
        """How the precision was chosen: requested, chosen, reason, cosine to fp32, implementation."""
        t = self.image_tower()
        return {
            "requested": self.requested_precision,
            "precision": t.precision,
            "reason": t.reason,
            "cosine": t.cosine,
            "implementation": t.implementation,
        }

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
            video: A video file path; a still image (JPEG, PNG, WebP, BMP, TIFF file, or an
                (H, W, 3) uint8 RGB array), analysed as by `predict_image`; a folder of numbered
                frames (one clip at `fps`); or RGB frames (T, H, W, 3) uint8 sampled at `fps`.
            classes: Class set to score; None for the model's default set.
            fps: Frame rate of `video` when it is an array (default: the model's sample rate) or a
                frame folder (default `FRAME_FOLDER_FPS`).
            progress: Called with (fraction done, message) while decoding and encoding.

        Returns:
            Clip probabilities, timeline, per-track results, clip embedding, timings;
            ``video["kind"]`` is ``"video"``, ``"frames"`` (a frame folder or array) or ``"image"``.
        """
        encoding = self.encode(video, fps=fps, progress=progress)
        return self.score(encoding, classes)

    def predict_image(self, image: ImageInput, classes: ClassSet | None = None) -> Prediction:
        """Score every face of a still image, as one-frame clips.

        Args:
            image: A JPEG, PNG (alpha composited on white), WebP, BMP or TIFF file (EXIF
                orientation applied), or an (H, W, 3) uint8 RGB array.
            classes: Class set to score; None for the model's default set.

        Returns:
            A `Prediction` with one track per face (its ``box`` in pixels of the upright image),
            largest face first and primary; clip probabilities and embedding are the largest
            face's; the timeline is empty; ``video["kind"] == "image"``. Without a face the
            centre crop is analysed (with a warning) or `NoFaceError` raised, per `face_fallback`.

        Raises:
            ImageDecodeError: Missing, empty, corrupt or unsupported image (a `VideoDecodeError`).
            LimitError: The image exceeds ``limits.max_bytes`` or ``limits.max_pixels``.
        """
        if (
            isinstance(image, (str, os.PathLike))
            and not is_image_file(image)
            and Path(image).is_file()
        ):
            from ..images import ImageDecodeError

            raise ImageDecodeError(
                f"'{Path(image).name}' is not a JPEG, PNG, WebP, BMP or TIFF image"
            )
        return self.score(self.encode(image), classes)

    def encode(
        self, video: VideoInput, *, fps: float | None = None, progress: Progress | None = None
    ) -> VideoEncoding:
        """The cached encoding of `video`, computing it if needed (see `predict`)."""
        key = self._key(video, fps)
        cached = self._videos.get(key, video)
        if cached is not None:
            return cached
        encoding = self._encode(video, key, fps, progress)
        self._videos.put(key, encoding)
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
            windows = (
                probabilities(encoding.window_embeddings, text, scale)
                if len(encoding.window_starts)
                else torch.zeros(0, len(text))
            )
            boxes = getattr(encoding, "boxes", None) or {}
            for track_id, n, start, end, emb, primary in encoding.tracks:
                probs = probabilities(emb[None], text, scale)[0]
                tracks.append(
                    TrackPrediction(
                        track_id,
                        n,
                        start,
                        end,
                        dict(zip(names, probs.tolist())),
                        primary,
                        boxes.get(track_id),
                    )
                )
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

    def score_embeddings(
        self, embeddings: np.ndarray | torch.Tensor, classes: ClassSet | None = None
    ) -> np.ndarray:
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
            raise ValueError(
                f"embeddings must be (N, {self.model.embed_dim}) or ({self.model.embed_dim},), "
                f"got {tuple(video.shape)}"
            )
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
    def encode_images(
        self, crops: np.ndarray | Sequence[np.ndarray], *, workers: int | None = None
    ) -> torch.Tensor:
        """Frame embeddings of square crops.

        Args:
            crops: (N, S, S, 3) uint8 RGB crops, S = the model's image size.
            workers: at most this many data-parallel workers for this call (default
                `encode_workers`); 1 encodes on the calling thread alone, leaving the other cores to
                other work.

        Returns:
            (N, D) float32 un-normalised embeddings.
        """
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be None or at least 1, got {workers}")
        x = to_tensor(crops, self.config).to(self.model.logit_scale.device)
        return self._encode_tensor(x, workers)

    def _encode_tensor(self, x: torch.Tensor, workers: int | None = None) -> torch.Tensor:
        """(N, 3, S, S) normalised frames -> (N, D) float32 embeddings, data parallel when worth it."""
        tower = self.image_tower()
        if (
            workers == 1 and x.device.type == "cpu"
        ):  # one thread: the other cores are left to other work
            return single_threaded(tower, x).float()
        parts = min(
            workers or self.encode_workers, self.encode_workers, len(x) // (SMALL_BATCH + 1)
        )
        if parts <= 1 or x.device.type != "cpu":
            with self._threads_for(len(x)):
                return tower(x).float().cpu()
        return data_parallel(tower, x, parts).float().cpu()

    def pool_batch(self, jobs: list[tuple[torch.Tensor, np.ndarray]]) -> torch.Tensor:
        """`pool` of many sequences given as ``(frames (M, D), picks (B, T))`` pairs: (sum B, D).

        Sequences are gathered `POOL_CHUNK` at a time (a long video's timeline is never
        materialised whole) and each chunk is pooled data parallel over the encode workers.
        """
        rows = [
            (frames, pick) for frames, picks in jobs for pick in np.asarray(picks, dtype=np.int64)
        ]
        out = []
        for start in range(0, len(rows), POOL_CHUNK):
            chunk = torch.stack(
                [
                    frames[torch.from_numpy(pick)]
                    for frames, pick in rows[start : start + POOL_CHUNK]
                ]
            )
            parts = min(self.encode_workers, len(chunk) // MIN_POOL_PART)
            out.append(data_parallel(self.pool, chunk, parts) if parts > 1 else self.pool(chunk))
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
        fast = fast_temporal(self.model)
        with self._threads_for(0 if fast is not None else len(x)):  # folded pooling is small work
            if fast is not None:
                out = torch.nn.functional.normalize(fast(x.float()), dim=-1)
            else:
                out = (
                    self.model.aggregate(x.to(self.model.logit_scale.device), normalize=True)
                    .float()
                    .cpu()
                )
        return out[0] if single else out

    def crop_frame(self, image: np.ndarray) -> tuple[np.ndarray | None, bool]:
        """The largest face of one RGB frame as a model-sized crop (for live streams).

        Returns:
            ``(crop (S, S, 3) uint8 or None, face_found)``; without a face the crop is the
            centre crop, or None when the fallback is "skip".
        """
        from ..faces import center_crop, crop_square

        size = self.config.image_size
        if not self.config.face_detection:
            return center_crop(image, size), True
        with self._detector_lock:
            boxes = [
                b for b in self._shared_detector().detect(image) if b.score >= self.min_face_score
            ]
        if boxes:
            return crop_square(image, boxes[0], margin=self.config.face_margin, size=size), True
        return (center_crop(image, size) if self.face_fallback == "center" else None), False

    def close(self) -> None:
        """Release the face detector."""
        if self._detector is not None:
            self._detector.close()
            self._detector = None

    # ------------------------------------------------------------------ for pipeline and photo; internals
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

    def image_tower(self) -> Tower:
        """The image tower this predictor encodes with (chosen on first call, shared per model;
        re-chosen when the model's image-tower weights change)."""
        tower = self._tower
        if tower is None or not tower.current():
            tower = self._tower = resolve_tower(self.model, self.requested_precision)
        return tower

    def track_frames_needed(self, sampled_frames: int) -> int:
        """Frames a face track needs to count as a person in a clip of `sampled_frames`."""
        from ..faces import min_track_frames

        if sampled_frames <= 1:
            return 1  # a photograph: its one face is the subject
        if self.min_track_frames is not None:
            return min(self.min_track_frames, sampled_frames)
        return min_track_frames(sampled_frames)

    def _shared_detector(self) -> FaceDetector:
        from ..faces import FaceDetector

        with self._lock:
            if self._detector is None:
                self._detector = FaceDetector()
        return self._detector

    def locked_detector(self) -> LockedDetector:
        """The shared face detector behind this predictor's lock (for the pipeline's decode thread)."""
        return LockedDetector(self._shared_detector(), self._detector_lock)

    def _key(self, video: VideoInput, fps: float | None) -> str:
        return content_key(
            video,
            f"{self.model_name}|{self.face_fallback}|{self.max_faces}|{fps}|"
            f"{self.precision}|{self.interpolate_faces}|{self.min_face_score}|"
            f"{self.min_track_frames}|{self.min_face_coverage}",
        )

    def _encode(
        self, video: VideoInput, key: str, fps: float | None, progress: Progress | None
    ) -> VideoEncoding:
        start = time.perf_counter()
        still = read_still(video, self.limits)
        if still is not None:
            from .photo import encode_photo

            image, meta = still
            meta["precision"] = self.precision
            enc = encode_photo(self, image, key, meta)
            enc.timings["total"] = time.perf_counter() - start
            if progress:
                progress(1.0, "done")
            return enc
        frames, meta = clip_frames(video, fps, self.config, self.limits)
        meta["precision"] = self.precision
        collected = FrameCollector(self, self.config.face_detection)
        try:
            expected = expected_frames(meta, self.config.sample_fps, self.limits.max_sampled_frames)
            collected.run(frames, meta.get("duration") or 0.0, progress, expected)
        finally:
            collected.close()
        enc = collected.finish(key, meta)
        enc.timings["total"] = time.perf_counter() - start
        if progress:
            progress(1.0, "done")
        return enc
