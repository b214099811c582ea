"""Command line: ``emoclip models | predict | convert``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emoclip`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, KeyError) as exc:  # our typed errors derive from these
        print(f"emoclip: error: {exc}", file=sys.stderr)
        return 1


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="emoclip", description="Zero-shot facial-expression recognition in video.")
    parser.add_argument("--version", action="version", version=f"emoclip {_version()}")
    sub = parser.add_subparsers(dest="command")

    models = sub.add_parser("models", help="list the models and where their weights would come from")
    models.add_argument("--weights-dir", action="append", default=[], help="extra folder with NAME.safetensors")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(run=_cmd_models)

    pred = sub.add_parser("predict", help="classify videos (files or folders)")
    pred.add_argument("videos", nargs="+", help="video files or folders of videos")
    pred.add_argument("--model", default=None, help="registry name or a .safetensors path (default: best available)")
    pred.add_argument("--classes", default=None, help="class-set YAML/JSON file or preset name (default: the model's)")
    pred.add_argument("--weights-dir", action="append", default=[], help="extra folder with NAME.safetensors")
    pred.add_argument("--fallback", choices=("center", "skip"), default="center", help="frames without a face")
    pred.add_argument("--json", dest="json_out", default=None, help="write results as JSON here")
    pred.add_argument("--csv", dest="csv_out", default=None, help="write one row per window and class here")
    pred.add_argument("--device", default="cpu")
    pred.add_argument("--quiet", action="store_true", help="no progress bar")
    pred.set_defaults(run=_cmd_predict)

    conv = sub.add_parser("convert", help="convert the authors' checkpoint to .safetensors + .json")
    conv.add_argument("src", help="the authors' .pth (train.py DDP state dict or DownstreamTask)")
    conv.add_argument("dst", help="output .safetensors (a .json sidecar is written beside it)")
    conv.add_argument("--config", default="emoclip-vitb32", help="registry config of the architecture")
    conv.add_argument("--text-tower", default=None, help="CLIP weights file for a DownstreamTask checkpoint")
    conv.add_argument("--cache-dir", default=None, help="Hugging Face cache folder for the CLIP text tower")
    conv.add_argument("--fp16", action="store_true", help="store tensors in float16 (half the size)")
    conv.set_defaults(run=_cmd_convert)
    return parser


def _version() -> str:
    from .version import __version__

    return __version__


def _cmd_models(args: argparse.Namespace) -> int:
    from .factory import available_models

    sources = available_models(weights_dirs=args.weights_dir)
    if args.json:
        print(json.dumps([s.__dict__ for s in sources], indent=2))
        return 0
    for s in sources:
        print(s)
        print(f"{'':<24} {s.summary}")
        for t in s.tried if not s.available else ():
            print(f"{'':<24} tried: {t}")
    return 0


def default_model_name(weights_dirs: Sequence[str] = ()) -> str:
    """The best available model: EmoCLIP weights, then the CLIP baseline, then the synthetic toy."""
    from .factory import resolve

    for name in ("emoclip-vitb32", "clip-vitb32", "emoclip-synthetic-tiny"):
        if resolve(name, weights_dirs=weights_dirs).available:
            return name
    return "emoclip-vitb32"  # load_model then explains what was tried


def _load_classes(spec: str | None):
    from .classes import ClassSet, preset

    if spec is None:
        return None
    if Path(spec).is_file():
        return ClassSet.load(spec)
    return preset(spec)


def _cmd_predict(args: argparse.Namespace) -> int:
    from .factory import load_model
    from .predictor import EmotionPredictor, iter_videos

    classes = _load_classes(args.classes)
    model = load_model(args.model or default_model_name(args.weights_dir), device=args.device,
                       weights_dirs=args.weights_dir)
    predictor = EmotionPredictor(model, face_fallback=args.fallback)
    videos = list(iter_videos(args.videos))
    if not videos:
        print("emoclip: error: no video files found", file=sys.stderr)
        return 1
    print(f"model: {model.config.name} ({model.source})", file=sys.stderr)
    results, failures = [], 0
    for path in videos:
        try:
            prediction = predictor.predict(path, classes, progress=_progress_bar(path.name, args.quiet))
        except (ValueError, FileNotFoundError) as exc:
            failures += 1
            print(f"emoclip: {path}: {exc}", file=sys.stderr)
            continue
        results.append(prediction)
        top = ", ".join(f"{c} {p:.2f}" for c, p in prediction.top_k(3))
        print(f"{path}: {prediction.top}  ({top})")
        for warning in prediction.warnings:
            print(f"  warning: {warning}", file=sys.stderr)
    _write_outputs(results, args.json_out, args.csv_out)
    return 1 if failures else 0


def _write_outputs(results: list, json_out: str | None, csv_out: str | None) -> None:
    if json_out:
        data = results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results]
        Path(json_out).write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if csv_out:
        text = "".join(r.to_csv() if i == 0 else r.to_csv().split("\n", 1)[1] for i, r in enumerate(results))
        Path(csv_out).write_text(text, encoding="utf-8")


def _progress_bar(name: str, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    bar = tqdm(total=100, desc=name[:30], unit="%", leave=False, file=sys.stderr)

    def update(fraction: float, message: str) -> None:
        bar.n = int(fraction * 100)
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()
        if fraction >= 1.0:
            bar.close()

    return update


def _cmd_convert(args: argparse.Namespace) -> int:
    import torch

    from .convert import convert_checkpoint

    out = convert_checkpoint(args.src, args.dst, config=args.config, text_tower=args.text_tower,
                             cache_dir=args.cache_dir, dtype=torch.float16 if args.fp16 else None)
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
