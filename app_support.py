"""Support code for `app.py`: model loading in the background, and formatting (plots, tables, text).

Nothing here imports gradio, and nothing heavy is imported at module level (torch and the
model code load on first use), so `import app` stays fast and does no model work.

User text (class names, descriptions, file names) is always escaped before it reaches Markdown
or plotly, which both render a subset of HTML.
"""

from __future__ import annotations

import html
import os
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import plotly.graph_objects as go

    from emoclip.classes import ClassSet
    from emoclip.inference.predictor import EmotionPredictor, VideoEncoding
    from emoclip.results import Prediction

# Which models, and in what order, is the registry's policy (emoclip.factory: ModelSpec.rank and
# .kind, ranked_models, best_available); each name's own sources are ordered by
# emoclip.factory.resolve (local file, Hub cache, Hub download, ...). _KIND_TEXT is about those
# sources (ModelSource.kind), not about ModelSpec.kind.
_KIND_TEXT = {
    "local": "local weights file",
    "hub-cache": "Hugging Face Hub (cached)",
    "hub-download": "Hugging Face Hub (download)",
    "open_clip-cache": "open_clip pretrained weights (cached)",
    "open_clip-download": "open_clip pretrained weights (download)",
    "random": "random initialisation",
    "missing": "not available",
}
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>])")


# ---------------------------------------------------------------------------------- text safety


def md(text: Any) -> str:
    """`text` as literal text inside Markdown: HTML escaped, Markdown punctuation backslashed."""
    escaped = html.escape(str(text), quote=False).replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", escaped)


def code(text: Any) -> str:
    """`text` as a Markdown code span (rendered literally; backticks and line breaks removed)."""
    return "`" + str(text).replace("`", "'").replace("\n", " ") + "`"


def plot_text(text: Any) -> str:
    """`text` safe for plotly labels (plotly renders <b>, <a href>, <br> ... in strings)."""
    return html.escape(str(text), quote=True)


def model_kind(name: str | None) -> str | None:
    """The registry's `ModelSpec.kind` of `name` ("paper" | "baseline" | "toy" | "test"), or None
    for a name the registry does not know."""
    if name is None:
        return None
    from emoclip.factory import get_spec

    try:
        return get_spec(name).kind
    except KeyError:
        return None


def is_toy(name: str | None) -> bool:
    """Whether a model is a toy or a test model whose predictions say nothing about real faces."""
    return model_kind(name) in ("toy", "test")


# ------------------------------------------------------------------------------ model manager


@dataclass
class ModelStatus:
    """What the UI shows about one model."""

    name: str
    state: str  # "ready" | "loading" | "error" | "available" | "missing"
    kind: str
    where: str  # where the weights come from, for people
    summary: str
    detail: str = ""  # error message, or elapsed loading time


class ModelManager:
    """Finds, loads (in background threads) and shares models and predictors.

    Model weights and predictors are shared by all sessions (they hold no user data; a
    predictor's caches are keyed by content). `start()` returns at once: a thread discovers
    what is available and loads the best model, first loading a quick local one when the best
    must be downloaded, so the app is usable while the download runs.

    Args:
        weights_dirs: Folders searched for ``NAME.safetensors``.
        include_test_model: Offer the random-weight test model (for tests).
        forced: Load this model by default instead of the best available one.
        limits: Keyword arguments of `emoclip.inference.predictor.VideoLimits` for every predictor.
        device: Torch device for the models.
    """

    def __init__(
        self,
        weights_dirs: Sequence[Path],
        *,
        include_test_model: bool = False,
        forced: str | None = None,
        limits: dict[str, Any] | None = None,
        device: str = "cpu",
    ) -> None:
        self.weights_dirs = [Path(d) for d in weights_dirs]
        self.include_test_model = include_test_model
        self.forced = forced or None
        self.limits = limits
        self.device = device
        self._lock = threading.RLock()
        self._sources: dict[str, Any] | None = None
        self._models: dict[str, Any] = {}
        self._loading: dict[str, tuple[float, threading.Event]] = {}
        self._errors: dict[str, str] = {}
        self._predictors: dict[tuple[str, str], EmotionPredictor] = {}
        self._default: str | None = None
        self.target: str | None = None  # the model the background loader is working towards
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()  # a first model is loaded (or nothing could be)

    # ---- discovery -------------------------------------------------------------------------
    def names(self) -> list[str]:
        """Model names in preference order (the forced one first): the registry's listed models by
        rank, and with `include_test_model` its best-ranked test model."""
        from emoclip.factory import ranked_models

        names = ranked_models()
        if self.include_test_model:
            names += [n for n in ranked_models(include_test=True) if n not in names][:1]
        if self.forced:
            names = [self.forced] + [n for n in names if n != self.forced]
        return names

    def sources(self) -> dict[str, Any]:
        """name -> `emoclip.ModelSource` (computed once; never downloads)."""
        with self._lock:
            if self._sources is not None:
                return self._sources
        from emoclip.factory import resolve

        found = {}
        for name in self.names():
            try:
                found[name] = resolve(name, weights_dirs=self.weights_dirs)
            except (KeyError, OSError, ValueError) as exc:  # unknown name, unreadable file
                self._errors[name] = str(exc)
        with self._lock:
            self._sources = found
        return found

    def available(self) -> list[str]:
        """Names that can be loaded, best first."""
        return [n for n, s in self.sources().items() if s.available]

    # ---- loading ---------------------------------------------------------------------------
    def start(self) -> None:
        """Discover models and load the best one in a background thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._boot, name="emoclip-model-loader",
                                            daemon=True)
        self._thread.start()

    def _boot(self) -> None:
        try:
            from emoclip.factory import best_available

            sources = self.sources()
            order = self.available()
            if order and order[0] != self.forced:  # the start-up choice the CLI makes too
                best = best_available(include_test=self.include_test_model, sources=sources)
                order = [best] + [n for n in order if n != best] if best in order else order
            if order and sources[order[0]].kind.endswith("download"):
                quick = [n for n in order[1:] if not sources[n].kind.endswith("download")]
                if quick:  # usable at once while the better model downloads
                    self._try_load(quick[0])
            for name in order:
                self.target = name
                if self._try_load(name):
                    break
        finally:
            self.target = None
            self._ready.set()

    def _try_load(self, name: str) -> bool:
        try:
            self.model(name)
            return True
        except Exception:  # noqa: BLE001 - recorded in _errors and shown in the UI
            return False

    def wait_ready(self, timeout: float | None = None) -> bool:
        """Start if needed and wait until a first model is loaded; True when one is."""
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._default is None:
            left = None if deadline is None else deadline - time.monotonic()
            if self._ready.is_set() or (left is not None and left <= 0):
                break
            self._ready.wait(0.05 if left is None else min(0.05, max(left, 0)))
        return self._default is not None

    @property
    def default(self) -> str | None:
        """The best model loaded so far (what sessions that did not choose a model use)."""
        return self._default

    def loading(self) -> list[str]:
        """Models being loaded right now."""
        with self._lock:
            return list(self._loading)

    def started(self) -> bool:
        """Whether `start()` was called."""
        return self._thread is not None

    def busy(self) -> bool:
        """Whether background work may still change the default model."""
        return self._thread is not None and self._thread.is_alive()

    def model(self, name: str):
        """The loaded model `name`, loading it now if needed (concurrent callers share one load)."""
        with self._lock:
            if name in self._models:
                return self._models[name]
            pending = self._loading.get(name)
            if pending is None:
                event = threading.Event()
                self._loading[name] = (time.monotonic(), event)
        if pending is not None:
            pending[1].wait()
            with self._lock:
                if name in self._models:
                    return self._models[name]
            raise RuntimeError(self._errors.get(name, f"model {name} could not be loaded"))
        try:
            import emoclip

            model = emoclip.load_model(name, weights_dirs=self.weights_dirs, device=self.device)
        except Exception as exc:
            with self._lock:
                self._errors[name] = f"{exc.__class__.__name__}: {exc}"
                self._loading.pop(name)[1].set()
            raise
        with self._lock:
            self._models[name] = model
            self._errors.pop(name, None)
            names = self.names()
            if self._default is None or names.index(name) < names.index(self._default):
                self._default = name
            self._loading.pop(name)[1].set()
        self._ready.set()
        return model

    def predictor(self, name: str, fallback: str = "center") -> EmotionPredictor:
        """A shared predictor for (model, face fallback); both fallbacks share text embeddings."""
        key = (name, fallback)
        with self._lock:
            if key in self._predictors:
                return self._predictors[key]
        model = self.model(name)
        from emoclip.inference.predictor import EmotionPredictor, VideoLimits

        with self._lock:
            if key not in self._predictors:
                limits = VideoLimits(**(self.limits or {}))
                p = EmotionPredictor(model, face_fallback=fallback, limits=limits,
                                     video_cache_size=16)
                sibling = next((q for (n, _), q in self._predictors.items() if n == name), None)
                if sibling is not None:
                    p.text_cache = sibling.text_cache
                self._predictors[key] = p
            return self._predictors[key]

    def inject(self, name: str, model) -> None:
        """Register an already loaded model (tests)."""
        with self._lock:
            self._models[name] = model
            if self._default is None:
                self._default = name
        self._ready.set()

    # ---- reporting -------------------------------------------------------------------------
    def status(self, name: str) -> ModelStatus:
        """State of one model for the status line and the model card."""
        source = self.sources().get(name)
        kind = source.kind if source else "missing"
        summary = source.summary if source else ""
        with self._lock:
            if name in self._models:
                model = self._models[name]
                where = str(getattr(model, "source", "") or _KIND_TEXT.get(kind, kind))
                return ModelStatus(name, "ready", kind, where, model.config.summary or summary)
            if name in self._loading:
                elapsed = time.monotonic() - self._loading[name][0]
                return ModelStatus(name, "loading", kind, _where(source), summary,
                                   f"{elapsed:.0f} s")
            if name in self._errors:
                return ModelStatus(name, "error", kind, _where(source), summary, self._errors[name])
        state = "available" if source is not None and source.available else "missing"
        detail = "; ".join(source.tried) if source is not None and not source.available else ""
        return ModelStatus(name, state, kind, _where(source), summary, detail)

    def close(self) -> None:
        """Release the predictors' face detectors."""
        with self._lock:
            for p in self._predictors.values():
                p.close()


def _where(source: Any) -> str:
    if source is None:
        return "unknown"
    text = _KIND_TEXT.get(source.kind, source.kind)
    return f"{text}: {source.location}" if source.location else text


# ----------------------------------------------------------------------------- scoring helpers


def compound_preview(
    predictor: EmotionPredictor,
    classes: ClassSet,
    candidate: ClassSet,
    name: str,
    encoding: VideoEncoding | None,
) -> dict[str, Any]:
    """Nearest classes of a compound (cosine of text embeddings) and its score on a video.

    Args:
        classes: The current set (without the candidate compound, or with its old version).
        candidate: `classes` with the compound added.
        name: The compound's name in `candidate`.
        encoding: The current video, or None.

    Returns:
        {"nearest": [(class, cosine), ...] best first, "probability": float | None,
         "rank": int | None, "of": int}
    """
    emb = predictor.class_embeddings(candidate).numpy()
    index = candidate.names.index(name)
    n = len(candidate.classes)
    cos = emb[:n] @ emb[index]
    order = np.argsort(-cos)
    nearest = [(candidate.names[i], float(cos[i])) for i in order]
    out: dict[str, Any] = {"nearest": nearest, "probability": None, "rank": None,
                           "of": len(candidate.names)}
    if encoding is not None:
        probs = predictor.score(encoding, candidate).probabilities
        ranked = sorted(probs, key=probs.__getitem__, reverse=True)
        out["probability"] = probs[name]
        out["rank"] = ranked.index(name) + 1
    return out


def parse_weights(text: str, parts: Sequence[str]) -> list[float] | None:
    """Compound weights typed as "0.6, 0.4" (one per chosen class); blank means equal weights."""
    text = (text or "").strip()
    if not text:
        return None
    items = [t for t in re.split(r"[,;\s]+", text) if t]
    try:
        weights = [float(t) for t in items]
    except ValueError:
        raise ValueError("weights must be numbers separated by commas, e.g. 2, 1 "
                         f"(got {text[:40]!r})") from None
    if len(weights) != len(parts):
        raise ValueError(f"give one weight per chosen class: {len(parts)} classes, "
                         f"{len(weights)} weights")
    if not all(np.isfinite(w) and w > 0 for w in weights):
        raise ValueError("weights must be positive numbers")
    return weights


# ---------------------------------------------------------------------------------- class table


def class_rows(classes: ClassSet) -> list[list[str]]:
    """One [class, description] row per description."""
    return [[c.name, d] for c in classes.classes for d in c.descriptions]


def classes_from_rows(rows: Any, base: ClassSet, limits: Any) -> ClassSet:
    """Rebuild a class set from table rows, keeping `base`'s name and compounds.

    Rows are grouped by class name (first-seen order); rows with an empty description are
    dropped, and a class with a name but no description is an error (the package says so).
    """
    from emoclip.classes import ClassSet, ClassSetError

    if hasattr(rows, "values") and hasattr(rows, "columns"):  # a pandas DataFrame
        rows = rows.values.tolist()
    grouped: dict[str, list[str]] = {}
    display: dict[str, str] = {}
    for row in rows or []:
        cells = [("" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v))
                 for v in list(row)[:2]]
        cells += [""] * (2 - len(cells))
        name, text = cells[0].strip(), cells[1].strip()
        if not name and not text:
            continue
        if not name:
            raise ClassSetError(f"a description has no class name: {text[:40]!r}")
        key = name.casefold()
        display.setdefault(key, name)
        grouped.setdefault(key, [])
        if text:
            grouped[key].append(text)
    data: dict[str, Any] = {"name": base.name,
                            "classes": {display[k]: v or "" for k, v in grouped.items()}}
    kept = [c for c in base.compounds if all(p.casefold() in grouped for p in c.parts)]
    if kept:
        data["compounds"] = {
            c.name: list(c.parts) if c.weights is None else dict(zip(c.parts, c.weights))
            for c in kept
        }
    return ClassSet.from_dict(data, limits=limits)


# ---------------------------------------------------------------------------------- figures


def _colours(names: Sequence[str]) -> dict[str, str]:
    """The latent explorer's colours, so a class has one colour in every plot of the app."""
    from emoclip.explore import label_colours

    return label_colours(names)


def _layout(fig: go.Figure, *, title: str, height: int, xaxis: str, yaxis: str) -> go.Figure:
    fig.update_layout(
        title=dict(text=title, x=0.01, font=dict(size=14)),
        height=height,
        margin=dict(l=50, r=10, t=40, b=45),
        template="plotly_white",
        xaxis_title=xaxis,
        yaxis_title=yaxis,
        legend=dict(orientation="v", x=1.01, y=1, yanchor="top", font=dict(size=11)),
        hovermode="x unified",
    )
    return fig


def bars_figure(probabilities: dict[str, float], compounds: Sequence[str] = ()) -> go.Figure:
    """Horizontal probability bars, most probable on top; compounds in another colour."""
    import plotly.graph_objects as go

    items = sorted(probabilities.items(), key=lambda kv: kv[1])
    comp = set(compounds)
    fig = go.Figure(go.Bar(
        x=[p for _, p in items],
        y=[plot_text(n) for n, _ in items],
        orientation="h",
        marker_color=["#F58518" if n in comp else "#4C78A8" for n, _ in items],
        text=[f"{p:.1%}" for _, p in items],
        textposition="outside",
        hovertemplate="%{y}: %{x:.1%}<extra></extra>",
    ))
    fig = _layout(fig, title="Probabilities (orange: compounds)",
                  height=max(220, 26 * len(items) + 80), xaxis="probability", yaxis="")
    fig.update_layout(hovermode="closest", showlegend=False)
    fig.update_xaxes(range=[0, min(1.0, max(p for _, p in items) * 1.25 + 0.02)], tickformat=".0%")
    return fig


def timeline_figure(prediction: Prediction, compounds: Sequence[str] = ()) -> go.Figure:
    """One line per class over the window centres; compounds dashed; faceless frames marked."""
    import plotly.graph_objects as go

    tl = prediction.timeline
    names = prediction.classes
    colours = _colours(names)
    top = prediction.top
    fig = go.Figure()
    centers = tl.centers if len(tl) else np.zeros(0)
    for j, name in enumerate(names):
        fig.add_trace(go.Scatter(
            x=centers, y=tl.probabilities[:, j] if len(tl) else [],
            mode="lines+markers" if len(tl) < 3 else "lines",
            name=plot_text(name),
            line=dict(color=colours[name], width=3.5 if name == top else 1.6,
                      dash="dash" if name in compounds else "solid"),
            hovertemplate="%{y:.1%}",
        ))
    if prediction.faces.no_face_times:
        fig.add_trace(go.Scatter(
            x=prediction.faces.no_face_times, y=[0.0] * len(prediction.faces.no_face_times),
            mode="markers", name="no face",
            marker=dict(symbol="line-ns-open", size=12, color="#888"),
            hovertemplate="no face at %{x:.1f} s<extra></extra>",
        ))
    fig = _layout(fig, title=f"Timeline ({len(tl)} windows)", height=340,
                  xaxis="time (s): window centre", yaxis="probability")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


def live_figure(times: Sequence[float], probs: np.ndarray, names: Sequence[str]) -> go.Figure:
    """The live prediction history: one line per class over seconds since the stream started."""
    import plotly.graph_objects as go

    colours = _colours(names)
    fig = go.Figure()
    arr = np.asarray(probs).reshape(len(times), len(names)) if len(times) else \
        np.zeros((0, len(names)))
    for j, name in enumerate(names):
        fig.add_trace(go.Scatter(x=list(times), y=arr[:, j], mode="lines", name=plot_text(name),
                                 line=dict(color=colours[name], width=2), hovertemplate="%{y:.1%}"))
    fig = _layout(fig, title="Live timeline", height=340, xaxis="seconds since start",
                  yaxis="probability")
    fig.update_yaxes(range=[0, 1], tickformat=".0%")
    return fig


# ---------------------------------------------------------------------------------- text blocks


def summary_markdown(prediction: Prediction, *, model: str, encoded_now: bool) -> str:
    """One-paragraph result summary (escaped)."""
    v = prediction.video
    f = prediction.faces
    top, p = prediction.top_k(1)[0]
    if v.get("kind") == "image":
        n = len(prediction.tracks)
        faces = (f"{n} face{'s' if n != 1 else ''} found" + (" (the largest one's result)" if n > 1 else "")
                 if n else "no face found (centre crop analysed)")
        return (f"**Top emotion: {md(top)}** ({p:.1%}) · photo *{md(v.get('name', ''))}* "
                f"({v.get('width', '?')}x{v.get('height', '?')}) · model {code(model)} · {faces}"
                + ("" if encoded_now else " · *reused the cached encoding*"))
    if f.detection:
        faces = f"{f.frames_with_face} of {f.sampled_frames} sampled frames had a face"
    else:
        faces = f"{f.sampled_frames} frames (no face detection: the model takes whole frames)"
    if f.frames_without_face and f.detection:
        used = "centre crop used" if f.fallback == "center" else "skipped"
        faces += f"; {f.frames_without_face} without ({used})"
    size = f"{v.get('width', '?')}x{v.get('height', '?')}"
    return (f"**Top emotion: {md(top)}** ({p:.1%}) · clip *{md(v.get('name', ''))}* "
            f"({float(v.get('duration') or 0):.1f} s, {size}) · model {code(model)} · {faces}"
            + ("" if encoded_now else " · *reused the cached encoding*"))


def timings_markdown(timings: dict[str, float], *, frames_encoded: int, rescored: int,
                     encodings: int) -> str:
    """Stage timings plus the session's encode/re-score counters (the UI shows both)."""
    order = ("decode", "detect", "encode", "temporal", "text", "score", "total")
    cells = " · ".join(f"{k} {timings[k] * 1000:.0f} ms" if timings[k] < 1
                       else f"{k} {timings[k]:.2f} s" for k in order if k in timings)
    return (f"**Stage timings:** {cells}  \n"
            f"**Frames encoded: {frames_encoded}** "
            f"(in {encodings} video encoding(s) this session) · "
            f"**re-scored without re-encoding: {rescored}**")


FACE_COLOURS = ((230, 57, 70), (29, 120, 200), (42, 157, 80), (240, 160, 30), (140, 80, 200), (20, 170, 170))


def draw_faces(image: np.ndarray, boxes: Sequence[tuple[float, float, float, float]],
               max_side: int = 1280) -> np.ndarray:
    """The photo with a numbered box per face (1 = the largest), downsized to `max_side`.

    Args:
        image: (H, W, 3) uint8 RGB, upright.
        boxes: (x, y, w, h) boxes in pixels of `image`, in the order they are numbered.

    Returns:
        (H', W', 3) uint8 RGB copy with the boxes drawn.
    """
    import cv2

    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    out = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))),
                     interpolation=cv2.INTER_AREA) if scale < 1 else image.copy()
    thick = max(2, round(max(out.shape[:2]) / 400))
    for i, (x, y, bw, bh) in enumerate(boxes):
        colour = FACE_COLOURS[i % len(FACE_COLOURS)]
        p0 = (round(x * scale), round(y * scale))
        p1 = (round((x + bw) * scale), round((y + bh) * scale))
        cv2.rectangle(out, p0, p1, colour, thick)
        label = str(i + 1)
        font = max(0.6, (p1[0] - p0[0]) / 120)
        (tw, th), base = cv2.getTextSize(label, cv2.FONT_HERSHEY_SIMPLEX, font, thick)
        top = max(0, p0[1] - th - base - 4)
        cv2.rectangle(out, (p0[0], top), (p0[0] + tw + 8, top + th + base + 4), colour, -1)
        cv2.putText(out, label, (p0[0] + 4, top + th + 2), cv2.FONT_HERSHEY_SIMPLEX, font, (255, 255, 255),
                    thick, cv2.LINE_AA)
    return out


def faces_markdown(prediction: Prediction, k: int = 3) -> str:
    """One line per face of a photo: number, box, top classes (escaped); empty for videos."""
    if prediction.video.get("kind") != "image":
        return ""
    if not prediction.tracks:
        return "No face was found in the photo; the centre of the image was analysed."
    lines = [f"**{len(prediction.tracks)} face{'s' if len(prediction.tracks) != 1 else ''}** (largest first):", ""]
    for i, t in enumerate(prediction.tracks):
        x, y, w, h = t.box or (0, 0, 0, 0)
        best = ", ".join(f"{md(c)} {p:.0%}" for c, p in sorted(t.probabilities.items(), key=lambda kv: -kv[1])[:k])
        lines.append(f"{i + 1}. **{md(t.top)}** ({best}) · box {w:.0f}x{h:.0f} at ({x:.0f}, {y:.0f})")
    return "\n".join(lines)


def warnings_markdown(warnings: Sequence[str]) -> str:
    if not warnings:
        return ""
    return "\n".join(f"- ⚠ {md(w)}" for w in dict.fromkeys(warnings))


def classes_message(classes: ClassSet, warnings: Sequence[str], error: str | None = None) -> str:
    """Validation line of the class editor."""
    if error:
        return (f"**Not applied:** {md(error)}  \n"
                "Fix the text above; the last valid class set is still in use.")
    head = (f"In use: {len(classes.classes)} classes, {len(classes.compounds)} compounds "
            f"({len(classes.texts)} descriptions) in set *{md(classes.name)}*")
    return head + ("\n" + warnings_markdown(warnings) if warnings else "")


def preview_markdown(name: str, preview: dict[str, Any], weights: Sequence[float] | None,
                     parts: Sequence[str]) -> str:
    """The compound builder's preview."""
    if weights:
        total = sum(weights)
        mix = " + ".join(f"{w / total:.2f}×{md(p)}" for p, w in zip(parts, weights))
    else:
        mix = " + ".join(md(p) for p in parts) + " (equal weights)"
    lines = [f"**{md(name)}** = {mix}", "", "Nearest classes (cosine of text embeddings):"]
    lines += [f"{i}. {md(c)}: {cos:.3f}" for i, (c, cos) in enumerate(preview["nearest"][:5], 1)]
    if preview["probability"] is None:
        lines.append("\nAnalyse a video to see this compound's score on it.")
    else:
        lines.append(f"\n**Score on the current video: {preview['probability']:.1%}** "
                     f"(rank {preview['rank']} of {preview['of']})")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------- files


class OutputDir:
    """Per-process folder for files handed to gradio (downloads), one sub-folder per request.

    Bounded: sub-folders older than `max_age` seconds are removed, and only the newest
    `max_folders` are kept (gradio copies each returned file into its own cache as the request
    returns, so an old sub-folder is never needed again).
    """

    def __init__(self, max_age: float = 3600.0, max_folders: int = 256) -> None:
        self.max_age = max_age
        self.max_folders = max(1, int(max_folders))
        self._root: Path | None = None
        self._lock = threading.Lock()

    @property
    def root(self) -> Path | None:
        """The folder (None until the first `new()`)."""
        return self._root

    def new(self) -> Path:
        with self._lock:
            if self._root is None:
                self._root = Path(tempfile.mkdtemp(prefix="emoclip-app-"))
                import atexit

                atexit.register(shutil.rmtree, self._root, True)
            self._prune()
            folder = self._root / uuid.uuid4().hex[:12]
            folder.mkdir()
            return folder

    def _prune(self) -> None:
        now = time.time()
        folders = []
        for old in self._root.iterdir():  # type: ignore[union-attr]
            try:
                folders.append((old.stat().st_mtime, old))
            except OSError:
                continue
        folders.sort()
        excess = len(folders) - (self.max_folders - 1)  # room for the one about to be made
        for i, (mtime, old) in enumerate(folders):
            if i < excess or now - mtime > self.max_age:
                shutil.rmtree(old, ignore_errors=True)


def safe_stem(name: str, default: str = "clip") -> str:
    """A file-name stem made of letters, digits, '-', '_' (user text never picks paths)."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", Path(name or default).stem).strip("-")[:60]
    return stem or default


def env_float(name: str, default: float | None) -> float | None:
    """A float from the environment; empty, 0 or "none" means unlimited (None)."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    if raw.strip().lower() in ("none", "0", "inf", "unlimited"):
        return None
    return float(raw)
