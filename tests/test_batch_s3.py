"""`emoclip batch` on shared storage (issue #19, 7): inputs, manifests and ``--out`` as ``s3://``
URIs, against a real S3-compatible server (moto's, started here on 127.0.0.1), with the same
answers, resume and error rows as on local disk. Credentials and endpoint come from the usual
environment variables (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL)."""

from __future__ import annotations

import json
import os
import socket

# the scale and test extras CI installs: a missing package fails here, never skips
import boto3
import moto.server as moto_server
import numpy as np
import pytest
import ray  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
BUCKET = "media"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3(tmp_path_factory, tiny_model):
    """A moto S3 server with a bucket holding clips, a photo, a frame folder, a broken file and a
    manifest; the environment points pyarrow (and Ray's workers) at it."""
    import cv2

    from emoclip.testing.media import moving_face_frames, write_video
    from emoclip.weights.files import save_checkpoint

    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "EMOCLIP_PRECISION": "fp32",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # one Ray for every run
    local = tmp_path_factory.mktemp("s3-local")
    client = boto3.client("s3")
    client.create_bucket(Bucket=BUCKET)
    files = {}
    for i, n in enumerate((8, 12)):
        files[f"clips/c{i}.webm"] = write_video(
            local / f"c{i}.webm", moving_face_frames(n, size=(240, 320), seed=i), fps=8
        )
    still = local / "still.jpg"
    cv2.imwrite(str(still), next(iter(moving_face_frames(1, size=(240, 320))))[:, :, ::-1])
    files["clips/still.jpg"] = still
    for i, frame in enumerate(moving_face_frames(6, size=(240, 320), seed=5)):
        cv2.imwrite(str(local / f"f{i}.png"), frame[:, :, ::-1])
        files[f"clips/seq/{i:03d}.png"] = local / f"f{i}.png"
    (local / "broken.mp4").write_bytes(b"not a video")
    files["clips/broken.mp4"] = local / "broken.mp4"
    for key, path in files.items():
        client.upload_file(str(path), BUCKET, key)
    manifest = "path,label\nclips/c0.webm,happy\nclips/gone.webm,sad\n"
    client.put_object(Bucket=BUCKET, Key="m.csv", Body=manifest)
    weights = save_checkpoint(tiny_model.state_dict(), tiny_model.config, local / "m.safetensors")
    yield {"client": client, "local": local, "files": files, "weights": str(weights)}
    ray.shutdown()
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_batch_reads_and_writes_s3_with_resume_and_error_rows(s3):
    import emoclip
    from emoclip.batch import expand_inputs, export_csv, read_results, run_batch
    from emoclip.inference.predictor import EmotionPredictor

    inputs = [f"s3://{BUCKET}/m.csv", f"s3://{BUCKET}/clips/"]  # the manifest's c0 row first
    listed = {r["name"]: r for r in expand_inputs(inputs).to_pylist()}
    assert {n: r["kind"] for n, r in listed.items()} == {
        "c0.webm": "video",
        "c1.webm": "video",
        "still.jpg": "image",
        "seq": "frames",
        "broken.mp4": "video",
        "gone.webm": "video",
    }
    # c0.webm is listed twice (folder and manifest): kept once; the manifest's columns carried
    assert listed["gone.webm"]["label"] == "sad" and listed["gone.webm"]["size"] == -1
    out = f"s3://{BUCKET}/out"
    kw = dict(model=s3["weights"], workers=1, num_cpus=2)
    first = run_batch(inputs, out, **kw)
    assert (first.done, first.errors, first.skipped) == (6, 2, 0)
    rows = {r["name"]: r for r in read_results(out).to_pylist()}
    assert rows["c0.webm"]["path"] == f"s3://{BUCKET}/clips/c0.webm"
    assert rows["gone.webm"]["label"] == "sad"
    assert rows["broken.mp4"]["error"] and rows["broken.mp4"]["top"] is None
    assert "gone.webm" in rows["gone.webm"]["error"]
    assert rows["seq"]["error"] is None and rows["still.jpg"]["error"] is None
    # the same answer as the library on the local file
    predictor = EmotionPredictor(emoclip.load_model(s3["weights"]), precision="fp32")
    local = predictor.predict(str(s3["files"]["clips/c1.webm"]))
    np.testing.assert_allclose(
        rows["c1.webm"]["probabilities"], [local.probabilities[c] for c in local.classes], atol=1e-5
    )
    again = run_batch(inputs, out, **kw)  # resume: nothing to do
    assert (again.done, again.skipped) == (0, 6)
    s3["client"].upload_file(str(s3["files"]["clips/c0.webm"]), BUCKET, "clips/c1.webm")
    third = run_batch(inputs, out, **kw)  # a replaced object is analysed again, alone
    assert (third.done, third.skipped) == (1, 5)
    retried = run_batch(inputs, out, retry_errors=True, **kw)
    assert retried.done == 2 and retried.errors == 2  # the two error rows, tried again
    csv = export_csv(out, f"s3://{BUCKET}/out.csv")
    body = s3["client"].get_object(Bucket=BUCKET, Key="out.csv")["Body"].read().decode()
    assert csv.endswith("out.csv") and body.count("\n") == 1 + 6 + 1 + 2
    side = json.loads(
        s3["client"].get_object(Bucket=BUCKET, Key="out.provenance.json")["Body"].read()
    )
    assert {p["digest"] for p in (side if isinstance(side, list) else [side])} == {first.config_key}
    keys = s3["client"].list_objects_v2(Bucket=BUCKET, Prefix="out/")["Contents"]
    assert not [k["Key"] for k in keys if k["Key"].rsplit("/", 1)[-1].startswith(".")]
