"""Training and evaluation data: the authors' datasets, generic manifests and synthetic clips.

`build_dataset` turns a `DataConfig` into a map-style `torch.utils.data.Dataset` whose items are

    {"frames": (T, 3, S, S) float32 normalised, "text": str, "label": int, "labels": list[int],
     "id": str}

with T = ``preprocess.num_frames`` and S = ``preprocess.image_size``; `collate` batches them and
tokenises the texts. Labels are indices into `class_set` (``label`` is the first of ``labels``,
-1 when unknown). The text is the sample's own caption (mode "caption"), or the description of its
(first) class (modes "class" and "loo"; a random description of the class when it has several,
in training, the first one otherwise).

Datasets, in the layouts the authors' loaders read (reference.md §9):

* ``mafw``: ``{root}/Train_Test_Set/{single|compound}/{with_caption_new|no_caption_new}/set_{fold}/
  {train|test}.txt``, GBK, tab-separated ``clip.mp4, label[_label...], Chinese caption, English
  caption``; train reads ``with_caption_new``, test ``no_caption_new``. The caption is field 4
  when there are 4 fields (or more), else "-". Frames in ``{root}/data/faces/{clip}/``.
* ``dfew``: ``{root}/DFEW_set_{fold}_{split}.txt``, space-separated ``path num_frames label``
  with a 0-based label; frames in ``{root}/DFEW_Frame_Face/{basename(path)}/``; text " ".
* ``ferv39k``: ``{root}/{split}_image.txt`` as DFEW, the path ending ``<Scene>/<Emotion>/<clip>``;
  frames in ``{root}/2_ClipsforFaceCrop/<Scene>/<Emotion>/<clip>/``; captions from
  ``{root}/{split}_descriptions.json`` keyed ``"<Scene>_<Emotion>_<clip>"`` (the authors never
  released it: without it the text is " " and a warning is logged).
* ``afew``: no annotation file, ``{root}/AFEW_Face/{train|validation}/<Emotion>/<clip>/``; the
  split "test" reads ``validation`` (AFEW's test labels are not public). Folder names are the
  class names in any case (``Happiness``) or the usual AFEW names (``Angry``, ``Disgust``,
  ``Fear``, ``Happy``, ``Neutral``, ``Sad``, ``Surprise``), which the authors' loader rejected.
* ``manifest``: a CSV (header ``path,caption,label``) or JSON Lines file (keys ``path``,
  ``caption``, ``label``); ``path`` is a video file or a folder of frames, relative to ``root``
  (default: the manifest's folder). Optional ``id`` and ``split`` columns; with a ``split``
  column only rows of the requested split (or with an empty split) are used, and a ``{split}``
  in the manifest's file name is replaced by the split. ``label`` is optional: a class name
  (several joined by "_", as MAFW's compounds, or a JSON list) or a class index.
* ``synthetic``: clips drawn on the fly by `emoclip.train.synthetic` (see
  `SyntheticVideoDataset`).

With ``leave_out`` (required by mode "loo", honoured in every mode) the train split drops every
clip whose labels contain that class and the test split keeps only those clips (reference.md §8.3);
mode "loo" trains on the class descriptions of the remaining classes, and evaluation scores all the
classes of `class_set`, the left-out one included.

Splits are "train" and "test". The class order is the class set's (`class_set`); the datasets'
own integer labels are mapped by class name, so a custom class-set file may reorder or rename the
descriptions as long as the class names match.

Temporal sampling (frame folders): frames are the folder's image files sorted lexicographically
(as the authors' ``sort()``); every ``temporal_stride``-th is kept (index % k == 0, the authors'
``TemporalDownSample``). Training takes T consecutive kept frames from a random start, wrapping
once to the beginning, then reflect-padding when the clip is still short (edge-repeat for a single
frame), as the authors' ``RandomSequence``. Evaluation is deterministic (the authors' was random):
T frames spread uniformly over the kept frames with `emoclip.video.sample_indices`. Videos
(manifests) are sampled in time at ``preprocess.sample_fps`` (7.5 fps, i.e. every 4th frame of a
30 fps video, as the app does at inference) instead of by ``temporal_stride``, then the same rules
apply to the sampled frames; at most `MAX_VIDEO_FRAMES` are decoded per video.

Spatial transforms: every frame is centre-cropped to a square and resized to S by
`emoclip.faces.center_crop` (the app's function: bicubic when enlarging, area when shrinking), or,
with ``face_crop``, cut around the largest face by `emoclip.faces.FaceCropper` (centre-crop
fallback). Training then applies one random rotation in [-6, 6] degrees about the centre (nearest
neighbour, as torchvision's default) and a horizontal flip with probability 0.5, the same draw for
every frame of the clip; corners are filled with ``preprocess.mean`` as uint8, i.e. ~0 after
normalisation, as in the authors' code, which rotates normalised tensors with fill 0. Last, frames
are normalised with ``preprocess.mean/std`` (``spatial_augment=False``: no rotation or flip; the
synthetic generator draws its own pose variation). The authors normalise first (Normalize ->
Resize -> CenterCrop -> RandomRotation -> RandomHorizontalFlip); these operations are linear, so
the order only changes interpolation and uint8 rounding, and working on uint8 frames keeps the
resize identical to inference and makes the rotation ~25x faster (OpenCV instead of torchvision).

Randomness: evaluation items are deterministic. Training items draw a numpy generator from
``(seed, index, a draw of torch's global generator)``: DataLoader workers seed torch differently
per worker and per epoch, so draws differ across epochs and workers and are reproducible under
``torch.manual_seed``.

Bad rows (missing or empty frame folder, missing video, unparsable line, unknown label) are
logged once with their line number and reason, counted in ``dataset.skipped`` and listed in
``dataset.problems``; they are never fatal. Construction only checks that paths exist; decoding is
lazy. A clip that fails to decode when loaded is logged, counted (in the loading process) and
replaced by the next good clip, so a DataLoader never stops on one broken file.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..classes import ClassSet, preset
from ..config import PreprocessConfig
from ..faces import center_crop
from ..preprocess import to_tensor
from ..tokenizer import CONTEXT_LENGTH, tokenize
from ..video import VideoDecodeError, iter_frames, sample_indices
from . import synthetic as syn

__all__ = [
    "DATASETS",
    "DFEW_CLASSES",
    "MAFW_CLASSES",
    "MAX_VIDEO_FRAMES",
    "MODES",
    "SPLITS",
    "DataConfig",
    "Sample",
    "SyntheticVideoDataset",
    "VideoEmotionDataset",
    "build_dataset",
    "class_set",
    "codec_augment",
    "collate",
    "temporal_indices",
]

log = logging.getLogger(__name__)

DATASETS = ("mafw", "dfew", "ferv39k", "afew", "manifest", "synthetic")
MODES = ("caption", "class", "loo")
SPLITS = ("train", "test")
LABEL_TYPES = ("single", "compound")

# The loaders' label orders (reference.md §9); integer labels in annotation files index these.
MAFW_CLASSES = (
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise", "contempt",
    "anxiety", "helplessness", "disappointment",
)
DFEW_CLASSES = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")
_DEFAULT_PRESETS = {"mafw": "mafw-11", "dfew": "dfew-7", "ferv39k": "ferv39k-7", "afew": "afew-7"}
_MANIFEST_FALLBACK_CLASSES = "mafw-11"  # EmoCLIPConfig.default_classes
_MANIFEST_CLASS_FILES = ("classes.yaml", "classes.yml", "classes.json", "classes_all.yaml")
_SYNTHETIC_SETS = {"synthetic-all": "all", "synthetic-seen": "seen", "synthetic-heldout": "heldout"}
# The usual AFEW folder names -> class names (the authors' loader accepted only the class names).
_AFEW_NAMES = {
    "angry": "anger", "disgust": "disgust", "fear": "fear", "happy": "happiness",
    "neutral": "neutral", "sad": "sadness", "surprise": "surprise",
}
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")
MAX_VIDEO_FRAMES = 512  # sampled frames decoded per video at most (~68 s at 7.5 fps)
_VIDEO_MAX_SIDE = 1280  # frames are downsized to this before face detection (as the app)
_MAX_LOGGED = 20  # bad rows logged one by one per dataset; the rest are summarised
_MAX_ATTEMPTS = 16  # clips tried by __getitem__ before giving up
_ROTATION_DEGREES = 6.0


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
    temporal_stride: int = 4  # the authors' TemporalDownSample k (keep frames with index % k == 0)
    face_crop: bool = False  # run emoclip.faces on raw frames; the authors' datasets are face crops
    synthetic_clips: int = 2048  # "synthetic": clips per epoch, drawn fresh (train) / fixed (test)
    synthetic_heldout: bool = True  # "synthetic": test = held-out classes, train = the others
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
        if self.dataset in ("mafw", "dfew") and _fold(self.fold) not in range(1, 6):
            raise ValueError(f"fold must be 1..5 for {self.dataset}, got {self.fold!r}")
        if int(self.temporal_stride) < 1:
            raise ValueError(f"temporal_stride must be >= 1, got {self.temporal_stride}")
        if int(self.synthetic_clips) < 1:
            raise ValueError(f"synthetic_clips must be >= 1, got {self.synthetic_clips}")
        if self.synthetic_eval_clips is not None and int(self.synthetic_eval_clips) < 1:
            raise ValueError(
                f"synthetic_eval_clips must be >= 1 or null, got {self.synthetic_eval_clips}")
        if any(int(size) < 8 for size in self.synthetic_render_sizes):
            raise ValueError(
                f"synthetic_render_sizes must be >= 8 pixels, got {self.synthetic_render_sizes}")
        if self.dataset == "manifest" and not self.manifest:
            raise ValueError("dataset 'manifest' needs manifest (a CSV or JSONL file)")
        if self.dataset in _DEFAULT_PRESETS and not self.root:
            raise ValueError(f"dataset {self.dataset!r} needs root (the dataset folder)")


def _fold(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class Sample:
    """One clip of a file-based dataset.

    Attributes:
        id: Clip identifier (MAFW/DFEW clip name, FERV39k ``Scene_Emotion_clip``, AFEW
            ``Emotion/clip``, manifest ``id`` or path as written).
        path: Frame folder, or video file when ``is_video``.
        caption: The sample-level caption (" " or "-" when the dataset has none).
        labels: Class-set indices (one, or several for a compound); empty when unknown.
        is_video: Whether ``path`` is a video file.
    """

    id: str
    path: Path
    caption: str
    labels: tuple[int, ...]
    is_video: bool = False


# --------------------------------------------------------------------------------------------
# Class sets and labels
# --------------------------------------------------------------------------------------------


def class_set(cfg: DataConfig) -> ClassSet:
    """The classes of `cfg`'s dataset, in label order, with the descriptions used for text.

    ``cfg.classes`` is a class-set file (.yaml/.yml/.json), a preset name, or one of
    "synthetic-all", "synthetic-seen", "synthetic-heldout". Without it: mafw-11 (MAFW), dfew-7
    (DFEW), ferv39k-7 (FERV39k), afew-7 (AFEW), the 12 synthetic classes ("synthetic-all"), and for
    manifests a ``classes.yaml``/``.yml``/``.json`` or ``classes_all.yaml`` beside the manifest
    (the synthetic writer's), else mafw-11.
    """
    spec: Any = cfg.classes
    if isinstance(spec, ClassSet):
        return spec
    if spec is None:
        if cfg.dataset == "synthetic":
            return _synthetic_classes("all")
        if cfg.dataset == "manifest":
            spec = _manifest_classes(cfg)
        else:
            spec = _DEFAULT_PRESETS[cfg.dataset]
    spec = str(spec).strip()
    if spec.casefold() in _SYNTHETIC_SETS:
        return _synthetic_classes(_SYNTHETIC_SETS[spec.casefold()])
    path = Path(spec).expanduser()
    if path.suffix.lower() in (".yaml", ".yml", ".json") or path.is_file():
        return ClassSet.load(path)
    return preset(spec)


def _synthetic_classes(which: str) -> ClassSet:
    return ClassSet.from_dict({"classes": syn.class_descriptions(which)}, name=f"synthetic-{which}")


def _manifest_classes(cfg: DataConfig) -> str:
    folder = Path(str(cfg.manifest)).expanduser().parent
    for name in _MANIFEST_CLASS_FILES:
        if (folder / name).is_file():
            return str(folder / name)
    log.info("no class set given for the manifest; using %s", _MANIFEST_FALLBACK_CLASSES)
    return _MANIFEST_FALLBACK_CLASSES


class _LabelIndex:
    """Class name (any case) -> index in the class set's classes."""

    def __init__(self, classes: ClassSet) -> None:
        self._index = {c.name.casefold(): i for i, c in enumerate(classes.classes)}
        self.size = len(classes.classes)

    def get(self, name: str) -> int | None:
        return self._index.get(name.strip().casefold())

    def names(self, names: Sequence[str]) -> tuple[int, ...] | None:
        """Indices of all `names`, or None if one is unknown."""
        found = [self.get(n) for n in names]
        return None if not found or None in found else tuple(found)  # type: ignore[misc]

    def native(self, value: str, order: Sequence[str]) -> tuple[int, ...] | None:
        """A dataset's integer label (an index into its own `order`) -> class-set indices."""
        k = _fold(value)
        return self.names([order[k]]) if k is not None and 0 <= k < len(order) else None


class _Report:
    """Bad rows of one dataset: logged once each (the first `_MAX_LOGGED`), counted, kept."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []
        self.skipped = 0

    def add(self, where: str, reason: str, *, skipped: bool = True) -> None:
        message = f"{self.source}, {where}: {reason}" + ("; skipped" if skipped else "")
        self.problems.append(message)
        self.skipped += int(skipped)
        if len(self.problems) <= _MAX_LOGGED:
            log.warning(message)
        elif len(self.problems) == _MAX_LOGGED + 1:
            log.warning("%s: more problems; see dataset.problems", self.source)


# --------------------------------------------------------------------------------------------
# Readers (one per layout); each returns Samples and reports bad rows
# --------------------------------------------------------------------------------------------


def _has_images(folder: Path) -> bool:
    with os.scandir(folder) as entries:
        return any(e.name.lower().endswith(IMAGE_EXTENSIONS) for e in entries)


def _frame_folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be a clip's frame folder, or None."""
    if not folder.is_dir():
        return f"frame folder not found: {folder}"
    if not _has_images(folder):
        return f"frame folder has no image files: {folder}"
    return None


def _annotation(path: Path, what: str) -> Path:
    if not path.is_file():
        raise FileNotFoundError(
            f"{what} annotation file not found: {path} (layout: reference.md §9)"
        )
    return path


def _read_text(path: Path, encoding: str) -> str:
    raw = path.read_bytes()
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError:
        log.warning("%s is not valid %s; reading it as UTF-8", path, encoding)
        return raw.decode("utf-8", errors="replace")


def _read_mafw(cfg: DataConfig, split: str, labels: _LabelIndex, report: _Report) -> list[Sample]:
    root = Path(cfg.root)  # type: ignore[arg-type]
    captions = "with_caption_new" if split == "train" else "no_caption_new"
    sets = root / "Train_Test_Set" / cfg.label_type / captions / f"set_{_fold(cfg.fold)}"
    ann = sets / f"{split}.txt"
    # GB18030 is a superset of GBK: it reads every GBK file and a few more.
    text = _read_text(_annotation(ann, "MAFW"), "gb18030").lstrip("\ufeff")
    report.source = str(ann)
    samples = []
    for number, line in enumerate(text.split("\n"), 1):  # "\n" only, as the authors' readlines
        if not line.strip():
            continue
        row = line.rstrip("\r").split("\t")
        if len(row) < 2:
            report.add(f"line {number}", "expected tab-separated 'clip<TAB>label[...]'")
            continue
        name = row[0].strip().split(".")[0]
        found = labels.names(row[1].strip().split("_"))
        if found is None:
            report.add(f"line {number}", f"unknown label {row[1].strip()!r}")
            continue
        folder = root / "data" / "faces" / name
        if (problem := _frame_folder_problem(folder)) is not None:
            report.add(f"line {number}", problem)
            continue
        caption = row[3].strip() if len(row) >= 4 else "-"
        samples.append(Sample(name, folder, caption, found))
    return samples


def _split_rows(path: Path) -> Iterator[tuple[int, str, str]]:
    """``path num_frames label`` rows of a DFEW/FERV39k file: (line number, path, label)."""
    for number, line in enumerate(_read_text(path, "utf-8-sig").split("\n"), 1):
        parts = line.split()
        if parts:
            yield number, " ".join(parts[:-2]) if len(parts) >= 3 else "", parts[-1]


def _read_dfew(cfg: DataConfig, split: str, labels: _LabelIndex, report: _Report) -> list[Sample]:
    root = Path(cfg.root)  # type: ignore[arg-type]
    ann = _annotation(root / f"DFEW_set_{_fold(cfg.fold)}_{split}.txt", "DFEW")
    report.source = str(ann)
    samples = []
    for number, path, label in _split_rows(ann):
        found = labels.native(label, DFEW_CLASSES)
        if not path:
            report.add(f"line {number}", "expected 'path num_frames label'")
        elif found is None:
            report.add(f"line {number}", f"unknown label {label!r}")
        else:
            name = path.replace("\\", "/").rstrip("/").split("/")[-1]
            folder = root / "DFEW_Frame_Face" / name
            if (problem := _frame_folder_problem(folder)) is not None:
                report.add(f"line {number}", problem)
            else:
                samples.append(Sample(name, folder, " ", found))
    return samples


def _read_ferv39k(
    cfg: DataConfig, split: str, labels: _LabelIndex, report: _Report
) -> list[Sample]:
    root = Path(cfg.root)  # type: ignore[arg-type]
    ann = _annotation(root / f"{split}_image.txt", "FERV39k")
    report.source = str(ann)
    descriptions, missing = _ferv39k_descriptions(root / f"{split}_descriptions.json"), 0
    samples = []
    for number, path, label in _split_rows(ann):
        parts = path.replace("\\", "/").rstrip("/").split("/")
        found = labels.native(label, DFEW_CLASSES)
        if len(parts) < 3:
            report.add(f"line {number}", "path must end with <Scene>/<Emotion>/<clip>")
        elif found is None:
            report.add(f"line {number}", f"unknown label {label!r}")
        else:
            folder = root.joinpath("2_ClipsforFaceCrop", *parts[-3:])
            if (problem := _frame_folder_problem(folder)) is not None:
                report.add(f"line {number}", problem)
                continue
            key = "_".join(parts[-3:])
            caption = " " if descriptions is None else descriptions.get(key)
            if caption is None:
                caption, missing = " ", missing + 1
            samples.append(Sample(key, folder, str(caption), found))
    if missing:
        log.warning("%s: %d clips have no description; their text is ' '", ann, missing)
    return samples


def _ferv39k_descriptions(path: Path) -> dict[str, str] | None:
    if not path.is_file():
        log.warning("FERV39k descriptions %s not found (the authors did not release them): "
                    "sample texts are ' '; mode 'class' does not need them", path)
        return None
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    if isinstance(data, dict):
        return data
    raise ValueError(f"{path} must hold a JSON object keyed 'Scene_Emotion_clip'")


def _read_afew(cfg: DataConfig, split: str, labels: _LabelIndex, report: _Report) -> list[Sample]:
    folder = "train" if split == "train" else "validation"  # AFEW's test labels are not public
    base = Path(cfg.root) / "AFEW_Face" / folder  # type: ignore[arg-type]
    if not base.is_dir():
        raise FileNotFoundError(f"AFEW folder not found: {base} (layout: reference.md §9)")
    report.source = str(base)
    samples = []
    for emotion in sorted(p for p in base.iterdir() if p.is_dir()):
        name = _AFEW_NAMES.get(emotion.name.casefold(), emotion.name)
        found = labels.names([name])
        for clip in sorted(emotion.iterdir()):
            where = f"clip {emotion.name}/{clip.name}"
            if found is None:
                report.add(where, f"unknown emotion folder {emotion.name!r}")
            elif (problem := _frame_folder_problem(clip)) is not None:
                report.add(where, problem)
            else:
                samples.append(Sample(f"{emotion.name}/{clip.name}", clip, " ", found))
    return samples


def _read_manifest(
    cfg: DataConfig, split: str, labels: _LabelIndex, report: _Report
) -> list[Sample]:
    path = Path(str(cfg.manifest).replace("{split}", split)).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"manifest not found: {path}")
    report.source = str(path)
    root = Path(cfg.root).expanduser() if cfg.root else path.parent
    supervised = cfg.mode != "caption"
    samples = []
    for where, row in _manifest_rows(path, report):
        row_split = str(row.get("split") or "").strip()
        if row_split and row_split.casefold() != split.casefold():
            continue
        found = _manifest_label(row.get("label"), labels)
        if found is None:
            report.add(where, f"unknown label {row.get('label')!r}", skipped=supervised)
            if supervised:
                continue
            found = ()
        elif not found and supervised:
            report.add(where, f"no label (mode {cfg.mode!r} needs one)")
            continue
        sample = _manifest_sample(root, row, found, where, report)
        if sample is not None:
            samples.append(sample)
    return samples


def _manifest_sample(
    root: Path, row: dict[str, Any], labels: tuple[int, ...], where: str, report: _Report
) -> Sample | None:
    rel = str(row.get("path") or "").strip()
    if not rel:
        report.add(where, "empty path")
        return None
    source = root / Path(rel).expanduser()
    if source.is_dir():
        if not _has_images(source):
            report.add(where, f"frame folder has no image files: {source}")
            return None
        is_video = False
    elif source.is_file():
        if source.stat().st_size == 0:
            report.add(where, f"video file is empty: {source}")
            return None
        is_video = True
    else:
        report.add(where, f"not found: {source}")
        return None
    caption = row.get("caption")
    caption = "" if caption is None else str(caption)
    return Sample(str(row.get("id") or rel), source, caption, labels, is_video)


def _manifest_rows(path: Path, report: _Report) -> Iterator[tuple[str, dict[str, Any]]]:
    """(where, row) pairs of a CSV (header row), JSON Lines or JSON-list manifest."""
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            fields = [(name or "").strip().lower() for name in reader.fieldnames or []]
            if "path" not in fields:
                raise ValueError(f"{path}: the CSV header must have a 'path' column, got {fields}")
            reader.fieldnames = fields
            for row in reader:
                yield f"line {reader.line_num}", row
        return
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json" and text.lstrip().startswith("["):
        for number, row in enumerate(json.loads(text), 1):
            if isinstance(row, dict):
                yield f"entry {number}", row
            else:
                report.add(f"entry {number}", "not a JSON object")
        return
    for number, line in enumerate(text.split("\n"), 1):  # JSON strings may hold U+2028
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            report.add(f"line {number}", f"invalid JSON ({e.msg})")
            continue
        if isinstance(row, dict):
            yield f"line {number}", row
        else:
            report.add(f"line {number}", "not a JSON object")


def _manifest_label(value: Any, labels: _LabelIndex) -> tuple[int, ...] | None:
    """A manifest label -> class indices; () when absent, None when unknown."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ()
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return () if value < 0 else (value,) if value < labels.size else None
    if isinstance(value, list):
        parts = [_manifest_label(v, labels) for v in value]
        if not parts or any(not p for p in parts):
            return None
        return tuple(i for p in parts for i in p)
    text = str(value).strip()
    if not text:
        return ()
    if text.lstrip("-").isdigit():
        return _manifest_label(int(text), labels)
    single = labels.get(text)
    return (single,) if single is not None else labels.names(text.split("_"))


_READERS = {
    "mafw": _read_mafw,
    "dfew": _read_dfew,
    "ferv39k": _read_ferv39k,
    "afew": _read_afew,
    "manifest": _read_manifest,
}


# --------------------------------------------------------------------------------------------
# Sampling and transforms
# --------------------------------------------------------------------------------------------


def temporal_indices(
    num_frames: int, length: int, *, stride: int = 1, rng: np.random.Generator | None = None
) -> np.ndarray:
    """Which frames of a clip to use.

    Args:
        num_frames: Frames available (> 0), in order.
        length: T, frames wanted.
        stride: Keep only frames whose index % stride == 0 (the authors' TemporalDownSample).
        rng: None for evaluation: T kept frames spread uniformly (`sample_indices`). A generator
            for training: T consecutive kept frames from a random start, wrapping once to the
            start, then reflect-padded (edge-repeated for one frame) if still short.

    Returns:
        (T,) int64 indices into ``range(num_frames)``.
    """
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")
    kept = np.arange(0, num_frames, max(1, int(stride)), dtype=np.int64)
    if rng is None:
        return kept[sample_indices(len(kept), length)]
    start = int(rng.integers(len(kept)))
    seq = kept[start : start + length]
    if len(seq) < length:
        seq = np.concatenate([seq, kept[: length - len(seq)]])
    if len(seq) < length:
        seq = np.pad(seq, (0, length - len(seq)), mode="reflect" if len(seq) > 1 else "edge")
    return seq


def _augment(frames: np.ndarray, rng: np.random.Generator, mean: Sequence[float]) -> np.ndarray:
    """One random rotation and horizontal flip for a whole (T, S, S, 3) uint8 RGB clip."""
    angle = float(rng.uniform(-_ROTATION_DEGREES, _ROTATION_DEGREES))
    flip = rng.random() < 0.5
    height, width = frames.shape[1:3]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2.0, (height - 1) / 2.0), angle, 1.0)
    fill = tuple(int(round(255.0 * m)) for m in mean)  # ~0 once normalised
    out = np.stack([
        cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_NEAREST,
                       borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
        for frame in frames
    ])
    return np.ascontiguousarray(out[:, :, ::-1]) if flip else out


# `codec_augment`: what VP8 webm encoding does to synthetic frames, roughly (4:2:0 chroma, blocky
# quantisation); the probabilities and JPEG qualities were tuned on the tiny synthetic model.
_CODEC_I420_P, _CODEC_JPEG_P, _CODEC_JPEG_QUALITY = 0.8, 0.7, (40, 95)


def codec_augment(frame: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Video-codec-like degradation of one (H, W, 3) uint8 RGB frame (even H and W).

    With probability 0.8 a YUV 4:2:0 round trip (chroma subsampling, as VP8/H.264), then with
    probability 0.7 JPEG compression at a quality drawn in [40, 95] (block quantisation).
    """
    if rng.random() < _CODEC_I420_P:
        frame = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_RGB2YUV_I420), cv2.COLOR_YUV2RGB_I420)
    if rng.random() < _CODEC_JPEG_P:
        quality = int(rng.integers(_CODEC_JPEG_QUALITY[0], _CODEC_JPEG_QUALITY[1] + 1))
        ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            frame = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    return frame


def _train_rng(seed: int, index: int) -> np.random.Generator:
    draw = int(torch.randint(0, 2**62, (1,)).item())  # per worker and epoch under a DataLoader
    return np.random.default_rng([int(seed) & (2**63 - 1), int(index), draw])


def _description(classes: ClassSet, label: int, rng: np.random.Generator | None) -> str:
    """A class's description: a random one of several in training (`rng`), else the first."""
    descriptions = classes.classes[label].descriptions
    if rng is None:
        return descriptions[0]
    return descriptions[int(rng.integers(len(descriptions)))]


def _read_image(path: Path) -> np.ndarray:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"cannot read image {path}")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def _list_frames(folder: Path) -> list[Path]:
    with os.scandir(folder) as entries:
        names = sorted(e.name for e in entries if e.name.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise ValueError(f"frame folder has no image files: {folder}")
    return [folder / name for name in names]


# --------------------------------------------------------------------------------------------
# Datasets
# --------------------------------------------------------------------------------------------


class VideoEmotionDataset(torch.utils.data.Dataset):
    """Clips from frame folders or video files (see the module docstring for the rules).

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
        return (f"{type(self).__name__}({self.name or 'clips'}, split={self.split!r}, "
                f"mode={self.mode!r}, clips={len(self)}, skipped={self.skipped})")

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
        rng = _train_rng(self.seed, i) if self.train else None
        if sample.is_video:
            crops = self._video_crops(sample, rng)
        else:
            crops = self._folder_crops(sample, rng)
        if rng is not None and self.spatial_augment:
            crops = _augment(crops, rng, self.preprocess.mean)
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
        files = _list_frames(sample.path)
        picks = temporal_indices(
            len(files), self.preprocess.num_frames, stride=self.temporal_stride, rng=rng
        )
        unique = np.unique(picks)  # read each frame once, in order (the face tracker wants that)
        cropped = self._crop([_read_image(files[j]) for j in unique])
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
        return cropped[temporal_indices(len(cropped), self.preprocess.num_frames, rng=rng)]

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
            from ..faces import FaceCropper

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
    the held-out classes'); with ``synthetic_heldout=False`` from all 36 combinations. In modes
    "class"/"loo" training draws the named classes instead (the seen ones unless
    ``synthetic_heldout=False``), since only they have a description. Test: clip i is drawn from
    ``SeedSequence(seed).spawn(n)[i]``, as `synthetic.write_dataset` does, from the held-out classes
    (or all 12); always the same for a seed. With ``leave_out``, training never draws that class
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
        self._labels = _LabelIndex(classes)
        self._names = {expr: name for name, expr in syn.CLASSES.items()}
        self._generator_split, self._pool = self._choose_pool(cfg, split)

    def _choose_pool(
        self, cfg: DataConfig, split: str
    ) -> tuple[str | None, tuple[syn.Expression, ...]]:
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
            names = [n for n in syn.CLASSES if n in heldout or not heldout]
        names = [n for n in names if self._labels.get(n) is not None]
        if not names:
            raise ValueError(f"no synthetic class of the class set {self.class_set.name!r} "
                             f"can be drawn for split {split!r} (leave_out={cfg.leave_out!r})")
        plain = "heldout" if cfg.synthetic_heldout else "all"
        whole = split == "test" and names == list(syn.class_descriptions(plain))
        return (plain if whole else None), tuple(syn.CLASSES[n] for n in names)

    def __len__(self) -> int:
        return self.length

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, mode={self.mode!r}, "
                f"clips={self.length}, classes={len(self._pool)} combinations)")

    def _draw(self, rng: np.random.Generator) -> tuple[np.ndarray, str, str | None]:
        """``synthetic.sample`` when the pool is one of its splits, else the same recipe."""
        T, S = self.preprocess.num_frames, self.preprocess.image_size
        R = self.render_sizes[int(rng.integers(len(self.render_sizes)))] if self.render_sizes else S
        if self._generator_split is not None:
            frames, text, name = syn.sample(rng, split=self._generator_split, num_frames=T, size=R)
        else:
            expr = self._pool[int(rng.integers(len(self._pool)))]
            text = syn.caption(expr, rng)
            frames, name = syn.render_clip(expr, rng, num_frames=T, size=R), self._names.get(expr)
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
            rng = _train_rng(self.seed, index)
        else:
            rng = np.random.default_rng(np.random.SeedSequence(self.seed, spawn_key=(index,)))
        frames, caption, name = self._draw(rng)
        label = self._labels.get(name) if name is not None else None
        if self.train and self.spatial_augment:
            frames = _augment(frames, rng, self.preprocess.mean)
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


def _all_expressions() -> list[syn.Expression]:
    held = [syn.CLASSES[n] for n in syn.HELDOUT]
    return syn.training_expressions() + held


# --------------------------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------------------------


def build_dataset(
    cfg: DataConfig,
    split: str,
    preprocess: PreprocessConfig,
    *,
    train: bool | None = None,
    seed: int = 0,
) -> torch.utils.data.Dataset:
    """The dataset of one split.

    Args:
        cfg: What to read (validated here).
        split: "train" or "test" (AFEW: "validation" is accepted for "test"; manifests accept any
            split name, used for a ``{split}`` in the file name or the ``split`` column).
        preprocess: Frame size S, frames per clip T, normalisation, video sampling rate.
        train: Random sampling and augmentation (default: ``split == "train"``).
        seed: Mixed into every random draw; fixes the synthetic test clips.

    Returns:
        A `VideoEmotionDataset` or `SyntheticVideoDataset` of items as in the module docstring.

    Raises:
        ValueError: Invalid config, split or leave_out class.
        FileNotFoundError: The annotation file, AFEW folder or manifest is missing.
    """
    cfg.validate()
    split = _check_split(cfg, split)
    train = split == "train" if train is None else bool(train)
    classes = class_set(cfg)
    labels = _LabelIndex(classes)
    if cfg.leave_out and labels.get(cfg.leave_out) is None:
        raise ValueError(f"leave_out {cfg.leave_out!r} is not a class of {classes.name!r}: "
                         f"{', '.join(c.name for c in classes.classes)}")
    if cfg.dataset == "synthetic":
        return SyntheticVideoDataset(cfg, split, preprocess, classes, train=train, seed=seed)
    report = _Report(cfg.dataset)
    samples = _READERS[cfg.dataset](cfg, split, labels, report)
    if cfg.leave_out:
        j = labels.get(cfg.leave_out)
        samples = [s for s in samples if (j in s.labels) == (split != "train")]
    if train and cfg.mode == "caption" and samples and all(not s.caption.strip() for s in samples):
        log.warning("%s %s: mode 'caption' but every caption is blank; use mode 'class'",
                    cfg.dataset, split)
    dataset = VideoEmotionDataset(
        samples, classes, preprocess, mode=cfg.mode, train=train,
        temporal_stride=cfg.temporal_stride, face_crop=cfg.face_crop,
        spatial_augment=cfg.spatial_augment, seed=seed, split=split,
        problems=report.problems, skipped=report.skipped, name=cfg.dataset,
    )
    log.info("%r", dataset)
    return dataset


def _check_split(cfg: DataConfig, split: str) -> str:
    if cfg.dataset == "manifest" and isinstance(split, str) and split.strip():
        return split.strip()
    if cfg.dataset == "afew" and split == "validation":
        return "test"
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return split


def collate(batch: list[dict[str, Any]], context_length: int = CONTEXT_LENGTH) -> dict[str, Any]:
    """Stack dataset items into a batch.

    Returns:
        ``{"frames": (B, T, 3, S, S) float32, "tokens": (B, L) int64 (`emoclip.tokenize`),
        "texts": list[str], "labels": (B,) int64 (first label, -1 when unknown),
        "label_sets": list[list[int]], "ids": list[str]}``.
    """
    texts = [item["text"] for item in batch]
    return {
        "frames": torch.stack([item["frames"] for item in batch]),
        "tokens": tokenize(texts, context_length),
        "texts": texts,
        "labels": torch.tensor([item["label"] for item in batch], dtype=torch.int64),
        "label_sets": [list(item["labels"]) for item in batch],
        "ids": [item["id"] for item in batch],
    }
