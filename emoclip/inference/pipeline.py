"""Streaming one video through decode, face crops and batched encoding into a `VideoEncoding`.

`encode_input` is the entry point: a still image goes to `photo.encode_photo`, anything else
(video file, frame folder, frame array) through `FrameCollector`.

Decode and face detection run in a background thread a bounded queue ahead of the encoder
(`prefetch.Prefetch`); `FrameCollector` keeps only embeddings, times and a few thumbnails, then pools
the clip, the timeline windows (`timeline`) and the people's face tracks (`tracks`) in one batch.
It runs with the `parts.AnalysisParts` the predictor built (encoder, pooler, detector,
settings) and a resolved `MediaInput`; it imports and calls nothing of the predictor.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from emoclip.inference.encoding import NoFaceError, Progress, VideoEncoding
from emoclip.inference.parts import AnalysisParts
from emoclip.inference.prefetch import Prefetch
from emoclip.inference.timeline import (
    THUMBNAIL_SIZE,
    Thumbnails,
    clip_duration,
    spread,
    window_picks,
)
from emoclip.inference.tracks import (
    Entry,
    Item,
    PersonTracks,
    coverage_warnings,
    frames_needed,
    subject_sequence,
)
from emoclip.media import SampledFrame, VideoDecodeError, sample_indices
from emoclip.media.inputs import MediaInput, clip_frames, expected_frames

if TYPE_CHECKING:
    from emoclip.faces import FaceCrop

__all__ = ["MIN_EARLY_BATCH", "PREFETCH_DEPTH", "FrameCollector", "encode_input"]

PREFETCH_DEPTH = (
    128  # sampled frames decoded/detected ahead of the encoder (their crops only: ~150 kB a face)
)
MIN_EARLY_BATCH = (
    8  # the smallest batch encoded while decode/detect has nothing ready (see FrameCollector.run)
)


class FrameCollector:
    """Streams sampled frames through face cropping and batched encoding, keeping embeddings only."""

    def __init__(self, parts: AnalysisParts, detection: bool) -> None:
        self.parts, self.st, self.cfg = parts, parts.settings, parts.config
        self.detection = detection
        self.size = parts.config.image_size
        self.cropper = None
        self.people: PersonTracks | None = None  # which face tracks are people (with detection)
        if detection:
            from emoclip.faces import FaceCropper

            st = parts.settings
            self.cropper = FaceCropper(
                size=self.size,
                margin=parts.config.face_margin,
                fallback=st.face_fallback,
                max_faces=st.max_faces,
                min_confidence=st.min_face_score,
                detector=parts.faces.locked(),
            )
            self.people = PersonTracks(self.cropper, self.track_frames_needed, st.face_fallback)
        self.times: list[float] = []
        self.has_face: list[bool] = []
        self.pending: list[Item] = []  # (frame position, track id, crop)
        self.entries: list[Entry] = []  # (frame position, track id, embedding)
        self.thumbnails = Thumbnails()
        self.timings = {"decode": 0.0, "detect": 0.0, "encode": 0.0, "temporal": 0.0}
        self.interpolated = 0  # frames whose face boxes were interpolated, not detected

    def run(
        self,
        frames: Iterator[SampledFrame],
        duration: float,
        progress: Progress | None,
        expected_frames: int | None = None,
    ) -> None:
        """Decode, detect, crop and encode every frame; `expected_frames` (the clip's sampled
        frames, as far as known beforehand) scales the frames a face track needs."""
        if expected_frames and self.people is not None:
            self.people.min_track = self.track_frames_needed(expected_frames)
        produced = self._produce(frames)
        # decode + detect in a thread, a bounded queue ahead of the encoder
        prefetch = Prefetch(produced, PREFETCH_DEPTH) if self.st.prefetch else None
        source: Prefetch | Generator[Any, None, None] = (
            prefetch if prefetch is not None else produced
        )
        bs = self.st.batch_size
        try:
            for frame_time, items in source:
                self.pending += items
                full = len(self.pending) >= bs
                if prefetch is not None:
                    waiting = prefetch.ready()
                    # an idle encoder does not wait for a full batch while the producer is still busy
                    # (the start of every video): it takes what there is, from MIN_EARLY_BATCH crops on
                    starved = len(self.pending) >= MIN_EARLY_BATCH and not waiting
                    # nor leaves a small remainder for a last, inefficient batch: at the end of the
                    # video the last crops join the batch before (up to 1.5 batches)
                    tail = (
                        full
                        and prefetch.exhausted()
                        and len(self.pending) + waiting <= bs + bs // 2
                    )
                    if (full or starved) and not tail:
                        # a starved encoder means decode/detect is behind and busy: leave it a
                        # core (on 2 cores: encode on one thread) instead of oversubscribing them all
                        workers = max(1, self.parts.encoder.workers - 1)
                        self._flush(workers=None if full else workers)
                elif full:
                    self._flush()
                if progress and duration > 0:
                    progress(
                        min(0.99, frame_time / duration),
                        f"analysed {frame_time:.1f} of {duration:.1f} s",
                    )
        finally:
            source.close()
        self._flush()
        if not self.times:
            raise VideoDecodeError("the video has no decodable frames")

    def _produce(
        self, frames: Iterator[SampledFrame]
    ) -> Generator[tuple[float, list[Item]], None, None]:
        """Decode, detect and crop: yields (frame time, [(frame position, track id, crop)]).

        With face interpolation on, every other frame is held until the next one is detected, and
        `FaceCropper.crop_pair` decides whether it needs a detection of its own.
        """
        from emoclip.faces import center_crop

        held: SampledFrame | None = None
        try:
            t_prev = time.perf_counter()
            for frame in frames:
                t_decoded = time.perf_counter()
                self.timings["decode"] += t_decoded - t_prev
                cropper = self.cropper
                if cropper is None:
                    yield self._record(frame, [(0, center_crop(frame.image, self.size))], True)
                elif held is not None:
                    pos = len(self.times)
                    first, second, interpolated = cropper.crop_pair(
                        held.image, pos, frame.image, pos + 1
                    )
                    self.interpolated += interpolated
                    yield self._frame(held, first)
                    yield self._frame(frame, second)
                    held = None
                elif self.st.interpolate_faces and self.times:
                    held = frame  # cropped with the next frame
                else:
                    yield self._frame(frame, cropper(frame.image, len(self.times)))
                self.timings["detect"] += time.perf_counter() - t_decoded
                t_prev = time.perf_counter()
            if held is not None and self.cropper is not None:
                yield self._frame(held, self.cropper(held.image, len(self.times)))
        finally:
            close = getattr(frames, "close", None)
            if close is not None:
                close()  # release the decoder now, also when the consumer stopped early

    def _frame(self, frame: SampledFrame, crops: list[FaceCrop]) -> tuple[float, list[Item]]:
        """Book one cropped frame (see `_record`), holding its centre crop while its faces are
        only in tracks too short to be people, and releasing held centre crops of frames whose
        tracks ended short (`tracks.PersonTracks`)."""
        assert self.people is not None  # only frames that went through face detection get here
        items = [(c.track_id, c.image) for c in crops]
        ids = {c.track_id for c in crops if c.track_id is not None}
        pos = len(self.times)
        out = self._record(frame, items, bool(ids))
        self.people.hold(pos, frame.image, ids)
        return out[0], out[1] + self.people.settle()

    def _record(
        self, frame: SampledFrame, items: list[tuple[int | None, np.ndarray]], has_face: bool
    ) -> tuple[float, list[Item]]:
        """Book one frame (time, face flag, thumbnail): the (time, [(position, track id, crop)]) to yield."""
        pos = len(self.times)
        if items and (not self.thumbnails or frame.time - self.thumbnails[-1][0] >= 0.5):
            import cv2

            thumb = cv2.resize(
                items[0][1], (THUMBNAIL_SIZE, THUMBNAIL_SIZE), interpolation=cv2.INTER_AREA
            )
            self.thumbnails.append((frame.time, thumb))
        self.has_face.append(has_face)
        self.times.append(frame.time)
        return frame.time, [(pos, tid, img) for tid, img in items]

    def _flush(self, workers: int | None = None) -> None:
        if not self.pending:
            return
        t0 = time.perf_counter()
        crops = np.stack([img for _, _, img in self.pending])
        emb = self.parts.encoder.encode(crops, workers=workers)
        self.entries += [(pos, tid, e) for (pos, tid, _), e in zip(self.pending, emb)]
        self.pending = []
        self.timings["encode"] += time.perf_counter() - t0

    def track_frames_needed(self, sampled_frames: int) -> int:
        """Frames a face track needs to count as a person in a clip of `sampled_frames`."""
        return frames_needed(sampled_frames, self.st.min_track_frames)

    def close(self) -> None:
        """Release the face cropper (not the shared detector)."""
        if self.cropper is not None:
            self.cropper.close()

    def finish(self, key: str, meta: dict[str, Any]) -> VideoEncoding:
        """Pool the collected embeddings (clip, timeline windows, face tracks) into the encoding
        cached under `key`; `meta` is the video's metadata."""
        t0 = time.perf_counter()
        times = np.asarray(self.times, dtype=np.float64)
        people, sampled = self.people, len(self.times)
        stable: set[int] = set()
        pid = None
        if people is not None:
            self.pending += people.settle(final=True)
            self._flush()
            stable = people.stable_ids(sampled)
            faced = people.faced_frames(stable)  # frames a track that counts as a person is in
            self.has_face = [pos in faced for pos in range(sampled)]
            pid = people.primary_id(sampled)
        seq = subject_sequence(self.entries, pid, stable, people is not None)
        warnings = []
        if not seq:
            raise NoFaceError(
                "no face was found in any sampled frame (face fallback is 'skip'); "
                "choose the centre-crop fallback to analyse the whole frame"
            )
        if self.detection:
            warnings += coverage_warnings(
                sum(self.has_face),
                len(self.times),
                self.st.min_face_coverage,
                self.st.face_fallback,
            )
        positions = np.array([pos for pos, _ in seq])
        frame_emb = torch.stack([e for _, e in seq])  # (M, D)
        frame_times = times[positions]
        T = self.cfg.num_frames
        # the clip, every window and every track are pooled in one batched call
        jobs = [(frame_emb, sample_indices(len(seq), T)[None])]  # the clip
        duration = clip_duration(times, meta)
        cfg = self.cfg
        starts, ends, picks = window_picks(
            frame_times, duration, cfg.window_seconds, cfg.hop_seconds, T
        )
        if picks:
            jobs.append(
                (frame_emb, np.stack(picks))
            )  # (W, T) picks: each frame encoded once, reused
        track_spans, track_rows = (
            people.sequences(self.entries, times, stable, pid, positions, jobs, T)
            if people is not None
            else ([], [])
        )
        pooled = self.parts.pooler.pool_batch(jobs)
        clip, windows = pooled[0], pooled[1 : 1 + len(picks)]
        tracks = [
            (tid, n, t0_, t1_, pooled[row], primary)
            for (tid, n, t0_, t1_, primary), row in zip(track_spans, track_rows)
        ]
        self.timings["temporal"] += time.perf_counter() - t0
        return VideoEncoding(
            key=key,
            times=times,
            has_face=np.asarray(self.has_face, dtype=bool),
            frame_embeddings=frame_emb,
            frame_times=frame_times,
            clip_embedding=clip,
            window_starts=starts,
            window_ends=ends,
            window_embeddings=windows,
            tracks=tracks,
            thumbnails=spread(self.thumbnails, 12),
            video=meta | {"duration": duration, "faces_interpolated": self.interpolated},
            timings=dict(self.timings),
            fallback=self.st.face_fallback,
            detection=self.detection,
            warnings=warnings,
        )


def encode_input(
    parts: AnalysisParts, media: MediaInput, key: str, progress: Progress | None
) -> VideoEncoding:
    """Analyse one resolved input into the `VideoEncoding` cached under `key`: a photo as
    one-frame clips per face (`photo.encode_photo`), a clip's sampled frames streamed through
    `FrameCollector`. `progress` gets (fraction done, message)."""
    start = time.perf_counter()
    cfg, lim = parts.config, parts.settings.limits
    if media.kind == "photo":
        from emoclip.inference.photo import encode_photo

        enc = encode_photo(parts, media, key)
    else:
        frames = clip_frames(media, cfg, lim)
        meta = media.metadata() | {"precision": parts.encoder.precision}
        collected = FrameCollector(parts, cfg.face_detection)
        try:
            expected = expected_frames(media, cfg.sample_fps, lim.max_sampled_frames)
            collected.run(frames, media.duration or 0.0, progress, expected)
        finally:
            collected.close()
        enc = collected.finish(key, meta)
    enc.timings["total"] = time.perf_counter() - start
    if progress:
        progress(1.0, "done")
    return enc
