"""`EmotionPredictor`: video file or frames in, zero-shot emotion probabilities out.

The expensive part (decode, face detection, frame encoding, temporal pooling) is done once per
video and cached as a `VideoEncoding`; scoring against a class set is a matrix product, so
editing class descriptions re-scores a video without re-encoding it.

This module is the facade; what inputs are accepted and how they become frames is in `inputs`,
the encoding cache and its content keys in `cache`, ``EMOCLIP_*`` settings parsing in `settings`,
streaming a video into a `VideoEncoding` in `pipeline` (which knows the predictor only as its
`encoding.Encoder` protocol), the image tower's precision in `precision`, thread counts and
data-parallel encoding in `parallel`, the shared face detector in `detector`, turning an encoding
into a `Prediction` in `scoring`, a photo's faces in `photo`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from emoclip.classes import ClassSet, preset
from emoclip.evidence.explain import explain_encoding
from emoclip.inference.cache import EncodingCache, content_key
from emoclip.inference.detector import LockedDetector, SharedDetector
from emoclip.inference.encoding import Progress, VideoEncoding
from emoclip.inference.parallel import SMALL_BATCH, pool_in_chunks, split_encode, threads_for
from emoclip.inference.pipeline import encode_input
from emoclip.inference.precision import Tower, TowerSelector, fast_temporal, requested_precision
from emoclip.inference.scoring import as_embeddings, embedding_probabilities, score_encoding
from emoclip.inference.settings import env_count, env_flag, env_float
from emoclip.inference.tower_cache import default_cache_dir
from emoclip.inference.tracks import frames_needed
from emoclip.media.images import is_image_file
from emoclip.media.inputs import ImageInput, VideoInput, VideoLimits
from emoclip.model.network import EmoCLIP
from emoclip.model.preprocess import to_tensor
from emoclip.provenance import provenance_of
from emoclip.results import (
    Prediction,  # defined in ..results, re-exported here (`predict` returns it)
)
from emoclip.zeroshot import TextEmbeddingCache, class_embeddings

if TYPE_CHECKING:
    from emoclip.faces import FaceDetector

SMALL_TEXT_BATCH = 16  # text encodings of this few new descriptions (an edited class set) run
# with `live_threads` intra-op threads, like batches of at most `parallel.SMALL_BATCH` frames


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
        precision: Image-tower precision: ``"fp32"`` (open_clip's own tower), ``"bf16"`` (the
            fastest bf16 tower within cosine `autotune.BF16_MIN_COSINE` of fp32 on a fixed check
            batch; refused with a RuntimeError on first use when none is) or ``"auto"``: every
            candidate tower this CPU runs natively (`autotune.CANDIDATES`) checked against fp32 and
            timed at this predictor's batch and workers, the fastest passing kept; the choice is
            remembered per machine in ``EMOCLIP_TOWER_CACHE`` (default ``~/.cache/emoclip/tower``;
            ``off`` keeps it in memory). None reads ``EMOCLIP_PRECISION`` (default ``"auto"``).
            Text and temporal models stay fp32. Reported by `precision` / `precision_info` /
            `tower_report` and in each prediction's ``video`` metadata.
        prefetch: Decode and detect faces in a background thread, `pipeline.PREFETCH_DEPTH`
            frames ahead of the encoder (None reads ``EMOCLIP_PREFETCH``, default on). While that
            thread is behind, the encoder leaves it a core (``encode_workers - 1`` workers).
        live_threads: Intra-op threads for small work: batches of at most
            `parallel.SMALL_BATCH` frames (live webcam frames, single windows) and text encodings
            of at most `SMALL_TEXT_BATCH` new descriptions (class edits), set for the calling
            thread only. Small GEMMs gain little from a second thread, and on a busy CPU each of
            their ~100-200 parallel regions waits for its second thread to be scheduled
            (measured: one description 20-30 ms on one thread vs 660-1060 ms on two while other
            jobs ran). None reads ``EMOCLIP_LIVE_THREADS`` (default 1); 0 keeps torch's setting
            everywhere.
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
        min_face_score: Detections scoring less are not faces (README "Faces in the wild": chosen
            on the calibration part of the face evaluation set; tracks must also pass the
            face-presence check). None
            reads ``EMOCLIP_MIN_FACE_SCORE`` (default `faces.MIN_FACE_SCORE`, 0.5).
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
        self.requested_precision = requested_precision(
            precision if precision is not None else os.environ.get("EMOCLIP_PRECISION")
        )
        self.prefetch = bool(env_flag("EMOCLIP_PREFETCH", True) if prefetch is None else prefetch)
        if live_threads is None:
            live_threads = int(os.environ.get("EMOCLIP_LIVE_THREADS", "1") or 0)
        self.live_threads = max(0, int(live_threads))
        if encode_workers is None:
            encode_workers = (
                int(os.environ.get("EMOCLIP_ENCODE_WORKERS", "0") or 0) or torch.get_num_threads()
            )
        self.encode_workers = max(1, int(encode_workers))
        self.interpolate_faces = bool(
            env_flag("EMOCLIP_INTERPOLATE_FACES", True)
            if interpolate_faces is None
            else interpolate_faces
        )
        from emoclip.faces import MIN_FACE_SCORE

        score, coverage = min_face_score, min_face_coverage
        self.min_face_score = env_float("EMOCLIP_MIN_FACE_SCORE", score, MIN_FACE_SCORE, 0.0, 1.0)
        self.min_face_coverage = env_float("EMOCLIP_MIN_FACE_COVERAGE", coverage, 0.5, 0.0, 1.0)
        self.min_track_frames = env_count("EMOCLIP_MIN_TRACK_FRAMES", min_track_frames, 1)
        self.model = model.eval()
        self.config = model.config.preprocess
        self.batch_size = batch_size
        self.face_fallback = face_fallback
        self.max_faces = max_faces
        self.limits = limits or VideoLimits()
        self.text_cache = TextEmbeddingCache(model)
        self._cache = EncodingCache(video_cache_size)
        self._faces = SharedDetector()
        tower_cache = os.environ.get("EMOCLIP_TOWER_CACHE", "").strip()
        self._towers = TowerSelector(  # the one place the image tower is chosen (`autotune`)
            self.model,
            self.requested_precision,
            batch=batch_size,
            workers=self.encode_workers,
            threads=self.live_threads,
            cache_dir=None if tower_cache == "off" else Path(tower_cache or default_cache_dir()),
            release=env_flag("EMOCLIP_RELEASE_WEIGHTS", True),
        )

    # ------------------------------------------------------------------ public API
    @property
    def model_name(self) -> str:
        """The model's registry name (``model.config.name``)."""
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
        return self._towers.info()

    @property
    def tower_report(self) -> str:
        """How the image tower was chosen on this machine, in a few lines (`TowerChoice.report`)."""
        return self._towers.report()

    @property
    def video_cache(self) -> EncodingCache:
        """The analysed videos kept for re-scoring (at most ``video_cache_size``, least recently
        used dropped first): ``len(...)`` and ``keys()`` show what is cached, ``clear()`` forgets."""
        return self._cache

    @property
    def detector(self) -> FaceDetector:
        """The face detector this predictor shares between its requests (made on first use).

        Calling it directly is not serialised with the predictor's own calls: use it from one
        thread, e.g. to look at what the detector sees in an image.
        """
        return self._faces.get()

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
            from emoclip.media.images import ImageDecodeError

            raise ImageDecodeError(
                f"'{Path(image).name}' is not a JPEG, PNG, WebP, BMP or TIFF image"
            )
        return self.score(self.encode(image), classes)

    def encode(
        self, video: VideoInput, *, fps: float | None = None, progress: Progress | None = None
    ) -> VideoEncoding:
        """The cached encoding of `video`, computing it if needed (see `predict`)."""
        key = self._key(video, fps)
        cached = self._cache.get(key, video)
        if cached is not None:
            return cached
        encoding = encode_input(self, video, key, fps, progress)
        self._cache.put(key, encoding)
        return encoding

    def score(self, encoding: VideoEncoding, classes: ClassSet | None = None) -> Prediction:
        """Score an encoded video against a class set (no video work: cheap).

        Returns:
            A `Prediction`; its timings combine the encoding's stages with this call's text/score.
        """
        classes = classes or self.default_classes()
        warnings = list(encoding.warnings) + classes.validate(
            context_length=self.model.context_length
        )
        t0 = time.perf_counter()
        text = self.class_embeddings(classes)
        scale = self.model.logit_scale.detach().float().cpu()
        prediction = score_encoding(
            encoding,
            classes.names,
            text,
            scale,
            model_name=self.model_name,
            warnings=warnings,
            text_seconds=time.perf_counter() - t0,
            live_threads=self.live_threads,
        )
        t1 = time.perf_counter()
        prediction.evidence = explain_encoding(
            encoding,
            prediction.probabilities,
            classes,
            text,
            self.text_cache.embed(classes.texts),  # cached by class_embeddings: nothing encoded
            scale,
            self.pool,
            self.config.num_frames,
        )
        prediction.timings["evidence"] = time.perf_counter() - t1
        prediction.provenance = provenance_of(self, classes)
        return prediction

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
        video = as_embeddings(embeddings, self.model.embed_dim)
        text = self.class_embeddings(classes)
        scale = self.model.logit_scale.detach().float().cpu()
        return embedding_probabilities(video, text, scale, live_threads=self.live_threads)

    def class_embeddings(self, classes: ClassSet) -> torch.Tensor:
        """(C, D) normalised embeddings of a class set's classes and compounds (cached by text)."""
        new = len({t for t in classes.texts if t not in self.text_cache})
        with threads_for(self.live_threads, 0 if new <= SMALL_TEXT_BATCH else SMALL_BATCH + 1):
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
        return self.encode_tensor(x, workers=workers)

    def encode_tensor(self, x: torch.Tensor, *, workers: int | None = None) -> torch.Tensor:
        """Frame embeddings of preprocessed frames (`encode_images` after its preprocessing).

        Args:
            x: (N, 3, S, S) CLIP-normalised frames on the model's device.
            workers: As for `encode_images` (`parallel.split_encode`).

        Returns:
            (N, D) float32 un-normalised embeddings on the CPU, in the chosen `precision`.
        """
        return split_encode(
            self.image_tower(),
            x,
            workers=workers,
            encode_workers=self.encode_workers,
            live_threads=self.live_threads,
        )

    def pool_batch(self, jobs: list[tuple[torch.Tensor, np.ndarray]]) -> torch.Tensor:
        """`pool` of many sequences given as ``(frames (M, D), picks (B, T))`` pairs: (sum B, D).

        Sequences are gathered `parallel.POOL_CHUNK` at a time (a long video's timeline is never
        materialised whole) and each chunk is pooled data parallel over the encode workers.
        """
        return pool_in_chunks(self.pool, jobs, self.encode_workers)

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
        fast = fast_temporal(self.model, self._towers.release)
        with threads_for(self.live_threads, 0 if fast is not None else len(x)):  # small work
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
        from emoclip.faces import center_crop, crop_square

        size = self.config.image_size
        if not self.config.face_detection:
            return center_crop(image, size), True
        boxes = [b for b in self._faces.detect(image) if b.score >= self.min_face_score]
        if boxes:
            return crop_square(image, boxes[0], margin=self.config.face_margin, size=size), True
        return (center_crop(image, size) if self.face_fallback == "center" else None), False

    def close(self) -> None:
        """Release the face detector (a later call makes a new one)."""
        self._faces.close()

    # ------------------------------------------------------------------ for pipeline and photo; internals
    def image_tower(self) -> Tower:
        """The image tower this predictor encodes with (chosen on first call, shared per model;
        re-chosen when the model's image-tower weights change)."""
        return self._towers.tower()

    def track_frames_needed(self, sampled_frames: int) -> int:
        """Frames a face track needs to count as a person in a clip of `sampled_frames`."""
        return frames_needed(sampled_frames, self.min_track_frames)

    def locked_detector(self) -> LockedDetector:
        """The shared face detector behind this predictor's lock (for the pipeline's decode thread)."""
        return self._faces.locked()

    def _key(self, video: VideoInput, fps: float | None) -> str:
        return content_key(
            video,
            f"{self.model_name}|{self.face_fallback}|{self.max_faces}|{fps}|"
            f"{self.precision}|{self.interpolate_faces}|{self.min_face_score}|"
            f"{self.min_track_frames}|{self.min_face_coverage}",
        )
