"""Which face tracks of a video are people, and which frames make up the subject and each person.

A track counts as a person once it has enough frames (`frames_needed`) at a
trusted score. Until then its frames' centre crops are held back: if every track in a frame ends
short, the frame had no face and (with fallback "center") its centre crop is analysed instead.
`coverage_warnings` says in plain words when too few sampled frames had a face.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import torch

from emoclip.media import sample_indices

if TYPE_CHECKING:
    from emoclip.faces import FaceCropper

__all__ = [
    "Entry",
    "Item",
    "PersonTracks",
    "coverage_warnings",
    "frames_needed",
    "subject_sequence",
]

Item = tuple[int, "int | None", np.ndarray]  # (frame position, track id or None, (S, S, 3) crop)
Entry = tuple[int, "int | None", torch.Tensor]  # (frame position, track id or None, (D,) embedding)


def frames_needed(sampled_frames: int, min_track_frames: int | None = None) -> int:
    """Frames a face track needs to count as a person in a clip of `sampled_frames`: 1 for a
    photograph, else `min_track_frames` (at most the clip) when set, else
    `faces.min_track_frames` of the clip (10 %, at least 2, at most 8)."""
    from emoclip.faces import min_track_frames as default_frames

    if sampled_frames <= 1:
        return 1  # a photograph: its one face is the subject
    if min_track_frames is not None:
        return min(min_track_frames, sampled_frames)
    return default_frames(sampled_frames)


class PersonTracks:
    """The face tracks of one video's `FaceCropper`, judged as people.

    Args:
        cropper: The video's face cropper (its tracker holds the tracks).
        frames_needed: Frames a track needs to be a person in a clip of that many sampled frames.
        fallback: ``"center"`` holds centre crops of frames whose faces are not (yet) people.
    """

    def __init__(
        self, cropper: FaceCropper, frames_needed: Callable[[int], int], fallback: str
    ) -> None:
        self.cropper = cropper
        self.frames_needed = frames_needed
        self.fallback = fallback
        self.min_track: int | None = None  # set from the clip's expected length when known
        # frames whose faces are all in tracks too short (so far) to be people: their centre crop,
        # encoded only if those tracks end short (fallback "center"): {position: (crop, track ids)}
        self.held_centres: dict[int, tuple[np.ndarray, set[int]]] = {}

    def need(self, sampled_frames: int) -> int:
        """Frames a track needs: from the expected clip length when known, else `sampled_frames`."""
        return self.min_track or self.frames_needed(sampled_frames)

    def trusted(self, track_id: int) -> bool:
        """Whether the track is a person already (enough frames at a trusted score)."""
        track = self.cropper.tracks[track_id]
        return track.stable(self.need(1 << 30), self.cropper.min_confidence)

    def hold(self, position: int, image: np.ndarray, ids: set[int]) -> None:
        """Hold the centre crop of the frame at `position` ((H, W, 3) uint8 `image`) while its
        faces (track `ids`) are only in tracks too short to be people (fallback "center")."""
        if ids and self.fallback == "center" and not any(self.trusted(t) for t in ids):
            from emoclip.faces import center_crop

            self.held_centres[position] = (center_crop(image, self.cropper.size), ids)

    def settle(self, final: bool = False) -> list[Item]:
        """Held centre crops that are no longer needed are dropped (a track of theirs became a
        person); those whose tracks all ended short (or all, at the `final` call) are returned as
        ``(position, None, crop)`` items to encode."""
        released: list[Item] = []
        max_missed = self.cropper.tracker.max_missed
        for pos, (crop, ids) in list(self.held_centres.items()):
            tracks = [self.cropper.tracks[t] for t in ids]
            if any(self.trusted(t) for t in ids):
                del self.held_centres[pos]
            elif final or all(t.missed >= max_missed for t in tracks):
                del self.held_centres[pos]
                released.append((pos, None, crop))
        return released

    def stable_ids(self, sampled_frames: int) -> set[int]:
        """Ids of the face tracks that count as people (enough frames, trusted score)."""
        need = self.need(sampled_frames)
        return {t.id for t in self.cropper.tracker.stable_tracks(need, self.cropper.min_confidence)}

    def faced_frames(self, stable: set[int]) -> set[int]:
        """Positions of the frames a person (a track in `stable`) is in."""
        return {f for t in self.cropper.tracks if t.id in stable for f in t.frames}

    def primary_id(self, sampled_frames: int) -> int | None:
        """The subject's track id (the most persistent person), or None."""
        primary = self.cropper.primary_track(self.need(sampled_frames))
        return primary.id if primary is not None else None

    def sequences(
        self,
        entries: list[Entry],
        times: np.ndarray,
        stable: set[int],
        pid: int | None,
        primary_positions: np.ndarray,
        jobs: list[tuple[torch.Tensor, np.ndarray]],
        num_frames: int,
    ) -> tuple[list[tuple[int, int, float, float, bool]], list[int]]:
        """Each person's (id, frames, first time, last time, is primary) and its row in the
        pooled batch. Tracks' pooling jobs (`num_frames` picks each) are appended to `jobs`; the
        subject's track reuses the clip's row (0) when it covers the same frames."""
        next_row = sum(len(picks) for _, picks in jobs)
        by_track: dict[int, list[tuple[int, torch.Tensor]]] = {}
        for pos, tid, e in entries:  # entries are in frame order
            if tid is not None:
                by_track.setdefault(tid, []).append((pos, e))
        tracks, rows = [], []
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
            jobs.append(
                (torch.stack([e for _, e in seq]), sample_indices(len(seq), num_frames)[None])
            )
            rows.append(next_row)
            next_row += 1
        return tracks, rows


def subject_sequence(
    entries: list[Entry], pid: int | None, stable: set[int], detection: bool
) -> list[tuple[int, torch.Tensor]]:
    """The subject's (frame position, embedding) sequence, in frame order: the primary track's
    (`pid`) frames and the centre crops of frames without a person (every frame without
    `detection`)."""
    faced = {pos for pos, tid, _ in entries if tid in stable}
    by_pos: dict[int, torch.Tensor] = {}
    for pos, tid, emb in entries:
        if not detection or tid == pid or (tid is None and pos not in faced):
            by_pos.setdefault(pos, emb)
    return sorted(by_pos.items())


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
