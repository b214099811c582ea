"""`EmotionPredictor`: video file or frames in, zero-shot emotion probabilities out.

The expensive part (decode, face detection, frame encoding, temporal pooling) is done once per
video and cached as a `VideoEncoding`; scoring against a class set is a matrix product, so
editing class descriptions re-scores a video without re-encoding it.

This module is the facade. It resolves each input once (`emoclip.media.inputs.resolve_input`),
builds the parts it owns from its `AnalysisSettings` (`parts`: the frame encoder with its
precision and threads, the pooler, the shared face detector) and hands them with the resolved
input to `pipeline.encode_input`, which imports and calls nothing of the predictor. The encoding
cache is in `cache`, turning an encoding into a `Prediction` in `scoring`.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import numpy as np
import torch

from emoclip.classes import ClassSet, preset
from emoclip.evidence.explain import explain_encoding
from emoclip.inference.cache import EncodingCache
from emoclip.inference.detector import SharedDetector
from emoclip.inference.encoding import Progress, VideoEncoding
from emoclip.inference.parallel import SMALL_BATCH, threads_for
from emoclip.inference.parts import AnalysisParts, FrameEncoder, Pooler
from emoclip.inference.pipeline import encode_input
from emoclip.inference.scoring import as_embeddings, embedding_probabilities, score_encoding
from emoclip.media.images import ImageDecodeError
from emoclip.media.inputs import ImageInput, MediaInput, VideoInput, resolve_input
from emoclip.model.network import EmoCLIP
from emoclip.provenance import provenance_of
from emoclip.results import Prediction
from emoclip.settings import AnalysisSettings
from emoclip.zeroshot import TextEmbeddingCache, class_embeddings

SMALL_TEXT_BATCH = 16  # text encodings of this few new descriptions (an edited class set) run
# with `live_threads` intra-op threads, like batches of at most `parallel.SMALL_BATCH` frames


class EmotionPredictor:
    """Zero-shot facial-expression recognition on videos (a facade over model, faces, video).

    Args:
        model: A loaded `EmoCLIP`; its config decides preprocessing (frame rate, window length,
            whether to detect faces).
        settings: How inputs are analysed (`emoclip.settings.AnalysisSettings`: sampling, limits,
            face thresholds, fallback, precision, threads, cache size); default: its defaults.
            The library reads no environment: build one with `AnalysisSettings.from_env()` to
            honour the ``EMOCLIP_*`` variables.
        **overrides: Fields of `settings` to change, e.g. ``batch_size=8``, ``precision="fp32"``
            or ``limits=VideoLimits(...)`` (its four limit fields).

    Example:
        >>> predictor = EmotionPredictor(emoclip.load_model("emoclip-vitb32"))
        >>> prediction = predictor.predict("clip.mp4", emoclip.preset("mafw-11"))
        >>> prediction.top, prediction.timeline.probabilities.shape  # ('happiness', (W, 11))

    Its parts (each can also be built alone from a model): `encoder` (`parts.FrameEncoder`:
    crops -> frame embeddings), `pooler` (`parts.Pooler`: frame embeddings -> video embeddings),
    `faces` (`detector.SharedDetector`: the face detector its requests share), `text_cache`
    (class-description embeddings, shareable between predictors of one model).
    """

    def __init__(
        self,
        model: EmoCLIP,
        settings: AnalysisSettings | None = None,
        **overrides: Any,
    ) -> None:
        self.model = model.eval()
        self._settings = (settings or AnalysisSettings()).replace(**overrides)
        self.encoder = FrameEncoder(self.model, self._settings)
        self.pooler = Pooler(self.model, self._settings)
        self.faces = SharedDetector()
        self.text_cache = TextEmbeddingCache(model)
        self._cache = EncodingCache(self._settings.video_cache_size)

    @property
    def settings(self) -> AnalysisSettings:
        """How this predictor analyses (fixed at construction: make another predictor to change it)."""
        return self._settings

    @property
    def precision(self) -> str:
        """The image tower's precision in use, ``"fp32"`` or ``"bf16"`` (decided on first call;
        `encoder.precision_info()` says how).

        Raises:
            RuntimeError: ``"bf16"`` was requested and failed the start-up check (the message says why).
        """
        return self.encoder.precision

    @property
    def tower_report(self) -> str:
        """How the image tower was chosen on this machine, in a few lines (`TowerChoice.report`)."""
        return self.encoder.tower_report()

    @property
    def video_cache(self) -> EncodingCache:
        """The analysed videos kept for re-scoring (at most ``settings.video_cache_size``, least
        recently used dropped first): ``len(...)`` and ``keys()`` show what is cached, ``clear()``
        forgets."""
        return self._cache

    def default_classes(self) -> ClassSet:
        """The class set the model's config asks for (inline set, else its preset)."""
        if self.model.config.classes:
            return ClassSet.from_dict(self.model.config.classes)
        return preset(self.model.config.default_classes)

    def resolve(self, video: VideoInput, *, fps: float | None = None) -> MediaInput:
        """What `video` is (`media.inputs.resolve_input` with this predictor's limits and rates),
        checked against ``settings`` limits: pass the result to `predict` / `encode` to resolve
        once. Raises what `predict` raises for a bad input."""
        st = self._settings
        return resolve_input(
            video,
            fps=fps,
            frame_folder_fps=st.frame_folder_fps,
            frames_fps=self.model.config.preprocess.sample_fps,
            limits=st.limits,
        )

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
            video: A video file path or ``file://`` URI; a still image (JPEG, PNG, WebP, BMP,
                TIFF file, or an (H, W, 3|4) uint8 array), analysed as by `predict_image`; a folder
                of numbered frames (one clip at `fps`); RGB frames (T, H, W, 3) uint8 at `fps`; or
                a `MediaInput` from `resolve`.
            classes: Class set to score; None for the model's default set.
            fps: Frame rate of `video` when it is an array (default: the model's sample rate) or a
                frame folder (default ``settings.frame_folder_fps``, 25).
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
                orientation applied), an (H, W, 3|4) uint8 RGB(A) array, or its `MediaInput`.
            classes: Class set to score; None for the model's default set.

        Returns:
            A `Prediction` with one track per face (its ``box`` in pixels of the upright image),
            largest face first and primary; clip probabilities and embedding are the largest
            face's; the timeline is empty; ``video["kind"] == "image"``. Without a face the
            centre crop is analysed (with a warning) or `NoFaceError` raised, per the fallback.

        Raises:
            ImageDecodeError: Missing, empty, corrupt or unsupported image, or not an image (a
                `VideoDecodeError`).
            LimitError: The image exceeds the byte or pixel limit.
        """
        media = self.resolve(image)
        if media.kind != "photo":
            raise ImageDecodeError(f"'{media.name}' is not a JPEG, PNG, WebP, BMP or TIFF image")
        return self.score(self.encode(media), classes)

    def encode(
        self, video: VideoInput, *, fps: float | None = None, progress: Progress | None = None
    ) -> VideoEncoding:
        """The cached encoding of `video`, computing it if needed (see `predict`)."""
        media = self.resolve(video, fps=fps)
        key = self._key(media)
        cached = self._cache.get(key, media.name)
        if cached is not None:
            return cached
        parts = AnalysisParts(
            self.model.config.preprocess, self._settings, self.encoder, self.pooler, self.faces
        )
        encoding = encode_input(parts, media, key, progress)
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
            model_name=self.model.config.name,
            warnings=warnings,
            text_seconds=time.perf_counter() - t0,
            live_threads=self._settings.live_threads,
        )
        t1 = time.perf_counter()
        prediction.evidence = explain_encoding(
            encoding,
            prediction.probabilities,
            classes,
            text,
            self.text_cache.embed(classes.texts),  # cached by class_embeddings: nothing encoded
            scale,
            self.pooler.pool,
            self.encoder.config.num_frames,
        )
        prediction.timings["evidence"] = time.perf_counter() - t1
        prediction.provenance = provenance_of(self, classes)
        return prediction

    def score_embeddings(
        self, embeddings: np.ndarray | torch.Tensor, classes: ClassSet | None = None
    ) -> np.ndarray:
        """Probabilities of bare video embeddings against a class set (same formula as `score`).

        Args:
            embeddings: (N, D) or (D,) video embeddings, e.g. `pooler.pool` outputs of a live
                stream or `Prediction.embedding`s saved earlier (normalised here).
            classes: The class set (default: the model's own).

        Returns:
            (N, C) float32 probabilities, rows summing to 1 ((C,) for a (D,) input).
        """
        classes = classes or self.default_classes()
        video = as_embeddings(embeddings, self.model.embed_dim)
        text = self.class_embeddings(classes)
        scale = self.model.logit_scale.detach().float().cpu()
        return embedding_probabilities(video, text, scale, live_threads=self._settings.live_threads)

    def class_embeddings(self, classes: ClassSet) -> torch.Tensor:
        """(C, D) normalised embeddings of a class set's classes and compounds (cached by text)."""
        new = len({t for t in classes.texts if t not in self.text_cache})
        live = self._settings.live_threads
        with threads_for(live, 0 if new <= SMALL_TEXT_BATCH else SMALL_BATCH + 1, "text", new):
            return class_embeddings(classes, self.text_cache)

    def close(self) -> None:
        """Release the face detector (a later call makes a new one)."""
        self.faces.close()

    def _key(self, media: MediaInput) -> str:
        """The cache key: the input's content key, its rate and every setting that shapes an
        encoding (the precision as chosen)."""
        shaping = self._settings.as_dict()
        for name in ("video_cache_size", "live_threads", "encode_workers", "prefetch"):
            shaping.pop(name)  # how fast, not what
        text = json.dumps([self.model.config.name, media.fps, self.precision, shaping])
        return hashlib.sha1(f"{media.key}|{text}".encode()).hexdigest()
