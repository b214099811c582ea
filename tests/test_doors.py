"""Every door, one answer (issue #19, 6): one corpus through the library, the CLI, batch and the app.

A small corpus generated here, offline: videos (a face clip, a phone video with rotation
metadata, a variable-frame-rate clip, a clip without a face), photos (a group photo of three real
people composed from scikit-image's astronaut, cameraman and an LFW face; a transparent PNG; an
EXIF-rotated JPEG; a CMYK JPEG), a frame folder, a corrupt file, and numpy arrays (the group
photo's pixels, the frame folder's frames). Each input goes through
`EmotionPredictor.predict` (and `predict_image` for photos and the photo array), ``emoclip predict
--json`` (one subprocess), ``emoclip batch`` (one local-Ray run over the whole corpus) and the
app's ``/classify_video`` and ``/classify_image`` (gradio_client against the app launched here on
127.0.0.1). Kind, scope (face / faces / whole image / whole frames), duration, sampled frames,
faces/tracks with their boxes, warnings, errors, probabilities (within 1e-5), the timeline (present
or absent; window times and probabilities within 1e-5) and the evidence (every field; numbers
within 1e-5) must agree; a failure names the door, the input and the field.

The model is the tiny random-weight test model saved as a file (face detection on), fp32.
"""

from __future__ import annotations

import html
import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
TOL = 1e-5
VIDEOS = ("face.webm", "phone.mp4", "vfr.mp4", "noface.webm", "broken.mp4")
PHOTOS = ("group.png", "alpha.png", "exif.jpg", "cmyk.jpg")
FOLDERS = ("frames",)


# ------------------------------------------------------------------------------------ corpus


def _group_photo() -> np.ndarray:
    """(240, 620, 3) uint8: three different real faces side by side (astronaut, cameraman, LFW)."""
    from skimage import data

    s = 200
    canvas = np.full((240, 620, 3), 200, np.uint8)
    astro = cv2.resize(data.astronaut()[20:280, 95:355], (s, s), interpolation=cv2.INTER_AREA)
    cam = np.stack([data.camera()] * 3, -1)[34:294, 92:352]
    lfw = (np.stack([data.lfw_subset()[0]] * 3, -1) * 255).astype(np.uint8)
    canvas[20 : 20 + s, 10 : 10 + s] = astro
    canvas[20 : 20 + s, 30 + s : 30 + 2 * s] = cv2.resize(cam, (s, s), interpolation=cv2.INTER_AREA)
    small = cv2.resize(lfw, (s - 60, s - 60), interpolation=cv2.INTER_CUBIC)
    canvas[40 : 40 + s - 60, 50 + 2 * s : 50 + 3 * s - 60] = small
    return canvas


def _vfr_video(path: Path, frames: list[np.ndarray], tmp: Path) -> Path:
    """An H.264 mp4 whose frames last 0.1 s and 0.3 s in turn (ffmpeg's concat demuxer, vfr)."""
    lines = []
    for i, frame in enumerate(frames):
        cv2.imwrite(str(tmp / f"v{i:03d}.png"), frame[:, :, ::-1])
        lines += [f"file 'v{i:03d}.png'", f"duration {0.1 if i % 2 == 0 else 0.3}"]
    lines.append(f"file 'v{len(frames) - 1:03d}.png'")
    (tmp / "list.txt").write_text("\n".join(lines) + "\n")
    cmd = ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", "list.txt"]
    cmd += ["-fps_mode", "vfr", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(path)]
    subprocess.run(cmd, cwd=tmp, check=True, timeout=120)
    return path


def _corpus(root: Path) -> dict[str, Any]:
    from PIL import Image

    from emoclip.testing.media import (
        blank_frames,
        moving_face_frames,
        set_mp4_rotation,
        write_video,
    )

    size = (240, 320)
    write_video(root / "face.webm", moving_face_frames(12, size=size), fps=8)
    write_video(root / "phone.mp4", moving_face_frames(10, size=size, seed=1), fps=8)
    set_mp4_rotation(root / "phone.mp4", 90)
    work = root / ".vfr"
    work.mkdir()
    _vfr_video(root / "vfr.mp4", list(moving_face_frames(8, size=size, seed=2)), work)
    shutil.rmtree(work)
    write_video(root / "noface.webm", blank_frames(8, size=size), fps=8)
    (root / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not a video" * 20)
    group = _group_photo()
    Image.fromarray(group).save(root / "group.png")
    face = next(iter(moving_face_frames(1, size=size, seed=3)))
    rgba = np.zeros((*size, 4), np.uint8)  # transparent outside the face, black underneath
    rgba[20:220, 60:260, :3] = face[20:220, 60:260]
    rgba[20:220, 60:260, 3] = 255
    Image.fromarray(rgba, "RGBA").save(root / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: a viewer turns it 90 degrees clockwise
    Image.fromarray(np.rot90(face, 1).copy()).save(root / "exif.jpg", exif=exif, quality=95)
    Image.fromarray(face).convert("CMYK").save(root / "cmyk.jpg", quality=95)
    folder = root / "frames"
    folder.mkdir()
    frames = list(moving_face_frames(10, size=size, seed=4))
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{i:03d}.png")
    return {"group": group, "frames": np.stack(frames)}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, tiny_model):
    from emoclip.weights.files import save_checkpoint

    root = tmp_path_factory.mktemp("doors")
    inputs = root / "inputs"
    inputs.mkdir()
    arrays = _corpus(inputs)
    weights = save_checkpoint(tiny_model.state_dict(), tiny_model.config, root / "m.safetensors")
    saved = os.environ.get("EMOCLIP_PRECISION")
    os.environ["EMOCLIP_PRECISION"] = "fp32"
    yield {"root": root, "inputs": inputs, "weights": str(weights), "arrays": arrays}
    if saved is None:
        os.environ.pop("EMOCLIP_PRECISION", None)
    else:
        os.environ["EMOCLIP_PRECISION"] = saved


def _names() -> list[str]:
    return [*VIDEOS, *PHOTOS, *FOLDERS]


# ------------------------------------------------------------------------- canonical answers


def _message(text: str, paths: list[str]) -> str:
    """An error message with every path shortened to its name (uploads live elsewhere)."""
    text = html.unescape(str(text))
    for p in sorted(paths, key=len, reverse=True):
        text = text.replace(p, Path(p).name)
    return text.strip()


def _from_dict(d: dict) -> dict:
    """The compared fields of a `Prediction.to_dict()` (library, CLI JSON, app API)."""
    classes = d["classes"]
    return {
        "kind": d["video"].get("kind"),
        "scope": d.get("scope"),
        "duration": float(d["video"].get("duration") or 0.0),
        "sampled_frames": d["faces"]["sampled_frames"],
        "frames_with_face": d["faces"]["frames_with_face"],
        "tracks": [
            {
                "box": t.get("box"),
                "num_frames": t["num_frames"],
                "start": t["start"],
                "end": t["end"],
                "probabilities": [t["probabilities"][c] for c in classes],
            }
            for t in d["tracks"]
        ],
        "timeline": None  # absent (a photo's JSON has none) is not the same as empty
        if "timeline" not in d
        else [
            {
                "start": w["start"],
                "end": w["end"],
                "probabilities": [w["probabilities"][c] for c in classes],
            }
            for w in d["timeline"]
        ],
        "evidence": d.get("evidence"),
        "warnings": list(d["warnings"]),
        "probabilities": [d["probabilities"][c] for c in classes],
        "classes": classes,
        "error": None,
    }


def _from_row(r: dict, windows: list[dict]) -> dict:
    """The compared fields of a batch result row and its timeline rows (window order). Batch
    writes no timeline rows for a photo: its timeline is absent, as in a photo's JSON."""
    if r["error"] is not None:
        return {"error": r["error"]}
    tracks = json.loads(r["track_results"])
    return {
        "kind": r["kind"],
        "scope": r.get("scope"),
        "duration": float(r["duration"]),
        "sampled_frames": r["sampled_frames"],
        "frames_with_face": r["frames_with_face"],
        "tracks": [
            {k: t[k] for k in ("box", "num_frames", "start", "end", "probabilities")}
            for t in tracks
        ],
        "timeline": None
        if r["kind"] == "image" and not windows
        else [{k: w[k] for k in ("start", "end", "probabilities")} for w in windows],
        "evidence": None if r.get("evidence") is None else json.loads(r["evidence"]),
        "warnings": list(r["warnings"]),
        "probabilities": list(r["probabilities"]),
        "classes": list(r["classes"]),
        "error": None,
    }


def _tolerance(path: str) -> float:
    """1e-5 for probabilities, the timeline and the evidence; 1e-3 (px, s) for boxes and times."""
    exact = ("probabilities", "timeline", "evidence")
    return TOL if any(part in path for part in exact) else 1e-3


def _diff(a: Any, b: Any, path: str) -> list[str]:
    """Where `b` differs from `a`, each difference named by its field path (``tracks[0].box``,
    ``timeline[3].probabilities[1]``, ``evidence.moments[2].drop``)."""
    if isinstance(a, dict) and isinstance(b, dict):
        keys = list(a) + [k for k in b if k not in a]
        return [d for k in keys for d in _diff(a.get(k), b.get(k), f"{path}.{k}" if path else k)]
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        if len(a) != len(b):
            return [f"{path}: {len(a)} items vs {len(b)}: {_short(a)} vs {_short(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _diff(x, y, f"{path}[{i}]")]
    if isinstance(a, float) or isinstance(b, float):
        ok = isinstance(a, float | int) and isinstance(b, float | int)
        ok = ok and abs(float(a) - float(b)) <= _tolerance(path)
        return [] if ok else [f"{path}: {a!r} vs {b!r}"]
    return [] if a == b else [f"{path}: {_short(a)} vs {_short(b)}"]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 160 else text[:157] + "..."


def _differences(reference: dict, other: dict) -> list[str]:
    """Fields where `other` differs from `reference`: probabilities, the timeline and the
    evidence within 1e-5, boxes and times within 1e-3 px / s, the rest equal."""
    return _diff(reference, other, "")


# ------------------------------------------------------------------------------------- doors


def _library(corpus) -> tuple[dict[str, dict], dict[str, dict]]:
    """Library answers by input name, and the extra library calls (predict_image, arrays)."""
    import emoclip
    from emoclip.inference.predictor import EmotionPredictor

    predictor = EmotionPredictor(emoclip.load_model(corpus["weights"]), precision="fp32")
    paths = [str(corpus["inputs"] / n) for n in _names()]
    answers, extra = {}, {}
    for name in _names():
        path = str(corpus["inputs"] / name)
        try:
            answers[name] = _from_dict(predictor.predict(path).to_dict())
        except (ValueError, OSError) as exc:
            answers[name] = {"error": _message(exc, paths)}
        if name in PHOTOS:
            extra[f"predict_image({name})"] = (name, predictor.predict_image(path).to_dict())
    group = corpus["arrays"]["group"]
    extra["predict(group array)"] = ("group.png", predictor.predict(group).to_dict())
    extra["predict_image(group array)"] = ("group.png", predictor.predict_image(group).to_dict())
    frames = corpus["arrays"]["frames"]
    extra["predict(frames array, fps=25)"] = ("frames", predictor.predict(frames, fps=25).to_dict())
    predictor.close()
    return answers, {k: (n, _from_dict(d)) for k, (n, d) in extra.items()}


def _cli(corpus) -> dict[str, dict]:
    out = corpus["root"] / "cli.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "EMOCLIP_PRECISION": "fp32"}
    cmd = [
        sys.executable,
        "-m",
        "emoclip",
        "predict",
        *[str(corpus["inputs"] / n) for n in _names()],
    ]
    cmd += ["--model", corpus["weights"], "--quiet", "--json", str(out)]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert res.returncode == 1, res.stderr  # broken.mp4 fails, the rest are answered
    answers = {d["video"]["name"]: _from_dict(d) for d in json.loads(out.read_text())}
    paths = [str(corpus["inputs"] / n) for n in _names()]
    for line in res.stderr.splitlines():
        for name in _names():
            prefix = f"emoclip: {corpus['inputs'] / name}: "
            if line.startswith(prefix):
                answers[name] = {"error": _message(line[len(prefix) :], paths)}
    return answers


def _batch(corpus) -> dict[str, dict]:
    from emoclip.batch import read_results, run_batch

    out = corpus["root"] / "batch"
    summary = run_batch(
        [corpus["inputs"] / n for n in _names()],
        out,
        model=corpus["weights"],
        workers=1,
        num_cpus=2,
    )
    assert summary.done == len(_names()), summary
    paths = [str(corpus["inputs"] / n) for n in _names()]
    windows: dict[str, list[dict]] = {}
    for w in sorted(read_results(out, "timeline").to_pylist(), key=lambda w: w["window"]):
        windows.setdefault(w["path"], []).append(w)
    answers = {}
    for row in read_results(out).to_pylist():
        answer = _from_row(row, windows.get(row["path"], []))
        if answer["error"] is not None:
            answer["error"] = _message(answer["error"], paths)
        answers[row["name"]] = answer
    return answers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _app(corpus) -> dict[str, dict]:
    """The app served here (its real handlers) with the corpus model as EMOCLIP_APP_MODEL."""
    from gradio_client import Client, handle_file
    from served_demo import close_demo

    import emoclip_app
    from emoclip_app import models

    saved = models.MODELS
    models.MODELS = models.ModelManager([], forced=corpus["weights"])
    demo = None
    try:
        assert models.MODELS.wait_ready(120), models.no_model_message()
        demo = emoclip_app.build_demo().queue(**emoclip_app.QUEUE)
        _, url, _ = demo.launch(
            prevent_thread_lock=True,
            quiet=True,
            server_name="127.0.0.1",
            server_port=_free_port(),
            **emoclip_app.launch_options(),
        )
        client = Client(url, verbose=False)
        paths = [str(corpus["inputs"] / n) for n in _names()]
        answers = {}
        for name in (*VIDEOS, *PHOTOS):
            api = "/classify_image" if name in PHOTOS else "/classify_video"
            try:
                result = client.predict(handle_file(str(corpus["inputs"] / name)), "", api_name=api)
            except Exception as exc:  # gradio_client's AppError carries the app's message
                answers[name] = {"error": _message(str(exc), paths)}
                continue
            answers[name] = _from_dict(result)
        return answers
    finally:
        if demo is not None:
            close_demo(demo)
        models.MODELS.close()
        models.MODELS = saved


# ------------------------------------------------------------------------------------- test


def test_every_door_gives_the_same_answer(corpus):
    library, extra = _library(corpus)
    # the corpus is what it claims to be (the library's answers, checked once)
    assert library["broken.mp4"]["error"]
    assert len(library["group.png"]["tracks"]) == 3, library["group.png"]  # every face
    assert all(t["box"] for t in library["group.png"]["tracks"])
    for name in ("alpha.png", "exif.jpg", "cmyk.jpg"):
        assert library[name]["kind"] == "image" and len(library[name]["tracks"]) == 1, name
    assert library["frames"]["kind"] == "frames"
    assert abs(library["frames"]["duration"] - 10 / 25) < 1e-6  # frame folders at 25 fps
    assert library["noface.webm"]["frames_with_face"] == 0 and library["noface.webm"]["warnings"]
    assert library["phone.mp4"]["kind"] == "video" and library["vfr.mp4"]["kind"] == "video"

    doors = {"emoclip predict --json": _cli(corpus), "emoclip batch": _batch(corpus)}
    doors["app API"] = _app(corpus)
    failures = []
    for door, answers in doors.items():
        for name, reference in library.items():
            if door == "app API" and name in FOLDERS:
                continue  # the app takes one uploaded file, not a folder
            if name not in answers:
                failures.append(f"{door}: {name}: no answer")
                continue
            failures += [f"{door}: {name}: {d}" for d in _differences(reference, answers[name])]
    for call, (name, answer) in extra.items():
        failures += [f"library {call}: {d}" for d in _differences(library[name], answer)]
    assert not failures, "doors disagree (reference: EmotionPredictor.predict):\n" + "\n".join(
        failures
    )


def test_the_comparison_names_a_dropped_or_changed_field():
    """A door that drops or changes scope, the timeline (absent vs present, a window's time or
    probability) or the evidence is caught, with the field named."""
    ref = _from_dict(
        {
            "classes": ["a", "b"],
            "video": {"kind": "video", "duration": 2.0},
            "scope": "faces",
            "faces": {"sampled_frames": 4, "frames_with_face": 4},
            "tracks": [],
            "timeline": [{"start": 0.0, "end": 2.0, "probabilities": {"a": 0.25, "b": 0.75}}],
            "evidence": {"margin": 0.5, "moments": [{"time": 0.5, "drop": 0.125}]},
            "warnings": [],
            "probabilities": {"a": 0.25, "b": 0.75},
        }
    )
    assert _differences(ref, json.loads(json.dumps(ref))) == []
    near = json.loads(json.dumps(ref))
    near["timeline"][0]["probabilities"][0] += 5e-6  # within 1e-5
    assert _differences(ref, near) == []

    def changed(edit) -> list[str]:
        other = json.loads(json.dumps(ref))
        edit(other)
        return _differences(ref, other)

    assert changed(lambda o: o.pop("scope")) == ["scope: 'faces' vs None"]
    assert changed(lambda o: o.update(scope="whole frames")) == ["scope: 'faces' vs 'whole frames'"]
    assert changed(lambda o: o.update(timeline=None))[0].startswith("timeline: [{")
    assert changed(lambda o: o.update(timeline=[]))[0].startswith("timeline: 1 items vs 0")
    assert changed(lambda o: o["timeline"][0].update(end=2.0001)) == [
        "timeline[0].end: 2.0 vs 2.0001"
    ]
    assert changed(lambda o: o["timeline"][0]["probabilities"].__setitem__(1, 0.7)) == [
        "timeline[0].probabilities[1]: 0.75 vs 0.7"
    ]
    assert changed(lambda o: o.pop("evidence")) == [
        "evidence: {'margin': 0.5, 'moments': [{'time': 0.5, 'drop': 0.125}]} vs None"
    ]
    assert changed(lambda o: o["evidence"]["moments"][0].update(drop=0.13)) == [
        "evidence.moments[0].drop: 0.125 vs 0.13"
    ]
