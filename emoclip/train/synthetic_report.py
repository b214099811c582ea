"""Score a synthetic model on fresh clips through the user's path: the figures of its model card.

Clips are written by `emoclip.train.synthetic.write_dataset` (VP8 webm, as a user's file) with
seeds no training or evaluation run draws from, read back and encoded by `EmotionPredictor`, and
every clip is scored against three class sets. Reported, each as fractions:

* ``test_uar``: mean recall over the test classes (`synthetic.TEST`, never trained on nor tuned
  on), each clip scored against all 12 descriptions (textbook UAR, ``uar_true_classes``).
* ``test_uar_authors``: the authors' UAR of the same predictions: sklearn's mean recall over the
  union of true and predicted labels, so a seen class that is wrongly predicted counts as a class
  of recall 0 (reference.md §8.3, `emoclip.train.metrics.uar`).
* ``all_uar_authors``: the authors' UAR on clips of all 12 classes (seed + 7) against all 12.
* ``paraphrase_uar`` (and ``paraphrase_uar_authors``): the test clips against all 12 classes with
  the test classes described by `synthetic.paraphrase_descriptions`, words no caption uses.

Command line::

    python -m emoclip.train.synthetic_report WEIGHTS [--seeds 7301 7402 7503] [--sizes 128 64]
        [--test-clips 48] [--all-clips 96] [--json OUT] [--update-sidecar]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from emoclip.train import synthetic as syn
from emoclip.train.metrics import evaluate_predictions

__all__ = ["SEEDS", "score_clips", "report", "main"]

SEEDS = (7301, 7402, 7503)  # never a training or in-run evaluation seed (those use train.seed = 0)
_ALL_SEED_OFFSET = 7


def _read_manifest(manifest: Path) -> list[tuple[Path, str]]:
    import csv

    with open(manifest, newline="", encoding="utf-8") as f:
        return [(manifest.parent / row["path"], row["label"]) for row in csv.DictReader(f)]


def score_clips(predictor: Any, manifest: Path, class_sets: Sequence[Any]) -> list[dict[str, Any]]:
    """Encode each clip of a synthetic manifest once and score it against every class set.

    Args:
        predictor: An `emoclip.EmotionPredictor`.
        manifest: A ``manifest.csv`` written by `synthetic.write_dataset` (labelled clips).
        class_sets: `ClassSet`s to score against, each naming classes of `synthetic.CLASSES`.

    Returns:
        Per class set, `evaluate_predictions` over `synthetic.CLASSES` (indices in that order).
    """
    names = list(syn.CLASSES)
    rows = _read_manifest(manifest)
    truth = [names.index(label) for _, label in rows]
    preds: list[list[int]] = [[] for _ in class_sets]
    for path, _ in rows:
        encoding = predictor.encode(str(path))
        for k, classes in enumerate(class_sets):
            probs = predictor.score(encoding, classes).probabilities
            preds[k].append(names.index(max(probs, key=probs.get)))
    return [evaluate_predictions(truth, p, names) for p in preds]


def _recall(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in metrics["per_class_recall"].items() if v is not None}


_HOW = (
    "python -m emoclip.train.synthetic_report WEIGHTS: fresh clips written by "
    "emoclip.train.synthetic.write_dataset (VP8 webm, 32 frames, 8 fps) and read back by "
    "EmotionPredictor. test_uar = mean recall over the test classes (synthetic.TEST), each "
    "clip scored against all 12 descriptions; test_uar_authors = the authors' UAR of the "
    "same predictions (sklearn, union of true and predicted labels); all_uar_authors = "
    "the authors' UAR on clips of all 12 classes (seed + 7); paraphrase_* = the test "
    "clips against all 12 with the test classes described by paraphrases whose words no "
    "training caption uses (synthetic.paraphrase_descriptions)"
)
_MEAN_KEYS = (
    "test_uar",
    "test_uar_authors",
    "paraphrase_uar",
    "paraphrase_uar_authors",
    "all_uar_authors",
)


def _seed_entry(
    predictor: Any,
    class_sets: tuple[Any, Any],
    root: Path,
    size: int,
    seed: int,
    test_clips: int,
    all_clips: int,
) -> dict[str, Any]:
    """The figures of one seed at one size: writes its clips under ``root`` and scores them."""
    plain, para = class_sets
    common: dict[str, Any] = {"size": int(size), "num_frames": 32, "fps": 8.0}
    manifest = syn.write_dataset(
        root / f"{size}px-{seed}-test", clips=test_clips, seed=seed, split="test", **common
    )
    on_all, on_para = score_clips(predictor, manifest, [plain, para])
    entry = {
        "test_uar": round(on_all["uar_true_classes"], 4),
        "test_uar_authors": round(on_all["uar"], 4),
        "test_recall": _recall(on_all),
        "paraphrase_uar": round(on_para["uar_true_classes"], 4),
        "paraphrase_uar_authors": round(on_para["uar"], 4),
        "paraphrase_recall": _recall(on_para),
    }
    if all_clips:
        manifest = syn.write_dataset(
            root / f"{size}px-{seed}-all",
            clips=all_clips,
            seed=seed + _ALL_SEED_OFFSET,
            split="all",
            **common,
        )
        (every,) = score_clips(predictor, manifest, [plain])
        entry["all_uar_authors"] = round(every["uar"], 4)
    return entry


def report(
    weights: str | Path,
    *,
    seeds: Sequence[int] = SEEDS,
    sizes: Sequence[int] = (128,),
    test_clips: int = 48,
    all_clips: int = 96,
    work_dir: str | Path | None = None,
) -> dict[str, Any]:
    """The fresh-clip figures of a synthetic model (see the module docstring).

    Args:
        weights: A ``.safetensors`` export with its JSON sidecar.
        seeds: Seeds of the test clips; clips of all 12 classes use seed + 7.
        sizes: Frame sides the clips are drawn at (32 frames, 8 fps, VP8).
        test_clips: Clips of the test classes per seed and size.
        all_clips: Clips of all 12 classes per seed and size (0: skip).
        work_dir: Where to write the clips (default: a temporary folder, removed afterwards).

    Returns:
        ``{"how", "seeds", "test_clips", "all_clips", "results": {"<S>px": {seed: {...}}},
        "mean": {"<S>px": {...}}}``; the per-seed entries hold the figures of the module
        docstring and the per-class recalls.
    """
    from emoclip.classes import ClassSet
    from emoclip.inference.predictor import EmotionPredictor
    from emoclip.weights.factory import load_model

    plain = ClassSet.from_dict({"classes": syn.class_descriptions("all")}, name="synthetic-all")
    para = ClassSet.from_dict(
        {"classes": syn.class_descriptions("all", paraphrased=True)},
        name="synthetic-all-paraphrased",
    )
    predictor = EmotionPredictor(load_model(Path(weights)), video_cache_size=1)
    results: dict[str, dict[str, dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(work_dir) if work_dir is not None else Path(tmp)
        for size in sizes:
            results[f"{size}px"] = {
                str(seed): _seed_entry(
                    predictor, (plain, para), root, size, seed, test_clips, all_clips
                )
                for seed in seeds
            }
    mean = {
        px: {
            k: round(float(np.mean([e[k] for e in per.values()])), 4)
            for k in _MEAN_KEYS
            if all(k in e for e in per.values())
        }
        for px, per in results.items()
    }
    return {
        "how": _HOW,
        "seeds": [int(s) for s in seeds],
        "test_clips": int(test_clips),
        "all_clips": int(all_clips),
        "results": results,
        "mean": mean,
    }


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; see the module docstring."""
    parser = argparse.ArgumentParser(
        prog="python -m emoclip.train.synthetic_report",
        description="Fresh-clip figures of a synthetic EmoCLIP model.",
    )
    parser.add_argument("weights", type=Path, help=".safetensors export (with its JSON sidecar)")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 64])
    parser.add_argument("--test-clips", type=int, default=48)
    parser.add_argument("--all-clips", type=int, default=96)
    parser.add_argument("--json", type=Path, default=None, help="also write the report here")
    parser.add_argument(
        "--update-sidecar",
        action="store_true",
        help="store the report as provenance.predictor_eval in the weights' sidecar",
    )
    args = parser.parse_args(argv)
    if not args.weights.is_file():
        parser.error(f"no such weights file: {args.weights}")
    result = report(
        args.weights,
        seeds=args.seeds,
        sizes=args.sizes,
        test_clips=args.test_clips,
        all_clips=args.all_clips,
    )
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n", encoding="utf-8")
    if args.update_sidecar:
        from emoclip.model.config import EmoCLIPConfig
        from emoclip.weights.files import file_sha256, sidecar_path

        side = sidecar_path(args.weights)
        config = EmoCLIPConfig.load(side)
        provenance = {**config.provenance, "predictor_eval": result}
        config.replace(provenance=provenance).save(
            side, sha256=file_sha256(args.weights), file=args.weights.name
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
