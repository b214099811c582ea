"""The Latent explorer tab: the session's clips, the example clips, uploaded embeddings and the
class prototypes projected to 2-D (PCA, t-SNE, UMAP); a picked point's neighbours and clip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from .. import files, settings
from ..errors import code, error, md, user_errors
from ..models import classes_of, gpu, model_of, predictor
from ..outputs import Explored, Picked, components
from ..state import Session

# (model, example path) -> clip embedding; shared by all sessions (the examples are public assets)
_EXAMPLE_EMBEDDINGS: dict[tuple[str, str], np.ndarray] = {}
METHODS = {"PCA": "pca", "t-SNE": "tsne", "UMAP": "umap"}


def layout(ui: Any) -> None:
    """The tab's components, added to `ui`."""
    examples = settings.EXAMPLES
    with gr.Row():
        ui.method = gr.Radio(
            list(METHODS), value="PCA", label="Projection (seed 0)", elem_id="explore-method"
        )
        ui.include_examples = gr.Checkbox(
            value=bool(examples),
            label="Include the example clips",
            interactive=bool(examples),
            elem_id="explore-examples",
        )
        ui.upload = gr.File(
            label="Add embeddings (.npz/.json/.csv/.npy, e.g. exported here)",
            type="filepath",
            file_types=[".npz", ".json", ".csv", ".npy"],
            height=140,
            elem_id="explore-upload",
        )
        ui.explore_btn = gr.Button("Project", variant="primary", elem_id="explore-btn", scale=0)
    ui.explore_info = gr.Markdown(
        "Clips you analyse are added here, with the text prototype of every class and compound.",
        elem_id="explore-info",
    )
    ui.latent_plot = gr.Plot(label="Latent space", elem_id="latent-plot")
    with gr.Row():
        with gr.Column():
            ui.point_pick = gr.Dropdown(label="Pick a point", choices=[], elem_id="point-pick")
            ui.point_info = gr.Markdown(elem_id="point-info")
            ui.neighbours = gr.Dataframe(
                headers=["point", "kind", "predicted / label", "cosine"],
                interactive=False,
                label="Nearest neighbours (cosine)",
                elem_id="neighbours",
            )
            ui.export_emb_btn = gr.Button("Export embeddings", elem_id="export-emb-btn")
            ui.emb_file = gr.File(
                label="Embeddings", interactive=False, height=80, elem_id="emb-file"
            )
        ui.point_video = gr.Video(
            label="The point's clip", interactive=False, height=260, elem_id="point-video"
        )


def wire(ui: Any, model_work: dict[str, Any]) -> None:
    """The tab's events (`model_work`: the options of events that run a model)."""
    ui.explore_btn.click(
        explore,
        [ui.method, ui.include_examples, ui.upload, ui.session],
        components(ui, Explored),
        api_name="explore",
        **model_work,
    )
    ui.point_pick.input(
        pick_point, [ui.point_pick, ui.session], components(ui, Picked), api_name="pick_point"
    )
    ui.export_emb_btn.click(
        export_embeddings, [ui.session], [ui.emb_file], api_name="export_embeddings"
    )


def _example_embeddings(model: str, progress: Any) -> list[tuple[Path, np.ndarray]]:
    """Clip embeddings of the example clips under `model` (shared: examples are public assets)."""
    out = []
    pred = predictor(model, "center")
    examples = settings.EXAMPLES
    for i, path in enumerate(examples):
        key = (model, str(path))
        if key not in _EXAMPLE_EMBEDDINGS:
            progress(i / max(len(examples), 1), desc=f"encoding example {path.name}")
            try:
                _EXAMPLE_EMBEDDINGS[key] = pred.encode(path).clip_embedding.numpy().copy()
            except user_errors():
                continue
        out.append((path, _EXAMPLE_EMBEDDINGS[key]))
    return out


@gpu
def explore(
    method: str,
    include_examples: bool,
    upload: str | None,
    session: Session,
    progress=gr.Progress(),
) -> Explored:
    """Project the session's clips, the examples, uploaded embeddings and the class prototypes."""
    from emoclip import explore as ex

    model = model_of(session)
    pred = predictor(model)
    classes = classes_of(session)
    names = classes.names
    clips = [
        ex.ClipSource("clip", f"clip {i + 1} · {c.name}", c.embedding, c.path)
        for i, c in enumerate(c for c in session.clips if c.model == model)
    ]
    if include_examples:
        clips += [
            ex.ClipSource("example", f"example · {p.name}", e, str(p))
            for p, e in _example_embeddings(model, progress)
        ]
    if upload:
        try:
            loaded = ex.load_embeddings(upload, expected_dim=pred.model.embed_dim, kind="uploaded")
        except ValueError as exc:
            raise error(f"could not use the embeddings file: {exc}", upload) from exc
        clips += [ex.ClipSource("uploaded", f"uploaded · {p.id}", p.embedding) for p in loaded]
    text = pred.class_embeddings(classes).numpy()
    probs = (
        pred.score_embeddings(
            np.stack([np.asarray(c.embedding, dtype=np.float32) for c in clips]), classes
        )
        if clips
        else np.zeros((0, len(names)), dtype=np.float32)
    )
    points = ex.latent_points(clips, probs, names, text, len(classes.classes))
    if len(points) < 3:
        raise error("need at least 3 points: analyse a clip or add classes")
    progress(0.9, desc=f"{method} projection")
    try:
        coords = ex.project(np.stack([p.embedding for p in points]), method=_method(method), seed=0)
    except ValueError as exc:
        raise error(exc) from exc
    session.points, session.coords, session.projection = points, coords, method
    n_clip = len(clips)
    title = f"{method} of {n_clip} clip(s) and {len(names)} text prototypes ({model})"
    fig = ex.latent_figure(points, coords, title=title)
    msg = (
        f"{n_clip} clip(s) and {len(names)} text prototypes under {code(model)}; "
        "colour = predicted class. " + ("Analyse clips to add them." if not session.clips else "")
    )
    return Explored(
        session=session,
        latent_plot=fig,
        point_pick=gr.Dropdown(choices=[p.id for p in points], value=None),
        explore_info=msg,
    )


def _method(label: str) -> str:
    return METHODS.get(label, label.lower())


def pick_point(point_id: str, session: Session) -> Picked:
    """A point is picked: its nearest neighbours (cosine), its clip, the plot highlighting it."""
    from emoclip import explore as ex

    points = session.points
    ids = [p.id for p in points]
    if not point_id or point_id not in ids:
        return Picked(
            neighbours=[],
            point_video=None,
            point_info="Pick a point (run the projection first).",
            latent_plot=gr.skip(),
        )
    index = ids.index(point_id)
    emb = np.stack([p.embedding for p in points])
    neighbours = ex.nearest_neighbours(emb, index, k=min(8, len(points) - 1))
    rows = [
        [points[j].id, points[j].kind, points[j].label, round(float(c), 4)] for j, c in neighbours
    ]
    p = points[index]
    media = p.media if p.media and Path(p.media).is_file() else None
    role = "class" if p.is_prototype else "predicted"
    info = f"**{md(p.id)}** ({md(p.kind)}; {role} *{md(p.label)}*)"
    fig = ex.latent_figure(
        points, session.coords, title=f"{session.projection}: {p.id}", selected=index
    )
    return Picked(neighbours=rows, point_video=media, point_info=info, latent_plot=fig)


def export_embeddings(session: Session) -> str:
    """Write the explorer's points (embeddings, labels) for download; re-uploadable here."""
    from emoclip import explore as ex

    if not session.points:
        raise error("run the projection first")
    path = files.OUTPUTS.new() / "emoclip-embeddings.npz"
    ex.save_embeddings(path, session.points)
    return str(path)
