"""The Latent explorer tab: the session's clips, the example clips, uploaded embeddings and the
class prototypes projected to 2-D (PCA, t-SNE, UMAP); a picked point's neighbours and clip."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from .. import files, settings
from ..errors import code, error, md, no_dead_end, user_errors
from ..models import classes_of, gpu, model_of, predictor
from ..outputs import Clicked, Explored, Picked, components, skipped
from ..state import Session

# (model, example path) -> clip embedding; shared by all sessions (the examples are public assets)
_EXAMPLE_EMBEDDINGS: dict[tuple[str, str], tuple[str, np.ndarray]] = {}
_PROJECTED: set[str] = set()  # projection methods run in this process (the first UMAP compiles)
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
        ui.results_upload = gr.File(
            label="Add a batch results folder (its results/part-*.parquet files)",
            type="filepath",
            file_count="multiple",
            file_types=[".parquet"],
            height=140,
            elem_id="explore-results",
        )
        ui.explore_btn = gr.Button("Project", variant="primary", elem_id="explore-btn", scale=0)
    ui.explore_info = gr.Markdown(
        "Clips you analyse are added here, with the text prototype of every class and compound.",
        elem_id="explore-info",
    )
    ui.latent_plot = gr.Plot(label="Latent space", elem_id="latent-plot")
    with gr.Row():
        with gr.Column():
            ui.point_pick = gr.Dropdown(
                label="Pick a point (or click it in the plot)", choices=[], elem_id="point-pick"
            )
            ui.point_clicked = gr.Textbox(visible="hidden", elem_id="point-clicked")
            ui.point_info = gr.Markdown(elem_id="point-info")
            ui.neighbours = gr.Dataframe(
                headers=["point", "kind", "class", "cosine"],
                datatype=["str", "str", "str", "number"],
                column_widths=["46%", "16%", "24%", "14%"],
                wrap=True,
                interactive=False,
                label="Nearest neighbours (class: predicted, or the prototype's own)",
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
        no_dead_end(explore, Explored),
        [ui.method, ui.include_examples, ui.upload, ui.session, ui.results_upload],
        components(ui, Explored),
        api_name="explore",
        **model_work,
    )
    ui.point_pick.input(
        pick_point, [ui.point_pick, ui.session], components(ui, Picked), api_name="pick_point"
    )
    ui.point_clicked.change(  # the page script sets it: a change, not typing
        click_point,
        [ui.point_clicked, ui.session],
        components(ui, Clicked),
        api_name="click_point",
        show_progress="hidden",
        trigger_mode="always_last",
    )
    ui.export_emb_btn.click(
        no_dead_end(export_embeddings), [ui.session], [ui.emb_file], api_name="export_embeddings"
    )


def _example_embeddings(model: str, progress: Any) -> list[tuple[Path, str, np.ndarray]]:
    """(path, encoding key, clip embedding) of the example clips under `model` (shared by all
    sessions: the examples are public assets)."""
    out = []
    pred = predictor(model, "center")
    examples = settings.EXAMPLES
    for i, path in enumerate(examples):
        key = (model, str(path))
        if key not in _EXAMPLE_EMBEDDINGS:
            progress(i / max(len(examples), 1), desc=f"encoding example {path.name}")
            try:
                encoding = pred.encode(path)
            except user_errors():
                continue
            _EXAMPLE_EMBEDDINGS[key] = (encoding.key, encoding.clip_embedding.numpy().copy())
        out.append((path, *_EXAMPLE_EMBEDDINGS[key]))
    return out


def _clip_sources(session: Session, model: str, include_examples: bool, progress: Any) -> list[Any]:
    """The session's clips under `model` and the example clips, one point per clip (an example
    the session analysed is drawn once, as the example)."""
    from emoclip import explore as ex

    examples = _example_embeddings(model, progress) if include_examples else []
    example_keys = {key for _, key, _ in examples}
    own = [c for c in session.clips if c.model == model and c.key not in example_keys]
    clips = [
        ex.ClipSource("clip", f"clip {i + 1} · {c.name}", c.embedding, c.path)
        for i, c in enumerate(own)
    ]
    clips += [ex.ClipSource("example", f"example · {p.name}", e, str(p)) for p, _, e in examples]
    return clips


def _uploaded(upload: str, dim: int) -> tuple[list[Any], int]:
    """Clips of an uploaded embeddings file, and how many class/compound points it held (an
    export of this tab tags them; they are not clips, and the current classes are drawn)."""
    from emoclip import explore as ex

    try:
        loaded = ex.load_embeddings(upload, expected_dim=dim)
    except ValueError as exc:
        raise error(f"could not use the embeddings file: {exc}", upload) from exc
    clips = [
        ex.ClipSource("uploaded", f"uploaded · {p.id}", p.embedding)
        for p in loaded
        if not p.is_prototype
    ]
    return clips, len(loaded) - len(clips)


def _project(
    points: list[Any], collection: Any, method: str, progress: Any
) -> tuple[list[Any], np.ndarray, np.ndarray]:
    """(points with the drawn results clips added, (N, 2) coordinates, (N,) results rows)."""
    from emoclip import explore as ex

    key = _method(method)
    first = key in ("umap", "tsne") and key not in _PROJECTED
    note = " (the first one in this app compiles it: about 10 s)" if first else ""
    progress(0.9, desc=f"{method} projection{note}")
    n_base = len(points)
    rows = np.full(n_base, -1, dtype=np.int64)
    try:
        if collection is None:
            coords = ex.project(np.stack([p.embedding for p in points]), method=key, seed=0)
        else:
            base = [np.stack([p.embedding for p in points]).astype(np.float32)] if points else []
            emb = np.concatenate([*base, collection.embeddings])
            xy, fitted = ex.project_large(emb, key, seed=0)
            drawn = _drawn_rows(fitted[n_base:], settings.MAX_DRAWN_POINTS)
            points = points + _collection_points(collection, drawn)
            coords = np.concatenate([xy[:n_base], xy[n_base + drawn]])
            rows = np.concatenate([rows, drawn])
    except ValueError as exc:
        raise error(exc) from exc
    _PROJECTED.add(key)
    return points, coords, rows


def _results_text(collection: Any, method: str, n_base: int, n_drawn: int) -> str:
    """What the explorer says about an uploaded batch results folder."""
    from emoclip import explore as ex

    size = ex.collection.SAMPLE_SIZE
    sampled = _method(method) != "pca" and len(collection) + n_base > size
    return (
        f"\n\nBatch results: **{len(collection)}** clip(s) loaded "
        f"(model {code(collection.model or '?')}), **{n_drawn}** drawn"
        + (f" (at most {settings.MAX_DRAWN_POINTS})" if n_drawn < len(collection) else "")
        + (
            f"; the map was fitted on a random sample of {size} and the other points placed "
            "by their nearest sampled neighbours"
            if sampled
            else ""
        )
        + "; neighbours of a picked point come from all loaded clips (approximate index). "
        "Results clips are coloured by the class the batch run predicted."
    )


@gpu
def explore(
    method: str,
    include_examples: bool,
    upload: str | None,
    session: Session,
    results: Sequence[str] | str | None = None,
    progress=gr.Progress(),
) -> Explored:
    """Project the session's clips, the examples, uploaded embeddings, the class prototypes and
    the clips of uploaded batch results parts (`results`: paths of ``part-*.parquet`` files).

    A results folder is projected with `project_large` (t-SNE / UMAP fitted on a sample, the rest
    placed by neighbours); at most `settings.MAX_DRAWN_POINTS` of its clips are drawn, and picked
    points' neighbours come from a `NeighbourIndex` over all of them.
    """
    from emoclip import explore as ex

    model = model_of(session)
    pred = predictor(model)
    classes = classes_of(session)
    names = classes.names
    clips = _clip_sources(session, model, include_examples, progress)
    skipped_protos = 0
    if upload:
        uploaded, skipped_protos = _uploaded(upload, pred.model.embed_dim)
        clips += uploaded
    collection = _load_results(results, pred.model.embed_dim, progress) if results else None
    text = pred.class_embeddings(classes).numpy()
    emb = [np.asarray(c.embedding, dtype=np.float32) for c in clips]
    probs = pred.score(np.stack(emb), classes) if clips else np.zeros((0, len(names)))
    points = ex.latent_points(clips, probs, names, text, len(classes.classes))
    n_base = len(points)
    if n_base + (len(collection) if collection is not None else 0) < 3:
        raise error("need at least 3 points: analyse a clip or add classes")
    points, coords, rows = _project(points, collection, method, progress)
    session.points, session.coords, session.projection = points, coords, method
    session.point_rows, session.collection, session.collection_index = rows, collection, None
    n_clip = len(clips)
    title = f"{method} of {n_clip} clip(s) and {len(names)} text prototypes ({model})"
    msg = (
        f"{n_clip} clip(s) and {len(names)} text prototypes under {code(model)}; "
        "colour = predicted class; **click a point** to see its neighbours and clip. "
        + ("Analyse clips to add them. " if not session.clips else "")
        + (
            f"The upload's {skipped_protos} class/compound point(s) were left out (the current "
            "classes are drawn)."
            if skipped_protos
            else ""
        )
    )
    if collection is not None:
        progress(0.95, desc="neighbour index")
        session.collection_index = ex.NeighbourIndex(collection.embeddings)
        n_drawn = len(points) - n_base
        title = (
            f"{method} of {len(collection)} results clip(s) ({n_drawn} drawn), {n_clip} "
            f"clip(s) and {len(names)} text prototypes ({model})"
        )
        msg += _results_text(collection, method, n_base, n_drawn)
    return Explored(
        session=session,
        latent_plot=ex.latent_figure(points, coords, title=title),
        point_pick=gr.Dropdown(choices=[p.id for p in points], value=None),
        explore_info=msg,
    )


def _method(label: str) -> str:
    return METHODS.get(label, label.lower())


def _load_results(results: Sequence[str] | str, dim: int, progress: Any) -> Any:
    """The uploaded Parquet parts (paths) copied into a fresh folder and loaded (a Collection)."""
    from emoclip import explore as ex

    paths = [Path(results)] if isinstance(results, (str, Path)) else [Path(r) for r in results]
    if len(paths) > settings.MAX_RESULT_PARTS:
        raise error(
            f"{len(paths)} results files is more than the limit of "
            f"{settings.MAX_RESULT_PARTS}; merge the parts or upload fewer"
        )
    bad = [p.name for p in paths if p.suffix.lower() != ".parquet"]
    if bad:
        raise error(f"not Parquet results parts: {', '.join(bad[:5])} (expected part-*.parquet)")
    total = sum(p.stat().st_size for p in paths)
    if settings.MAX_UPLOAD_MB is not None and total > settings.MAX_UPLOAD_MB * 1e6:
        raise error(
            f"the results files hold {total / 1e6:.0f} MB, more than the limit of "
            f"{settings.MAX_UPLOAD_MB:.0f} MB"
        )
    progress(0.1, desc=f"reading {len(paths)} results file(s)")
    folder = files.OUTPUTS.new()
    try:
        for i, path in enumerate(paths):
            shutil.copyfile(
                path, folder / f"part-{i:03d}-{files.safe_stem(path.name, 'part')}.parquet"
            )
        return ex.load_results_folder(
            folder, expected_dim=dim, max_points=settings.MAX_COLLECTION_CLIPS
        )
    except ValueError as exc:
        raise error(f"could not use the results files: {exc}") from exc
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _drawn_rows(fitted: np.ndarray, limit: int) -> np.ndarray:
    """Rows of a collection to draw: the ones the projection was fitted on, at most `limit`
    (a seeded random subset), in row order. `fitted`: (N,) bool -> (M,) int64, M <= limit."""
    rows = np.flatnonzero(fitted)
    if len(rows) > limit:
        rows = np.sort(np.random.default_rng(0).choice(rows, size=limit, replace=False))
    return rows.astype(np.int64)


def _collection_points(collection: Any, rows: np.ndarray) -> list[Any]:
    """Points (kind "uploaded", id "results <row> · <file>") of the collection's `rows`."""
    return [_result_point(collection, int(r)) for r in rows]


def _result_point(collection: Any, row: int) -> Any:
    from emoclip.explore import LatentPoint

    return LatentPoint(
        _result_id(collection, row),
        "uploaded",
        str(collection.labels[row]),
        collection.embeddings[row],
        hover=collection.hovers[row] if collection.hovers else "",
    )


def _result_id(collection: Any, row: int) -> str:
    return f"results {row + 1} · {Path(collection.paths[row]).name[:80]}"


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
    if session.collection_index is not None:
        rows = _indexed_neighbours(session, index, k=8)
    else:
        emb = np.stack([p.embedding for p in points])
        neighbours = ex.nearest_neighbours(emb, index, k=min(8, len(points) - 1))
        rows = [
            [points[j].id, points[j].kind, points[j].label, round(float(c), 4)]
            for j, c in neighbours
        ]
    p = points[index]
    media = p.media if p.media and Path(p.media).is_file() else None
    role = "class" if p.is_prototype else "predicted"
    info = f"**{md(p.id)}** ({md(p.kind)}; {role} *{md(p.label)}*)"
    fig = ex.latent_figure(
        points, session.coords, title=f"{session.projection}: {p.id}", selected=index
    )
    return Picked(neighbours=rows, point_video=media, point_info=info, latent_plot=fig)


def click_point(clicked: str, session: Session) -> Clicked:
    """A point clicked in the plot (the page script sends ``"<index>@<time>"``): pick it."""
    try:
        index = int(str(clicked or "").split("@", 1)[0])
        if index < 0:
            raise IndexError(index)
        point = session.points[index]
    except (ValueError, IndexError):
        return skipped(Clicked)
    return Clicked(*pick_point(point.id, session), point_pick=point.id)


def _indexed_neighbours(session: Session, index: int, k: int) -> list[list[Any]]:
    """Neighbour rows ``[id, kind, label, cosine]`` of point `index` when a results folder is
    loaded: the results clips through the session's NeighbourIndex (no full scan) merged with an
    exact scan of the few other points (session clips, examples, prototypes); best `k`."""
    from emoclip.explore.projection import l2_normalise

    points, coll, own_row = session.points, session.collection, int(session.point_rows[index])
    query = l2_normalise(np.asarray(points[index].embedding, dtype=np.float32)[None])
    found = session.collection_index.query(query, k + 1)
    cands = [
        (float(c), _result_id(coll, int(r)), "uploaded", str(coll.labels[int(r)]))
        for r, c in zip(found[0][0], found[1][0])
        if int(r) != own_row
    ]
    others = [j for j, row in enumerate(session.point_rows) if row < 0 and j != index]
    if others:
        emb = l2_normalise(np.stack([points[j].embedding for j in others]).astype(np.float32))
        for j, c in zip(others, emb @ query[0]):
            cands.append((float(c), points[j].id, points[j].kind, points[j].label))
    cands.sort(key=lambda t: -t[0])
    return [[i, kind, label, round(c, 4)] for c, i, kind, label in cands[:k]]


def export_embeddings(session: Session) -> str:
    """Write the explorer's points (embeddings, labels) for download; re-uploadable here."""
    from emoclip import explore as ex

    if not session.points:
        raise error("run the projection first")
    path = files.OUTPUTS.new() / "emoclip-embeddings.npz"
    ex.save_embeddings(path, session.points)
    return str(path)
