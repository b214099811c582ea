"""``emoclip doctor``: what this machine runs and why: the CPU and its ISA, the library versions,
which fast-path operators can be used here (and the reason when one cannot), and the image tower
chosen for a model (measured now when no choice is kept yet), with every candidate's speed or
the reason it was not used."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_doctor_parser(sub: Any) -> None:
    """The ``doctor`` subcommand on the `emoclip.cli` parser's subparsers."""
    doctor = sub.add_parser(
        "doctor", help="show the CPU, the fast paths that can run here and the image tower chosen"
    )
    doctor.add_argument("--model", help="model name or weights file (default: the best available)")
    doctor.add_argument("--precision", choices=("auto", "fp32", "bf16"), help="as for predict")
    doctor.add_argument(
        "--compile",
        action="store_true",
        help="also compile the image tower ahead of time (minutes, once per model and machine) "
        "and measure it, waiting for it (the app and predict use the package when "
        "EMOCLIP_COMPILE_TOWER=1 and it is faster)",
    )
    doctor.add_argument("--json", action="store_true", help="print JSON")
    doctor.set_defaults(run=run_doctor)


def machine_facts() -> dict[str, Any]:
    """CPU, ISA flags the towers use, versions, and each linear backend's availability."""
    import open_clip
    import torch

    from emoclip.inference.compiled_tower import unavailable_reason as compiled_unavailable
    from emoclip.inference.linear_ops import BACKENDS, backend_unavailable_reason
    from emoclip.inference.tower_cache import read_cpu_info
    from emoclip.version import __version__

    cpu = read_cpu_info()
    return {
        "cpu": cpu.model,
        "isa": cpu.isa(),
        "native_bf16": cpu.native_bf16,
        "emoclip": __version__,
        "torch": torch.__version__,
        "open_clip": getattr(open_clip, "__version__", "?"),
        "threads": torch.get_num_threads(),
        "linear_backends": {b: backend_unavailable_reason(b) or "available" for b in BACKENDS},
        "compiled_towers": compiled_unavailable() or "available",
    }


def run_doctor(args: argparse.Namespace) -> int:
    """Print the machine's facts and the model's image-tower choice (its report)."""
    from emoclip.inference.predictor import EmotionPredictor
    from emoclip.settings import AnalysisSettings, ModelLocations
    from emoclip.weights.factory import load_model
    from emoclip.weights.registry import best_available

    facts = machine_facts()
    locations = ModelLocations.from_env()  # as `emoclip predict` picks
    model = load_model(args.model or best_available(locations=locations), locations=locations)
    overrides: dict[str, Any] = {"precision": args.precision} if args.precision else {}
    if args.compile:
        overrides["compile_tower"] = True
    settings = AnalysisSettings.from_env(**overrides)  # the CLI's environment, as for predict
    predictor = EmotionPredictor(model, settings)
    encoder = predictor.parts.encoder
    report = encoder.tower_report()
    if settings.compile_tower and not encoder.wait_compiled(0):
        print("compiling the image tower (minutes, once for this model and machine)...")
        encoder.wait_compiled()
        report = encoder.tower_report()
    if args.json:
        try:
            info = predictor.parts.encoder.precision_info()
        except RuntimeError as exc:  # a forced precision refused: the report says why
            info = {"refused": str(exc)}
        print(json.dumps({**facts, "model": model.config.name, "tower": info, "report": report}))
        return 0
    print(f"CPU: {facts['cpu']} ({facts['threads']} torch threads)")
    print(f"ISA: {', '.join(facts['isa']) or 'none detected'}; native bf16: {facts['native_bf16']}")
    print(f"emoclip {facts['emoclip']}, torch {facts['torch']}, open_clip {facts['open_clip']}")
    for name, state in facts["linear_backends"].items():
        print(f"linear backend {name}: {state}")
    print(f"compiled towers (AOTInductor): {facts['compiled_towers']}")
    print(f"model: {model.config.name}")
    print(report)
    return 0
