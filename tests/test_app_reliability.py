"""The served app under hostile use (issue #6, the app half): a public Space, anonymous users.

Through gradio_client (and raw HTTP where a client would not send it) against the app served
in-process with the random-weight test model: bad videos and bad class sets at every entry
point become a message that says what was wrong and the server keeps serving; forged file
paths never reach a handler; many simultaneous sessions with their own class sets get their
own results; temporary files stay bounded; user text is shown as text in a real browser.

The library/CLI half (every bad file through `emoclip`) is tests/test_hostile_*.py.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

os.environ.setdefault("EMOCLIP_APP_TEST_MODEL", "1")
os.environ.setdefault("EMOCLIP_APP_MODEL", "test-emoclip-tiny")

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = Path(__file__).resolve().parent.parent

import gradio as gr  # noqa: E402
import httpx  # noqa: E402
from served_demo import close_demo  # noqa: E402

import emoclip_app  # noqa: E402
from emoclip.media.inputs import VideoLimits  # noqa: E402
from emoclip.testing.media import moving_face_frames, write_video, write_wav  # noqa: E402
from emoclip_app import files, models  # noqa: E402
from emoclip_app.files import OutputDir  # noqa: E402
from emoclip_app.headless import CHROMIUM, launch_chromium  # noqa: E402
from emoclip_app.outputs import Analysed  # noqa: E402

MODEL = "test-emoclip-tiny"
FILES = Analysed._fields.index("files") - 1  # /analyse's outputs, without the session state
FACE = (224, 240)  # (H, W): the smallest frame the face patch fits in
GOOD_YAML = "classes:\n  joy: a broad smile\n  calm: a relaxed face\n  worry: a tense mouth\n"
XSS_NAME = "<img src=x onerror=alert(1)>"
XSS_DESC = "<script>alert(1)</script> **bold**"


# ------------------------------------------------------------------------------------ media


def _raw_video(path: Path, fourcc: str, size: tuple[int, int], n: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (size[1], size[0]))
    assert writer.isOpened(), f"cannot write {path.name}"
    frame = np.full((*size, 3), 100, np.uint8)
    for i in range(n):
        frame[0, 0] = i % 256
        writer.write(frame)
    writer.release()
    return path


def _png(path: Path) -> Path:
    ok, buf = cv2.imencode(".png", np.full((32, 32, 3), 90, np.uint8))
    path.write_bytes(buf.tobytes())
    return path


# name -> (build, expected: "ok" or a keyword the error message must contain)
BAD_VIDEOS = {
    "corrupt.mp4": (lambda p: p.write_bytes(np.random.default_rng(0).bytes(20_000)), "cannot open"),
    "empty.mp4": (lambda p: p.write_bytes(b""), "empty"),
    "text.webm": (lambda p: p.write_bytes(b"not a video at all\n" * 40), "cannot open"),
    "image.mp4": (_png, "ok"),  # a still image, whatever its name: analysed (issue #10)
    "sound.mp4": (write_wav, "cannot open"),
    "one_frame.webm": (lambda p: write_video(p, moving_face_frames(1, size=FACE), 8.0), "ok"),
    "tiny_16x16.webm": (lambda p: _raw_video(p, "VP80", (16, 16), 6, 4.0), "ok"),
    "too_big_1024x768.mp4": (lambda p: _raw_video(p, "mp4v", (768, 1024), 2, 4.0), "megapixels"),
    "too_long_30s.mp4": (lambda p: _raw_video(p, "mp4v", (32, 32), 30, 1.0), "lasts"),
    f"{XSS_NAME} $(id).webm": (
        lambda p: write_video(p, moving_face_frames(6, size=FACE), 8.0),
        "ok",
    ),
}
# Low limits for the battery: 0.5 megapixels, 10 s (the 1024x768 and 30 s clips trip them).
LIMITS = VideoLimits(max_bytes=50_000_000, max_duration=10.0, max_pixels=500_000)

ALIAS_BOMB = (
    "name: [&a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
    + "".join(f"  , &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 9))
    + "]\nclasses:\n  joy: *a8\n  calm: a relaxed face\n"
)
# class-set text -> "ok" or a keyword the message must contain
BAD_CLASS_SETS = {
    "1000 classes": (
        "classes:\n" + "".join(f"  c{i}: d{i}\n" for i in range(1000)),
        "too many classes",
    ),
    "duplicate names": ("classes:\n  Joy: a\n  joy: b\n", "same name"),
    "duplicate keys": ("classes:\n  joy: a\n  joy: b\n", "duplicate key"),
    "empty description": ("classes:\n  joy: ''\n  sad: b\n", "is empty"),
    "10000-char description": (
        "classes:\n  joy: " + "a" * 10_000 + "\n  sad: b\n",
        "10000 characters",
    ),
    "malformed YAML": ("classes: [unclosed", "YAML error"),
    "malformed JSON": ('{"classes": {"a": "b" "c": "d"}}', "JSON syntax error"),
    "alias bomb": (ALIAS_BOMB, "must be text"),  # 9**9 strings if expanded; refused at once
    "JSON list of numbers": ("[1, 2, 3]", "expected a mapping"),
    "emoji CJK RTL": (
        'classes:\n  "😀 喜び": 笑顔の人 😀\n  "غضب": وجه غاضب\n  "a\\u202eb": x\n',
        "ok",
    ),
    "script and img": (
        f"classes:\n  '<script>alert(1)</script>': '{XSS_NAME}'\n  '{XSS_NAME}': '{XSS_DESC}'\n",
        "ok",
    ),
}


# --------------------------------------------------------------------------------- serving


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(demo: gr.Blocks) -> str:
    _, url, _ = demo.launch(
        prevent_thread_lock=True,
        quiet=True,
        server_name="127.0.0.1",
        server_port=_free_port(),
        **emoclip_app.launch_options(),
    )
    return url


@pytest.fixture(scope="module")
def server():
    """A fresh copy of the app's UI (the real handlers, queue and launch options), served here."""
    assert models.MODELS.wait_ready(120)
    demo = emoclip_app.build_demo().queue(**emoclip_app.QUEUE)
    url = _launch(demo)
    yield url
    close_demo(demo)


@pytest.fixture(scope="module")
def videos(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("app-videos")
    out = {
        f"face{i}": write_video(
            folder / f"face{i}.webm", moving_face_frames(16, size=FACE, seed=i), fps=8.0
        )
        for i in range(3)
    }
    bad = tmp_path_factory.mktemp("app-bad-videos")
    for name, (build, _) in BAD_VIDEOS.items():
        build(bad / name)
        out[name] = bad / name
    return out


def _client(url: str):
    from gradio_client import Client

    return Client(url, verbose=False)


def _message(exc: BaseException) -> str:
    return str(exc)


def _expect(call, expected: str, what: str):
    """Run `call`: a result when `expected` is "ok", else an error mentioning `expected`."""
    if expected == "ok":
        return call()
    with pytest.raises(Exception) as info:  # gradio_client's AppError carries the gr.Error text
        call()
    message = _message(info.value)
    assert expected.lower() in message.lower(), f"{what}: {message!r}"
    assert "Traceback" not in message and "/tmp/" not in message, f"{what}: {message!r}"
    return None


def _raw_call(url: str, api: str, data: list) -> tuple[str, object]:
    """POST /gradio_api/call/<api> (no client-side uploads) -> ("complete" | "error", payload)."""
    base = url.rstrip("/") + "/gradio_api"
    r = httpx.post(f"{base}/call/{api}", json={"data": data}, timeout=60)
    if r.status_code != 200:
        return "rejected", r.text
    event_id = r.json()["event_id"]
    text = httpx.get(f"{base}/call/{api}/{event_id}", timeout=120).text
    event, payload = "", None
    for line in text.splitlines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:"):
            payload = json.loads(line.split(":", 1)[1])
    return event, payload


def _assert_serving(client, video: Path) -> None:
    from gradio_client import handle_file

    result = client.predict(handle_file(str(video)), GOOD_YAML, api_name="/classify_video")
    assert list(result["probabilities"]) == ["joy", "calm", "worry"]
    assert abs(sum(result["probabilities"].values()) - 1) < 1e-4


def _markdown_outputs(out: tuple | list) -> list[str]:
    """The Markdown strings among an endpoint's outputs (tables and labels show text as text)."""
    return [
        v
        for v in out
        if isinstance(v, str)
        and ("In use:" in v or "Not applied" in v or "Top emotion" in v or "⚠" in v)
    ]


# ------------------------------------------------------------------------------ 1. battery


def test_bad_videos_through_classify_video_and_analyse(server, videos, monkeypatch):
    from gradio_client import handle_file

    from emoclip.inference.predictor import EmotionPredictor

    limited = {}
    for fallback in ("center", "skip"):
        shared = models.MODELS.predictor(MODEL, fallback)
        limited[fallback] = EmotionPredictor(shared.model, shared.settings, limits=LIMITS)
    real = models.MODELS.predictor
    monkeypatch.setattr(
        models.MODELS,
        "predictor",
        lambda name, fallback="center": (
            limited[fallback] if name == MODEL else real(name, fallback)
        ),
    )
    client = _client(server)
    t0 = time.monotonic()
    for name, (_, expected) in BAD_VIDEOS.items():
        result = _expect(
            lambda name=name: client.predict(
                handle_file(str(videos[name])), GOOD_YAML, api_name="/classify_video"
            ),
            expected,
            name,
        )
        if result is not None:
            assert list(result["probabilities"]) == ["joy", "calm", "worry"], name
            assert abs(sum(result["probabilities"].values()) - 1) < 1e-4, name
            shown = result["video"]["name"]  # gradio strips <, >, / and the like from names
            assert "<" not in shown and "/" not in shown and shown.endswith(name[-5:]), shown
    # /analyse: the UI's endpoint; the hostile file name reaches Markdown escaped.
    hostile = videos[f"{XSS_NAME} $(id).webm"]
    out = client.predict(handle_file(str(hostile)), "center", api_name="/analyse")
    summary = out[0]
    assert "Top emotion" in summary and "<img" not in summary and "<script" not in summary
    assert all(
        Path(f).name.endswith(("-emotions.json", "-emotions.csv", "-emotions.provenance.json"))
        and "<" not in Path(f).name
        and " " not in Path(f).name
        for f in out[FILES]
    )
    _expect(
        lambda: client.predict(
            handle_file(str(videos["corrupt.mp4"])), "center", api_name="/analyse"
        ),
        "cannot open",
        "analyse corrupt",
    )
    _expect(lambda: client.predict(None, "", api_name="/classify_video"), "no video", "no video")
    _assert_serving(client, videos["face0"])
    print(f"\nvideo battery: {len(BAD_VIDEOS) + 3} requests in {time.monotonic() - t0:.1f} s")


def test_uploaded_file_names_are_not_paths_and_forged_paths_never_reach_a_handler(
    server, videos, monkeypatch
):
    """A multipart name with traversal and HTML is stored inside gradio's cache under a cleaned
    name; a request naming a server path (not an upload) is refused before the handler runs."""
    cache = Path(
        os.environ.get("GRADIO_TEMP_DIR") or Path(__import__("tempfile").gettempdir()) / "gradio"
    ).resolve()
    data = videos["face1"].read_bytes()
    r = httpx.post(
        server.rstrip("/") + "/gradio_api/upload",
        timeout=60,
        files=[("files", ("../../etc/<b>x</b>.mp4", data, "video/mp4"))],
    )
    assert r.status_code == 200, r.text
    stored = Path(r.json()[0])
    assert stored.resolve().is_relative_to(cache) and stored.is_file()
    assert ".." not in stored.name and "<" not in stored.name and "/" not in stored.name
    event, payload = _raw_call(
        server,
        "classify_video",
        [
            {
                "path": str(stored),
                "meta": {"_type": "gradio.FileData"},
                "orig_name": "../../etc/<b>x</b>.mp4",
            },
            GOOD_YAML,
        ],
    )
    assert event == "complete", payload
    assert payload[0]["video"]["name"] == stored.name  # the cleaned name, not the sent one

    seen: list[str] = []
    predictor = models.MODELS.predictor(MODEL, "center")
    original = predictor.predict
    monkeypatch.setattr(
        predictor,
        "predict",
        lambda video, *a, **k: (seen.append(str(video)), original(video, *a, **k))[1],
    )
    forged = [
        "/etc/passwd",
        str(REPO / "app.py"),
        "../../../../etc/passwd",
        str(REPO / "weights"),
        str(cache / ".." / ".." / "etc" / "passwd"),
    ]
    for path in forged:
        event, _ = _raw_call(
            server, "classify_video", [{"path": path, "meta": {"_type": "gradio.FileData"}}, ""]
        )
        assert event in ("error", "rejected"), path
        event, _ = _raw_call(
            server, "import_classes", [{"path": path, "meta": {"_type": "gradio.FileData"}}]
        )
        assert event in ("error", "rejected"), path
    event, _ = _raw_call(
        server,
        "classify_video",
        [
            {"path": "x.mp4", "url": "http://127.0.0.1:9/x", "meta": {"_type": "gradio.FileData"}},
            "",
        ],
    )
    assert event in ("error", "rejected")
    assert seen == [], f"forged paths reached the model: {seen}"
    _assert_serving(_client(server), videos["face0"])


def test_bad_class_sets_through_every_class_endpoint(server, videos, tmp_path):
    from gradio_client import handle_file

    client = _client(server)
    video = handle_file(str(videos["face0"]))
    t0 = time.monotonic()
    n = 0
    for what, (text, expected) in BAD_CLASS_SETS.items():
        result = _expect(
            lambda text=text: client.predict(video, text, api_name="/classify_video"),
            expected,
            f"classify_video: {what}",
        )
        _expect(
            lambda text=text: client.predict(text, api_name="/set_classes"),
            expected,
            f"set_classes: {what}",
        )
        message = client.predict(text, api_name="/validate_classes")
        suffix = ".json" if text.lstrip().startswith(("{", "[")) else ".yaml"
        file = tmp_path / f"{len(os.listdir(tmp_path))}{suffix}"
        file.write_text(text, encoding="utf-8")
        _expect(
            lambda file=file: client.predict(handle_file(str(file)), api_name="/import_classes"),
            expected,
            f"import_classes: {what}",
        )
        n += 4
        if expected == "ok":
            names = list(result["probabilities"])
            assert abs(sum(result["probabilities"].values()) - 1) < 1e-4
            assert "<script>alert(1)</script>" in names or "غضب" in names, names  # verbatim
            assert "Valid" in message
        else:
            assert "Not applied" in message and expected.lower() in message.lower(), message
        assert "<script" not in message and "<img" not in message
    # empty text: the session's set for classify_video, a message for set_classes
    assert client.predict(video, "", api_name="/classify_video")["classes"]
    _expect(lambda: client.predict("  ", api_name="/set_classes"), "empty", "set_classes empty")

    # The editor's other endpoints (the session now holds the last valid set: the script/img one).
    client.predict("dfew-7", api_name="/reset_classes")
    out = client.predict(XSS_NAME, XSS_DESC, api_name="/add_class")
    assert all("<img" not in m and "<script" not in m for m in _markdown_outputs(out))
    assert "8 classes" in out[2]
    _expect(lambda: client.predict("", "x", api_name="/add_class"), "class name", "add no name")
    _expect(lambda: client.predict("x", "  \n ", api_name="/add_class"), "description", "no desc")
    _expect(
        lambda: client.predict("x", "a" * 10_000, api_name="/add_class"),
        "10000 characters",
        "add long",
    )
    _expect(
        lambda: client.predict("x" * 70, "a", api_name="/add_class"),
        "70 characters",
        "add long name",
    )
    _expect(
        lambda: client.predict(XSS_NAME, "Happiness", api_name="/rename_class"),
        "same name",
        "rename to an existing name",
    )
    _expect(
        lambda: client.predict("not-a-class", api_name="/remove_class"),
        "not in the list",
        "remove unknown",
    )
    _expect(
        lambda: client.predict("not-a-preset", api_name="/reset_classes"),
        "not in the list",
        "unknown preset",
    )
    _expect(
        lambda: client.predict(["happiness", XSS_NAME], "x, y", "", api_name="/add_compound"),
        "weights must be numbers",
        "bad weights",
    )
    preview = client.predict(
        ["happiness", XSS_NAME], "", "<b>mix</b>", api_name="/preview_compound"
    )
    assert "<b>" not in preview and "<img" not in preview and "Nearest classes" in preview
    table = {"headers": ["class", "description"], "data": [["joy", "a smile"], ["", "orphan"]]}
    out = client.predict(table, api_name="/edit_classes_table")
    assert "has no class name" in out[2]
    table["data"] = [["joy", "a smile"], ["sad", "a" * 10_000]]
    assert "10000 characters" in client.predict(table, api_name="/edit_classes_table")[2]
    table["data"] = [[f"c{i}", "d"] for i in range(1000)]
    assert "too many classes" in client.predict(table, api_name="/edit_classes_table")[2]
    png = _png(tmp_path / "p").read_bytes()
    for name, data in (("bin.json", b"\x00\xff\xfe" * 100), ("img.yaml", png)):
        (tmp_path / name).write_bytes(data)
        with pytest.raises(Exception) as info:
            client.predict(handle_file(str(tmp_path / name)), api_name="/import_classes")
        assert name in str(info.value) or "U+" in str(info.value) or "UTF-8" in str(info.value), (
            str(info.value)
        )
    n += 16
    # The session kept its last valid set (8 classes with the hostile one), and serves.
    result = client.predict(video, "", api_name="/classify_video")
    assert len(result["classes"]) == 8 and XSS_NAME in result["classes"]
    _assert_serving(client, videos["face0"])
    print(f"\nclass battery: {n} requests in {time.monotonic() - t0:.1f} s")


# -------------------------------------------------------------------------- 2. concurrency


@pytest.mark.slow
def test_many_simultaneous_sessions_get_their_own_results(server, videos):
    """16 sessions at once, each with 3 class names of its own (set in its session or sent
    inline) and one of three clips, while 4 more sessions send bad input."""
    from gradio_client import handle_file

    assert (
        emoclip_app.QUEUE["max_size"] and emoclip_app.QUEUE["default_concurrency_limit"]
    )  # bounded queue
    n_good, n_bad = 16, 4
    clients = [_client(server) for _ in range(n_good + n_bad)]
    results: dict[int, list] = {}
    errors: dict[int, list[str]] = {}
    barrier = threading.Barrier(n_good + n_bad)

    def good(i: int) -> None:
        names = [f"c{i}_{k}" for k in "abc"]
        text = "classes:\n" + "".join(
            f"  {n}: face {k} of client {i}\n"
            for n, k in zip(names, ("smiling", "frowning", "calm"))
        )
        client, video = clients[i], videos[f"face{i % 3}"]
        inline = i % 2 == 0
        if not inline:
            client.predict(text, api_name="/set_classes")
        barrier.wait(60)
        out = []
        for _ in range(2):
            out.append(
                client.predict(
                    handle_file(str(video)), text if inline else "", api_name="/classify_video"
                )
            )
        results[i] = [names, out]

    def bad(j: int) -> None:
        client = clients[n_good + j]
        barrier.wait(60)
        caught = []
        for call in (
            lambda: client.predict(
                handle_file(str(videos["corrupt.mp4"])), GOOD_YAML, api_name="/classify_video"
            ),
            lambda: client.predict(
                handle_file(str(videos["face0"])), "classes: [x", api_name="/classify_video"
            ),
            lambda: client.predict("classes:\n  a: ''\n", api_name="/set_classes"),
        ):
            try:
                call()
                caught.append("no error")
            except Exception as exc:  # noqa: BLE001 - the message is checked below
                caught.append(str(exc))
        errors[j] = caught

    threads = [threading.Thread(target=good, args=(i,)) for i in range(n_good)]
    threads += [threading.Thread(target=bad, args=(j,)) for j in range(n_bad)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(240)
    elapsed = time.monotonic() - t0
    assert not any(t.is_alive() for t in threads), "requests hung"
    assert sorted(results) == list(range(n_good)), f"failed: {set(range(n_good)) - set(results)}"
    for i, (names, outs) in results.items():
        for result in outs:
            assert result["classes"] == names, (i, result["classes"])
            assert list(result["probabilities"]) == names
            assert abs(sum(result["probabilities"].values()) - 1) < 1e-4
            assert result["video"]["name"] == f"face{i % 3}.webm"
    assert len(errors) == n_bad
    for caught in errors.values():
        assert "cannot open" in caught[0].lower() and "YAML error" in caught[1]
        assert "is empty" in caught[2]
    print(f"\n{n_good} sessions x 2 + {n_bad} bad sessions x 3 requests: {elapsed:.1f} s")
    assert elapsed < 200


# --------------------------------------------------------------------------- 3. temp files


def test_temporary_files_are_bounded_and_deleted(videos, monkeypatch, tmp_path):
    """Per-request download folders are capped; gradio's copies of uploads and downloads are
    deleted after their age (EMOCLIP_FILES_SECONDS; 3 s here)."""
    from gradio_client import handle_file

    assert emoclip_app.delete_cache_policy(3600) == (600, 3600)
    assert (
        emoclip_app.build_demo().delete_cache == emoclip_app.delete_cache_policy()
    )  # on by default
    outputs = OutputDir(max_age=3600, max_folders=4)
    monkeypatch.setattr(files, "OUTPUTS", outputs)
    assert models.MODELS.wait_ready(120)
    demo = emoclip_app.build_demo(delete_cache=(1, 3)).queue(**emoclip_app.QUEUE)
    url = _launch(demo)
    try:
        client = _client(url)
        for i in range(2):
            out = client.predict(
                handle_file(str(videos[f"face{i}"])), "center", api_name="/analyse"
            )
            # the JSON, the CSV and the CSV's provenance sidecar (`emoclip.provenance`)
            assert sorted(Path(f).name.split("-", 1)[1] for f in out[FILES]) == [
                "emotions.csv",
                "emotions.json",
                "emotions.provenance.json",
            ]
        for _ in range(8):
            client.predict(api_name="/export_classes_yaml")
        client.predict(GOOD_YAML, api_name="/set_classes")  # re-scores: new download files
        folders = list(outputs.root.iterdir())
        assert len(folders) <= 4, folders  # 11 requests wrote files; the 4 newest are kept

        kept = {f for block in demo.blocks.values() for f in getattr(block, "keep_in_cache", ())}

        def cached() -> list[str]:  # user files in gradio's cache (example clips stay)
            while True:  # gradio's cleanup thread may change a set while it is read: read again
                try:
                    sets = [list(s) for s in demo.temp_file_sets]
                    break
                except RuntimeError:  # "Set changed size during iteration"
                    time.sleep(0.05)
            return [f for s in sets for f in s if f not in kept and Path(f).exists()]

        assert cached(), "gradio cached no uploads or downloads"
        deadline = time.monotonic() + 20
        while cached() and time.monotonic() < deadline:
            time.sleep(0.5)
        assert cached() == [], "gradio's cached uploads and downloads were not deleted"
        _assert_serving(client, videos["face2"])
    finally:
        close_demo(demo)


# ------------------------------------------------------------------------------ 4. browser


@pytest.mark.browser
@pytest.mark.slow
def test_browser_shows_hostile_class_text_as_text(server, videos):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return _unavailable("playwright is not installed")
    if not Path(CHROMIUM).is_file():
        return _unavailable(f"{CHROMIUM} is missing")
    name = "<img src=x onerror=window.__pwned=1>"
    desc = "<script>window.__pwned=2</script> **bold**"
    pw = sync_playwright().start()
    try:
        try:
            browser = launch_chromium(pw)
        except Exception as exc:  # noqa: BLE001
            return _unavailable(f"Chromium did not start: {exc}")
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(server, wait_until="load")
        page.wait_for_function(
            "document.querySelector('#model-status') && document"
            ".querySelector('#model-status').innerText.includes('Model:')"
        )
        page.get_by_role("tab", name="Classes & compounds").click()
        page.locator("#new-class-name textarea, #new-class-name input").first.fill(name)
        page.locator("#new-class-desc textarea").first.fill(desc)
        page.click("#add-class-btn")
        page.wait_for_function(
            "document.querySelector('#class-messages').innerText.includes('8 classes')"
        )
        page.get_by_role("tab", name="Analyse video").click()
        page.locator("#video-input input[type=file]").first.set_input_files(str(videos["face0"]))
        page.wait_for_selector("#video-input video")
        page.click("#analyse-btn")
        page.wait_for_function(
            "document.querySelector('#result-summary').innerText.includes('Top emotion')"
        )
        page.wait_for_function(f"document.querySelector('#bars-plot').innerText.includes({name!r})")
        page.get_by_role("tab", name="Classes & compounds").click()
        page.wait_for_function(
            f"document.querySelector('#classes-label').innerText.includes({name!r})"
        )
        page.wait_for_function(
            f"document.querySelector('#class-table').innerText.includes({desc!r})"
        )
        page.wait_for_timeout(500)
        assert page.evaluate("typeof window.__pwned") == "undefined"
        assert page.evaluate("document.querySelectorAll('img[src=\"x\"]').length") == 0
        assert page.evaluate("[...document.scripts].some(s => s.text.includes('__pwned'))") is False
        assert page.locator("#class-table").get_by_text(name, exact=True).count() >= 1
        page.screenshot(path=str(_artifacts() / "browser-hostile-classes.png"), full_page=True)
        browser.close()
    finally:
        pw.stop()


def _unavailable(reason: str) -> None:
    if os.environ.get("EMOCLIP_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests required (EMOCLIP_REQUIRE_BROWSER=1) but {reason}")
    pytest.skip(reason)


def _artifacts() -> Path:
    folder = REPO / "test-artifacts"
    folder.mkdir(exist_ok=True)
    return folder
