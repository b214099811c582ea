"""Latent explorer: projections, nearest neighbours, the plotly figure, embedding files."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pytest

from emoclip.explore import (
    KINDS,
    LatentPoint,
    label_colours,
    latent_figure,
    load_embeddings,
    nearest_neighbours,
    project,
    save_embeddings,
)


def _blobs(n_per: int = 30, d: int = 64, spread: float = 0.05, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((2, d))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = np.concatenate([c + spread * rng.standard_normal((n_per, d)) for c in centres])
    return x.astype(np.float32), np.repeat([0, 1], n_per)


def _assert_separated(xy: np.ndarray, y: np.ndarray, factor: float = 3.0) -> None:
    c0, c1 = xy[y == 0].mean(0), xy[y == 1].mean(0)
    spread = max(np.linalg.norm(xy[y == k] - xy[y == k].mean(0), axis=1).max() for k in (0, 1))
    assert np.linalg.norm(c0 - c1) > factor * spread, (np.linalg.norm(c0 - c1), spread)


def _points(n_clips: int = 40, d: int = 16, seed: int = 0) -> list[LatentPoint]:
    rng = np.random.default_rng(seed)
    labels = ["anger", "happiness", "sadness"]
    pts = [
        LatentPoint(
            f"clip{i}.mp4",
            "clip" if i % 4 else "example",
            labels[i % 3],
            rng.standard_normal(d).astype(np.float32),
            hover=f"{labels[i % 3]} 0.70\nneutral 0.20",
            media=f"/tmp/clip{i}.mp4",
        )
        for i in range(n_clips)
    ]
    pts += [LatentPoint(lab, "class", lab, rng.standard_normal(d)) for lab in labels + ["fear"]]
    pts.append(
        LatentPoint("happily surprised", "compound", "happily surprised", rng.standard_normal(d))
    )
    return pts


# ------------------------------------------------------------------------------------------
# project


@pytest.mark.parametrize("method", ["pca", "tsne"])
def test_project_shape_determinism_and_separation(method):
    x, y = _blobs()
    a = project(x, method, seed=3)
    b = project(x, method, seed=3)
    assert a.shape == (60, 2) and a.dtype == np.float64 and np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    _assert_separated(a, y)


def test_project_scale_invariant_rows():
    """Rows are L2-normalised first: scaling a row does not move it."""
    x, _ = _blobs()
    scaled = x * np.linspace(0.5, 20, len(x))[:, None].astype(np.float32)
    np.testing.assert_allclose(project(x, "pca"), project(scaled, "pca"), atol=1e-5)


def test_pca_matches_sklearn_up_to_sign():
    from sklearn.decomposition import PCA

    rng = np.random.default_rng(1)
    for shape in [(50, 8), (10, 40)]:  # covariance path and Gram path
        x = rng.standard_normal(shape)
        xn = x / np.linalg.norm(x, axis=1, keepdims=True)
        ours = project(x, "pca")
        ref = PCA(2).fit_transform(xn)
        for j in range(2):
            sign = np.sign(ours[:, j] @ ref[:, j])
            np.testing.assert_allclose(ours[:, j], sign * ref[:, j], atol=1e-8)


def test_method_names_and_unknown_method():
    x, _ = _blobs(5)
    np.testing.assert_array_equal(project(x, "PCA"), project(x, "pca"))
    np.testing.assert_array_equal(project(x, "t-SNE", seed=1), project(x, "tsne", seed=1))
    with pytest.raises(ValueError, match="unknown projection method"):
        project(x, "isomap")


@pytest.mark.parametrize(
    "bad, match",
    [
        (np.array([[0.0, np.nan], [1.0, 2.0]]), "NaN"),
        (np.array([[0.0, np.inf], [1.0, 2.0]]), "NaN or infinite"),
        (np.zeros(5), "2-D"),
        (np.zeros((2, 3, 4)), "2-D"),
        (np.array([["a", "b"]]), "numeric"),
        (np.array([[1, None]], dtype=object), "numeric"),
        (np.zeros((3, 0)), "dimension 0"),
    ],
)
def test_project_rejects_bad_input(bad, match):
    with pytest.raises(ValueError, match=match):
        project(bad, "pca")


@pytest.mark.parametrize("method", ["pca", "tsne", "umap"])
@pytest.mark.parametrize("n", [0, 1, 2, 3])
def test_tiny_n_falls_back_gracefully(method, n):
    x = np.random.default_rng(0).standard_normal((n, 8))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        xy = project(x, method)
    assert xy.shape == (n, 2) and np.isfinite(xy).all()
    said = any("using PCA" in str(w.message) for w in caught)
    assert said == (method != "pca" and n > 0)
    if n == 1:
        np.testing.assert_array_equal(xy, [[0.0, 0.0]])
    if n == 2:  # rank 1: one axis, zero-padded, the two points mirrored
        assert np.all(xy[:, 1] == 0) and xy[0, 0] == pytest.approx(-xy[1, 0]) != 0


def test_pca_identical_points_are_all_zero():
    xy = project(np.ones((5, 4)), "pca")
    np.testing.assert_array_equal(xy, np.zeros((5, 2)))


@pytest.mark.parametrize("n", [4, 5, 9])
def test_tsne_small_n_clamps_perplexity(n):
    x = np.random.default_rng(0).standard_normal((n, 8))
    xy = project(x, "tsne")  # default perplexity 50 is clamped silently
    assert xy.shape == (n, 2) and np.isfinite(xy).all()
    with pytest.warns(UserWarning, match="perplexity"):
        project(x, "tsne", perplexity=30)
    with pytest.raises(ValueError, match="perplexity"):
        project(x, "tsne", perplexity=0)


def test_importing_explore_is_light():
    code = (
        "import emoclip.explore, sys; "
        "print(sorted(m for m in ('sklearn', 'umap', 'plotly', 'gradio', 'torch', 'numba') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={"HF_HUB_OFFLINE": "1", "PATH": ""},
    )
    assert out.stdout.strip() == "[]"


@pytest.mark.slow
def test_umap_projection():
    """The only UMAP test: small data (first fit in a process pays ~10-20 s of numba JIT)."""
    x, y = _blobs()
    a = project(x, "umap", seed=0)
    assert a.shape == (60, 2) and np.isfinite(a).all()
    _assert_separated(a, y)
    np.testing.assert_array_equal(a, project(x, "umap", seed=0))  # cheap once compiled
    tiny = project(x[:5], "umap", n_neighbors=None)  # n_neighbors clamped to N-1
    assert tiny.shape == (5, 2) and np.isfinite(tiny).all()
    with pytest.warns(UserWarning, match="n_neighbors"):
        project(x[:5], "umap", n_neighbors=15)


# ------------------------------------------------------------------------------------------
# nearest_neighbours


def test_nearest_neighbours_matches_brute_force():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((40, 12)) * rng.uniform(0.1, 10, (40, 1))
    for index in (0, 17, 39):
        got = nearest_neighbours(x, index, k=6)
        sims = [
            (j, float(x[j] @ x[index] / np.linalg.norm(x[j]) / np.linalg.norm(x[index])))
            for j in range(len(x))
            if j != index
        ]
        want = sorted(sims, key=lambda t: -t[1])[:6]
        assert [j for j, _ in got] == [j for j, _ in want]
        np.testing.assert_allclose([s for _, s in got], [s for _, s in want], atol=1e-12)
        assert all(a[1] >= b[1] for a, b in zip(got, got[1:]))


def test_nearest_neighbours_edges():
    x = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    assert nearest_neighbours(x, 0, k=10) == [(1, 1.0), (3, 1.0), (2, 0.0)]  # ties: lower first
    assert nearest_neighbours(x, -1, k=1) == [(0, 1.0)]
    assert nearest_neighbours(x, 2, k=0) == []
    assert nearest_neighbours(x[:1], 0) == []
    with pytest.raises(IndexError):
        nearest_neighbours(x, 4)
    with pytest.raises(ValueError, match="k"):
        nearest_neighbours(x, 0, k=-1)
    with pytest.raises(ValueError, match="NaN"):
        nearest_neighbours(np.array([[np.nan, 1.0], [1.0, 1.0]]), 0)


# ------------------------------------------------------------------------------------------
# latent_figure


def test_figure_traces_markers_labels_and_customdata():
    pts = _points()
    xy = project(np.stack([p.embedding for p in pts]), "pca")
    fig = latent_figure(pts, xy, title="PCA")
    assert all(t.type == "scatter" for t in fig.data)
    assert sum(len(t.x) for t in fig.data) == len(pts)
    groups = {(p.kind, p.label) for p in pts}
    assert len(fig.data) == len(groups)
    colours = label_colours([p.label for p in pts])
    seen = set()
    for t in fig.data:
        kind, label = t.meta["kind"], t.meta["label"]
        assert t.marker.color == colours[label]
        proto = kind in ("class", "compound")
        assert (
            t.marker.symbol
            == {"clip": "circle", "example": "square", "class": "diamond", "compound": "star"}[kind]
        )
        assert ("text" in t.mode) == proto
        if proto:
            assert list(t.text) == [label] * len(t.x)
        for row, x, y in zip(t.customdata, t.x, t.y):
            i = row[0]
            assert isinstance(i, int) and i not in seen
            seen.add(i)
            assert (pts[i].kind, pts[i].label, pts[i].id) == (kind, label, row[1])
            assert (x, y) == (xy[i, 0], xy[i, 1])
        assert "customdata[4]" in t.hovertemplate
    assert seen == set(range(len(pts)))
    # one colour per label shared by clips and prototypes
    happy = [t.marker.color for t in fig.data if t.meta["label"] == "happiness"]
    assert len(happy) == 3 and len(set(happy)) == 1
    # hover text keeps line breaks
    clip_trace = next(t for t in fig.data if t.meta["kind"] == "clip")
    assert "<br>neutral 0.20" in clip_trace.customdata[0][4]
    assert fig.layout.title.text == "PCA"
    assert "mathjax" not in fig.to_json().lower()


def test_figure_selected_and_escaping():
    pts = _points(n_clips=6)
    pts[2] = LatentPoint("<img src=x onerror=alert(1)>.mp4", "clip", pts[2].label, pts[2].embedding)
    xy = np.random.default_rng(0).standard_normal((len(pts), 2))
    fig = latent_figure(pts, xy, selected=2)
    owner = [t for t in fig.data if 2 in [r[0] for r in t.customdata]]
    assert len(owner) == 1
    rows = [r[0] for r in owner[0].customdata]
    assert list(owner[0].selectedpoints) == [rows.index(2)]
    assert all(list(t.selectedpoints) == [] for t in fig.data if t is not owner[0])
    assert len(fig.layout.annotations) == 1
    assert fig.layout.annotations[0].x == xy[2, 0]
    assert "<img" not in fig.to_json() and "&lt;img" in fig.to_json()
    assert latent_figure(pts, xy).layout.annotations == ()


def test_figure_rejects_bad_coords_and_selection():
    pts = _points(n_clips=3)
    with pytest.raises(ValueError, match="shape"):
        latent_figure(pts, np.zeros((len(pts) - 1, 2)))
    with pytest.raises(ValueError, match="NaN"):
        latent_figure(pts, np.full((len(pts), 2), np.nan))
    with pytest.raises(IndexError):
        latent_figure(pts, np.zeros((len(pts), 2)), selected=len(pts))


def test_figure_with_2000_points():
    rng = np.random.default_rng(0)
    labels = [f"class{i}" for i in range(11)]
    pts = [
        LatentPoint(f"c{i}", "clip", labels[i % 11], rng.standard_normal(8)) for i in range(2000)
    ]
    pts += [LatentPoint(lab, "class", lab, rng.standard_normal(8)) for lab in labels]
    fig = latent_figure(pts, rng.standard_normal((len(pts), 2)))
    assert sum(len(t.x) for t in fig.data) == 2011
    clip_sizes = {t.marker.size for t in fig.data if t.meta["kind"] == "clip"}
    proto_sizes = {t.marker.size for t in fig.data if t.meta["kind"] == "class"}
    assert max(clip_sizes) < min(proto_sizes)
    assert fig.layout.legend.itemsizing == "constant"
    assert len(set(label_colours(labels).values())) == 11


def test_latent_point_validates():
    with pytest.raises(ValueError, match="kind"):
        LatentPoint("a", "video", "x", np.zeros(3))
    with pytest.raises(ValueError, match="1-D"):
        LatentPoint("a", "clip", "x", np.zeros((1, 3)))


# ------------------------------------------------------------------------------------------
# save / load


@pytest.mark.parametrize("suffix", [".npz", ".json"])
def test_save_load_round_trip(tmp_path, suffix):
    pts = _points()
    path = save_embeddings(tmp_path / f"emb{suffix}", pts)
    assert path.suffix == suffix and path.exists()
    back = load_embeddings(path, expected_dim=16)
    assert [(p.id, p.kind, p.label, p.hover) for p in back] == [
        (p.id, p.kind, p.label, p.hover) for p in pts
    ]
    np.testing.assert_allclose(
        np.stack([p.embedding for p in back]), np.stack([p.embedding for p in pts]), rtol=1e-6
    )
    assert all(p.media is None for p in back)  # never from a file
    forced = load_embeddings(path, kind="uploaded")
    assert {p.kind for p in forced} == {"uploaded"}


def test_save_adds_npz_suffix_and_loads_without_pickle(tmp_path):
    path = save_embeddings(tmp_path / "emb", _points(n_clips=3))
    assert path.name == "emb.npz"
    with np.load(path, allow_pickle=False) as data:
        assert set(data.files) == {"ids", "kinds", "labels", "hovers", "embeddings"}
        assert data["ids"].dtype.kind == "U"


def test_load_npy(tmp_path):
    x = np.random.default_rng(0).standard_normal((7, 5)).astype(np.float32)
    np.save(tmp_path / "e.npy", x)
    pts = load_embeddings(tmp_path / "e.npy", expected_dim=5)
    assert [p.label for p in pts] == [f"uploaded-{i}" for i in range(7)]
    assert [p.id for p in pts] == [f"uploaded-{i}" for i in range(7)]
    assert {p.kind for p in pts} == {"uploaded"}
    np.testing.assert_array_equal(np.stack([p.embedding for p in pts]), x)


def test_load_csv_variants(tmp_path):
    x = np.round(np.random.default_rng(0).standard_normal((4, 3)), 6)
    names = ["happy", "sad", "happy", "clip 4.mp4"]
    lines = ["label,e0,e1,e2"] + [",".join([n, *map(repr, r.tolist())]) for n, r in zip(names, x)]
    (tmp_path / "h.csv").write_text("\n".join(lines) + "\n")
    pts = load_embeddings(tmp_path / "h.csv", expected_dim=3)
    assert [p.label for p in pts] == names
    assert len({p.id for p in pts}) == 4 and pts[1].id == "sad"  # repeats get distinct ids
    np.testing.assert_allclose(np.stack([p.embedding for p in pts]), x, rtol=1e-6)
    (tmp_path / "n.csv").write_text("\n".join(lines[1:]))  # no header
    assert [p.label for p in load_embeddings(tmp_path / "n.csv")] == names
    (tmp_path / "bare.csv").write_text("\n".join(",".join(map(repr, r.tolist())) for r in x))
    bare = load_embeddings(tmp_path / "bare.csv", expected_dim=3)  # all numbers, width == D
    assert [p.label for p in bare] == [f"uploaded-{i}" for i in range(4)]
    (tmp_path / "ragged.csv").write_text("a,1,2\nb,1\n")
    with pytest.raises(ValueError, match="columns"):
        load_embeddings(tmp_path / "ragged.csv")
    (tmp_path / "text.csv").write_text("a,1,2\nb,1,x\n")
    with pytest.raises(ValueError, match="non-numeric"):
        load_embeddings(tmp_path / "text.csv")


def test_load_json_minimal(tmp_path):
    data = [{"id": "a", "label": "happy", "embedding": [1, 2, 3]}, {"embedding": [0.5, 0.5, 0.5]}]
    (tmp_path / "e.json").write_text(json.dumps(data))
    pts = load_embeddings(tmp_path / "e.json")
    assert [(p.id, p.label, p.kind) for p in pts] == [
        ("a", "happy", "uploaded"),
        ("uploaded-1", "uploaded-1", "uploaded"),
    ]
    for bad in (
        [{"embedding": [1, "2"]}],
        [{"embedding": [True, False]}],
        [{"id": "x"}],
        {"a": 1},
        [],
        [{"embedding": [1, 2]}, {"embedding": [1, 2, 3]}],
        [{"embedding": [1, 2], "label": 3}],
    ):
        (tmp_path / "bad.json").write_text(json.dumps(bad))
        with pytest.raises(ValueError):
            load_embeddings(tmp_path / "bad.json")
    (tmp_path / "broken.json").write_text("[{")
    with pytest.raises(ValueError, match="invalid JSON"):
        load_embeddings(tmp_path / "broken.json")


class _Payload:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


def test_malicious_npz_and_npy_are_refused_without_unpickling(tmp_path):
    marker = tmp_path / "pwned"
    obj = np.empty(1, dtype=object)
    obj[0] = _Payload(marker)
    np.savez(tmp_path / "evil.npz", embeddings=np.zeros((2, 3)), ids=obj)
    np.savez(tmp_path / "evil2.npz", embeddings=obj)
    np.save(tmp_path / "evil.npy", obj, allow_pickle=True)
    for name in ("evil.npz", "evil2.npz", "evil.npy"):
        with pytest.raises(ValueError, match="pickle"):
            load_embeddings(tmp_path / name)
    assert not marker.exists()
    (tmp_path / "fake.npz").write_bytes(b"\x80\x04not a zip")
    with pytest.raises(ValueError, match="npz"):
        load_embeddings(tmp_path / "fake.npz")


def test_load_rejects_dim_nan_size_and_type(tmp_path):
    x = np.random.default_rng(0).standard_normal((10, 4))
    np.save(tmp_path / "e.npy", x)
    with pytest.raises(ValueError, match="dimension 4.*dimension 512"):
        load_embeddings(tmp_path / "e.npy", expected_dim=512)
    with pytest.raises(ValueError, match="limit of 5"):
        load_embeddings(tmp_path / "e.npy", max_points=5)
    with pytest.raises(ValueError, match="bytes"):
        load_embeddings(tmp_path / "e.npy", max_bytes=100)
    x[3, 1] = np.nan
    np.save(tmp_path / "nan.npy", x)
    np.savez(tmp_path / "nan.npz", embeddings=x)
    (tmp_path / "nan.csv").write_text("a,1,nan\nb,1,2\n")
    (tmp_path / "nan.json").write_text('[{"embedding": [1, NaN]}]')
    for name in ("nan.npy", "nan.npz", "nan.csv", "nan.json"):
        with pytest.raises(ValueError, match="NaN"):
            load_embeddings(tmp_path / name)
    np.save(tmp_path / "flat.npy", np.zeros(4))
    with pytest.raises(ValueError, match="2-D"):
        load_embeddings(tmp_path / "flat.npy")
    np.savez(tmp_path / "noemb.npz", vectors=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="'embeddings'"):
        load_embeddings(tmp_path / "noemb.npz")
    np.savez(tmp_path / "badids.npz", embeddings=np.zeros((2, 2)), ids=np.array(["a"]))
    with pytest.raises(ValueError, match="ids"):
        load_embeddings(tmp_path / "badids.npz")
    (tmp_path / "e.txt").write_text("1,2")
    with pytest.raises(ValueError, match="unsupported"):
        load_embeddings(tmp_path / "e.txt")
    with pytest.raises(ValueError, match="no such file"):
        load_embeddings(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="kind"):
        load_embeddings(tmp_path / "e.npy", kind="video")


def test_npz_zip_bomb_is_refused(tmp_path):
    np.savez_compressed(tmp_path / "big.npz", embeddings=np.zeros((4000, 512)))
    assert (tmp_path / "big.npz").stat().st_size < 100_000
    with pytest.raises(ValueError, match="uncompressed"):
        load_embeddings(tmp_path / "big.npz", max_bytes=1_000_000)


def test_kinds_constant():
    assert KINDS == ("clip", "example", "uploaded", "class", "compound")


# ------------------------------------------------------------------ large collections (results folders)


def _low_rank(n: int, d: int = 128, rank: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (
        rng.standard_normal((n, rank)) @ rng.standard_normal((rank, d))
        + 0.2 * rng.standard_normal((n, d))
    ).astype(np.float32)


def test_neighbour_index_matches_exact_search():
    from emoclip.explore.collection import NeighbourIndex

    x = _low_rank(3000)
    index = NeighbourIndex(x, dims=16)
    rows, sims = index.query(x[:50], k=10)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    exact = np.argsort(-(xn[:50] @ xn.T), axis=1)[:, :10]
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(rows, exact)])
    assert recall >= 0.95, recall
    assert (rows[:, 0] == np.arange(50)).all() and np.allclose(sims[:, 0], 1, atol=1e-5)
    assert (np.diff(sims, axis=1) <= 1e-6).all()  # best first
    assert [r for r, _ in index.neighbours(3, k=5)] == [r for r, _ in nearest_neighbours(x, 3, k=5)]
    with pytest.raises(IndexError):
        index.neighbours(3000)


def test_project_large_fits_a_sample_and_places_the_rest_by_neighbours():
    from emoclip.explore.collection import project_large

    x, y = _blobs(n_per=300, d=32)
    xy, fitted = project_large(x, "tsne", sample=150, seed=0)
    assert xy.shape == (600, 2) and fitted.sum() == 150 and np.isfinite(xy).all()
    _assert_separated(xy, y, factor=1.5)  # the placed points land in their own cluster
    xy_pca, fitted_pca = project_large(x, "pca")
    assert fitted_pca.all()
    np.testing.assert_allclose(xy_pca, project(x, "pca"))


def test_load_results_folder_reads_parquet_parts_and_skips_errors(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from emoclip.explore.collection import load_results_folder

    (tmp_path / "out" / "results").mkdir(parents=True)
    emb_type = pa.list_(pa.float32(), 4)
    for part in range(2):
        rows = [
            {
                "path": f"/data/c{part}{i}.mp4",
                "top": "joy",
                "probabilities": [0.7, 0.3],
                "classes": ["joy", "calm"],
                "embedding": [float(part), 1.0, 0.0, float(i)],
                "error": None,
                "config_key": "k",
                "model": "m",
            }
            for i in range(3)
        ]
        rows.append(
            {
                "path": "/data/bad.mp4",
                "top": None,
                "probabilities": None,
                "classes": ["joy", "calm"],
                "embedding": None,
                "error": "cannot decode",
                "config_key": "k",
                "model": "m",
            }
        )
        schema = pa.schema(
            [
                ("path", pa.string()),
                ("top", pa.string()),
                ("probabilities", pa.list_(pa.float32())),
                ("classes", pa.list_(pa.string())),
                ("embedding", emb_type),
                ("error", pa.string()),
                ("config_key", pa.string()),
                ("model", pa.string()),
            ]
        )
        pq.write_table(
            pa.Table.from_pylist(rows, schema=schema),
            tmp_path / "out" / "results" / f"part-{part}.parquet",
        )
    coll = load_results_folder(tmp_path / "out")
    assert len(coll) == 6 and coll.embeddings.shape == (6, 4) and "/data/bad.mp4" not in coll.paths
    np.testing.assert_allclose(np.linalg.norm(coll.embeddings, axis=1), 1, atol=1e-6)
    assert coll.hovers[0] == "c00.mp4<br>joy 0.70" and coll.model == "m"
    pts = coll.points([0, 4])
    assert [p.id for p in pts] == ["c00.mp4", "c11.mp4"] and all(
        p.kind == "clip" and p.label == "joy" for p in pts
    )
    fig = latent_figure(pts, project(np.stack([p.embedding for p in pts]), "pca"))
    assert fig.layout.meta["n_points"] == 2
    with pytest.raises(ValueError, match="limit"):
        load_results_folder(tmp_path / "out", max_points=5)
    with pytest.raises(ValueError, match="no analysed clips"):
        load_results_folder(tmp_path / "out", config_key="other")
    with pytest.raises(ValueError, match="no Parquet"):
        load_results_folder(tmp_path)
    assert len(load_results_folder(tmp_path / "out", expected_dim=4)) == 6
    with pytest.raises(ValueError, match="size 4, but the model's are 8"):
        load_results_folder(tmp_path / "out", expected_dim=8)
    pq.write_table(
        pa.table({"path": ["/x.mp4"], "top": ["joy"]}),
        tmp_path / "out" / "results" / "part-9.parquet",
    )
    with pytest.raises(
        ValueError, match="part-9.parquet: not an emoclip batch results part.*embedding"
    ):
        load_results_folder(tmp_path / "out")
