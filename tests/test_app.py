"""The Gradio app: handlers called directly, and the served app through gradio_client.

Runs with the random-weight test model (EMOCLIP_APP_TEST_MODEL=1, EMOCLIP_APP_MODEL=test-emoclip-tiny),
offline, on generated videos.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

os.environ["EMOCLIP_APP_TEST_MODEL"] = "1"
os.environ["EMOCLIP_APP_MODEL"] = "test-emoclip-tiny"

import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

import gradio as gr  # noqa: E402
from served_demo import close_demo  # noqa: E402

import app  # noqa: E402 - the Space's entry point: its module-level `demo`
import emoclip_app  # noqa: E402
from emoclip.classes import ClassSet, class_rows, preset  # noqa: E402
from emoclip.testing.media import moving_face_frames, write_video  # noqa: E402
from emoclip_app import header, models, settings  # noqa: E402
from emoclip_app.state import LiveBuffer, Session  # noqa: E402
from emoclip_app.tabs import (  # noqa: E402
    about,
    analyse as analyse_tab,  # noqa: E402
    classes as classes_tab,  # noqa: E402
    compounds as compounds_tab,  # noqa: E402
    explorer,
    live,
)

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
    return models.MODELS.predictor(MODEL, "center")


def _analysed(video: str) -> Session:
    session = Session()
    out = analyse_tab.analyse(video, "center", session, progress=no_progress)
    return out.session


# ---------------------------------------------------------------------------- import & models


def test_import_does_no_model_work():
    code = (
        "import sys, app; from emoclip_app.models import MODELS; "
        "assert MODELS.default is None and not MODELS.loading(); "
        "print('torch' in sys.modules, 'open_clip' in sys.modules)"
    )
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split()[-2:] == ["False", "False"]


def test_model_selection_and_polling():
    session = Session()
    with pytest.raises(gr.Error, match="could not be loaded"):
        header.select_model("emoclip-vitb32", session)  # no weights offline
    assert session.model is None
    out = header.select_model(MODEL, session)
    assert (
        out.session.model == MODEL
        and "random weights" in out.status
        and out.table[0][0] == "happiness"
    )
    out = header.poll_models(Session())  # the default model is ready: the editor is filled
    assert out.session.shown_default == MODEL and out.table[0][0] == "happiness"
    out = header.init_page(Session())
    assert "Model:" in out.status and out.model.value == MODEL


def test_every_public_event_has_an_api_name():
    deps = app.demo.config["dependencies"]
    public = [d for d in deps if d.get("api_visibility", "public") == "public"]
    names = {d["api_name"] for d in public}
    assert all(d["api_name"] for d in public)
    assert {
        "classify_video",
        "analyse",
        "set_classes",
        "add_compound",
        "explore",
        "live_step",
    } <= names


def test_background_loader_picks_the_forced_model_and_the_status_says_what_it_is():
    models.MODELS.start()
    assert models.MODELS.wait_ready(120)
    assert models.MODELS.default == MODEL
    status = header.status_markdown(Session())
    assert "test" in status and "random weights" in status
    toy = header.status_markdown(Session(model="emoclip-synthetic-tiny"))
    assert "toy" in toy and "cartoon" in toy and "not** a recogniser of real faces" in toy
    card = about.model_card(Session())
    assert "emoclip-vitb32" in card and "parameters" in card


# ------------------------------------------------------------------------------- analyse


def test_analyse_gives_every_result(video):
    session = Session()
    out = analyse_tab.analyse(video, "center", session, progress=no_progress)
    session, summary, label, bars = out.session, out.summary, out.label, out.bars
    timeline, gallery, files, timings, warnings = (
        out.timeline,
        out.gallery,
        out.files,
        out.timings,
        out.warnings,
    )
    names = preset("dfew-7").names
    assert set(label) == set(names) and abs(sum(label.values()) - 1) < 1e-4
    assert "Top emotion" in summary and "16 of 16 sampled frames had a face" in summary
    assert out.timeline_box["visible"] is True  # shown again after a photo hid it
    lines = [t for t in timeline.data if t.name != "key moments"]  # one line per class
    assert len(lines) == len(names) and all(
        len(t.x) == len(session.video.prediction.timeline) for t in lines
    )
    evidence = session.video.prediction.evidence
    marked = len(evidence.key_moments) + (evidence.against is not None)
    assert len(timeline.data) == len(names) + (marked > 0)
    assert len(timeline.layout.images) == marked  # each marked moment's crop above the plot
    assert "Best-matching description" in out.evidence and "points ahead of" in out.evidence
    assert len(bars.data[0].y) == len(names)
    assert gallery and gallery[0][0].shape == (96, 96, 3)
    data = json.loads(Path(files[0]).read_text())
    assert data["top"] == session.video.prediction.top and Path(files[1]).read_text().startswith(
        "video,scope"
    )
    assert "Frames encoded: 16" in timings and "re-scored without re-encoding: 0" in timings
    assert "random" in warnings or "toy/test" in warnings
    assert len(session.clips) == 1


def test_editing_a_description_rescores_without_reencoding(video, predictor, monkeypatch):
    session = _analysed(video)
    before = dict(session.video.prediction.probabilities)
    frames = session.frames_encoded

    def boom(*_):
        raise AssertionError("a frame was re-encoded")

    monkeypatch.setattr(predictor.parts.encoder, "encode", boom)
    rows = class_rows(models.classes_of(session))
    rows[0][1] = "A face beaming with delight, eyes crinkled"
    out = classes_tab.edit_table(rows, session)
    session = out.session
    after = session.video.prediction.probabilities
    assert after != before and set(after) == set(before)
    assert session.frames_encoded == frames and session.rescored == 1
    assert "re-scored without re-encoding: 1" in out.timings
    assert out.table == rows and "7 classes" in out.message


def test_class_edits_add_rename_remove_reset_and_errors(video):
    session = _analysed(video)
    session = classes_tab.add_class(
        "contempt", "one corner of the mouth raised\na sneer", session
    ).session
    assert session.classes.names[-1] == "contempt"
    assert session.classes.classes[-1].descriptions == ("one corner of the mouth raised", "a sneer")
    assert "contempt" in session.video.prediction.probabilities
    session = compounds_tab.add_compound(["happiness", "contempt"], "2, 1", "smug", session).session
    session = classes_tab.rename_class("contempt", "scorn", session).session
    assert session.classes.compounds[0].parts == ("happiness", "scorn")
    session = classes_tab.remove_class("scorn", session).session
    assert "scorn" not in session.classes.names and not session.classes.compounds
    with pytest.raises(gr.Error, match="no class or compound named"):
        classes_tab.remove_class("nothing-here", session)
    with pytest.raises(gr.Error, match="type at least one description"):
        classes_tab.add_class("x", "   ", session)
    session = classes_tab.reset_classes("mafw-11", session).session
    assert len(session.classes.classes) == 11 and len(session.video.prediction.classes) == 11
    session = classes_tab.reset_classes(settings.MODEL_DEFAULT_PRESET, session).session
    assert session.classes.names == preset("dfew-7").names


def test_bad_table_edit_keeps_the_table_and_reports(video):
    session = _analysed(video)
    rows = class_rows(models.classes_of(session))
    rows.append(["", "a description without a class"])
    out = classes_tab.edit_table(rows, session)  # said once: in the message line, no toast
    skip = type(gr.skip())
    assert isinstance(out.table, skip) and isinstance(
        out.yaml, skip
    )  # the table and YAML keep their text
    assert (
        "Not applied" in out.message
        and "has no class name" in out.message
        and session.classes is None
    )


def test_yaml_apply_validate_import_export(video, tmp_path):
    session = _analysed(video)
    assert "Valid" in classes_tab.validate_classes(CUSTOM_YAML, session)
    message = classes_tab.validate_classes("classes: [unclosed", session)
    assert "Not applied" in message and "line 1" in message
    with pytest.raises(gr.Error, match="YAML error at line 1"):
        classes_tab.set_classes("classes: [unclosed", session)
    with pytest.raises(gr.Error, match="empty"):
        classes_tab.set_classes("  ", session)
    session = classes_tab.set_classes(CUSTOM_YAML, session).session
    assert session.classes.names == ["joy", "calm", "worry"]
    assert sorted(session.video.prediction.probabilities) == ["calm", "joy", "worry"]
    exported = classes_tab.export_classes("json", session)
    assert ClassSet.load(exported).names == ["joy", "calm", "worry"]
    other = tmp_path / "other.yaml"
    preset("mafw-11").save(other)
    session = classes_tab.import_classes(str(other), session).session
    assert len(session.classes.classes) == 11


def test_long_description_warns_about_truncation(video):
    session = _analysed(video)
    long_text = " ".join(["a very detailed description of a smiling face"] * 20)
    out = classes_tab.add_class("verbose", long_text, session)
    assert "77" in out.message or "truncat" in out.message.lower()


def test_compound_preview_and_score(video):
    session = _analysed(video)
    text = compounds_tab.preview_compound(["happiness", "surprise"], "", "", session)
    assert (
        "happiness + surprise" in text
        and "Nearest classes" in text
        and "Score on the current video" in text
    )
    assert "Choose two or more" in compounds_tab.preview_compound(["happiness"], "", "", session)
    assert "one weight per chosen class" in compounds_tab.preview_compound(
        ["happiness", "fear"], "1", "x", session
    )
    out = compounds_tab.add_compound(["happiness", "surprise"], "", "delighted", session)
    session = out.session
    assert "delighted" in session.video.prediction.probabilities
    assert "Added compound" in out.preview
    session = compounds_tab.remove_compound("delighted", session).session
    assert "delighted" not in session.video.prediction.probabilities


def test_user_text_is_escaped(video):
    session = _analysed(video)
    evil = "<img src=x onerror=alert(1)>"
    out = classes_tab.add_class(evil, "**bold** <script>alert(2)</script>", session)
    session = out.session
    for markdown in (
        out.message,
        compounds_tab.preview_compound(["happiness", evil], "", "<b>mix</b>", session),
    ):
        assert "<img" not in markdown and "<script" not in markdown and "<b>" not in markdown
    timeline = out.timeline
    assert all("<" not in trace.name for trace in timeline.data)
    assert evil in out.label  # gr.Label shows it as text


def test_errors_become_gr_error(video, predictor, tmp_path, monkeypatch):
    bad = tmp_path / "bad.webm"
    bad.write_bytes(os.urandom(4000))
    with pytest.raises(gr.Error, match="bad.webm") as info:
        analyse_tab.analyse(str(bad), "center", Session(), progress=no_progress)
    assert str(tmp_path) not in str(info.value)
    with pytest.raises(gr.Error, match="Upload or record"):
        analyse_tab.analyse(None, "center", Session(), progress=no_progress)
    from emoclip.inference.predictor import EmotionPredictor
    from emoclip.media.inputs import VideoLimits

    limited = EmotionPredictor(
        predictor.model, predictor.settings, limits=VideoLimits(max_duration=1.0)
    )
    monkeypatch.setattr(analyse_tab, "predictor", lambda name, fallback: limited)
    other = tmp_path / "long.webm"
    write_video(other, moving_face_frames(30, size=(240, 320), seed=3), fps=12)
    with pytest.raises(gr.Error, match="limit is 1 s"):
        analyse_tab.analyse(str(other), "center", Session(), progress=no_progress)


def test_two_sessions_do_not_share_classes_or_results(video):
    a, b = Session(), Session()
    a = classes_tab.set_classes(CUSTOM_YAML, a).session
    b = classes_tab.reset_classes("mafw-11", b).session
    a = analyse_tab.analyse(video, "center", a, progress=no_progress).session
    b = analyse_tab.analyse(video, "center", b, progress=no_progress).session
    assert a.video.prediction.classes == ["joy", "calm", "worry"]
    assert len(b.video.prediction.classes) == 11 and "joy" not in b.video.prediction.classes
    assert a.classes is not b.classes and a.clips is not b.clips


def test_live_step_ring_buffer(predictor):
    session = Session()
    buffer = LiveBuffer()
    T = predictor.parts.config.num_frames
    skip = type(gr.skip())
    figures = []
    for frame in moving_face_frames(T + 3, size=(480, 640)):
        out = live.live_step(frame, buffer, session)
        label, fig, info, buffer = out.live_label, out.live_plot, out.live_info, out.live_buffer
        if not isinstance(fig, skip):
            figures.append((fig, buffer.times[-1]))
    assert len(buffer.window) == T and buffer.window.frames == T + 3
    assert set(label) == set(preset("dfew-7").names) and abs(sum(label.values()) - 1) < 1e-4
    assert "frames/s" in info and "ms per frame" in info and f"buffer {T}/{T}" in info
    assert f"frame #{T + 3}" in info
    # the timeline is redrawn at most once per PLOT_EVERY seconds (the page's drawing is slow)
    drawn_at = [t for _, t in figures]
    assert drawn_at and all(b - a >= live.PLOT_EVERY - 1e-6 for a, b in zip(drawn_at, drawn_at[1:]))
    fig, t = figures[-1]
    assert len(fig.data) == 7 and len(fig.data[0].x) == buffer.times.index(t) + 1
    session.classes = ClassSet.parse(CUSTOM_YAML)  # a class change restarts the buffer
    out = live.live_step(next(moving_face_frames(1)), buffer, session)
    label, buffer = out.live_label, out.live_buffer
    assert set(label) == {"joy", "calm", "worry"} and len(buffer.window) == 1


def test_explorer_projects_clips_and_prototypes(video, tmp_path, monkeypatch):
    example = write_video(
        tmp_path / "example.webm", moving_face_frames(24, size=(240, 320), seed=5), fps=12
    )
    monkeypatch.setattr(settings, "EXAMPLES", [example])
    session = _analysed(video)
    session = compounds_tab.add_compound(
        ["happiness", "surprise"], "", "delighted", session
    ).session
    out = explorer.explore("t-SNE", True, None, session, progress=no_progress)
    session, fig, message = out.session, out.latent_plot, out.explore_info
    kinds = [p.kind for p in session.points]
    assert kinds == ["clip", "example"] + ["class"] * 7 + ["compound"]
    assert "2 clip(s)" in message and fig.data and session.coords.shape == (10, 2)
    assert "example.webm" in session.points[1].hover and session.points[1].media == str(example)
    session = explorer.explore("PCA", False, None, session, progress=no_progress).session
    clip_id = session.points[0].id
    out = explorer.pick_point(clip_id, session)
    rows, media, picked = out.neighbours, out.point_video, out.latent_plot
    assert media == video and rows and all(-1.0001 <= r[3] <= 1.0001 for r in rows)
    assert picked.layout.meta["selected"] == 0
    exported = explorer.export_embeddings(session)
    again = explorer.explore("PCA", False, exported, session, progress=no_progress).session
    assert sum(p.kind == "uploaded" for p in again.points) >= 1


# ------------------------------------------------------------------------- served app + client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    models.MODELS.wait_ready(120)
    _, url, _ = app.demo.launch(
        prevent_thread_lock=True,
        quiet=True,
        server_name="127.0.0.1",
        server_port=_free_port(),
        **emoclip_app.launch_options(),
    )
    yield url
    close_demo(app.demo)


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
    assert result["timeline"] and set(result["timeline"][0]["probabilities"]) == {
        "joy",
        "calm",
        "worry",
    }
    assert result["faces"]["frames_with_face"] == 16 and result["faces"]["frames_without_face"] == 0
    why = result["evidence"]  # the evidence the library, CLI and batch give, through the API
    assert why["top"] == result["top"] and why["runner_up"] in ("joy", "calm", "worry")
    assert {w["name"] for w in why["words"]} == {"joy", "calm", "worry"}
    ranked = sorted(result["probabilities"].values(), reverse=True)
    assert why["margin"] == pytest.approx(ranked[0] - ranked[1], abs=1e-5)
    assert len(why["moments"]) > 0 and len(why["key_moments"]) <= 3


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
    from emoclip.weights.registry import ModelSource
    from emoclip_app.models import ModelManager

    gate, loaded = threading.Event(), []

    def fake_load(name, **_):
        if name == "emoclip-vitb32":
            assert gate.wait(20)  # a slow download
        loaded.append(name)
        return SimpleNamespace(
            config=SimpleNamespace(summary=f"{name} summary"), source=f"from {name}"
        )

    monkeypatch.setattr(emoclip, "load_model", fake_load)
    sources = {
        "emoclip-vitb32": ModelSource(
            "emoclip-vitb32", True, "hub-download", "hf-hub:a/b", "the paper's model"
        ),
        "clip-vitb32": ModelSource("clip-vitb32", False, "missing", "", "baseline", ("offline",)),
        "emoclip-synthetic-tiny": ModelSource(
            "emoclip-synthetic-tiny", True, "local", "/w/t.safetensors", "toy"
        ),
    }
    manager = ModelManager([], sources=sources)
    assert manager.sources() == sources
    t0 = time.monotonic()
    manager.start()
    assert time.monotonic() - t0 < 0.5  # start() never blocks
    assert manager.wait_ready(20) and manager.default == "emoclip-synthetic-tiny"
    assert manager.status("emoclip-vitb32").state == "loading" and manager.busy()
    assert manager.status("clip-vitb32").state == "missing"
    assert not manager.wait_idle(0.1)  # still downloading
    gate.set()
    assert manager.wait_idle(20)
    assert loaded == ["emoclip-synthetic-tiny", "emoclip-vitb32"]
    assert manager.default == "emoclip-vitb32" and not manager.busy()
    assert manager.status("emoclip-vitb32").where == "from emoclip-vitb32"


def test_status_says_plainly_when_no_model_can_be_loaded(monkeypatch):
    from emoclip.weights.registry import ModelSource
    from emoclip_app.models import ModelManager

    manager = ModelManager(
        [],
        sources={
            n: ModelSource(n, False, "missing", "", f"{n} summary", ("offline",))
            for n in ("emoclip-vitb32", "clip-vitb32", "emoclip-synthetic-tiny")
        },
    )
    monkeypatch.setattr(models, "MODELS", manager)
    manager.start()
    assert manager.wait_idle(10)
    assert not manager.wait_ready(1) and manager.default is None
    status = header.status_markdown(Session())
    assert "No model could be loaded" in status and "emoclip convert" in status
    with pytest.raises(gr.Error, match="No model could be loaded"):
        analyse_tab.analyse("x.webm", "center", Session(), progress=no_progress)
    assert "missing" in about.model_card(Session())


def test_toy_model_from_a_weights_folder(tmp_path, monkeypatch, video):
    """A synthetic-tiny checkpoint (random weights here) is found, labelled a toy, and runs."""
    import torch

    from emoclip.model.config import EmoCLIPConfig, packaged_config_dir
    from emoclip.model.network import EmoCLIP
    from emoclip.weights.files import save_checkpoint
    from emoclip_app.models import ModelManager

    config = EmoCLIPConfig.load(packaged_config_dir() / "emoclip-synthetic-tiny.json").replace(
        classes={"name": "synthetic", "classes": {"beaming": "a wide smile", "glum": "a frown"}}
    )
    torch.manual_seed(0)
    save_checkpoint(
        EmoCLIP(config).state_dict(), config, tmp_path / "emoclip-synthetic-tiny.safetensors"
    )
    manager = ModelManager([tmp_path])
    monkeypatch.setattr(models, "MODELS", manager)
    manager.start()
    assert manager.wait_ready(120) and manager.default == "emoclip-synthetic-tiny"
    session = header.init_page(Session()).session
    assert "This is a toy" in header.status_markdown(
        session
    ) and "cartoon" in header.status_markdown(session)
    out = analyse_tab.analyse(video, "center", session, progress=no_progress)
    assert set(out.label) == {"beaming", "glum"}
    assert "no face detection" in out.summary and "toy/test model" in out.warnings
    assert "detect" not in out.timings  # no detection ran, so no detect stage is listed
    change = header.poll_models(session)  # the controls say what this model does not use
    assert change.fallback.interactive is False and "Not used by this model" in change.fallback.info
    assert "whole frames" in change.gallery.label and "toy/test model" in change.live_note
    out = live.live_step(next(moving_face_frames(1)), LiveBuffer(), session)
    label, info = out.live_label, out.live_info
    assert set(label) == {"beaming", "glum"} and "whole frames" in info
    long_text = " ".join(["a smiling face with raised cheeks"] * 6)  # ~40 tokens: > 32, < 77
    out = classes_tab.add_class("verbose", long_text, session)
    assert "the text encoder reads only the first 32" in out.message
    manager.close()


def test_a_better_model_becoming_ready_does_not_pull_results_from_under_a_session(
    monkeypatch, predictor, video
):
    from emoclip_app.models import ModelManager

    manager = ModelManager([], include_test_model=True)
    manager.inject(MODEL, predictor.model)
    assert manager.default == MODEL
    monkeypatch.setattr(models, "MODELS", manager)
    busy = analyse_tab.analyse(video, "center", Session(), progress=no_progress).session
    idle = header.init_page(Session()).session
    manager.inject("emoclip-synthetic-tiny", predictor.model)  # a better model finished loading
    assert manager.default == "emoclip-synthetic-tiny"  # it ranks above the test model
    out = header.poll_models(busy)
    assert (
        out.session.model == MODEL
        and "emoclip-synthetic-tiny" in out.status
        and "Model menu" in out.status
    )
    out = header.poll_models(idle)
    assert out.session.model is None and out.session.shown_default == "emoclip-synthetic-tiny"
    assert "This is a toy" in out.status and out.table[0][0] == "happiness"  # editor refreshed


def test_face_coverage_warning_is_a_banner_above_the_result(tmp_path):
    from emoclip.testing.media import blank_frames

    path = write_video(tmp_path / "no-face.webm", blank_frames(24, (240, 320)), fps=12)
    out = analyse_tab.analyse(str(path), "center", Session(), progress=no_progress)
    warnings = out.warnings
    assert "⚠" in warnings and "no face was found in any of the" in warnings
    assert "does not describe a person" in warnings
    demo = emoclip_app.build_demo()
    ids = [getattr(b, "elem_id", None) for b in demo.blocks.values()]
    banner = next(
        b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "result-warnings"
    )
    assert "warning-banner" in banner.elem_classes and ".warning-banner" in emoclip_app.demo.css()
    assert ids.index("result-warnings") < ids.index("top-label")  # seen before the label


# ------------------------------------------------------------------------- photos (issue #10)


@pytest.fixture(scope="module")
def group_jpg(tmp_path_factory) -> str:
    from PIL import Image
    from test_images import group_photo

    path = tmp_path_factory.mktemp("photos") / "group.jpg"
    Image.fromarray(group_photo()).save(path, quality=90)
    return str(path)


def test_analyse_photo_draws_numbered_boxes_and_lists_every_face(group_jpg):
    session = Session()
    out = analyse_tab.analyse_photo(group_jpg, "center", session, progress=no_progress)
    session, summary, label = out.session, out.summary, out.label
    drawn, faces = out.faces_image, out.faces
    pred = session.video.prediction
    assert pred.video["kind"] == "image" and len(pred.tracks) == 5
    assert "5 faces found" in summary and r"photo *group\.jpg*" in summary
    assert drawn.dtype.name == "uint8" and drawn.shape == (720, 1280, 3)  # shown at most 1280 wide
    # the first box is drawn in the first colour where the largest face is
    from emoclip_app.figures import FACE_COLOURS

    x, y, w, h = (v * 1280 / 1920 for v in pred.tracks[0].box)
    edge = drawn[int(y + h / 2), int(x) - 1 : int(x) + 2]
    assert any(tuple(px) == FACE_COLOURS[0] for px in edge)
    assert "**5 faces**" in faces and "showing face 1" in faces
    table = out.face_table.value  # one row per face, in the faces' order, the first one shown
    assert [row[0] for row in table["data"]] == ["1 (shown)", "2", "3", "4", "5"]
    assert out.face_pick.value == 1 and out.face_pick.visible
    gallery = out.gallery
    assert [caption for _, caption in gallery] == [f"face {i}" for i in range(1, 6)]
    # a photo has no time axis: no timeline is drawn and its box is hidden (issue #20 point 5)
    assert out.timeline is None and out.timeline_text == ""
    assert out.timeline_box["visible"] is False
    # class edits re-score the photo like a video
    assert set(label) == set(pred.classes)


def test_analyse_photo_errors(tmp_path, video):
    with pytest.raises(gr.Error, match="Upload a photo"):
        analyse_tab.analyse_photo(None, "center", Session(), progress=no_progress)
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(300))
    with pytest.raises(gr.Error, match="broken.png") as info:
        analyse_tab.analyse_photo(str(bad), "center", Session(), progress=no_progress)
    assert str(tmp_path) not in str(info.value)
    with pytest.raises(gr.Error, match="is a video"):
        analyse_tab.analyse_photo(video, "center", Session(), progress=no_progress)


def test_classify_image_endpoint(client, group_jpg):
    from gradio_client import handle_file

    result = client.predict(handle_file(group_jpg), CUSTOM_YAML, api_name="/classify_image")
    assert result["video"]["kind"] == "image" and "timeline" not in result
    assert result["scope"] == "face"
    assert len(result["tracks"]) == 5 and all(len(t["box"]) == 4 for t in result["tracks"])
    widths = [t["box"][2] for t in result["tracks"]]
    assert widths == sorted(widths, reverse=True)
    assert result["probabilities"] == result["tracks"][0]["probabilities"]
    same = client.predict(
        handle_file(group_jpg), CUSTOM_YAML, api_name="/classify_video"
    )  # accepts photos too
    assert same["tracks"] == result["tracks"]


def _results_part(path: Path, n: int, dim: int, seed: int, *, drop: str | None = None) -> str:
    """A small ``emoclip batch`` results part: `n` analysed rows with random unit embeddings (dim)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from emoclip.batch.schema import input_schema, result_fields

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, dim))
    emb = centres[rng.integers(0, 4, n)] + 0.3 * rng.normal(size=(n, dim))
    emb = (emb / np.linalg.norm(emb, axis=1, keepdims=True)).astype(np.float32)
    schema = pa.schema([*input_schema(), *result_fields(dim)])
    names = ["happiness", "sadness", "anger"]
    probs = rng.dirichlet(np.ones(3), n).astype(np.float32)
    data = {f.name: [None] * n for f in schema}
    data.update(
        path=[f"/data/clip{seed}_{i}.mp4" for i in range(n)],
        name=[f"clip{seed}_{i}.mp4" for i in range(n)],
        kind=["video"] * n,
        model=["test-emoclip-tiny"] * n,
        config_key=["k"] * n,
        classes=[names] * n,
        top=[names[int(np.argmax(p))] for p in probs],
        probabilities=list(probs),
        embedding=list(emb),
    )
    table = pa.Table.from_pydict(data, schema=schema)
    if drop:
        table = table.drop_columns([drop])
    pq.write_table(table, path)
    return str(path)


def test_explorer_loads_batch_results_parts(video, tmp_path, monkeypatch):
    dim = models.MODELS.predictor(MODEL).model.embed_dim
    parts = [_results_part(tmp_path / f"part-{i}.parquet", 150, dim, seed=i) for i in range(2)]
    monkeypatch.setattr(settings, "MAX_DRAWN_POINTS", 200)  # fewer drawn than loaded
    session = _analysed(video)
    out = explorer.explore("PCA", False, None, session, parts, progress=no_progress)
    session, message = out.session, out.explore_info
    results = [p for p in session.points if p.id.startswith("results ")]
    assert len(results) == 200 and session.coords.shape == (len(session.points), 2)
    assert "**300** clip(s) loaded" in message and "**200** drawn" in message
    assert len(session.collection) == 300 and len(session.collection_index) == 300
    assert len(out.latent_plot.data) >= 2
    picked = results[0]
    out = explorer.pick_point(picked.id, session)
    rows = out.neighbours
    assert len(rows) == 8 and picked.id not in [r[0] for r in rows]
    assert [r[3] for r in rows] == sorted((r[3] for r in rows), reverse=True)
    # the index's answer agrees with a full scan over all 300 loaded clips (+ the other points)
    emb = session.collection.embeddings
    row = session.point_rows[session.points.index(picked)]
    exact = np.sort(emb @ emb[row])[::-1][1]
    assert rows[0][3] >= round(float(exact), 4) - 1e-4
    assert sum(r[0].startswith("results ") for r in rows) >= 6
    # UMAP/t-SNE over a small collection: every point fitted, neighbours still from the index
    out = explorer.explore("t-SNE", False, None, session, parts[:1], progress=no_progress)
    assert "**150** clip(s) loaded" in out.explore_info and "**150** drawn" in out.explore_info

    wrong = _results_part(tmp_path / "wrong.parquet", 10, dim, seed=3, drop="embedding")
    with pytest.raises(gr.Error, match="not an emoclip batch results part"):
        explorer.explore("PCA", False, None, Session(), [parts[0], wrong], progress=no_progress)
    other_dim = _results_part(tmp_path / "other.parquet", 10, dim + 3, seed=4)
    with pytest.raises(gr.Error, match=f"size {dim + 3}.*model's are {dim}"):
        explorer.explore("PCA", False, None, Session(), [other_dim], progress=no_progress)
    junk = tmp_path / "junk.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(gr.Error, match="not a readable Parquet"):
        explorer.explore("PCA", False, None, Session(), [str(junk)], progress=no_progress)
    monkeypatch.setattr(settings, "MAX_RESULT_PARTS", 1)
    with pytest.raises(gr.Error, match="limit of 1"):
        explorer.explore("PCA", False, None, Session(), parts, progress=no_progress)


# ------------------------------------------------------------------- issue #23: as people meet it


def test_a_preset_applies_at_once_and_can_be_undone(video):
    session = _analysed(video)
    out = classes_tab.choose_preset("mafw-11", session)
    assert len(out.session.classes.classes) == 11 and len(out.label) == 11
    assert out.undo_btn.visible and "dfew-7" in out.undo_btn.value
    out = classes_tab.undo_classes(out.session)
    assert out.session.classes.names == preset("dfew-7").names and out.undo_btn.visible is False
    with pytest.raises(gr.Error, match="nothing to undo"):
        classes_tab.undo_classes(out.session)


def test_class_editor_refuses_merges_and_says_what_it_replaces(video):
    session = _analysed(video)
    with pytest.raises(gr.Error, match="already a class or compound with the same name, 'neutral'"):
        classes_tab.rename_class("happiness", "Neutral", session)
    assert models.classes_of(session).names == preset("dfew-7").names  # nothing merged
    session = classes_tab.rename_class("happiness", "Happiness", session).session  # same class
    session = compounds_tab.add_compound(
        ["Happiness", "surprise"], "", "delighted", session
    ).session
    preview = compounds_tab.preview_compound(["Happiness", "fear"], "", "delighted", session)
    assert "replaces the existing compound delighted" in preview
    out = compounds_tab.add_compound(["Happiness", "fear"], "", "delighted", session)
    assert "Replaced compound" in out.preview
    assert out.session.classes.compounds[0].parts == ("Happiness", "fear")


def test_a_blank_name_is_said_once_and_quoted_at_a_word(video):
    session = _analysed(video)
    rows = class_rows(models.classes_of(session))
    rows[0][0] = ""
    out = classes_tab.edit_table(rows, session)
    text = rows[0][1]
    assert out.message.count("has no class name") == 1
    quoted = re.search(r"has no class name: '([^']*)…'", out.message.replace("\\", ""))
    assert quoted and text.startswith(quoted.group(1)) and text[len(quoted.group(1))] == " "


def test_downloads_carry_warnings_classes_and_the_librarys_export(video):
    session = _analysed(video)
    out = analyse_tab.result_values(session)
    data = json.loads(Path(out.files[0]).read_text())
    library = session.video.prediction.to_dict()
    assert set(library) <= set(data)  # the library's own export, all of it
    assert any("toy/test model" in w for w in data["warnings"])
    described = {c["name"] if isinstance(c, dict) else c for c in data["class_set"]["classes"]}
    assert "happiness" in str(described) and "smil" in json.dumps(data["class_set"])


def test_plots_show_the_top_classes_first_and_long_sets_stay_short(video):
    from emoclip_app.figures import TOP_K, bars_figure, bars_summary, timeline_figure

    session = _analysed(video)
    session = classes_tab.set_classes(
        "classes:\n" + "".join(f"  c{i}: face number {i}\n" for i in range(20)), session
    ).session
    pred = session.video.prediction
    bars = bars_figure(pred.probabilities)
    assert len(bars.data[0].y) == TOP_K and bars.data[0].cliponaxis is False
    assert f"top {TOP_K} of 20" in bars.layout.title.text
    assert bars.layout.xaxis.range[1] >= max(pred.probabilities.values())
    assert len(bars_figure(pred.probabilities, show_all=True).data[0].y) == 20
    tl = timeline_figure(pred)
    ranked = sorted(pred.probabilities, key=lambda n: -pred.probabilities[n])
    assert [t.name for t in tl.data[:3]] == ranked[:3]  # the legend starts with the answer
    assert (
        tl.data[0].opacity == 1 and tl.data[10].opacity < 1 and tl.data[15].visible == "legendonly"
    )
    assert bars_summary(pred.probabilities).startswith(f"Most probable: {ranked[0]} ")
    out = analyse_tab.show_all_classes(True, session)
    assert len(out[1].data[0].y) == 20 and out[0].show_all


def test_about_is_a_model_card_and_the_api_sample_uses_the_apps_address():
    from emoclip_app.card import model_card, number
    from emoclip_app.tabs import api

    assert number(0.5) == "0.500" and number(1234) == "1,234" and number(None) == "–"
    card = model_card(MODEL)
    assert "| Text context |" in card and "### All models" in card and "{'" not in card
    assert "http://example.test:9999/" in api.api_help("http://example.test:9999/")


def test_explorer_one_point_per_clip_exports_tagged_and_clicks(video, tmp_path, monkeypatch):
    monkeypatch.setattr(settings, "EXAMPLES", [Path(video)])
    session = _analysed(video)  # the same clip as the example: drawn once
    out = explorer.explore("PCA", True, None, session, progress=no_progress)
    kinds = [p.kind for p in out.session.points]
    assert kinds.count("example") == 1 and kinds.count("clip") == 0
    exported = explorer.export_embeddings(out.session)
    again = explorer.explore("PCA", False, exported, session, progress=no_progress)
    kinds = [p.kind for p in again.session.points]
    assert kinds.count("class") == 7 and kinds.count("uploaded") == 1  # classes not re-imported
    assert "class/compound point(s) were left out" in again.explore_info
    clicked = explorer.click_point("0@123", again.session)
    assert clicked.point_pick == again.session.points[0].id and clicked.neighbours
    assert isinstance(explorer.click_point("x", again.session).point_pick, type(gr.skip()))


def test_class_check_view_heatmap_and_warnings(predictor):
    """The Classes tab's check: a heatmap of the class similarities and the warnings, or the
    parse errors without a heatmap."""
    from emoclip_app.evidence_view import run_check
    from emoclip_app.settings import CLASS_LIMITS

    text = "classes:\n  a: a smiling face\n  b: a frowning face\n  c: " + "calm " * 90 + "\n"
    fig, message = run_check(text, predictor, CLASS_LIMITS)
    assert fig is not None and list(fig.data[0].x) == ["a", "b", "c"]
    assert np.asarray(fig.data[0].z).shape == (3, 3)
    assert "description 1 is cut at the text encoder" in message
    fig, message = run_check("classes:\n  a: ''\n", predictor, CLASS_LIMITS)
    assert fig is None and "✖" in message and "empty" in message
