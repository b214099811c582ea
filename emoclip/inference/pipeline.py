"""Streaming one video through decode, face crops and batched encoding into a `VideoEncoding`.

Decode and face detection run in a background thread a bounded queue ahead of the encoder
(`prefetch.Prefetch`); `FrameCollector` keeps only embeddings, times and a few thumbnails, then pools
the clip, the timeline windows and the face tracks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from ..video import SampledFrame, VideoDecodeError, sample_indices
from .prefetch import Prefetch

if TYPE_CHECKING:
    from ..faces import FaceBox
    from ..model_config import PreprocessConfig

THUMBNAIL_SIZE = 96
PREFETCH_DEPTH = (
    128  # sampled frames decoded/detected ahead of the encoder (their crops only: ~150 kB a face)
)
MIN_EARLY_BATCH = (
    8  # the smallest batch encoded while decode/detect has nothing ready (see FrameCollector.run)
)


Progress = Callable[[float, str], None]  # (fraction done, message)


class Encoder(Protocol):
    """What the pipeline needs of the predictor that runs it (`EmotionPredictor` is one): its
    settings, frame encoding and pooling. The predictor imports this module, never the reverse."""

    config: PreprocessConfig
    batch_size: int
    encode_workers: int
    prefetch: bool
    interpolate_faces: bool
    face_fallback: str
    max_faces: int
    min_face_score: float
    min_face_coverage: float

    def encode_images(
        self, crops: np.ndarray | Sequence[np.ndarray], *, workers: int | None = None
    ) -> torch.Tensor:
        """(N, S, S, 3) uint8 RGB crops -> (N, D) float32 un-normalised embeddings."""
        ...

    def pool_batch(self, jobs: list[tuple[torch.Tensor, np.ndarray]]) -> torch.Tensor:
        """``(frames (M, D), picks (B, T))`` pairs -> (sum B, D) L2-normalised video embeddings."""
        ...

    def track_frames_needed(self, sampled_frames: int) -> int:
        """Frames a face track needs to count as a person in a clip of `sampled_frames`."""
        ...

    def locked_detector(self) -> LockedDetector:
        """The shared face detector, safe to call from this video's decode thread."""
        ...


class NoFaceError(ValueError):
    """No face was found in any sampled frame and the fallback is "skip"."""


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
        boxes: Face box ``(x, y, w, h)`` in pixels per track id, for still images (empty for videos).
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
    boxes: dict[int, tuple[float, float, float, float]] = field(default_factory=dict)


def array_frames(
    frames: Sequence[np.ndarray] | np.ndarray, rate: float, sample_fps: float
) -> Iterator[SampledFrame]:
    """Sample in-memory frames at `sample_fps` (all of them when `rate` <= `sample_fps`)."""
    step = max(1.0, rate / sample_fps)
    next_pick, k = 0.0, 0
    for i, image in enumerate(frames):
        if i + 1e-9 < next_pick:
            continue
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise VideoDecodeError(
                f"frames must be (H, W, 3) uint8 RGB, got {image.shape} {image.dtype}"
            )
        yield SampledFrame(index=k, source_index=i, time=i / rate, image=image)
        next_pick += step
        k += 1


class LockedDetector:
    """One MediaPipe detector shared by concurrent requests, one frame at a time."""

    def __init__(self, detector: Any, lock: threading.Lock) -> None:
        self._detector, self._lock = detector, lock

    def detect(self, image: np.ndarray) -> list[FaceBox]:
        """Faces of one (H, W, 3) uint8 RGB frame, waiting for other requests' calls to finish."""
        with self._lock:
            return self._detector.detect(image)

    def close(self) -> None:
        """Nothing to release: the predictor owns the detector."""


class FrameCollector:
    """Streams sampled frames through face cropping and batched encoding, keeping embeddings only."""

    def __init__(self, predictor: Encoder, detection: bool) -> None:
        self.p = predictor
        self.detection = detection
        self.size = predictor.config.image_size
        self.cropper = None
        if detection:
            from ..faces import FaceCropper

            self.cropper = FaceCropper(
                size=self.size,
                margin=predictor.config.face_margin,
                fallback=predictor.face_fallback,
                max_faces=predictor.max_faces,
                min_confidence=predictor.min_face_score,
                detector=predictor.locked_detector(),
            )
        # frames whose faces are all in tracks too short (so far) to be people: their centre crop,
        # encoded only if those tracks end short (fallback "center"): {position: (crop, track ids)}
        self.held_centres: dict[int, tuple[np.ndarray, set[int]]] = {}
        self.min_track: int | None = (
            None  # frames a track needs (set in `run` from the expected length)
        )
        self.times: list[float] = []
        self.has_face: list[bool] = []
        self.pending: list[
            tuple[int, int | None, np.ndarray]
        ] = []  # (frame position, track id, crop)
        self.entries: list[tuple[int, int | None, torch.Tensor]] = []
        self.thumbnails: list[tuple[float, np.ndarray]] = Thumbnails()
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
        if expected_frames:
            self.min_track = self.p.track_frames_needed(expected_frames)
        produced = self._produce(frames)
        # decode + detect in a thread, a bounded queue ahead of the encoder
        prefetch = Prefetch(produced, PREFETCH_DEPTH) if self.p.prefetch else None
        source: Prefetch | Generator[Any, None, None] = (
            prefetch if prefetch is not None else produced
        )
        bs = self.p.batch_size
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
                        self._flush(workers=None if full else max(1, self.p.encode_workers - 1))
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
    ) -> Generator[tuple[float, list[tuple[int, int | None, np.ndarray]]], None, None]:
        """Decode, detect and crop: yields (frame time, [(frame position, track id, crop)]).

        With face interpolation on, every other frame is held until the next one is detected, and
        `FaceCropper.crop_pair` decides whether it needs a detection of its own.
        """
        from ..faces import center_crop

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
                elif self.p.interpolate_faces and self.times:
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

    def _frame(
        self, frame: SampledFrame, crops: list
    ) -> tuple[float, list[tuple[int, int | None, np.ndarray]]]:
        """Book one cropped frame (see `_record`), holding its centre crop while its faces are
        only in tracks too short to be people, and releasing held centre crops of frames whose
        tracks ended short."""
        items = [(c.track_id, c.image) for c in crops]
        ids = {c.track_id for c in crops if c.track_id is not None}
        pos = len(self.times)
        out = self._record(frame, items, bool(ids))
        if ids and self.p.face_fallback == "center" and not any(self._trusted(t) for t in ids):
            from ..faces import center_crop

            self.held_centres[pos] = (center_crop(frame.image, self.size), ids)
        return out[0], out[1] + self._settle()

    def _trusted(self, track_id: int) -> bool:
        assert self.cropper is not None  # only frames with faces get here
        track = self.cropper.tracks[track_id]
        return track.stable(
            self.min_track or self.p.track_frames_needed(1 << 30), self.cropper.min_confidence
        )

    def _settle(self, final: bool = False) -> list[tuple[int, int | None, np.ndarray]]:
        """Held centre crops that are no longer needed are dropped (a track of theirs became a
        person); those whose tracks all ended short (or all, at the `final` call) are returned as
        ``(position, None, crop)`` items to encode."""
        released: list[tuple[int, int | None, np.ndarray]] = []
        if self.cropper is None:
            return released
        max_missed = self.cropper.tracker.max_missed
        for pos, (crop, ids) in list(self.held_centres.items()):
            tracks = [self.cropper.tracks[t] for t in ids]
            if any(self._trusted(t) for t in ids):
                del self.held_centres[pos]
            elif final or all(t.missed >= max_missed for t in tracks):
                del self.held_centres[pos]
                released.append((pos, None, crop))
        return released

    def _record(
        self, frame: SampledFrame, items: list[tuple[int | None, np.ndarray]], has_face: bool
    ) -> tuple[float, list[tuple[int, int | None, np.ndarray]]]:
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
        emb = self.p.encode_images(np.stack([img for _, _, img in self.pending]), workers=workers)
        self.entries += [(pos, tid, e) for (pos, tid, _), e in zip(self.pending, emb)]
        self.pending = []
        self.timings["encode"] += time.perf_counter() - t0

    def close(self) -> None:
        """Release the face cropper (not the shared detector)."""
        if self.cropper is not None:
            self.cropper.close()

    def _stable_ids(self) -> set[int]:
        """Ids of the face tracks that count as people (enough frames, trusted score)."""
        if self.cropper is None:
            return set()
        need = self.min_track or self.p.track_frames_needed(len(self.times))
        return {t.id for t in self.cropper.tracker.stable_tracks(need, self.cropper.min_confidence)}

    def _primary(self, stable: set[int]) -> tuple[int | None, list[tuple[int, torch.Tensor]]]:
        """The subject's (frame position, embedding) sequence: the most persistent stable
        track's frames, and the centre crops of frames without a trusted face."""
        need = self.min_track or self.p.track_frames_needed(len(self.times))
        primary = self.cropper.primary_track(need) if self.cropper is not None else None
        pid = primary.id if primary is not None else None
        faced = {pos for pos, tid, _ in self.entries if tid in stable}
        by_pos: dict[int, torch.Tensor] = {}
        for pos, tid, emb in self.entries:
            if self.cropper is None or tid == pid or (tid is None and pos not in faced):
                by_pos.setdefault(pos, emb)
        return pid, sorted(by_pos.items())

    def finish(self, key: str, meta: dict[str, Any]) -> VideoEncoding:
        """Pool the collected embeddings (clip, timeline windows, face tracks) into the encoding
        cached under `key`; `meta` is the video's metadata."""
        t0 = time.perf_counter()
        times = np.asarray(self.times, dtype=np.float64)
        if self.cropper is not None:
            self.pending += self._settle(final=True)
            self._flush()
        stable = self._stable_ids()
        if (
            self.cropper is not None
        ):  # a frame has a face when a track that counts as a person is in it
            faced = {f for t in self.cropper.tracks if t.id in stable for f in t.frames}
            self.has_face = [pos in faced for pos in range(len(self.times))]
        pid, seq = self._primary(stable)
        warnings = []
        if not seq:
            raise NoFaceError(
                "no face was found in any sampled frame (face fallback is 'skip'); "
                "choose the centre-crop fallback to analyse the whole frame"
            )
        if self.detection:
            warnings += coverage_warnings(
                sum(self.has_face), len(self.times), self.p.min_face_coverage, self.p.face_fallback
            )
        positions = np.array([pos for pos, _ in seq])
        frame_emb = torch.stack([e for _, e in seq])  # (M, D)
        frame_times = times[positions]
        T = self.p.config.num_frames
        # the clip, every window and every track are pooled in one batched call
        jobs = [(frame_emb, sample_indices(len(seq), T)[None])]  # the clip
        duration = _duration(times, meta)
        starts, ends, picks = self._window_picks(frame_times, duration)
        if picks:
            jobs.append(
                (frame_emb, np.stack(picks))
            )  # (W, T) picks: each frame encoded once, reused
        track_spans, track_rows = self._track_sequences(times, pid, positions, jobs)
        pooled = self.p.pool_batch(jobs)
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
            thumbnails=_spread(self.thumbnails, 12),
            video=meta | {"duration": duration, "faces_interpolated": self.interpolated},
            timings=dict(self.timings),
            fallback=self.p.face_fallback,
            detection=self.detection,
            warnings=warnings,
        )

    def _window_picks(
        self, t: np.ndarray, duration: float
    ) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """Timeline windows that hold frames: starts, ends and each one's T picks into `t`."""
        cfg = self.p.config
        starts, ends, picks = [], [], []
        for s, e in window_spans(duration, cfg.window_seconds, cfg.hop_seconds):
            idx = np.flatnonzero((t >= s - 1e-6) & (t < e - 1e-6))
            if len(idx):
                starts.append(s)
                ends.append(e)
                picks.append(idx[sample_indices(len(idx), cfg.num_frames)])
        return np.asarray(starts, dtype=np.float64), np.asarray(ends, dtype=np.float64), picks

    def _track_sequences(
        self,
        times: np.ndarray,
        pid: int | None,
        primary_positions: np.ndarray,
        jobs: list[tuple[torch.Tensor, np.ndarray]],
    ) -> tuple[list[tuple[int, int, float, float, bool]], list[int]]:
        """Each face track's (id, frames, first time, last time, is primary) and its row in the
        pooled batch. Tracks' pooling jobs are appended to `jobs`; the subject's track reuses the
        clip's row (0) when it covers the same frames."""
        if self.cropper is None:
            return [], []
        T = self.p.config.num_frames
        next_row = sum(len(picks) for _, picks in jobs)
        by_track: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for pos, tid, e in self.entries:  # entries are in frame order
            if tid is not None:
                by_track.setdefault(tid, []).append((pos, e))
        tracks, rows = [], []
        stable = self._stable_ids()
        for track in self.cropper.tracks:
            seq = by_track.get(track.id)
            if not seq or track.id not in stable:  # a brief or low-score detection is not a person
                continue
            positions = [pos for pos, _ in seq]
            tracks.append(
                (
                    track.id,
                    len(seq),
                    float(times[seq[0][0]]),
                    float(times[seq[-1][0]]),
                    track.id == pid,
                )
            )
            if track.id == pid and np.array_equal(positions, primary_positions):
                rows.append(0)
                continue
            jobs.append((torch.stack([e for _, e in seq]), sample_indices(len(seq), T)[None]))
            rows.append(next_row)
            next_row += 1
        return tracks, rows


def coverage_warnings(
    with_face: int, sampled: int, min_coverage: float, fallback: str
) -> list[str]:
    """Plain-words warnings when faces were found in fewer than `min_coverage` of the sampled frames.

    Returns:
        ``[]`` when coverage is enough, else one warning saying how many frames had a face.
    """
    if sampled <= 0:
        return []
    what = (
        "the whole frame (centre crop) was analysed instead"
        if fallback == "center"
        else "only the frames with a face were analysed"
    )
    rest = "frames without a face were analysed as whole frames" if fallback == "center" else what
    if with_face == 0:
        frames = "the one frame" if sampled == 1 else f"any of the {sampled} sampled frames"
        return [f"no face was found in {frames}: {what}, so the result does not describe a person"]
    if with_face / sampled < min_coverage:
        return [
            f"a face was found in only {with_face} of {sampled} sampled frames "
            f"({100 * with_face / sampled:.0f}%): the result may not describe a person "
            f"({rest})"
        ]
    return []


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
    return (
        max(observed, float(meta.get("duration") or 0.0))
        if observed
        else float(meta.get("duration") or 0.0)
    )


class Thumbnails(list):
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


def _spread(items: list, k: int) -> list:
    if len(items) <= k:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, k).round().astype(int)]
