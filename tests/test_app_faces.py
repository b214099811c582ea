"""The Analyse tab's face picker for photos (issue #20, 3): a click on a face's box, on its row of
the faces table, or its number chooses whose result the label, bars, evidence and downloads show;
the library's and the API's answer stays the first face's.

Handlers called directly, with the random-weight test model (face detection on), on a photo of
three different real faces (scikit-image's astronaut and cameraman, an LFW face: test_doors).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

os.environ["EMOCLIP_APP_TEST_MODEL"] = "1"
os.environ["EMOCLIP_APP_MODEL"] = "test-emoclip-tiny"

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from test_app import CUSTOM_YAML, no_progress  # noqa: E402
from test_doors import _group_photo as three_faces  # noqa: E402

from emoclip.testing.media import moving_face_frames, write_video  # noqa: E402
from emoclip_app.errors import md  # noqa: E402
from emoclip_app.figures import FACE_COLOURS  # noqa: E402
from emoclip_app.state import Session  # noqa: E402
from emoclip_app.tabs import (  # noqa: E402
    analyse as analyse_tab,  # noqa: E402
    api as api_tab,  # noqa: E402
    classes as classes_tab,  # noqa: E402
    face_pick,  # noqa: E402
)


def select(index) -> gr.SelectData:
    """The event data gradio passes a `.select` listener (`index`: [x, y] or [row, column])."""
    return gr.SelectData(None, {"index": index, "value": None})


def ranked(probabilities: dict[str, float]) -> dict[str, float]:
    return dict(sorted(probabilities.items(), key=lambda kv: -kv[1]))


def bars(figure) -> dict[str, float]:
    """{class: probability} drawn by the bars plot."""
    return dict(zip(figure.data[0].y, figure.data[0].x))


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> str:
    from PIL import Image

    path = tmp_path_factory.mktemp("faces") / "three.png"
    Image.fromarray(three_faces()).save(path)
    return str(path)


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("faces-video") / "face.webm"
    return str(write_video(path, moving_face_frames(24, size=(240, 320)), fps=12))


def analysed(photo: str) -> tuple[Session, object]:
    session = Session()
    out = analyse_tab.analyse_photo(photo, "center", session, progress=no_progress)
    tracks = out.session.video.prediction.tracks
    assert len(tracks) == 3, [t.box for t in tracks]  # every face of the three, no other
    first, second = tracks[0].probabilities, tracks[1].probabilities
    assert max(abs(first[c] - second[c]) for c in first) > 1e-4  # two faces, two answers
    return out.session, out


def test_a_photo_starts_on_its_first_face_with_every_face_listed(photo):
    session, out = analysed(photo)
    tracks = session.video.prediction.tracks
    assert out.label == ranked(tracks[0].probabilities)
    table = out.face_table.value["data"]
    assert [row[0] for row in table] == ["1 (shown)", "2", "3"]
    assert [row[1] for row in table] == [t.top for t in tracks]
    assert [row[2] for row in table] == [f"{t.probabilities[t.top]:.0%}" for t in tracks]
    x, y, w, h = tracks[1].box
    assert table[1][3] == f"{x:.0f}, {y:.0f}, {w:.0f}, {h:.0f}"
    assert out.face_pick.value == 1 and out.face_pick.visible
    assert [value for _, value in out.face_pick.choices] == [1, 2, 3]
    assert "showing face 1" in out.faces and "showing face 1's result" in out.summary
    assert json.loads(Path(out.files[0]).read_text())["chosen_face"] == 1


def test_choosing_face_2_shows_its_result_and_downloads_while_the_api_answers_face_1(photo):
    session, first = analysed(photo)
    library = session.video.prediction
    face2 = library.tracks[1].probabilities
    out = face_pick.row_clicked(session, select([1, 2]))  # the second row, any column
    assert session.video.face == 1
    assert out.label == ranked(face2) and out.label != first.label
    assert bars(out.bars) == pytest.approx({c: p for c, p in ranked(face2).items()}, abs=0)
    assert out.bars_text != first.bars_text and "showing face 2's result" in out.summary
    assert library.evidence.faces[1].top == max(face2, key=face2.get)
    own = library.evidence.faces[1]  # face 2's own evidence: its best words and its margin
    assert md(own.best_description(own.top)) in out.evidence
    assert f"{100 * own.margin:.1f} points ahead" in out.evidence and out.evidence != first.evidence
    assert [row[0] for row in out.face_table.value["data"]] == ["1", "2 (shown)", "3"]
    assert out.face_pick.value == 2
    # the downloads are face 2's answer, every face still listed in the library's order
    json_path, csv_path = out.files[:2]
    assert "three-face2-emotions" in Path(json_path).name
    data = json.loads(Path(json_path).read_text())
    assert data["chosen_face"] == 2 and data["probabilities"] == pytest.approx(face2, abs=1e-6)
    assert data["top"] == library.tracks[1].top
    assert [t["primary"] for t in data["tracks"]] == [False, True, False]
    assert [t["probabilities"] for t in data["tracks"]] == [
        pytest.approx(t.probabilities, abs=1e-6) for t in library.tracks
    ]
    with open(csv_path, newline="") as f:
        clip = {
            r["class"]: float(r["probability"]) for r in csv.DictReader(f) if r["scope"] == "clip"
        }
    assert clip == pytest.approx(face2, abs=1e-6)
    # the library's result and the API's top-level answer stay the first face's
    assert session.video.prediction is library
    assert library.probabilities == pytest.approx(library.tracks[0].probabilities)
    api = api_tab.classify_image(photo, "", session)
    assert api["probabilities"] == pytest.approx(api["tracks"][0]["probabilities"], abs=1e-6)
    assert api["probabilities"] == pytest.approx(library.tracks[0].probabilities, abs=1e-6)


def test_a_click_on_a_box_picks_its_face_and_a_click_beside_every_box_keeps_the_choice(photo):
    session, _ = analysed(photo)
    video = session.video
    s = video.photo_scale
    x, y, w, h = video.prediction.tracks[2].box
    out = face_pick.face_clicked(session, select([round((x + w / 2) * s), round((y + h / 2) * s)]))
    assert video.face == 2 and out.label == ranked(video.prediction.tracks[2].probabilities)
    # the chosen face's box is drawn thick inside a white frame; the others are not framed
    drawn = out.faces_image
    assert drawn.shape[:2] == (240, 620) and video.photo_scale == 1.0  # kept as shown
    assert len(video.photo) < drawn.nbytes / 4  # kept compressed in the session
    thick = max(2, round(max(drawn.shape[:2]) / 400))
    x0, yc = round(x * s), round((y + h / 2) * s)
    assert tuple(drawn[yc, x0 - 2 * thick]) == (255, 255, 255)
    assert tuple(drawn[yc, x0 + thick]) == FACE_COLOURS[2]  # twice as thick
    bx, by, bw, bh = video.prediction.tracks[0].box
    assert tuple(drawn[round((by + bh / 2) * s), round(bx * s) - 2 * thick]) != (255, 255, 255)
    # a click on no face (the photo's top-left corner is background) changes nothing
    assert all(
        not (bx <= 1 and by <= 1) for bx, by, _, _ in (t.box for t in video.prediction.tracks)
    )
    kept = face_pick.face_clicked(session, select([1, 1]))
    assert video.face == 2
    assert all(isinstance(v, type(gr.skip())) for v in kept)
    # a click on the shown face again redraws nothing either
    same = face_pick.face_clicked(session, select([round((x + w / 2) * s), round((y + 1) * s)]))
    assert all(isinstance(v, type(gr.skip())) for v in same)


def test_the_keyboard_picker_chooses_by_number_and_refuses_what_is_not_a_face(photo):
    session, _ = analysed(photo)
    out = face_pick.face_numbered(3, session)
    assert session.video.face == 2 and out.face_pick.value == 3
    assert out.label == ranked(session.video.prediction.tracks[2].probabilities)
    for bad in (0, 4, None, "x"):
        assert all(isinstance(v, type(gr.skip())) for v in face_pick.face_numbered(bad, session))
    assert session.video.face == 2


def test_a_class_edit_keeps_the_chosen_face_and_a_new_photo_starts_at_face_1(photo):
    session, _ = analysed(photo)
    face_pick.face_numbered(2, session)
    out = classes_tab.set_classes(CUSTOM_YAML, session)
    rescored = session.video.prediction
    assert rescored.classes[:3] == ["joy", "calm", "worry"]
    assert session.video.face == 1 and "showing face 2's result" in out.summary
    assert out.label == ranked(rescored.tracks[1].probabilities)
    assert out.classes_label == out.label
    assert [row[1] for row in out.face_table.value["data"]] == [t.top for t in rescored.tracks]
    assert [row[0] for row in out.face_table.value["data"]] == ["1", "2 (shown)", "3"]
    again = analyse_tab.analyse_photo(photo, "center", session, progress=no_progress)
    assert session.video.face == 0 and again.face_pick.value == 1
    assert again.label == ranked(session.video.prediction.tracks[0].probabilities)


def test_a_video_ignores_the_picker_and_clears_the_photos_faces(photo, video):
    session, _ = analysed(photo)
    face_pick.face_numbered(2, session)
    out = analyse_tab.analyse(video, "center", session, progress=no_progress)
    assert session.video.prediction.video.get("kind") != "image" and session.video.face == 0
    assert out.faces_image is None and out.faces == ""
    assert not out.face_table.visible and not out.face_pick.visible
    label = out.label
    for event in (
        lambda: face_pick.face_clicked(session, select([10, 10])),
        lambda: face_pick.row_clicked(session, select([1, 0])),
        lambda: face_pick.face_numbered(2, session),
    ):
        assert all(isinstance(v, type(gr.skip())) for v in event())
    assert session.video.face == 0
    assert analyse_tab.result_values(session).label == label
    assert "chosen_face" not in json.loads(Path(out.files[0]).read_text())


def test_nothing_analysed_yet_picks_nothing():
    session = Session()
    for out in (
        face_pick.face_clicked(session, select([5, 5])),
        face_pick.row_clicked(session, select([0, 0])),
        face_pick.face_numbered(1, session),
    ):
        assert all(isinstance(v, type(gr.skip())) for v in out)


def test_the_picker_is_wired_to_the_photo_the_table_and_the_selector():
    import emoclip_app

    demo = emoclip_app.build_demo()
    by_id = {getattr(b, "elem_id", None): b for b in demo.blocks.values()}
    wired = {
        (dep.targets[0][1], by_id_of(demo, dep.targets[0][0]))
        for dep in demo.fns.values()
        if dep.targets and dep.name in ("face_clicked", "row_clicked", "face_numbered")
    }
    assert wired == {("select", "faces-image"), ("select", "face-table"), ("input", "face-pick")}
    assert by_id["face-pick"].elem_id == "face-pick"
    assert np.all([not by_id[i].interactive for i in ("faces-image", "face-table")])


def by_id_of(demo, block_id: int) -> str | None:
    return getattr(demo.blocks.get(block_id), "elem_id", None)
