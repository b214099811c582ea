"""``emoclip classes check FILE|PRESET``: the class-set check (`emoclip.evidence.classcheck`) on
the command line. Prints the report; exits 1 only on errors (a set that cannot be read or is
invalid), 0 with warnings."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from emoclip.terminal import safe_text

__all__ = ["add_classes_parser", "load_class_spec", "run_check"]


def load_class_spec(spec: str) -> Any:
    """A `ClassSet` from a YAML/JSON file or a preset name (ClassSetError naming the file)."""
    from emoclip.classes import ClassSet, ClassSetError, preset

    path = Path(spec)
    if path.is_file():
        try:
            return ClassSet.load(path)
        except ClassSetError as exc:
            message = str(exc) if path.name in str(exc) else f"{path.name}: {exc}"
            raise ClassSetError(message, exc.problems) from None
    return preset(spec)


def add_classes_parser(sub: Any) -> None:
    """Add ``classes check`` to the `emoclip` command's subparsers `sub`."""
    classes = sub.add_parser("classes", help="check a class set against a model")
    verbs = classes.add_subparsers(dest="classes_command", required=True)
    check = verbs.add_parser(
        "check",
        help="classes the model may confuse, descriptions it cuts, repeated descriptions",
    )
    check.add_argument("classes", metavar="FILE|PRESET", help="class-set YAML/JSON or preset name")
    check.add_argument(
        "--model",
        default=None,
        help="registry name or a .safetensors path (default: best available)",
    )
    check.add_argument(
        "--weights-dir", action="append", default=[], help="extra folder with NAME.safetensors"
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    check.set_defaults(run=run_check)


def run_check(args: argparse.Namespace) -> int:
    """Load the set and the model, check, print; 1 on errors, else 0."""
    from emoclip.classes import ClassSetError
    from emoclip.evidence.classcheck import check_classes
    from emoclip.inference.predictor import EmotionPredictor
    from emoclip.settings import ModelLocations
    from emoclip.weights.factory import load_model
    from emoclip.weights.registry import best_available

    try:
        class_set = load_class_spec(args.classes)
    except ClassSetError as exc:
        for problem in exc.problems:
            print(f"error: {safe_text(problem)}")
        return 1
    locations = ModelLocations.from_env()  # the CLI's environment, as for predict
    model = load_model(
        args.model or best_available(weights_dirs=args.weights_dir, locations=locations),
        weights_dirs=args.weights_dir,
        locations=locations,
    )
    predictor = EmotionPredictor(model)
    report = check_classes(
        class_set,
        predictor.parts.text_cache.embed,
        predictor.class_embeddings(class_set),
        model.context_length,
    )
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
        return 1 if report.errors else 0
    print(f"model: {model.config.name}; class set: {safe_text(class_set.name)}", file=sys.stderr)
    threshold = "not calibrated" if report.threshold is None else f"{report.threshold:.2f}"
    print(f"{len(report.names)} classes; pairs flagged from a similarity of {threshold}")
    for warning in report.warnings:
        print(f"warning: {safe_text(warning)}")
    for error in report.errors:
        print(f"error: {safe_text(error)}")
    if not report.warnings and not report.errors:
        print("no problems found")
    return 1 if report.errors else 0
