"""The map-style datasets: clips from frame folders or videos, and synthetic clips."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import torch

from emoclip.classes import ClassSet
from emoclip.faces import center_crop
from emoclip.media import VideoDecodeError, iter_frames
from emoclip.model.config import PreprocessConfig
from emoclip.model.preprocess import to_tensor
from emoclip.train import (
    synthetic as syn,
    synthetic_captions as captions,
    synthetic_cues as cues,
    synthetic_drawing as drawing,
)
from emoclip.train.augment import (
    EVAL_SAMPLINGS,
    augment_clip,
    codec_augment,
    eval_rng,
    temporal_indices,
    train_rng,
)
from emoclip.train.frame_folders import list_frames, read_image
from emoclip.train.layouts import LabelIndex, Sample

if TYPE_CHECKING:
    from emoclip.train.data_config import DataConfig

log = logging.getLogger(__name__)

MAX_VIDEO_FRAMES = 512  # sampled frames decoded per video at most (~68 s at 7.5 fps)
_VIDEO_MAX_SIDE = 1280  # frames are downsized to this before face detection (as the app)
_MAX_ATTEMPTS = 16  # clips tried by __getitem__ before giving up


def _description(classes: ClassSet, label: int, rng: np.random.Generator | None) -> str:
    """A class's description: a random one of several in training (`rng`), else the first."""
    descriptions = classes.classes[label].descriptions
    if rng is None:
        return descriptions[0]
    return descriptions[int(rng.integers(len(descriptions)))]


class VideoEmotionDataset(torch.utils.data.Dataset):
    """Clips from frame folders or video files (see `emoclip.train.loading` for the rules).

    Attributes:
        samples: The clips kept, in file order.
        class_set: Classes the labels index, in label order.
        skipped: Rows skipped at construction, plus clips that failed to load in this process.
        problems: One message per reported row (skipped, or kept with label -1).
        split, mode, train: As given to `build_dataset`.
    """

    def __init__(
        self,
        samples: Sequence[Sample],
        classes: ClassSet,
        preprocess: PreprocessConfig,
        *,
        mode: str = "caption",
        train: bool = False,
        temporal_stride: int = 4,
        face_crop: bool = False,
        spatial_augment: bool = True,
        eval_sampling: str = "consecutive",
        seed: int = 0,
        split: str = "",
        problems: Sequence[str] = (),
        skipped: int = 0,
        name: str = "",
    ) -> None:
        self.samples = list(samples)
        self.class_set = classes
        self.preprocess = preprocess
        self.mode = mode
        self.train = bool(train)
        self.temporal_stride = int(temporal_stride)
        self.face_crop = bool(face_crop)
        self.spatial_augment = bool(spatial_augment)
        if eval_sampling not in EVAL_SAMPLINGS:
            raise ValueError(
                f"eval_sampling must be one of {EVAL_SAMPLINGS}, got {eval_sampling!r}"
            )
        self.eval_sampling = eval_sampling
        self.seed = int(seed)
        self.split = split
        self.problems = list(problems)
        self.skipped = int(skipped)
        self.name = name
        self._failed: set[int] = set()
        self._cropper: Any = None  # FaceCropper, made on first use in each process

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.name or 'clips'}, split={self.split!r}, "
            f"mode={self.mode!r}, clips={len(self)}, skipped={self.skipped})"
        )

    @property
    def frame_sampling(self) -> str:
        """How this dataset picks a clip's T frames: "consecutive" or "spread" (training:
        always "consecutive", the authors' random start; evaluation: ``eval_sampling``)."""
        return "consecutive" if self.train else self.eval_sampling

    def _temporal_rng(self, i: int, rng: np.random.Generator | None) -> np.random.Generator | None:
        """The random start's generator: the training draw, or at evaluation a seeded one."""
        if self.frame_sampling == "spread":
            return None
        return rng if rng is not None else eval_rng(self.seed, i)

    def __getitem__(self, index: int) -> dict[str, Any]:
        n = len(self.samples)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {n} clips")
        index %= n
        errors = []
        for attempt in range(min(n, _MAX_ATTEMPTS)):
            i = (index + attempt) % n
            if i in self._failed:
                continue
            try:
                return self._load(i)
            except (VideoDecodeError, OSError, ValueError, cv2.error) as e:
                self._fail(i, e)
                errors.append(f"{self.samples[i].id}: {e}")
        raise RuntimeError(f"no loadable clip near index {index}: " + "; ".join(errors[-3:]))

    def _fail(self, i: int, error: Exception) -> None:
        self._failed.add(i)
        self.skipped += 1
        sample = self.samples[i]
        message = f"clip {sample.id} ({sample.path}): {error}; replaced by the next clip"
        self.problems.append(message)
        log.warning(message)

    def _load(self, i: int) -> dict[str, Any]:
        sample = self.samples[i]
        rng = train_rng(self.seed, i) if self.train else None
        trng = self._temporal_rng(i, rng)
        if sample.is_video:
            crops = self._video_crops(sample, trng)
        else:
            crops = self._folder_crops(sample, trng)
        if rng is not None and self.spatial_augment:
            crops = augment_clip(crops, rng, self.preprocess.mean)
        x = to_tensor(crops, self.preprocess)
        return {
            "frames": x,
            "text": self._text(sample, rng),
            "label": sample.labels[0] if sample.labels else -1,
            "labels": list(sample.labels),
            "id": sample.id,
        }

    def _text(self, sample: Sample, rng: np.random.Generator | None) -> str:
        if self.mode == "caption":
            return sample.caption
        return _description(self.class_set, sample.labels[0], rng)

    def _folder_crops(self, sample: Sample, rng: np.random.Generator | None) -> np.ndarray:
        """(T, S, S, 3) uint8 crops of the chosen frames of a frame folder."""
        files = list_frames(sample.path)
        picks = temporal_indices(
            len(files),
            self.preprocess.num_frames,
            stride=self.temporal_stride,
            rng=rng,
            sampling=self.frame_sampling,
        )
        unique = np.unique(picks)  # read each frame once, in order (the face tracker wants that)
        cropped = self._crop([read_image(files[j]) for j in unique])
        return cropped[np.searchsorted(unique, picks)]

    def _video_crops(self, sample: Sample, rng: np.random.Generator | None) -> np.ndarray:
        """(T, S, S, 3) uint8 crops of the chosen sampled frames of a video."""
        frames = iter_frames(
            sample.path,
            self.preprocess.sample_fps,
            max_frames=MAX_VIDEO_FRAMES,
            max_side=_VIDEO_MAX_SIDE if self.face_crop else None,
        )
        cropped = self._crop(frame.image for frame in frames)
        if not len(cropped):
            raise VideoDecodeError(f"No decodable video frame in '{sample.path}'")
        return cropped[
            temporal_indices(
                len(cropped), self.preprocess.num_frames, rng=rng, sampling=self.frame_sampling
            )
        ]

    def _crop(self, images: Any) -> np.ndarray:
        """RGB frames of one clip, in order -> (N, S, S, 3) uint8 square crops."""
        size = self.preprocess.image_size
        if not self.face_crop:
            out = [center_crop(image, size) for image in images]
        else:
            cropper = self._face_cropper()
            cropper.reset()
            out = [cropper(image, k)[0].image for k, image in enumerate(images)]
        return np.stack(out) if out else np.zeros((0, size, size, 3), np.uint8)

    def _face_cropper(self) -> Any:
        if self._cropper is None:
            from emoclip.faces import FaceCropper

            self._cropper = FaceCropper(
                size=self.preprocess.image_size,
                margin=self.preprocess.face_margin,
                fallback="center",
                max_faces=1,  # the largest face of each frame
            )
        return self._cropper

    def close(self) -> None:
        """Release the face detector, if one was made."""
        if self._cropper is not None:
            self._cropper.close()
            self._cropper = None

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cropper"] = None  # MediaPipe detectors do not pickle; workers make their own
        return state


class SyntheticVideoDataset(torch.utils.data.Dataset):
    """Synthetic captioned clips (`emoclip.train.synthetic`) drawn on the fly at size S, T frames.

    Train: ``synthetic_clips`` fresh draws per epoch (``(seed, index, torch draw)`` seeds each,
    as file-based training items) from the generator's "train" split (every cue combination but
    the validation and test classes'); with ``synthetic_heldout=False`` from all 36 combinations.
    In modes "class"/"loo" training draws the named classes instead (the seen ones unless
    ``synthetic_heldout=False``), since only they have a description. Validation / test: clip i
    is drawn from ``SeedSequence(seed).spawn(n)[i]``, as `synthetic.write_dataset` does, from the
    validation / test classes (`synthetic.VALIDATION` / `synthetic.TEST`; all 12 with
    ``synthetic_heldout=False``); always the same for a seed, and validation clips use seed + 1
    so that they never share nuisance draws with test clips. With ``leave_out``, training never draws that class
    and testing draws only it. Classes outside the class set are never drawn for test or in modes
    "class"/"loo". Evaluation splits hold ``synthetic_eval_clips`` clips (default: as many).

    Training options that make training frames look like inference frames: with
    ``synthetic_render_sizes`` each clip is drawn at one of those sizes (line widths, anti-aliasing
    and noise then vary as in clips of that size) and brought to S by `emoclip.faces.center_crop`,
    the predictor's function; with ``synthetic_codec_aug`` every frame goes through
    `codec_augment` at the drawn size first (as a video is encoded at its own size). Then the
    spatial augmentation of the file datasets (``spatial_augment``). There is no temporal stride
    (clips are rendered with T frames).
    """

    def __init__(
        self,
        cfg: DataConfig,
        split: str,
        preprocess: PreprocessConfig,
        classes: ClassSet,
        *,
        train: bool,
        seed: int = 0,
    ) -> None:
        self.class_set = classes
        self.preprocess = preprocess
        self.mode = cfg.mode
        self.split = split
        self.train = bool(train)
        self.seed = int(seed)
        clips = cfg.synthetic_clips
        if not train and cfg.synthetic_eval_clips is not None:
            clips = cfg.synthetic_eval_clips
        self.length = int(clips)
        self.render_sizes = tuple(int(s) for s in cfg.synthetic_render_sizes) if train else ()
        self.codec_aug = bool(cfg.synthetic_codec_aug) and self.train
        self.spatial_augment = bool(cfg.spatial_augment)
        self.skipped = 0
        self.problems: list[str] = []
        self._labels = LabelIndex(classes)
        self._names = {expr: name for name, expr in syn.CLASSES.items()}
        self._generator_split, self._pool = self._choose_pool(cfg, split)

    def _choose_pool(
        self, cfg: DataConfig, split: str
    ) -> tuple[str | None, tuple[cues.Expression, ...]]:
        """(generator split when the pool is exactly one, expressions drawn from)."""
        heldout = set(syn.HELDOUT) if cfg.synthetic_heldout else set()
        out = cfg.leave_out.strip().casefold() if cfg.leave_out else None
        if split == "train" and cfg.mode == "caption":
            combos = syn.training_expressions() if cfg.synthetic_heldout else _all_expressions()
            pool = [e for e in combos if out is None or self._names.get(e) != out]
            return ("train" if cfg.synthetic_heldout and out is None else None), tuple(pool)
        if split == "train":
            names = [n for n in syn.CLASSES if n not in heldout and n != out]
        elif out is not None:
            names = [n for n in syn.CLASSES if n == out]
        else:
            names = [n for n in syn.CLASSES if not heldout or n in _EVAL_CLASSES[split]]
        names = [n for n in names if self._labels.get(n) is not None]
        if not names:
            raise ValueError(
                f"no synthetic class of the class set {self.class_set.name!r} "
                f"can be drawn for split {split!r} (leave_out={cfg.leave_out!r})"
            )
        plain = split if cfg.synthetic_heldout else "all"
        whole = split != "train" and names == list(syn.class_descriptions(plain))
        return (plain if whole else None), tuple(syn.CLASSES[n] for n in names)

    def __len__(self) -> int:
        return self.length

    @property
    def expressions(self) -> tuple[cues.Expression, ...]:
        """The expressions (cue combinations) this split draws its clips from, read-only.

        Training never draws a held-out class's expression; validation and test draw only their
        own classes' (with ``synthetic_heldout``), and ``leave_out`` removes (train) or keeps
        (evaluation) one class.
        """
        return self._pool

    @property
    def frame_sampling(self) -> str:
        """Synthetic clips are rendered with exactly T frames: no temporal sampling."""
        return "rendered"

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(split={self.split!r}, mode={self.mode!r}, "
            f"clips={self.length}, classes={len(self._pool)} combinations)"
        )

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, str, str | None]:
        """``synthetic.sample`` when the pool is one of its splits, else the same recipe."""
        T, S = self.preprocess.num_frames, self.preprocess.image_size
        R = self.render_sizes[int(rng.integers(len(self.render_sizes)))] if self.render_sizes else S
        if self._generator_split is not None:
            frames, text, name = syn.sample(rng, split=self._generator_split, num_frames=T, size=R)
        else:
            expr = self._pool[int(rng.integers(len(self._pool)))]
            text = captions.caption(expr, rng)
            frames, name = (
                drawing.render_clip(expr, rng, num_frames=T, size=R),
                self._names.get(expr),
            )
        if self.codec_aug:
            frames = np.stack([codec_augment(frame, rng) for frame in frames])
        if R != S:
            frames = np.stack([center_crop(frame, S) for frame in frames])
        return frames, text, name

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not -self.length <= index < self.length:
            raise IndexError(f"index {index} out of range for {self.length} clips")
        index %= self.length
        if self.train:
            rng = train_rng(self.seed, index)
        else:
            seed = self.seed + (1 if self.split == "validation" else 0)
            rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(index,)))
        frames, caption, name = self._draw(rng)
        label = self._labels.get(name) if name is not None else None
        if self.train and self.spatial_augment:
            frames = augment_clip(frames, rng, self.preprocess.mean)
        x = to_tensor(frames, self.preprocess)
        if self.mode == "caption":
            text = caption
        else:
            assert label is not None  # class-mode pools hold class-set classes only
            text = _description(self.class_set, label, rng if self.train else None)
        return {
            "frames": x,
            "text": text,
            "label": -1 if label is None else label,
            "labels": [] if label is None else [label],
            "id": f"synthetic-{self.split}-{index}",
        }


_EVAL_CLASSES = {"validation": syn.VALIDATION, "test": syn.TEST}


def _all_expressions() -> list[cues.Expression]:
    held = [syn.CLASSES[n] for n in syn.HELDOUT]
    return syn.training_expressions() + held
