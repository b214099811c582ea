"""What the app computes that is not UI, in the library: class sets as table rows, compound
previews, the explorer's points, a model's parameter count."""

from __future__ import annotations

import math

import numpy as np
import pytest

from emoclip.classes import ClassSet, ClassSetError, class_rows, classes_from_rows, parse_weights
from emoclip.explore import ClipSource, latent_points
from emoclip.inference.predictor import EmotionPredictor
from emoclip.testing.media import moving_face_frames, write_video
from emoclip.zeroshot import compound_preview

YAML = """\
name: mine
classes:
  joy: ["a broad smile", "laughing"]
  calm: a relaxed face
  worry: raised inner eyebrows
compounds:
  relief: {joy: 2, calm: 1}
  unease: [calm, worry]
"""


def test_class_rows_round_trip_keeps_name_and_compounds():
    classes = ClassSet.parse(YAML)
    rows = class_rows(classes)
    assert rows == [
        ["joy", "a broad smile"],
        ["joy", "laughing"],
        ["calm", "a relaxed face"],
        ["worry", "raised inner eyebrows"],
    ]
    assert classes_from_rows(rows, classes) == classes


def test_rows_are_grouped_by_name_and_blank_rows_dropped():
    base = ClassSet.parse(YAML)
    rows = [
        ["Joy", "a grin"],
        [None, None],
        ["calm", "eyes closed"],
        ["JOY", float("nan")],
        ["joy", "  beaming  "],
        ["", ""],
    ]
    rebuilt = classes_from_rows(rows, base)
    assert rebuilt.name == "mine" and [c.name for c in rebuilt.classes] == ["Joy", "calm"]
    assert rebuilt.classes[0].descriptions == ("a grin", "beaming")
    assert [c.name for c in rebuilt.compounds] == ["relief"]  # "unease" lost its part "worry"
    assert rebuilt.compounds[0].weights == (2.0, 1.0)


def test_bad_rows_say_what_is_wrong():
    base = ClassSet.parse(YAML)
    with pytest.raises(ClassSetError, match="has no class name"):
        classes_from_rows([["", "a smile"]], base)
    with pytest.raises(ClassSetError):
        classes_from_rows([["joy", ""]], base)  # a class without a description


def test_parse_weights():
    assert parse_weights("", ["a", "b"]) is None
    assert parse_weights("2, 1", ["a", "b"]) == [2.0, 1.0]
    assert parse_weights("0.5;0.25 0.25", ["a", "b", "c"]) == [0.5, 0.25, 0.25]
    with pytest.raises(ValueError, match="one weight per chosen class"):
        parse_weights("1", ["a", "b"])
    with pytest.raises(ValueError, match="numbers"):
        parse_weights("x, y", ["a", "b"])
    with pytest.raises(ValueError, match="positive"):
        parse_weights("1, -1", ["a", "b"])
    with pytest.raises(ValueError, match="positive"):
        parse_weights("1, inf", ["a", "b"])


@pytest.fixture(scope="module")
def predictor(tiny_model):
    p = EmotionPredictor(tiny_model, batch_size=8)
    yield p
    p.close()


def test_compound_preview_ranks_classes_and_scores_the_video(predictor, tmp_path):
    candidate = ClassSet.parse(YAML)
    preview = compound_preview(predictor, candidate, "relief")
    assert [n for n, _ in preview.nearest] != [] and len(preview.nearest) == 3
    assert {n for n, _ in preview.nearest} == {"joy", "calm", "worry"}
    cosines = [c for _, c in preview.nearest]
    assert cosines == sorted(cosines, reverse=True) and all(-1.0001 <= c <= 1.0001 for c in cosines)
    emb = predictor.class_embeddings(candidate).numpy()
    assert math.isclose(dict(preview.nearest)["joy"], float(emb[0] @ emb[3]), abs_tol=1e-5)
    assert preview.probability is None and preview.rank is None and preview.of == 5
    video = write_video(tmp_path / "face.webm", moving_face_frames(24, size=(240, 320)), fps=12)
    encoding = predictor.encode(video)
    scored = compound_preview(predictor, candidate, "relief", encoding)
    probs = predictor.score(encoding, candidate).probabilities
    assert math.isclose(scored.probability, probs["relief"], rel_tol=1e-6)
    assert scored.rank == sorted(probs, key=probs.get, reverse=True).index("relief") + 1
    with pytest.raises(ValueError):
        compound_preview(predictor, candidate, "not a name")


def test_latent_points_label_clips_and_add_prototypes():
    rng = np.random.default_rng(0)
    names = ["joy", "calm", "relief"]
    clips = [
        ClipSource("clip", "clip 1 · a.mp4", rng.normal(size=8), "/v/a.mp4"),
        ClipSource("uploaded", "dup", rng.normal(size=8)),
        ClipSource("uploaded", "dup", rng.normal(size=8)),
    ]
    probs = np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3], [0.2, 0.2, 0.6]])
    prototypes = rng.normal(size=(3, 8)).astype(np.float32)
    points = latent_points(clips, probs, names, prototypes, n_classes=2)
    kinds = ["clip", "uploaded", "uploaded", "class", "class", "compound"]
    assert [p.kind for p in points] == kinds
    assert [p.label for p in points] == ["calm", "joy", "relief", "joy", "calm", "relief"]
    assert [p.id for p in points][:3] == ["clip 1 · a.mp4", "dup", "dup #2"]
    assert points[5].id == "compound · relief" and points[0].media == "/v/a.mp4"
    assert points[0].hover.splitlines() == [
        "clip 1 · a.mp4",
        "calm: 70.0%",
        "relief: 20.0%",
        "joy: 10.0%",
    ]
    np.testing.assert_array_equal(points[3].embedding, prototypes[0])
    assert latent_points([], np.zeros((0, 3)), names, prototypes, 2)[0].kind == "class"
    with pytest.raises(ValueError, match="prototypes"):
        latent_points([], np.zeros((0, 3)), names, prototypes[:2], 2)


def test_parameter_count(tiny_model):
    assert tiny_model.num_parameters == sum(p.numel() for p in tiny_model.parameters()) > 0


def test_the_pipeline_runs_on_parts_built_without_a_predictor(tiny_model, tmp_path):
    """The facade composes: a resolved input and parts built from the model alone give the
    encoding the predictor gives (the pipeline needs nothing of the predictor)."""
    import torch

    from emoclip.inference.detector import SharedDetector
    from emoclip.inference.parts import AnalysisParts, FrameEncoder, Pooler
    from emoclip.inference.pipeline import encode_input
    from emoclip.media.inputs import resolve_input
    from emoclip.settings import AnalysisSettings
    from emoclip.zeroshot import TextEmbeddingCache

    path = write_video(tmp_path / "v.webm", moving_face_frames(16, size=(240, 320)), fps=8)
    settings = AnalysisSettings(precision="fp32", batch_size=8)
    parts = AnalysisParts(
        tiny_model.config.preprocess,
        settings,
        FrameEncoder(tiny_model, settings),
        Pooler(tiny_model, settings),
        SharedDetector(),
        TextEmbeddingCache(tiny_model),
    )
    media = resolve_input(path, limits=settings.limits)
    assert media.kind == "video" and media.width == 320 and media.height == 240
    alone = encode_input(parts, media, "key", None)
    parts.faces.close()
    predictor = EmotionPredictor(tiny_model, settings)
    via = predictor.encode(media)  # a MediaInput is taken as it is
    assert torch.allclose(alone.clip_embedding, via.clip_embedding, atol=1e-5)
    assert alone.video["kind"] == via.video["kind"] == "video"
    assert len(alone.tracks) == len(via.tracks)
