"""Training configuration: typed sections, YAML files and dotted command-line overrides.

A run is described by one `TrainConfig`, built in three layers (later wins):

1. the dataclass defaults below, which reproduce the authors' recipe (reference.md §3) as their
   code runs it: CLIP frozen, as MAFW_train_hpc.sh (the paper's section 3.1 fine-tunes the encoders:
   ``model.finetune_visual=true model.finetune_text=true``, configs/train/mafw-finetune.yaml);
2. a YAML file (``--config configs/train/X.yaml``) with the same nesting;
3. overrides such as ``optim.lr=1e-4 data.fold=2 optim.milestones=[10,20]``.

Values are checked against the field types (int, float, bool, str, lists, optional values), and
an unknown key is an error that names the valid keys. The resolved config is saved as
``config.yaml`` in the run folder, so a run can always be repeated with ``--config`` on it.
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import yaml

from emoclip.train.data_config import DataConfig

OPTIMIZERS = ("sgd", "adamw", "adam")
SCHEDULES = ("multistep", "cosine", "constant")
PRECISIONS = ("fp32", "bf16", "fp16")
TEMPORAL_INITS = ("randn", "zero_cls")
WARMUP_PICKS = ("mean", "late")


class ConfigError(ValueError):
    """A config file or override is malformed, names an unknown key or has a wrong type."""


@dataclass
class ModelSection:
    """Which model is trained and which of its parameters learn."""

    name: str = (
        "emoclip-vitb32"  # registry name, or a model-config .json / weights .safetensors path
    )
    pretrained_backbone: bool = (
        True  # load the open_clip weights named by the model config (if any)
    )
    freeze_backbone: bool | None = None  # None: frozen iff pretrained backbone weights were loaded
    finetune_visual: bool = False  # train all of backbone.visual (lr x optim.backbone_lr_scale)
    finetune_text: bool = False  # train the text transformer blocks only (as the authors)
    num_frames: int | None = (
        None  # frames per clip T (None: the model config's preprocess.num_frames)
    )
    temporal_init: str = (
        "randn"  # randn (the authors') | zero_cls: CLS token 0, positions ~ N(0, 0.02)
    )


@dataclass
class TrainSection:
    """Loop, batches, precision and distributed options."""

    epochs: int = 30  # MAFW_train_hpc.sh
    max_steps: int | None = None  # stop after this many optimiser steps (short runs)
    stop_at_step: int | None = None  # save state and stop here as if interrupted (resume later)
    batch_size: int = 64  # per process, as the authors' --batch_size
    grad_accum: int = 1  # micro-batches per optimiser step (exact in-batch negatives, see engine)
    num_workers: int = 4
    precision: str = "fp32"  # fp32 | bf16 (autocast) | fp16 (autocast + GradScaler)
    gather_features: bool = False  # negatives from every rank (the authors: per-GPU batch only)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    clip_grad_norm: float | None = None
    max_logit_scale: float | None = None  # clamp logit_scale (log); the authors do not clamp
    warmup_frame_steps: int = 0  # first steps train on frame embeddings (no temporal model)
    warmup_frame_pick: str = (
        "mean"  # mean: mean of all T frames | late: one frame from the clip's second half
    )
    warmup_num_frames: int | None = None  # frames per clip during the warm-up (None: T)
    freeze_visual_after_warmup: bool = (
        False  # then recalibrate BatchNorm, freeze the image tower, new optimiser
    )
    bn_recalibrate_batches: int = (
        0  # recompute BatchNorm statistics on this many batches before eval/export
    )
    save_every_steps: int = 0  # also save the training state every N steps (0: at epoch ends only)


@dataclass
class OptimSection:
    """Optimiser and learning-rate schedule."""

    name: str = "sgd"  # sgd | adamw | adam
    lr: float = 1e-3
    momentum: float = 0.9  # SGD
    weight_decay: float = 5e-4
    betas: tuple[float, float] = (0.9, 0.999)  # Adam/AdamW
    eps: float = 1e-6  # Adam/AdamW (the authors' Adam eps)
    no_decay_1d: bool = False  # no weight decay for biases, norms and logit_scale
    backbone_lr_scale: float = 1e-3  # lr of fine-tuned backbone parameters = lr x this
    schedule: str = "multistep"  # multistep (per epoch) | cosine (per step) | constant
    milestones: list[int] = field(default_factory=lambda: [15, 35, 50])  # epochs
    gamma: float = 0.1
    warmup_steps: int = 0  # linear warm-up (cosine and constant schedules)
    min_lr_ratio: float = 0.0  # cosine floor as a fraction of lr
    # After a warm-up that freezes the image tower (train.freeze_visual_after_warmup), the video
    # phase has its own optimiser and schedule (same kind): the temporal model at lr, the text
    # tower and logit_scale at lr x video_text_lr_scale, warm-up then the schedule over the rest.
    video_warmup_steps: int = 0
    video_weight_decay: float | None = None  # None: weight_decay
    video_text_lr_scale: float = 1.0


@dataclass
class EvalSection:
    """Zero-shot evaluation during training and model selection."""

    split: str | None = None  # validation split for model selection; None: export the final weights
    holdout_fraction: float = (
        0.0  # > 0 (and no split): validate on this fraction carved off the train split
    )
    metric: str = "war"  # war | uar: the selection metric
    every: int = 1  # epochs between evaluations
    classes: str | None = None  # class-set YAML or preset (default: the data's class set)
    batch_size: int | None = None  # default: train.batch_size
    test_split: str | None = None  # also report this split at the end (never used for selection)
    # under torchrun: "authors" (DistributedSampler padding, the first clips scored twice, as the
    # authors' UAR/WAR) | "drop" (every clip once); one process: no padding either way
    distributed_padding: str = "authors"


@dataclass
class LogSection:
    """Logging."""

    every: int = 10  # optimiser steps between console/TensorBoard lines
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "emoclip"


@dataclass
class OutSection:
    """Run folder, exported weights and publishing."""

    dir: str | None = None  # run folder (default: runs/<config file stem> or runs/<model name>)
    name: str | None = None  # exported weights <dir>/<name>.safetensors (default: the model's name)
    export_dtype: str = "float32"  # float32 | float16 | bfloat16
    push_to_hub: str | None = None  # Hugging Face repo to upload the export and a model card to
    hub_private: bool = True


@dataclass
class TrainConfig:
    """Everything one training run needs; `to_dict` is what ``config.yaml`` holds."""

    model: ModelSection = field(default_factory=ModelSection)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainSection = field(default_factory=TrainSection)
    optim: OptimSection = field(default_factory=OptimSection)
    eval: EvalSection = field(default_factory=EvalSection)
    log: LogSection = field(default_factory=LogSection)
    out: OutSection = field(default_factory=OutSection)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (tuples as lists), ready for YAML or JSON."""
        return _plain(dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrainConfig:
        """Build and validate from a nested dict; unknown keys raise `ConfigError`."""
        cfg = cls()
        for key, value in _flatten(data).items():
            set_value(cfg, key, value)
        validate(cfg)
        return cfg

    def save(self, path: str | Path) -> Path:
        """Write the config as YAML."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(self.to_dict(), sort_keys=False), encoding="utf-8")
        return path


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> TrainConfig:
    """Defaults, then the YAML file, then ``key=value`` overrides.

    Args:
        path: YAML file with sections ``model``, ``data``, ``train``, ``optim``, ``eval``,
            ``log``, ``out`` (any subset).
        overrides: Dotted assignments, e.g. ``["optim.lr=1e-4", "data.fold=2"]``.

    Returns:
        The validated config.

    Raises:
        ConfigError: unreadable YAML, unknown keys, wrong types or invalid values.
    """
    cfg = TrainConfig()
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path} is not valid YAML: {exc}") from exc
        if not isinstance(data, Mapping):
            raise ConfigError(f"{path} must hold a mapping of sections, not {type(data).__name__}")
        for key, value in _flatten(data).items():
            set_value(cfg, key, value)
    for item in overrides:
        key, value = parse_override(item)
        set_value(cfg, key, value, from_text=True)
    validate(cfg)
    return cfg


def parse_override(item: str) -> tuple[str, str]:
    """Split ``"optim.lr=1e-4"`` into ``("optim.lr", "1e-4")``."""
    key, sep, value = item.partition("=")
    key = key.strip().removeprefix("--")
    if not sep or not key:
        raise ConfigError(
            f"override {item!r} must look like section.key=value (e.g. optim.lr=1e-4)"
        )
    return key, value.strip()


def set_value(cfg: TrainConfig, key: str, value: Any, *, from_text: bool = False) -> None:
    """Assign a dotted key, converting `value` to the field's type.

    Args:
        cfg: Config to change in place.
        key: ``section.field``.
        value: The new value; with `from_text`, a command-line string (``"[1,2]"``, ``"true"``,
            ``"null"``...) parsed as YAML unless the field is a plain string.
        from_text: Whether `value` is command-line text.
    """
    section_name, _, name = key.partition(".")
    sections = {f.name: f for f in dataclasses.fields(TrainConfig)}
    if section_name not in sections or not name:
        raise ConfigError(
            f"unknown config key {key!r}{_suggest(section_name, list(sections))}; "
            f"keys look like section.name with sections: {', '.join(sections)}"
        )
    section = getattr(cfg, section_name)
    hints = typing.get_type_hints(type(section))
    if name not in hints or name not in {f.name for f in dataclasses.fields(section)}:
        valid = [f.name for f in dataclasses.fields(section)]
        raise ConfigError(
            f"unknown config key {key!r}{_suggest(name, valid, section_name + '.')}; "
            f"valid keys in {section_name}: {', '.join(valid)}"
        )
    try:
        setattr(section, name, coerce(value, hints[name], from_text=from_text))
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"bad value for {key}: {exc}") from None


def coerce(value: Any, hint: Any, *, from_text: bool = False) -> Any:
    """Convert `value` to the type `hint` (int, float, bool, str, list/tuple, X | None).

    Raises:
        ValueError: The value does not fit the type.
    """
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        if _is_null(value, from_text) and type(None) in args:
            return None
        options = [a for a in args if a is not type(None)]
        errors = []
        for option in options:
            try:
                return coerce(value, option, from_text=from_text)
            except ValueError as exc:
                errors.append(str(exc))
        raise ValueError("; ".join(errors))
    if hint is str:
        return _as_str(value)
    if from_text and isinstance(value, str):
        value = _parse_text(value, hint)
    if hint is bool:
        return _as_bool(value)
    if hint is int:
        return _as_int(value)
    if hint is float:
        return _as_float(value)
    if origin in (list, tuple):
        return _as_sequence(value, origin, args)
    if hint is Any:
        return value
    raise ValueError(f"unsupported field type {hint}")


def validate(cfg: TrainConfig) -> None:
    """Check choices and ranges that types cannot express.

    Raises:
        ConfigError: listing every problem found.
    """
    problems = []
    choices = [
        ("optim.name", cfg.optim.name, OPTIMIZERS),
        ("optim.schedule", cfg.optim.schedule, SCHEDULES),
        ("train.precision", cfg.train.precision, PRECISIONS),
        ("eval.metric", cfg.eval.metric, ("war", "uar")),
        ("eval.distributed_padding", cfg.eval.distributed_padding, ("authors", "drop")),
        ("out.export_dtype", cfg.out.export_dtype, ("float32", "float16", "bfloat16")),
        ("model.temporal_init", cfg.model.temporal_init, TEMPORAL_INITS),
        ("train.warmup_frame_pick", cfg.train.warmup_frame_pick, WARMUP_PICKS),
    ]
    for key, value, allowed in choices:
        if value not in allowed:
            problems.append(f"{key} must be one of {', '.join(allowed)}, not {value!r}")
    positive = [
        ("train.batch_size", cfg.train.batch_size),
        ("train.grad_accum", cfg.train.grad_accum),
        ("train.epochs", cfg.train.epochs),
        ("log.every", cfg.log.every),
        ("eval.every", cfg.eval.every),
    ]
    for key, count in positive:
        if count < 1:
            problems.append(f"{key} must be >= 1, got {count}")
    for key, optional in (
        ("train.max_steps", cfg.train.max_steps),
        ("model.num_frames", cfg.model.num_frames),
        ("train.warmup_num_frames", cfg.train.warmup_num_frames),
    ):
        if optional is not None and optional < 1:
            problems.append(f"{key} must be >= 1 or null, got {optional}")
    if not 0 <= cfg.eval.holdout_fraction < 1:
        problems.append(f"eval.holdout_fraction must be in [0, 1), got {cfg.eval.holdout_fraction}")
    if cfg.eval.split and cfg.eval.holdout_fraction:
        problems.append("set eval.split or eval.holdout_fraction, not both")
    if cfg.optim.lr <= 0:
        problems.append(f"optim.lr must be > 0, got {cfg.optim.lr}")
    t = cfg.train
    if t.freeze_visual_after_warmup and t.warmup_frame_steps < 1:
        problems.append("train.freeze_visual_after_warmup needs train.warmup_frame_steps >= 1")
    if (
        t.freeze_visual_after_warmup
        and t.max_steps is not None
        and t.max_steps <= t.warmup_frame_steps
    ):
        problems.append(
            f"train.max_steps ({t.max_steps}) must exceed train.warmup_frame_steps "
            f"({t.warmup_frame_steps}) to leave steps for the video phase"
        )
    if problems:
        raise ConfigError("invalid training config:\n  - " + "\n  - ".join(problems))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{"optim": {"lr": 1}}`` -> ``{"optim.lr": 1}`` (one level of sections)."""
    flat = {}
    for section, values in data.items():
        if not isinstance(values, Mapping):
            raise ConfigError(
                f"config section {section!r} must be a mapping of keys, "
                f"not {type(values).__name__} (write {section}: {{key: value}})"
            )
        for name, value in values.items():
            flat[f"{section}.{name}"] = value
    return flat


def _suggest(name: str, valid: Sequence[str], prefix: str = "") -> str:
    close = difflib.get_close_matches(name, list(valid), n=1)
    return f" (did you mean {prefix + close[0]!r}?)" if close else ""


def _is_null(value: Any, from_text: bool) -> bool:
    return value is None or (
        from_text and isinstance(value, str) and value.lower() in ("null", "none", "~", "")
    )


def _parse_text(text: str, hint: Any) -> Any:
    if typing.get_origin(hint) in (list, tuple) and not text.lstrip().startswith("["):
        return [part.strip() for part in text.split(",") if part.strip()]  # 15,35,50
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _as_str(value: Any) -> str:
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    raise ValueError(f"expected a string, got {value!r}")


def _as_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in (
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "1",
        "0",
    ):
        return value.lower() in ("true", "yes", "on", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise ValueError(f"expected true or false, got {value!r}")


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError(f"expected an integer, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {value!r}")


def _as_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):  # PyYAML reads 1e-3 (no dot) as a string
        try:
            return float(value)
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {value!r}")


def _as_sequence(value: Any, origin: type, args: tuple) -> list | tuple:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"expected a list, got {value!r}")
    if origin is tuple and args and args[-1] is not Ellipsis:
        if len(value) != len(args):
            raise ValueError(f"expected {len(args)} values, got {len(value)}")
        return tuple(coerce(v, a, from_text=True) for v, a in zip(value, args))
    item = args[0] if args else Any
    items = [coerce(v, item, from_text=True) for v in value]
    return tuple(items) if origin is tuple else items
