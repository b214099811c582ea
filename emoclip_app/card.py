"""The model card of the About tab: the running model and its provenance as Markdown tables
(training, metrics, evaluation), and every model's state. One number format throughout
(`number`); every text from a weights file is escaped."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import models
from .errors import code, md
from .settings import short

MAX_ROWS = 24  # rows of one table (the rest is in the weights' JSON sidecar)
MAX_CELL = 160  # characters of one cell


def number(value: Any) -> str:
    """One format for every number of the card: ints with thousands separators, other numbers
    with three decimals, booleans yes/no, None a dash; other values as escaped text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.3f}"
    text = str(value)
    if isinstance(value, (list, tuple)):
        text = ", ".join(number(v) for v in value)
        return text if len(text) <= MAX_CELL else text[:MAX_CELL].rsplit(" ", 1)[0] + " …"
    if len(text) > MAX_CELL:
        text = text[:MAX_CELL].rsplit(" ", 1)[0] + " …"
    return md(text)


def _scalar(value: Any) -> bool:
    return not isinstance(value, Mapping)


def key_value_table(data: Mapping[str, Any], skip: tuple[str, ...] = ()) -> str:
    """A two-column table of `data`'s scalar entries (nested mappings: their scalar entries
    joined in one cell)."""
    rows = []
    for key, value in data.items():
        if key in skip:
            continue
        if isinstance(value, Mapping):
            inner = [f"{md(k)} {number(v)}" for k, v in value.items() if _scalar(v)]
            value_text = "; ".join(inner) if inner else "(see the JSON sidecar)"
        else:
            value_text = number(value)
        rows.append(f"| {md(key)} | {value_text} |")
    if not rows:
        return ""
    more = len(rows) - MAX_ROWS
    rows = rows[:MAX_ROWS] + ([f"| … | {more} more |"] if more > 0 else [])
    return "| item | value |\n|---|---|\n" + "\n".join(rows)


def records(data: Mapping[str, Any], prefix: str = "") -> list[tuple[str, dict[str, Any]]]:
    """(row name, scalar fields) for the outermost mappings under `data` that hold scalar
    values (their own nested mappings, e.g. per-class recalls, are left to the JSON sidecar): a
    results tree such as ``{"128px": {"seed": {"uar": 0.9, ...}}}`` becomes rows
    ``"128px / seed"``."""
    scalars = {k: v for k, v in data.items() if _scalar(v) and not isinstance(v, (list, tuple))}
    if scalars and prefix:
        return [(prefix, scalars)]
    out = []
    for key, value in data.items():
        if isinstance(value, Mapping):
            out += records(value, f"{prefix} / {key}" if prefix else str(key))
    return out


def records_table(rows: list[tuple[str, dict[str, Any]]], numeric_only: bool = True) -> str:
    """A table with one row per record and one column per field (numbers only by default)."""
    if not rows:
        return ""
    columns: list[str] = []
    for _, fields in rows:
        for k, v in fields.items():
            keep = not numeric_only or (isinstance(v, (int, float)) and not isinstance(v, bool))
            if keep and k not in columns:
                columns.append(k)
    if not columns:
        return ""
    head = "| | " + " | ".join(md(c) for c in columns) + " |"
    rule = "|---|" + "---|" * len(columns)
    body = [
        f"| {md(name)} | " + " | ".join(number(f.get(c)) for c in columns) + " |"
        for name, f in rows[:MAX_ROWS]
    ]
    return "\n".join([head, rule, *body])


def provenance_sections(provenance: Mapping[str, Any]) -> list[str]:
    """Training, metrics and evaluation tables (and the remaining facts) of a provenance."""
    parts = []
    training = provenance.get("training")
    if isinstance(training, Mapping):
        parts += ["#### Training", key_value_table(training, skip=("config",))]
        if "config" in training:
            parts.append("The full training recipe is in the weights' JSON sidecar.")
    metrics = provenance.get("metrics")
    if isinstance(metrics, Mapping):
        parts += ["#### Metrics", records_table(records(metrics)) or key_value_table(metrics)]
    evaluation = provenance.get("predictor_eval")
    if isinstance(evaluation, Mapping):
        parts.append("#### Evaluation")
        if evaluation.get("how"):
            parts.append(md(evaluation["how"]))
        results = evaluation.get("results")
        if isinstance(results, Mapping):
            parts.append(records_table(records(results)))
    rest = {
        k: v for k, v in provenance.items() if k not in ("training", "metrics", "predictor_eval")
    }
    if rest:
        parts += ["#### Source", key_value_table(rest)]
    return [p for p in parts if p]


def running_model(name: str) -> list[str]:
    """The running model's facts table and its provenance sections."""
    st = models.MODELS.status(name)
    facts = [
        ("Model", code(name)),
        ("What it is", md(st.summary)),
        ("Weights from", md(short(st.where))),
    ]
    sections: list[str] = []
    if st.state == "ready":
        model = models.MODELS.model(name)
        cfg, pre = model.config, model.config.preprocess
        temporal = cfg.model.temporal
        depth = f", temporal transformer depth {number(temporal.depth)}" if temporal else ""
        facts += [
            (
                "Architecture",
                f"backbone {code(cfg.model.backbone)}, pooling {code(cfg.model.pooling)}{depth}; "
                f"{number(model.num_parameters / 1e6)} M parameters",
            ),
            (
                "Preprocessing",
                f"{number(pre.image_size)} px crops, {number(float(pre.sample_fps))} frames/s, "
                f"T = {number(pre.num_frames)} frames per window "
                f"({number(float(pre.window_seconds))} s windows every "
                f"{number(float(pre.hop_seconds))} s)",
            ),
            ("Face detection", "on" if pre.face_detection else "off (inputs are whole frames)"),
            ("Text context", f"{number(model.context_length)} tokens per description"),
            ("Default classes", md(cfg.default_classes)),
        ]
        sections = provenance_sections(cfg.provenance or {})
    table = "| item | value |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in facts)
    return [table, *sections]


def models_table() -> str:
    """Every model the app knows: name, kind, state (and where from), what it is."""
    rows = ["| model | kind | state | what it is |", "|---|---|---|---|"]
    for other in models.MODELS.names():
        st = models.MODELS.status(other)
        failed = st.state in ("error", "missing") and st.detail
        state = md(st.state)
        if failed:
            state += f": {number(short(st.detail))}"
        elif st.state == "ready":
            state += f" ({md(short(st.where))})"
        rows.append(
            f"| {code(other)} | {md(models.model_kind(other) or '')} | {state} | "
            f"{number(st.summary)} |"
        )
    return "\n".join(rows)


def model_card(name: str | None) -> str:
    """The About tab's model card for model `name` (None: none loaded yet)."""
    parts = ["### The running model"]
    parts += ["No model is loaded yet."] if name is None else running_model(name)
    parts += ["### All models", models_table()]
    return "\n\n".join(parts)
