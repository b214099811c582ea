"""`EmotionPredictor`: video file or frames in, zero-shot emotion probabilities out.

The expensive part (decode, face detection, frame encoding, temporal pooling) is done once per
video and cached as a `VideoEncoding`; scoring against a class set is a matrix product, so
editing class descriptions re-scores a video without re-encoding it.

This module is the facade. It resolves each input once (`emoclip.media.inputs.resolve_input`),
builds the parts it owns from its `AnalysisSettings` (`parts.AnalysisParts`: the frame encoder
with its precision and threads, the pooler, the shared face detector, the class-text cache) and
hands them with the resolved input to `pipeline.encode_input`, which imports and calls nothing of
the predictor. The encoding cache is in `cache`, turning an encoding into a `Prediction` in
`scoring`. Its public members are the user's API and no more (tests/test_predictor.py holds it to
them).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, overload

import numpy as np
import torch

from emoclip.classes import ClassSet, preset
from emoclip.evidence.explain import explain_encoding
from emoclip.inference.cache import EncodingCache
from emoclip.inference.encoding import Progress, VideoEncoding
from emoclip.inference.parallel import SMALL_BATCH, threads_for
from emoclip.inference.parts import AnalysisParts
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
        text_cache: Class-description embeddings to share with another predictor of the same
            model (its ``parts.text_cache``); default: a new cache.
        **overrides: Fields of `settings` to change, e.g. ``batch_size=8``, ``precision="fp32"``
            or ``limits=VideoLimits(...)`` (its four limit fields).

    Example:
        >>> predictor = EmotionPredictor(emoclip.load_model("emoclip-vitb32"))
        >>> prediction = predictor.predict("clip.mp4", emoclip.preset("mafw-11"))
        >>> prediction.top, prediction.timeline.probabilities.shape  # ('happiness', (W, 11))

    Its members: `model`, `settings`, `parts`, `predict`, `predict_image`, `encode`, `score`,
    `class_embeddings`, `default_classes`, `close`. The parts (`parts.AnalysisParts`, each can
    also be built alone from a model) are `parts.encoder` (`FrameEncoder`: crops -> frame
    embeddings; its ``precision``, ``precision_info()`` and ``tower_report()`` say which image
    tower runs), `parts.pooler` (frame embeddings -> video embeddings), `parts.faces` (the face
    detector its requests share) and `parts.text_cache` (class-description embeddings).
    Inputs are resolved by `emoclip.media.inputs.resolve_input` (pass ``settings.limits`` and
    ``settings.frame_folder_fps`` to resolve one as this predictor would).
    """

    def __init__(
        self,
        model: EmoCLIP,
        settings: AnalysisSettings | None = None,
        *,
        text_cache: TextEmbeddingCache | None = None,
        **overrides: Any,
    ) -> None:
        self.model = model.eval()
        self._settings = (settings or AnalysisSettings()).replace(**overrides)
        self._parts = AnalysisParts.build(self.model, self._settings, text_cache=text_cache)
        self._cache = EncodingCache(self._settings.video_cache_size)

    @property
    def settings(self) -> AnalysisSettings:
        """How this predictor analyses (fixed at construction: make another predictor to change it)."""
        return self._settings

    @property
    def parts(self) -> AnalysisParts:
        """What its analyses run with: ``encoder``, ``pooler``, ``faces``, ``text_cache`` (and the
        model's preprocessing ``config`` and these ``settings``)."""
        return self._parts

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
            video: A video file path or ``file://`` URI; a still image (JPEG, PNG, WebP, BMP,
                TIFF file, or an (H, W, 3|4) uint8 array), analysed as by `predict_image`; a folder
                of numbered frames (one clip at `fps`); RGB frames (T, H, W, 3) uint8 at `fps`; or
                a `MediaInput` from `emoclip.media.inputs.resolve_input`.
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
        media = self._resolve(image)
        if media.kind != "photo":
            raise ImageDecodeError(f"'{media.name}' is not a JPEG, PNG, WebP, BMP or TIFF image")
        return self.score(self.encode(media), classes)

    def encode(
        self, video: VideoInput, *, fps: float | None = None, progress: Progress | None = None
    ) -> VideoEncoding:
        """The cached encoding of `video`, computing it if needed (see `predict`); at most
        ``settings.video_cache_size`` encodings are kept, least recently used dropped first."""
        media = self._resolve(video, fps=fps)
        key = self._key(media)
        cached = self._cache.get(key, media.name)
        if cached is not None:
            return cached
        encoding = encode_input(self._parts, media, key, progress)
        self._cache.put(key, encoding)
        return encoding

    @overload
    def score(self, encoded: VideoEncoding, classes: ClassSet | None = None) -> Prediction: ...

    @overload
    def score(
        self, encoded: np.ndarray | torch.Tensor, classes: ClassSet | None = None
    ) -> np.ndarray: ...

    def score(
        self, encoded: VideoEncoding | np.ndarray | torch.Tensor, classes: ClassSet | None = None
    ) -> Prediction | np.ndarray:
        """Score an encoded video, or bare video embeddings, against a class set (no video work).

        Args:
            encoded: A `VideoEncoding` (`encode`), or (N, D) / (D,) video embeddings, e.g.
                ``parts.pooler.pool`` outputs of a live stream or `Prediction.embedding`s saved
                earlier (normalised here).
            classes: The class set (default: the model's own).

        Returns:
            For an encoding, a `Prediction` (its timings combine the encoding's stages with this
            call's text/score); for embeddings, (N, C) float32 probabilities, rows summing to 1
            ((C,) for a (D,) input), by the same formula.
        """
        classes = classes or self.default_classes()
        if isinstance(encoded, VideoEncoding):
            return self._score_encoding(encoded, classes)
        video = as_embeddings(encoded, self.model.embed_dim)
        text = self.class_embeddings(classes)
        scale = self.model.logit_scale.detach().float().cpu()
        return embedding_probabilities(video, text, scale, live_threads=self._settings.live_threads)

    def class_embeddings(self, classes: ClassSet) -> torch.Tensor:
        """(C, D) normalised embeddings of a class set's classes and compounds (cached by text)."""
        cache = self._parts.text_cache
        new = len({t for t in classes.texts if t not in cache})
        live = self._settings.live_threads
        with threads_for(live, 0 if new <= SMALL_TEXT_BATCH else SMALL_BATCH + 1, "text", new):
            return class_embeddings(classes, cache)

    def close(self) -> None:
        """Release the face detector (a later call makes a new one)."""
        self._parts.faces.close()

    def _resolve(self, video: VideoInput, *, fps: float | None = None) -> MediaInput:
        """`media.inputs.resolve_input` with this predictor's limits and rates (in-memory frames
        at the model's sampling rate)."""
        st = self._settings
        return resolve_input(
            video,
            fps=fps,
            frame_folder_fps=st.frame_folder_fps,
            frames_fps=self.model.config.preprocess.sample_fps,
            limits=st.limits,
        )

    def _score_encoding(self, encoding: VideoEncoding, classes: ClassSet) -> Prediction:
        """`score` of an encoding: probabilities, timeline, tracks, evidence and provenance."""
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
            self._parts.text_cache.embed(classes.texts),  # cached by class_embeddings
            scale,
            self._parts.pooler.pool,
            self._parts.config.num_frames,
        )
        prediction.timings["evidence"] = time.perf_counter() - t1
        prediction.provenance = provenance_of(self, classes)
        return prediction

    def _key(self, media: MediaInput) -> str:
        """The cache key: the input's content key, its rate and every setting that shapes an
        encoding (the precision as chosen)."""
        shaping = self._settings.as_dict()
        for name in ("video_cache_size", "live_threads", "encode_workers", "prefetch"):
            shaping.pop(name)  # how fast, not what
        precision = self._parts.encoder.precision
        text = json.dumps([self.model.config.name, media.fps, precision, shaping])
        return hashlib.sha1(f"{media.key}|{text}".encode()).hexdigest()
