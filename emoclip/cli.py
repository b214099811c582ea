"""Command line: ``emoclip models | doctor | predict | batch | convert``."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from emoclip.cli_classes import add_classes_parser, load_class_spec
from emoclip.settings import ModelLocations, debug_tracebacks
from emoclip.terminal import safe_text, terminal_message


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``emoclip`` console script; returns the exit code.

    Run as a process (`argv` None), native libraries' log lines (MediaPipe/LiteRT, absl, FFmpeg)
    are silenced unless ``--verbose`` or ``EMOCLIP_LOG_LEVEL=debug``; the project's own messages
    and the progress bar still go to stderr. Calls with an explicit `argv` (tests, scripts)
    leave the process's stderr alone.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        parser.print_help()
        return 2
    if argv is None:
        _setup_terminal(verbose=getattr(args, "verbose", False))
    try:
        return args.run(args)
    except KeyboardInterrupt:
        return 130
    except (ValueError, OSError, KeyError) as exc:  # our typed errors derive from these
        print(f"emoclip: error: {terminal_message(exc)}", file=sys.stderr)
        return 1
    except Exception as exc:  # never a traceback for the user; EMOCLIP_DEBUG=1 shows it
        if debug_tracebacks():
            raise
        print(
            f"emoclip: error: unexpected {type(exc).__name__}: {terminal_message(exc)}",
            file=sys.stderr,
        )
        return 1


def _setup_terminal(verbose: bool) -> None:
    """Quiet native log lines for this process, or (``--verbose``) let them all through."""
    from emoclip.quiet import silence_native_stderr
    from emoclip.settings import show_native_logs

    if verbose:
        show_native_logs()
    else:
        silence_native_stderr()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="emoclip", description="Zero-shot facial-expression recognition in video."
    )
    parser.add_argument("--version", action="version", version=f"emoclip {_version()}")
    sub = parser.add_subparsers(dest="command")
    _add_models_parser(sub)
    _add_predict_parser(sub)
    _add_batch_parser(sub)
    add_classes_parser(sub)
    _add_convert_parser(sub)
    return parser


def _add_models_parser(sub: Any) -> None:
    models = sub.add_parser(
        "models", help="list the models and where their weights would come from"
    )
    models.add_argument(
        "--weights-dir", action="append", default=[], help="extra folder with NAME.safetensors"
    )
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(run=_cmd_models)
    _add_doctor_parser(sub)


def _add_predict_parser(sub: Any) -> None:
    pred = sub.add_parser("predict", help="classify videos, images and folders of frames")
    pred.add_argument(
        "videos",
        nargs="+",
        metavar="INPUT",
        help="video or image files (JPEG, PNG, WebP, BMP, TIFF); a folder of numbered frames "
        "(one clip); or folders of these (a batch)",
    )
    pred.add_argument(
        "--fps",
        type=_positive(float),
        default=None,
        help="frame rate of folders of numbered frames (default: 25)",
    )
    _add_model_options(pred)
    pred.add_argument("--json", dest="json_out", default=None, help="write results as JSON here")
    pred.add_argument(
        "--csv", dest="csv_out", default=None, help="write one row per window and class here"
    )
    pred.add_argument("--device", default="cpu")
    pred.add_argument("--quiet", action="store_true", help="no progress bar")
    pred.add_argument(
        "--explain",
        action="store_true",
        help="say why each answer: key moments, best-matching words, margin",
    )
    pred.add_argument(
        "--verbose",
        action="store_true",
        help="also show native libraries' log lines (as EMOCLIP_LOG_LEVEL=debug)",
    )
    limits = pred.add_argument_group("limits (checked before decoding; default: none)")
    for flag, metavar, text in (
        (
            "--max-seconds",
            "S",
            "refuse videos longer than S seconds (also enforced while decoding)",
        ),
        ("--max-megapixels", "MP", "refuse videos whose frames have more than MP megapixels"),
        ("--max-mb", "MB", "refuse video files larger than MB megabytes"),
    ):
        limits.add_argument(flag, type=_positive(float), default=None, metavar=metavar, help=text)
    pred.set_defaults(run=_cmd_predict)


def _add_model_options(cmd: argparse.ArgumentParser) -> None:
    """--model, --classes, --weights-dir and --fallback, shared by predict and batch."""
    cmd.add_argument(
        "--model",
        default=None,
        help="registry name, .safetensors path or Hub id owner/name[@revision] "
        "(default: best available)",
    )
    cmd.add_argument(
        "--classes",
        default=None,
        help="class-set YAML/JSON file or preset name (default: the model's)",
    )
    cmd.add_argument(
        "--weights-dir", action="append", default=[], help="extra folder with NAME.safetensors"
    )
    cmd.add_argument(
        "--fallback", choices=("center", "skip"), default="center", help="frames without a face"
    )


def _add_convert_parser(sub: Any) -> None:
    conv = sub.add_parser("convert", help="convert the authors' checkpoint to .safetensors + .json")
    conv.add_argument("src", help="the authors' .pth (train.py DDP state dict or DownstreamTask)")
    conv.add_argument("dst", help="output .safetensors (a .json sidecar is written beside it)")
    conv.add_argument(
        "--config", default="emoclip-vitb32", help="registry config of the architecture"
    )
    conv.add_argument(
        "--text-tower", default=None, help="CLIP weights file for a DownstreamTask checkpoint"
    )
    conv.add_argument(
        "--cache-dir", default=None, help="Hugging Face cache folder for the CLIP text tower"
    )
    conv.add_argument(
        "--fp16", action="store_true", help="store tensors in float16 (half the size)"
    )
    conv.set_defaults(run=_cmd_convert)


def _add_doctor_parser(sub) -> None:
    from emoclip.doctor import add_doctor_parser

    add_doctor_parser(sub)


def _positive(kind: type):
    """An argparse type: a positive finite number of `kind`."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not value > 0 or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
        return value

    parse.__name__ = kind.__name__
    return parse


def _version() -> str:
    from emoclip.version import __version__

    return __version__


def _cmd_models(args: argparse.Namespace) -> int:
    from emoclip.weights.registry import available_models, get_spec

    sources = available_models(weights_dirs=args.weights_dir, locations=ModelLocations.from_env())
    specs = {s.name: get_spec(s.name) for s in sources}
    if args.json:
        # "kind" is the weight source's; the model's own kind is "model_kind".
        print(
            json.dumps(
                [
                    {
                        **s.__dict__,
                        "model_kind": specs[s.name].kind,
                        "rank": specs[s.name].rank,
                        "description": specs[s.name].description,
                    }
                    for s in sources
                ],
                indent=2,
            )
        )
        return 0
    for s in sources:
        print(s)
        print(f"{'':<24} [{specs[s.name].kind}] {specs[s.name].description}")
        print(f"{'':<24} {s.summary}")
        for t in s.tried if not s.available else ():
            print(f"{'':<24} tried: {t}")
    return 0


def default_model_name(
    weights_dirs: Sequence[str] = (), locations: ModelLocations | None = None
) -> str:
    """The best available model by registry rank (`emoclip.weights.registry.best_available`, shared with
    the app); when none is, the best-ranked one, whose loading then explains what was tried."""
    from emoclip.weights.registry import best_available

    return best_available(weights_dirs=weights_dirs, locations=locations)


def _load_classes(spec: str | None):
    return None if spec is None else load_class_spec(spec)


def _cmd_predict(args: argparse.Namespace) -> int:
    from emoclip.inference.predictor import EmotionPredictor
    from emoclip.media.inputs import VideoLimits, iter_inputs
    from emoclip.settings import AnalysisSettings
    from emoclip.weights.factory import load_model

    classes = _load_classes(args.classes)
    locations = ModelLocations.from_env()  # EMOCLIP_WEIGHTS(_DIR), EMOCLIP_*HUB_REPO/REVISION
    limits = VideoLimits(
        max_bytes=None if args.max_mb is None else int(args.max_mb * 1e6),
        max_duration=args.max_seconds,
        max_pixels=None if args.max_megapixels is None else int(args.max_megapixels * 1e6),
    )
    model = load_model(
        args.model or default_model_name(args.weights_dir, locations),
        device=args.device,
        weights_dirs=args.weights_dir,
        locations=locations,
    )
    flags = {"frame_folder_fps": args.fps} if args.fps else {}
    settings = AnalysisSettings.from_env(face_fallback=args.fallback, limits=limits, **flags)
    predictor = EmotionPredictor(model, settings)
    items = []
    for arg in args.videos:
        found = list(iter_inputs([arg]))
        if Path(arg).is_dir():  # say how a folder was read
            how = _interpretation(found, settings.frame_folder_fps)
            print(f"{safe_text(arg)}: {how}", file=sys.stderr)
        items += found
    if not items:
        print(
            f"emoclip: error: no videos, images or frame folders found in {', '.join(map(safe_text, args.videos))}",
            file=sys.stderr,
        )
        return 1
    print(f"model: {model.config.name} ({safe_text(model.source)})", file=sys.stderr)
    results = [
        _predict_one(predictor, item.path, classes, args.quiet, args.explain) for item in items
    ]
    _write_outputs([r for r in results if r is not None], args.json_out, args.csv_out)
    return 1 if None in results else 0


def _predict_one(predictor: Any, path: Path, classes: Any, quiet: bool, explain: bool) -> Any:
    """Analyse one input (resolved once: a photo gets every face, a clip a progress bar), print
    its result; None (the error printed) when it failed."""
    from emoclip.media.inputs import resolve_input

    try:
        st = predictor.settings
        media = resolve_input(path, frame_folder_fps=st.frame_folder_fps, limits=st.limits)
        bar = None if media.kind == "photo" else _progress_bar(path.name, quiet)
        prediction = predictor.predict(media, classes, progress=bar)
    except (ValueError, OSError) as exc:  # typed errors, unreadable files: next video
        print(f"emoclip: {safe_text(path)}: {terminal_message(exc)}", file=sys.stderr)
        return None
    except Exception as exc:  # one odd file never stops the batch
        if debug_tracebacks():
            raise
        print(
            f"emoclip: {safe_text(path)}: unexpected {type(exc).__name__}: {terminal_message(exc)}",
            file=sys.stderr,
        )
        return None
    top = ", ".join(f"{safe_text(c)} {p:.2f}" for c, p in prediction.top_k(3))
    print(f"{safe_text(path)}: {safe_text(prediction.top)}  ({top})")
    if prediction.scope.startswith("whole"):  # no face: say what the answer describes
        print(f"  scope: {prediction.scope} (no face was analysed)", file=sys.stderr)
    if media.kind == "photo":
        for n, face in enumerate(prediction.tracks, 1):
            where = ""  # still images' faces carry a box
            if face.box is not None:
                x, y, w, h = face.box
                where = f" at ({x:.0f}, {y:.0f}, {w:.0f}x{h:.0f})"
            best = ", ".join(
                f"{safe_text(c)} {p:.2f}"
                for c, p in sorted(face.probabilities.items(), key=lambda kv: -kv[1])[:3]
            )
            print(f"  face {n}{where}: {safe_text(face.top)}  ({best})")
    if explain and prediction.evidence is not None:
        print_evidence(prediction.evidence)
    for warning in prediction.warnings:
        print(f"  warning: {safe_text(warning)}", file=sys.stderr)
    return prediction


def print_evidence(evidence) -> None:
    """``--explain``: the evidence in plain words, indented under the answer."""
    from emoclip.evidence.report import explain_lines

    for line in explain_lines(evidence):
        print(f"  {safe_text(line)}")


def _interpretation(items: list, fps: float) -> str:
    """How a folder given on the command line was read, e.g. "48 numbered frames -> one clip at 25 fps"."""
    if len(items) == 1 and items[0].kind == "frames":
        return f"{items[0].frames} numbered frames -> one clip at {fps:g} fps"
    counts = {
        kind: sum(item.kind == kind for item in items) for kind in ("video", "image", "frames")
    }
    names = {"video": "video", "image": "image", "frames": "frame folder"}
    parts = [f"{n} {names[k]}{'s' if n != 1 else ''}" for k, n in counts.items() if n]
    if not parts:
        return "no videos, images or folders of numbered frames"
    rate = f" (frame folders at {fps:g} fps)" if counts["frames"] else ""
    return f"a batch of {', '.join(parts)}{rate}"


def _write_outputs(results: list, json_out: str | None, csv_out: str | None) -> None:
    from emoclip.results import write_text

    if json_out:
        data = results[0].to_dict() if len(results) == 1 else [r.to_dict() for r in results]
        write_text(json_out, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    if csv_out:
        text = "".join(
            r.to_csv() if i == 0 else r.to_csv().split("\n", 1)[1] for i, r in enumerate(results)
        )
        write_text(csv_out, text)
        from emoclip.provenance import write_sidecar

        found = {r.provenance.digest(): r.provenance for r in results if r.provenance}
        if found:
            write_sidecar(
                csv_out, list(found.values()) if len(found) > 1 else next(iter(found.values()))
            )


def _progress_bar(name: str, quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    bar = tqdm(total=100, desc=safe_text(name)[:30], unit="%", leave=False, file=sys.stderr)

    def update(fraction: float, message: str) -> None:
        bar.n = int(fraction * 100)
        bar.set_postfix_str(message, refresh=False)
        bar.refresh()
        if fraction >= 1.0:
            bar.close()

    return update


def _add_batch_parser(sub) -> None:
    batch = sub.add_parser(
        "batch",
        help="analyse a large collection with Ray (pip install 'emoclip[scale]')",
        description="Analyse files, folders and manifests (CSV/Parquet/JSONL with a path "
        "column) on Ray; results stream to OUT/results and OUT/timeline as Parquet; "
        "re-running resumes.",
    )
    batch.add_argument(
        "inputs", nargs="+", help="videos, images, frame folders, folders, manifests"
    )
    batch.add_argument("--out", required=True, help="results folder (re-running with it resumes)")
    _add_model_options(batch)
    batch.add_argument(
        "--frame-fps",
        type=_positive(float),
        default=None,
        help="frame rate of frame folders (default: 25, as emoclip predict --fps)",
    )
    batch.add_argument(
        "--csv", dest="csv_out", default=None, help="also export one CSV row per input here"
    )
    batch.add_argument(
        "--retry-errors", action="store_true", help="analyse inputs that failed before again"
    )
    batch.add_argument("--quiet", action="store_true", help="no progress line")
    ray = batch.add_argument_group("Ray (default: a local Ray started and stopped for this run)")
    ray.add_argument(
        "--address",
        default=None,
        help="cluster to join, run from one of its nodes: auto or HOST:PORT (or set RAY_ADDRESS); "
        "not ray:// (Ray Data cannot run over Ray Client)",
    )
    ray.add_argument(
        "--workers",
        type=_positive(int),
        default=None,
        help="actors holding the model (default: CPUs // --cpus-per-worker)",
    )
    ray.add_argument("--cpus-per-worker", type=_positive(float), default=1.0)
    ray.add_argument("--gpus-per-worker", type=float, default=0.0)
    ray.add_argument("--batch-size", type=_positive(int), default=1, help="inputs per actor call")
    ray.add_argument(
        "--num-cpus", type=_positive(int), default=None, help="CPUs of the local Ray (default: all)"
    )
    batch.set_defaults(run=_cmd_batch)


def _cmd_batch(args: argparse.Namespace) -> int:
    from importlib.util import find_spec

    if find_spec("ray") is None or find_spec("pyarrow") is None:
        print(
            "emoclip: error: emoclip batch needs Ray Data: pip install 'emoclip[scale]'",
            file=sys.stderr,
        )
        return 1
    from emoclip.batch import describe, export_csv, run_batch, terminal_progress
    from emoclip.settings import AnalysisSettings

    summary = run_batch(
        args.inputs,
        args.out,
        model=args.model,
        classes=_load_classes(args.classes),
        weights_dirs=args.weights_dir,
        address=args.address,
        workers=args.workers,
        cpus_per_worker=args.cpus_per_worker,
        gpus_per_worker=args.gpus_per_worker,
        batch_size=args.batch_size,
        face_fallback=args.fallback,
        frame_fps=args.frame_fps,
        retry_errors=args.retry_errors,
        settings=AnalysisSettings.from_env(),
        locations=ModelLocations.from_env(),
        num_cpus=args.num_cpus,
        progress=None if args.quiet else terminal_progress(),
    )
    if args.csv_out:
        export_csv(args.out, args.csv_out)
    print(safe_text(describe(summary)), file=sys.stderr)
    return 1 if summary.errors else 0


def _cmd_convert(args: argparse.Namespace) -> int:
    import torch

    from emoclip.weights.convert import convert_checkpoint

    out = convert_checkpoint(
        args.src,
        args.dst,
        config=args.config,
        text_tower=args.text_tower,
        cache_dir=args.cache_dir,
        dtype=torch.float16 if args.fp16 else None,
    )
    print(f"wrote {out} and {out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
