"""Annotation readers of the authors' dataset layouts and of manifests: rows -> `Sample`s."""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoclip.classes import ClassSet
from emoclip.train.data_config import fold_number
from emoclip.train.frame_folders import has_images

if TYPE_CHECKING:
    from emoclip.train.data_config import DataConfig

log = logging.getLogger(__name__)

# The loaders' label orders (reference.md §9); integer labels in annotation files index these.
MAFW_CLASSES = (
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
    "contempt",
    "anxiety",
    "helplessness",
    "disappointment",
)
DFEW_CLASSES = ("happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear")
# The usual AFEW folder names -> class names (the authors' loader accepted only the class names).
_AFEW_NAMES = {
    "angry": "anger",
    "disgust": "disgust",
    "fear": "fear",
    "happy": "happiness",
    "neutral": "neutral",
    "sad": "sadness",
    "surprise": "surprise",
}
_MAX_LOGGED = 20  # bad rows logged one by one per dataset; the rest are summarised


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


class LabelIndex:
    """Class name (any case) -> index in the class set's classes."""

    def __init__(self, classes: ClassSet) -> None:
        self._index = {c.name.casefold(): i for i, c in enumerate(classes.classes)}
        self.size = len(classes.classes)

    def get(self, name: str) -> int | None:
        return self._index.get(name.strip().casefold())

    def names(self, names: Sequence[str]) -> tuple[int, ...] | None:
        """Indices of all `names`, or None if one is unknown."""
        found = [self.get(n) for n in names]
        indices = tuple(i for i in found if i is not None)
        return indices if found and len(indices) == len(found) else None

    def native(self, value: str, order: Sequence[str]) -> tuple[int, ...] | None:
        """A dataset's integer label (an index into its own `order`) -> class-set indices."""
        k = fold_number(value)
        return self.names([order[k]]) if k is not None and 0 <= k < len(order) else None


class ReadReport:
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


def _frame_folder_problem(folder: Path) -> str | None:
    """Why `folder` cannot be a clip's frame folder, or None."""
    if not folder.is_dir():
        return f"frame folder not found: {folder}"
    if not has_images(folder):
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


def _read_mafw(cfg: DataConfig, split: str, labels: LabelIndex, report: ReadReport) -> list[Sample]:
    root = Path(cfg.root)  # type: ignore[arg-type]
    captions = "with_caption_new" if split == "train" else "no_caption_new"
    sets = root / "Train_Test_Set" / cfg.label_type / captions / f"set_{fold_number(cfg.fold)}"
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


def _read_dfew(cfg: DataConfig, split: str, labels: LabelIndex, report: ReadReport) -> list[Sample]:
    root = Path(cfg.root)  # type: ignore[arg-type]
    ann = _annotation(root / f"DFEW_set_{fold_number(cfg.fold)}_{split}.txt", "DFEW")
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
    cfg: DataConfig, split: str, labels: LabelIndex, report: ReadReport
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
        log.warning(
            "FERV39k descriptions %s not found (the authors did not release them): "
            "sample texts are ' '; mode 'class' does not need them",
            path,
        )
        return None
    data = json.loads(path.read_text(encoding="utf-8-sig"))
    if isinstance(data, dict):
        return data
    raise ValueError(f"{path} must hold a JSON object keyed 'Scene_Emotion_clip'")


def _read_afew(cfg: DataConfig, split: str, labels: LabelIndex, report: ReadReport) -> list[Sample]:
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
    cfg: DataConfig, split: str, labels: LabelIndex, report: ReadReport
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
    root: Path, row: dict[str, Any], labels: tuple[int, ...], where: str, report: ReadReport
) -> Sample | None:
    rel = str(row.get("path") or "").strip()
    if not rel:
        report.add(where, "empty path")
        return None
    source = root / Path(rel).expanduser()
    if source.is_dir():
        if not has_images(source):
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


def _manifest_rows(path: Path, report: ReadReport) -> Iterator[tuple[str, dict[str, Any]]]:
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


def _manifest_label(value: Any, labels: LabelIndex) -> tuple[int, ...] | None:
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
        return tuple(i for p in parts if p for i in p)  # (all parts are non-empty here)
    text = str(value).strip()
    if not text:
        return ()
    if text.lstrip("-").isdigit():
        return _manifest_label(int(text), labels)
    single = labels.get(text)
    return (single,) if single is not None else labels.names(text.split("_"))


READERS = {
    "mafw": _read_mafw,
    "dfew": _read_dfew,
    "ferv39k": _read_ferv39k,
    "afew": _read_afew,
    "manifest": _read_manifest,
}
