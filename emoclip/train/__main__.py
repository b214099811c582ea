"""``python -m emoclip.train --config configs/train/X.yaml [section.key=value ...]``.

Options:
    --config YAML        the run's config (configs/train/*.yaml); defaults = the authors' recipe
    section.key=VALUE    overrides, e.g. ``optim.lr=1e-4 data.fold=2 optim.milestones=[10,20]``
                         (``--section.key VALUE`` works too)
    --resume auto|PATH   continue from ``<run>/state.pt`` (auto: if it exists) or a given state
    --out DIR            the run folder (= ``out.dir=DIR``)
    --push-to-hub REPO   upload the export and a model card (= ``out.push_to_hub=REPO``)
    --print-config       print the resolved config as YAML and exit
    --debug              show tracebacks of setup errors (missing data, weights, packages)

Many processes: ``torchrun --nproc_per_node=N -m emoclip.train --config ...`` (DDP; NCCL on GPU,
gloo on CPU). The resolved config is saved as ``<run>/config.yaml``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

import yaml


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m emoclip.train",
        description="Train EmoCLIP (contrastive video-text) models.",
        epilog="Overrides: section.key=value (sections: model, data, train, optim, "
        "eval, log, out); see configs/train/*.yaml.",
    )
    p.add_argument(
        "--config",
        default=None,
        help="YAML config (default: built-in defaults = the authors' recipe)",
    )
    p.add_argument("--resume", default=None, help="'auto' or a state.pt / run folder")
    p.add_argument("--out", default=None, help="run folder (out.dir)")
    p.add_argument(
        "--push-to-hub",
        default=None,
        metavar="REPO",
        help="Hub repo for the export (out.push_to_hub)",
    )
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--debug", action="store_true", help="show the traceback of setup errors")
    p.add_argument("overrides", nargs="*", help="section.key=value")
    return p


def split_overrides(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """Separate ``--section.key VALUE`` / ``--section.key=VALUE`` overrides from the other options.

    Returns:
        ``(remaining argv for argparse, overrides as section.key=value)``.
    """
    rest, overrides = [], []
    items = list(argv)
    while items:
        item = items.pop(0)
        if item.startswith("--") and "." in item.split("=", 1)[0]:
            key, sep, value = item[2:].partition("=")
            if not sep:
                if not items:
                    raise SystemExit(f"python -m emoclip.train: error: {item} needs a value")
                value = items.pop(0)
            overrides.append(f"{key}={value}")
        else:
            rest.append(item)
    return rest, overrides


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code (2 for a bad config)."""
    from emoclip.train import distributed as du
    from emoclip.train.recipe import ConfigError, load_config

    rest, dotted = split_overrides(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_intermixed_args(rest)
    overrides = dotted + list(args.overrides)
    overrides += [f"out.dir={args.out}"] if args.out else []
    overrides += [f"out.push_to_hub={args.push_to_hub}"] if args.push_to_hub else []
    try:
        cfg = load_config(args.config, overrides)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"python -m emoclip.train: error: {exc}", file=sys.stderr)
        return 2
    if args.print_config:
        print(yaml.safe_dump(cfg.to_dict(), sort_keys=False), end="")
        return 0
    from emoclip.train.engine import train
    from emoclip.train.errors import TrainSetupError
    from emoclip.train.hub_publish import HubUnavailableError

    info = du.init_distributed(cfg.train.device)
    logging.basicConfig(
        level=logging.INFO if info.is_main else logging.WARNING,
        format=f"%(asctime)s [rank {info.rank}] %(levelname)s %(name)s: %(message)s",
    )
    try:
        result = train(cfg, resume=args.resume, config_path=args.config, dist=info)
    except (TrainSetupError, HubUnavailableError, ValueError, FileNotFoundError) as exc:
        if args.debug:
            raise
        print(f"python -m emoclip.train: error: {exc}", file=sys.stderr)
        return 1
    finally:
        du.cleanup()
    if info.is_main:
        state = (
            "interrupted (resume with --resume auto)"
            if result.interrupted
            else f"weights: {result.weights}"
        )
        print(f"done: {result.step} steps, run folder {result.run_dir}; {state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
