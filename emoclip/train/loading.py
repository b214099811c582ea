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
frame), as the authors' ``RandomSequence``. Evaluation follows ``eval_sampling``:

* ``"consecutive"`` (default; what the authors' eval.py does, reference.md §3): the same rule as
  training, T consecutive kept frames from a random start with wrap-around and reflect padding;
  the start is drawn from ``(seed, clip index)`` (`emoclip.train.augment.eval_rng`), so a run is
  repeatable where the authors' was not.
* ``"spread"``: T kept frames spread uniformly over the whole clip with
  `emoclip.media.sample_indices` (frames of a clip shorter than T are repeated); no randomness.

Every evaluation report names the sampling used (``eval_sampling``). Videos
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

`DataConfig` is in `emoclip.train.data_config`. This module holds `class_set`, `build_dataset` and `collate`; the rest lives in
`emoclip.train.layouts` (annotation readers, `Sample`), `emoclip.train.frame_folders` (frame
files), `emoclip.train.augment` (temporal sampling, augmentation) and `emoclip.train.datasets`
(the `Dataset` classes). Import each name from its own module.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from emoclip.classes import ClassSet, preset
from emoclip.model.config import PreprocessConfig
from emoclip.model.tokenizer import CONTEXT_LENGTH, tokenize
from emoclip.train import synthetic as syn
from emoclip.train.data_config import DEFAULT_PRESETS, SPLITS, DataConfig
from emoclip.train.datasets import SyntheticVideoDataset, VideoEmotionDataset
from emoclip.train.layouts import (
    READERS,
    LabelIndex,
    ReadReport,
)

__all__ = [
    "build_dataset",
    "class_set",
    "collate",
]

log = logging.getLogger(__name__)

_MANIFEST_FALLBACK_CLASSES = "mafw-11"  # EmoCLIPConfig.default_classes
_MANIFEST_CLASS_FILES = ("classes.yaml", "classes.yml", "classes.json", "classes_all.yaml")
_SYNTHETIC_SETS = {
    "synthetic-all": "all",
    "synthetic-seen": "seen",
    "synthetic-validation": "validation",
    "synthetic-test": "test",
    "synthetic-heldout": "heldout",
}
_SYNTHETIC_PARAPHRASED = "synthetic-all-paraphrased"  # all 12, test classes paraphrased


# --------------------------------------------------------------------------------------------
# Class sets
# --------------------------------------------------------------------------------------------


def class_set(cfg: DataConfig) -> ClassSet:
    """The classes of `cfg`'s dataset, in label order, with the descriptions used for text.

    ``cfg.classes`` is a class-set file (.yaml/.yml/.json), a preset name, or one of
    "synthetic-all", "synthetic-seen", "synthetic-validation", "synthetic-test",
    "synthetic-heldout" (both) or "synthetic-all-paraphrased" (all 12; the test classes described
    by `synthetic.paraphrase_descriptions`). Without it: mafw-11 (MAFW), dfew-7
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
            spec = DEFAULT_PRESETS[cfg.dataset]
    spec = str(spec).strip()
    if spec.casefold() in _SYNTHETIC_SETS:
        return _synthetic_classes(_SYNTHETIC_SETS[spec.casefold()])
    if spec.casefold() == _SYNTHETIC_PARAPHRASED:
        return ClassSet.from_dict(
            {"classes": syn.class_descriptions("all", paraphrased=True)},
            name=_SYNTHETIC_PARAPHRASED,
        )
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
        split: "train" or "test" (AFEW: "validation" is accepted for "test"; synthetic: also
            "validation", the validation classes; manifests accept any split name, used for a ``{split}`` in the file name or the ``split`` column).
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
    labels = LabelIndex(classes)
    if cfg.leave_out and labels.get(cfg.leave_out) is None:
        raise ValueError(
            f"leave_out {cfg.leave_out!r} is not a class of {classes.name!r}: "
            f"{', '.join(c.name for c in classes.classes)}"
        )
    if cfg.dataset == "synthetic":
        return SyntheticVideoDataset(cfg, split, preprocess, classes, train=train, seed=seed)
    report = ReadReport(cfg.dataset)
    samples = READERS[cfg.dataset](cfg, split, labels, report)
    if cfg.leave_out:
        j = labels.get(cfg.leave_out)
        samples = [s for s in samples if (j in s.labels) == (split != "train")]
    if train and cfg.mode == "caption" and samples and all(not s.caption.strip() for s in samples):
        log.warning(
            "%s %s: mode 'caption' but every caption is blank; use mode 'class'", cfg.dataset, split
        )
    dataset = VideoEmotionDataset(
        samples,
        classes,
        preprocess,
        mode=cfg.mode,
        train=train,
        temporal_stride=cfg.temporal_stride,
        face_crop=cfg.face_crop,
        spatial_augment=cfg.spatial_augment,
        eval_sampling=cfg.eval_sampling,
        seed=seed,
        split=split,
        problems=report.problems,
        skipped=report.skipped,
        name=cfg.dataset,
    )
    log.info("%r", dataset)
    return dataset


def _check_split(cfg: DataConfig, split: str) -> str:
    if cfg.dataset == "manifest" and isinstance(split, str) and split.strip():
        return split.strip()
    if cfg.dataset == "afew" and split == "validation":
        return "test"
    if cfg.dataset == "synthetic" and split == "validation":
        return split  # the validation classes (synthetic.VALIDATION)
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
