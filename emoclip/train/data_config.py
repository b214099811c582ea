"""`DataConfig`: which training/evaluation data to read and how (the ``data`` section of a recipe).

The rules of each dataset and mode are in `emoclip.train.loading`, which builds datasets from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emoclip.train.augment import EVAL_SAMPLINGS

__all__ = [
    "DATASETS",
    "DEFAULT_PRESETS",
    "LABEL_TYPES",
    "MODES",
    "SPLITS",
    "DataConfig",
    "fold_number",
]

DATASETS = ("mafw", "dfew", "ferv39k", "afew", "manifest", "synthetic")
MODES = ("caption", "class", "loo")
SPLITS = ("train", "test")
LABEL_TYPES = ("single", "compound")
DEFAULT_PRESETS = {"mafw": "mafw-11", "dfew": "dfew-7", "ferv39k": "ferv39k-7", "afew": "afew-7"}


def fold_number(value: Any) -> int | None:
    """`value` as an int fold number, or None when it is not a number."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass
class DataConfig:
    """Which data to read and how to turn it into training pairs (see the module docstring)."""

    dataset: str = "mafw"  # "mafw" | "dfew" | "ferv39k" | "afew" | "manifest" | "synthetic"
    root: str | None = None  # dataset root (authors' layout) or the folder manifest paths start in
    fold: int = 1  # MAFW/DFEW folds 1..5 (int: the authors' string-fold bug is fixed)
    manifest: str | None = None  # CSV/JSONL: path (video file or frame folder), caption, label
    mode: str = "caption"  # "caption" | "class" | "loo" (leave-one-class-out)
    leave_out: str | None = None  # left-out class: train drops its samples, test keeps only them
    label_type: str = "single"  # MAFW: "single" | "compound"
    classes: str | None = None  # class-set file or preset name; default: the dataset's preset
    # the authors' TemporalDownSample k (keep frames with index % k == 0): 4 as most of their scripts
    # (their argparse default and MAFW_train_hpc.sh: 2, see configs/train/mafw-emoclip.yaml)
    temporal_stride: int = 4
    # evaluation frames: "consecutive" (the authors' eval.py: T consecutive from a seeded random
    # start) | "spread" (T frames spread over the whole clip); training is always "consecutive"
    eval_sampling: str = "consecutive"
    face_crop: bool = False  # run emoclip.faces on raw frames; the authors' datasets are face crops
    synthetic_clips: int = 2048  # "synthetic": clips per epoch, drawn fresh (train) / fixed (test)
    # "synthetic": validation / test = the validation / test classes, train = the other combinations
    synthetic_heldout: bool = True
    synthetic_eval_clips: int | None = None  # "synthetic": evaluation clips (None: synthetic_clips)
    # "synthetic" training: draw each clip at one of these sizes, then centre_crop it to S as
    # inference does (empty: draw at S)
    synthetic_render_sizes: list[int] = field(default_factory=list)
    synthetic_codec_aug: bool = False  # train: per-frame VP8-like artefacts (`codec_augment`)
    spatial_augment: bool = True  # train: random rotation and horizontal flip per clip

    def validate(self) -> None:
        """Raise `ValueError` naming the first invalid field (`build_dataset` calls this)."""
        if self.dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {self.dataset!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.mode == "loo" and not self.leave_out:
            raise ValueError("mode 'loo' needs leave_out (the class to leave out)")
        if self.label_type not in LABEL_TYPES:
            raise ValueError(f"label_type must be one of {LABEL_TYPES}, got {self.label_type!r}")
        if self.dataset in ("mafw", "dfew") and fold_number(self.fold) not in range(1, 6):
            raise ValueError(f"fold must be 1..5 for {self.dataset}, got {self.fold!r}")
        if int(self.temporal_stride) < 1:
            raise ValueError(f"temporal_stride must be >= 1, got {self.temporal_stride}")
        if self.eval_sampling not in EVAL_SAMPLINGS:
            raise ValueError(
                f"eval_sampling must be one of {EVAL_SAMPLINGS}, got {self.eval_sampling!r}"
            )
        if int(self.synthetic_clips) < 1:
            raise ValueError(f"synthetic_clips must be >= 1, got {self.synthetic_clips}")
        if self.synthetic_eval_clips is not None and int(self.synthetic_eval_clips) < 1:
            raise ValueError(
                f"synthetic_eval_clips must be >= 1 or null, got {self.synthetic_eval_clips}"
            )
        if any(int(size) < 8 for size in self.synthetic_render_sizes):
            raise ValueError(
                f"synthetic_render_sizes must be >= 8 pixels, got {self.synthetic_render_sizes}"
            )
        if self.dataset == "manifest" and not self.manifest:
            raise ValueError("dataset 'manifest' needs manifest (a CSV or JSONL file)")
        if self.dataset in DEFAULT_PRESETS and not self.root:
            raise ValueError(f"dataset {self.dataset!r} needs root (the dataset folder)")
