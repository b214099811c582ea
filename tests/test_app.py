"""The Gradio app: handlers called directly, and the served app through gradio_client.

Runs with the random-weight test model (EMOCLIP_APP_TEST_MODEL=1, EMOCLIP_APP_MODEL=test-emoclip-tiny),
offline, on generated videos.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

os.environ["EMOCLIP_APP_TEST_MODEL"] = "1"
os.environ["EMOCLIP_APP_MODEL"] = "test-emoclip-tiny"

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

gr = pytest.importorskip("gradio")
import app  # noqa: E402
from emoclip.testing.media import moving_face_frames, write_video  # noqa: E402

from emoclip.classes import ClassSet, preset  # noqa: E402

MODEL = "test-emoclip-tiny"
CUSTOM_YAML = """\
name: mine
classes:
  joy: ["a broad smile with raised cheeks", "laughing with the mouth open"]
  calm: a relaxed face with a neutral mouth
  worry: raised inner eyebrows and a tense mouth
"""


def no_progress(*_, **__) -> None:
    """Stands in for gr.Progress outside a request."""


@pytest.fixture(scope="module")
def video(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("videos") / "face.webm"
    return str(write_video(path, moving_face_frames(48, size=(240, 320)), fps=12))


@pytest.fixture(scope="module")
def predictor():
    return app.MODELS.predictor(MODEL, "center")


def _analysed(video: str) -> app.Session:
    session = app.Session()
    out = app.analyse(video, "center", session, progress=no_progress)
    return out[0]


# ---------------------------------------------------------------------------- import & models


def test_import_does_no_model_work():
    code = ("import sys, app; assert app.MODELS.default is None and not app.MODELS.loading(); "
            "print('torch' in sys.modules, 'open_clip' in sys.modules)")
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["False", "False"]


def test_model_selection_and_polling():
    session = app.Session()
    with pytest.raises(gr.Error, match="could not be loaded"):
        app.select_model("emoclip-vitb32", session)  # no weights offline
    assert session.model is None
    out = app.select_model(MODEL, session)
    assert out[0].model == MODEL and "random weights" in out[1] and out[5][0][0] == "happiness"
    out = app.poll_models(app.Session())  # the default model is ready: the editor is filled
    assert out[0].shown_default == MODEL and out[5][0][0] == "happiness"
    out = app.init_page(app.Session())
    assert "Model:" in out[1] and out[2].value == MODEL


def test_every_public_event_has_an_api_name():
    deps = app.demo.config["dependencies"]
    public = [d for d in deps if d.get("api_visibility", "public") == "public"]
    names = {d["api_name"] for d in public}
    assert all(d["api_name"] for d in public)
    assert {"classify_video", "analyse", "set_classes", "add_compound", "explore", "live_step"} <= names


def test_background_loader_picks_the_forced_model_and_the_status_says_what_it_is():
    app.MODELS.start()
    assert app.MODELS.wait_ready(120)
    assert app.MODELS.default == MODEL
    status = app._status_markdown(app.Session())
    assert "test" in status and "random weights" in status
    toy = app._status_markdown(app.Session(model="emoclip-synthetic-tiny"))
    assert "toy" in toy and "cartoon" in toy and "not** a recogniser of real faces" in toy
    card = app._model_card(app.Session())
    assert "emoclip-vitb32" in card and "parameters" in card


# ------------------------------------------------------------------------------- analyse


def test_analyse_gives_every_result(video):
    session = app.Session()
    out = app.analyse(video, "center", session, progress=no_progress)
    session, summary, label, bars, timeline, gallery, files, timings, warnings, label2, timings2 = out
    names = preset("dfew-7").names
    assert set(label) == set(names) and abs(sum(label.values()) - 1) < 1e-4
    assert "Top emotion" in summary and "16 of 16 sampled frames had a face" in summary
    assert len(timeline.data) == len(names) and all(len(t.x) == len(session.video.prediction.timeline)
                                                    for t in timeline.data)
    assert len(bars.data[0].y) == len(names)
    assert gallery and gallery[0][0].shape == (96, 96, 3)
    data = json.loads(Path(files[0]).read_text())
    assert data["top"] == session.video.prediction.top and Path(files[1]).read_text().startswith("video,scope")
    assert "Frames encoded: 16" in timings and "re-scored without re-encoding: 0" in timings
    assert "random" in warnings or "toy/test" in warnings
    assert len(session.clips) == 1


def test_editing_a_description_rescores_without_reencoding(video, predictor, monkeypatch):
    session = _analysed(video)
    before = dict(session.video.prediction.probabilities)
    frames = session.frames_encoded

    def boom(*_):
        raise AssertionError("a frame was re-encoded")

    monkeypatch.setattr(predictor, "encode_images", boom)
    rows = app.class_rows(app._classes_of(session))
    rows[0][1] = "A face beaming with delight, eyes crinkled"
    out = app.edit_table(rows, session)
    session = out[0]
    after = session.video.prediction.probabilities
    assert after != before and set(after) == set(before)
    assert session.frames_encoded == frames and session.rescored == 1
    assert "re-scored without re-encoding: 1" in out[13]  # timings
    assert out[1] == rows and "7 classes" in out[3]


def test_class_edits_add_rename_remove_reset_and_errors(video):
    session = _analysed(video)
    session = app.add_class("contempt", "one corner of the mouth raised\na sneer", session)[0]
    assert session.classes.names[-1] == "contempt"
    assert session.classes.classes[-1].descriptions == ("one corner of the mouth raised", "a sneer")
    assert "contempt" in session.video.prediction.probabilities
    session = app.add_compound(["happiness", "contempt"], "2, 1", "smug", session)[0]
    session = app.rename_class("contempt", "scorn", session)[0]
    assert session.classes.compounds[0].parts == ("happiness", "scorn")
    session = app.remove_class("scorn", session)[0]
    assert "scorn" not in session.classes.names and not session.classes.compounds
    with pytest.raises(gr.Error, match="no class or compound named"):
        app.remove_class("nothing-here", session)
    with pytest.raises(gr.Error, match="type at least one description"):
        app.add_class("x", "   ", session)
    session = app.reset_classes("mafw-11", session)[0]
    assert len(session.classes.classes) == 11 and len(session.video.prediction.classes) == 11
    session = app.reset_classes(app.MODEL_DEFAULT_PRESET, session)[0]
    assert session.classes.names == preset("dfew-7").names


def test_bad_table_edit_keeps_the_table_and_reports(video):
    session = _analysed(video)
    rows = app.class_rows(app._classes_of(session))
    rows.append(["", "a description without a class"])
    with pytest.warns(UserWarning, match="has no class name"):  # gr.Warning outside a request
        out = app.edit_table(rows, session)
    skip = type(gr.skip())
    assert isinstance(out[1], skip) and isinstance(out[2], skip)  # the table and YAML keep their text
    assert "Not applied" in out[3] and "has no class name" in out[3] and session.classes is None


def test_yaml_apply_validate_import_export(video, tmp_path):
    session = _analysed(video)
    assert "Valid" in app.validate_classes(CUSTOM_YAML, session)
    message = app.validate_classes("classes: [unclosed", session)
    assert "Not applied" in message and "line 1" in message
    with pytest.raises(gr.Error, match="YAML error at line 1"):
        app.set_classes("classes: [unclosed", session)
    with pytest.raises(gr.Error, match="empty"):
        app.set_classes("  ", session)
    session = app.set_classes(CUSTOM_YAML, session)[0]
    assert session.classes.names == ["joy", "calm", "worry"]
    assert sorted(session.video.prediction.probabilities) == ["calm", "joy", "worry"]
    exported = app.export_classes("json", session)
    assert ClassSet.load(exported).names == ["joy", "calm", "worry"]
    other = tmp_path / "other.yaml"
    preset("mafw-11").save(other)
    session = app.import_classes(str(other), session)[0]
    assert len(session.classes.classes) == 11


def test_long_description_warns_about_truncation(video):
    session = _analysed(video)
    long_text = " ".join(["a very detailed description of a smiling face"] * 20)
    out = app.add_class("verbose", long_text, session)
    assert "77" in out[3] or "truncat" in out[3].lower()


def test_compound_preview_and_score(video):
    session = _analysed(video)
    text = app.preview_compound(["happiness", "surprise"], "", "", session)
    assert "happiness + surprise" in text and "Nearest classes" in text and "Score on the current video" in text
    assert "Choose two or more" in app.preview_compound(["happiness"], "", "", session)
    assert "one weight per chosen class" in app.preview_compound(["happiness", "fear"], "1", "x", session)
    out = app.add_compound(["happiness", "surprise"], "", "delighted", session)
    session = out[0]
    assert "delighted" in session.video.prediction.probabilities
    assert "Added compound" in out[-1]
    session = app.remove_compound("delighted", session)[0]
    assert "delighted" not in session.video.prediction.probabilities


def test_user_text_is_escaped(video):
    session = _analysed(video)
    evil = "<img src=x onerror=alert(1)>"
    out = app.add_class(evil, "**bold** <script>alert(2)</script>", session)
    session = out[0]
    for markdown in (out[3], app.preview_compound(["happiness", evil], "", "<b>mix</b>", session)):
        assert "<img" not in markdown and "<script" not in markdown and "<b>" not in markdown
    timeline = out[10]
    assert all("<" not in trace.name for trace in timeline.data)
    assert evil in out[8]  # gr.Label shows it as text


def test_errors_become_gr_error(video, predictor, tmp_path, monkeypatch):
    bad = tmp_path / "bad.webm"
    bad.write_bytes(os.urandom(4000))
    with pytest.raises(gr.Error, match="bad.webm") as info:
        app.analyse(str(bad), "center", app.Session(), progress=no_progress)
    assert str(tmp_path) not in str(info.value)
    with pytest.raises(gr.Error, match="Upload or record"):
        app.analyse(None, "center", app.Session(), progress=no_progress)
    from emoclip.predictor import VideoLimits

    monkeypatch.setattr(predictor, "limits", VideoLimits(max_duration=1.0))
    other = tmp_path / "long.webm"
    write_video(other, moving_face_frames(30, size=(240, 320), seed=3), fps=12)
    with pytest.raises(gr.Error, match="limit is 1 s"):
        app.analyse(str(other), "center", app.Session(), progress=no_progress)


def test_two_sessions_do_not_share_classes_or_results(video):
    a, b = app.Session(), app.Session()
    a = app.set_classes(CUSTOM_YAML, a)[0]
    b = app.reset_classes("mafw-11", b)[0]
    a = app.analyse(video, "center", a, progress=no_progress)[0]
    b = app.analyse(video, "center", b, progress=no_progress)[0]
    assert a.video.prediction.classes == ["joy", "calm", "worry"]
    assert len(b.video.prediction.classes) == 11 and "joy" not in b.video.prediction.classes
    assert a.classes is not b.classes and a.clips is not b.clips


def test_live_step_ring_buffer(predictor):
    session = app.Session()
    buffer = app.LiveBuffer()
    T = predictor.config.num_frames
    for frame in moving_face_frames(T + 3, size=(480, 640)):
        label, fig, info, buffer = app.live_step(frame, buffer, session)
    assert len(buffer.embeddings) == T and buffer.frames == T + 3
    assert set(label) == set(preset("dfew-7").names) and abs(sum(label.values()) - 1) < 1e-4
    assert "frames/s" in info and f"buffer {T}/{T}" in info
    assert len(fig.data) == 7 and len(fig.data[0].x) == T + 3
    session.classes = ClassSet.parse(CUSTOM_YAML)  # a class change restarts the buffer
    label, _, _, buffer = app.live_step(next(moving_face_frames(1)), buffer, session)
    assert set(label) == {"joy", "calm", "worry"} and len(buffer.embeddings) == 1


def test_explorer_projects_clips_and_prototypes(video, tmp_path, monkeypatch):
    pytest.importorskip("emoclip.explore")
    example = write_video(tmp_path / "example.webm", moving_face_frames(24, size=(240, 320), seed=5), fps=12)
    monkeypatch.setattr(app, "EXAMPLES", [example])
    session = _analysed(video)
    session = app.add_compound(["happiness", "surprise"], "", "delighted", session)[0]
    session, fig, dropdown, message = app.explore("t-SNE", True, None, session, progress=no_progress)
    kinds = [p.kind for p in session.points]
    assert kinds == ["clip", "example"] + ["class"] * 7 + ["compound"]
    assert "2 clip(s)" in message and fig.data and session.coords.shape == (10, 2)
    assert "example.webm" in session.points[1].hover and session.points[1].media == str(example)
    session, *_ = app.explore("PCA", False, None, session, progress=no_progress)
    clip_id = session.points[0].id
    rows, media, info, picked = app.pick_point(clip_id, session)
    assert media == video and rows and all(-1.0001 <= r[3] <= 1.0001 for r in rows)
    assert picked.layout.meta["selected"] == 0
    exported = app.export_embeddings(session)
    again, *_ = app.explore("PCA", False, exported, session, progress=no_progress)
    assert sum(p.kind == "uploaded" for p in again.points) >= 1


# ------------------------------------------------------------------------- served app + client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    app.MODELS.wait_ready(120)
    _, url, _ = app.demo.launch(prevent_thread_lock=True, quiet=True, server_name="127.0.0.1",
                                server_port=_free_port(), **app.launch_options())
    yield url
    app.demo.close()


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    return Client(server, verbose=False)


def test_classify_video_endpoint_with_custom_classes(client, video):
    from gradio_client import handle_file

    result = client.predict(handle_file(video), CUSTOM_YAML, api_name="/classify_video")
    assert result["model"] == MODEL
    assert list(result["probabilities"]) == ["joy", "calm", "worry"]
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-4
    assert result["top"] in ("joy", "calm", "worry")
    assert result["timeline"] and set(result["timeline"][0]["probabilities"]) == {"joy", "calm", "worry"}
    assert result["faces"]["frames_with_face"] == 16 and result["faces"]["frames_without_face"] == 0


def test_classify_video_endpoint_defaults_and_errors(client, video, tmp_path):
    from gradio_client import handle_file

    result = client.predict(handle_file(video), "", api_name="/classify_video")
    assert list(result["probabilities"]) == preset("dfew-7").names
    with pytest.raises(Exception, match="YAML error at line 1, column"):
        client.predict(handle_file(video), "classes: [unclosed", api_name="/classify_video")
    with pytest.raises(Exception, match="same name as class"):
        client.predict(handle_file(video), "classes:\n  a: x\n  A: y\n", api_name="/classify_video")
    bad = tmp_path / "corrupt.webm"
    bad.write_bytes(b"\x1a\x45\xdf\xa3" + os.urandom(3000))
    with pytest.raises(Exception, match="corrupt.webm") as info:
        client.predict(handle_file(str(bad)), "", api_name="/classify_video")
    assert "/tmp/gradio" not in str(info.value)


def test_two_clients_keep_their_own_class_sets(server, video):
    from gradio_client import Client, handle_file

    a, b = Client(server, verbose=False), Client(server, verbose=False)
    a.predict(CUSTOM_YAML, api_name="/set_classes")
    b.predict("mafw-11", api_name="/reset_classes")
    ra = a.predict(handle_file(video), "", api_name="/classify_video")
    rb = b.predict(handle_file(video), "", api_name="/classify_video")
    assert list(ra["probabilities"]) == ["joy", "calm", "worry"]
    assert len(rb["probabilities"]) == 11 and "joy" not in rb["probabilities"]


def test_analyse_endpoint_and_page(client, server, video):
    from urllib.request import urlopen

    from gradio_client import handle_file

    out = client.predict(handle_file(video), "center", api_name="/analyse")
    summary, label = out[0], out[1]
    assert "Top emotion" in summary and label["label"] in preset("dfew-7").names
    with urlopen(server, timeout=10) as page:
        assert page.status == 200 and "EmoCLIP" in page.read().decode("utf-8", "replace")


def test_model_manager_serves_a_quick_model_while_the_best_one_downloads(monkeypatch):
    import threading
    import time
    from types import SimpleNamespace

    import emoclip
    from app_support import ModelManager
    from emoclip.factory import ModelSource

    gate, loaded = threading.Event(), []

    def fake_load(name, **_):
        if name == "emoclip-vitb32":
            assert gate.wait(20)  # a slow download
        loaded.append(name)
        return SimpleNamespace(config=SimpleNamespace(summary=f"{name} summary"), source=f"from {name}")

    monkeypatch.setattr(emoclip, "load_model", fake_load)
    manager = ModelManager([])
    manager._sources = {
        "emoclip-vitb32": ModelSource("emoclip-vitb32", True, "hub-download", "hf-hub:a/b", "the paper's model"),
        "clip-vitb32": ModelSource("clip-vitb32", False, "missing", "", "baseline", ("offline",)),
        "emoclip-synthetic-tiny": ModelSource("emoclip-synthetic-tiny", True, "local", "/w/t.safetensors", "toy"),
    }
    t0 = time.monotonic()
    manager.start()
    assert time.monotonic() - t0 < 0.5  # start() never blocks
    assert manager.wait_ready(20) and manager.default == "emoclip-synthetic-tiny"
    assert manager.status("emoclip-vitb32").state == "loading" and manager.busy()
    assert manager.status("clip-vitb32").state == "missing"
    gate.set()
    manager._thread.join(20)
    assert loaded == ["emoclip-synthetic-tiny", "emoclip-vitb32"]
    assert manager.default == "emoclip-vitb32" and not manager.busy()
    assert manager.status("emoclip-vitb32").where == "from emoclip-vitb32"


def test_status_says_plainly_when_no_model_can_be_loaded(monkeypatch):
    from app_support import ModelManager
    from emoclip.factory import ModelSource

    manager = ModelManager([])
    manager._sources = {n: ModelSource(n, False, "missing", "", f"{n} summary", ("offline",))
                        for n in ("emoclip-vitb32", "clip-vitb32", "emoclip-synthetic-tiny")}
    monkeypatch.setattr(app, "MODELS", manager)
    manager.start()
    manager._thread.join(10)
    assert not manager.wait_ready(1) and manager.default is None
    status = app._status_markdown(app.Session())
    assert "No model could be loaded" in status and "emoclip convert" in status
    with pytest.raises(gr.Error, match="No model could be loaded"):
        app.analyse("x.webm", "center", app.Session(), progress=no_progress)
    assert "missing" in app._model_card(app.Session())


def test_toy_model_from_a_weights_folder(tmp_path, monkeypatch, video):
    """A synthetic-tiny checkpoint (random weights here) is found, labelled a toy, and runs."""
    import torch

    from app_support import ModelManager
    from emoclip.model import EmoCLIP
    from emoclip.model_config import EmoCLIPConfig, packaged_config_dir
    from emoclip.weights import save_checkpoint

    config = EmoCLIPConfig.load(packaged_config_dir() / "emoclip-synthetic-tiny.json").replace(
        classes={"name": "synthetic", "classes": {"beaming": "a wide smile", "glum": "a frown"}})
    torch.manual_seed(0)
    save_checkpoint(EmoCLIP(config).state_dict(), config, tmp_path / "emoclip-synthetic-tiny.safetensors")
    manager = ModelManager([tmp_path])
    monkeypatch.setattr(app, "MODELS", manager)
    manager.start()
    assert manager.wait_ready(120) and manager.default == "emoclip-synthetic-tiny"
    session = app.init_page(app.Session())[0]
    assert "This is a toy" in app._status_markdown(session) and "cartoon" in app._status_markdown(session)
    out = app.analyse(video, "center", session, progress=no_progress)
    assert set(out[2]) == {"beaming", "glum"}
    assert "no face detection" in out[1] and "toy/test model" in out[8]
    label, _, info, _ = app.live_step(next(moving_face_frames(1)), app.LiveBuffer(), session)
    assert set(label) == {"beaming", "glum"} and "whole frames" in info
    manager.close()


def test_a_better_model_becoming_ready_does_not_pull_results_from_under_a_session(
        monkeypatch, predictor, video):
    from app_support import ModelManager

    manager = ModelManager([], include_test_model=True)
    manager.inject(MODEL, predictor.model)
    monkeypatch.setattr(app, "MODELS", manager)
    busy = app.analyse(video, "center", app.Session(), progress=no_progress)[0]
    idle = app.init_page(app.Session())[0]
    manager.inject("emoclip-synthetic-tiny", predictor.model)  # a better model finished loading
    manager._default = "emoclip-synthetic-tiny"
    out = app.poll_models(busy)
    assert out[0].model == MODEL and "emoclip-synthetic-tiny" in out[1] and "Model menu" in out[1]
    out = app.poll_models(idle)
    assert out[0].model is None and out[0].shown_default == "emoclip-synthetic-tiny"
    assert "This is a toy" in out[1] and out[5][0][0] == "happiness"  # editor refreshed


def test_face_coverage_warning_is_a_banner_above_the_result(tmp_path):
    from emoclip.testing.media import blank_frames

    path = write_video(tmp_path / "no-face.webm", blank_frames(24, (240, 320)), fps=12)
    out = app.analyse(str(path), "center", app.Session(), progress=no_progress)
    warnings = out[8]
    assert "⚠" in warnings and "no face was found in any of the" in warnings
    assert "does not describe a person" in warnings
    demo = app.build_demo()
    ids = [getattr(b, "elem_id", None) for b in demo.blocks.values()]
    banner = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "result-warnings")
    assert "warning-banner" in banner.elem_classes and ".warning-banner" in app.CSS
    assert ids.index("result-warnings") < ids.index("top-label")  # seen before the label


# ------------------------------------------------------------------------- photos (issue #10)


@pytest.fixture(scope="module")
def group_jpg(tmp_path_factory) -> str:
    from test_images import group_photo

    from PIL import Image

    path = tmp_path_factory.mktemp("photos") / "group.jpg"
    Image.fromarray(group_photo()).save(path, quality=90)
    return str(path)


def test_analyse_photo_draws_numbered_boxes_and_lists_every_face(group_jpg):
    session = app.Session()
    out = app.analyse_photo(group_jpg, "center", session, progress=no_progress)
    session, summary, label, *_rest = out[:11]
    drawn, faces = out[11], out[12]
    pred = session.video.prediction
    assert pred.video["kind"] == "image" and len(pred.tracks) == 5
    assert "5 faces found" in summary and r"photo *group\.jpg*" in summary
    assert drawn.dtype.name == "uint8" and drawn.shape == (720, 1280, 3)  # shown at most 1280 wide
    # the first box is drawn in the first colour where the largest face is
    from app_support import FACE_COLOURS

    x, y, w, h = (v * 1280 / 1920 for v in pred.tracks[0].box)
    edge = drawn[int(y + h / 2), int(x) - 1 : int(x) + 2]
    assert any(tuple(px) == FACE_COLOURS[0] for px in edge)
    assert [line.split(".")[0] for line in faces.splitlines() if line[:1].isdigit()] == ["1", "2", "3", "4", "5"]
    gallery = out[5]
    assert [caption for _, caption in gallery] == [f"face {i}" for i in range(1, 6)]
    # class edits re-score the photo like a video
    assert set(label) == set(pred.classes)


def test_analyse_photo_errors(tmp_path, video):
    with pytest.raises(gr.Error, match="Upload a photo"):
        app.analyse_photo(None, "center", app.Session(), progress=no_progress)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    with pytest.raises(gr.Error, match="broken.png") as info:
        app.analyse_photo(str(bad), "center", app.Session(), progress=no_progress)
    assert str(tmp_path) not in str(info.value)
    with pytest.raises(gr.Error, match="is a video"):
        app.analyse_photo(video, "center", app.Session(), progress=no_progress)


def test_classify_image_endpoint(client, group_jpg):
    from gradio_client import handle_file

    result = client.predict(handle_file(group_jpg), CUSTOM_YAML, api_name="/classify_image")
    assert result["video"]["kind"] == "image" and result["timeline"] == []
    assert len(result["tracks"]) == 5 and all(len(t["box"]) == 4 for t in result["tracks"])
    widths = [t["box"][2] for t in result["tracks"]]
    assert widths == sorted(widths, reverse=True)
    assert result["probabilities"] == result["tracks"][0]["probabilities"]
    same = client.predict(handle_file(group_jpg), CUSTOM_YAML, api_name="/classify_video")  # accepts photos too
    assert same["tracks"] == result["tracks"]
