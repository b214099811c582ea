"""Checkpoints that carry code: a malicious pickle is refused and never run.

Entry points attacked: `emoclip.weights.files.read_state_dict`, `emoclip.load_model` (a pickle
disguised as ``.safetensors`` with a valid sidecar), ``emoclip convert`` and ``emoclip predict
--model``, with each payload of `hostile_cases.PAYLOADS` (``os.system``, ``exec``, ``eval``,
``subprocess.Popen``) in raw, wrapped, torch-zip and disguised files.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from hostile_cases import PAYLOADS

import emoclip
from emoclip.cli import main
from emoclip.weights.files import CheckpointError, read_state_dict, save_checkpoint


def _evil_files(folder: Path, payload: type) -> dict[str, Path]:
    marker = folder / "PWNED"
    evil = {"logit_scale": torch.ones(1), "hidden": payload(marker)}
    raw = folder / "raw.pth"
    raw.write_bytes(pickle.dumps(evil, protocol=2))
    wrapped = folder / "wrapped.pt"
    wrapped.write_bytes(pickle.dumps({"state_dict": evil}))
    zipped = folder / "zipped.pth"
    torch.save(evil, zipped)  # torch's zip format, the payload in data.pkl
    disguised = folder / "disguised.safetensors"
    disguised.write_bytes(zipped.read_bytes())
    return {"raw": raw, "wrapped": wrapped, "zipped": zipped, "disguised": disguised}


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_malicious_pickles_are_refused_and_never_run(
    payload, tmp_path, monkeypatch, tiny_model, capsys
):
    monkeypatch.chdir(tmp_path)
    files = _evil_files(tmp_path, PAYLOADS[payload])
    marker = tmp_path / "PWNED"
    for kind, path in files.items():
        with pytest.raises(CheckpointError) as info:
            read_state_dict(path)
        assert path.name in str(info.value), kind
    # A disguised pickle with a valid sidecar, loaded as a model by path.
    sidecar = tmp_path / "disguised.json"
    save_checkpoint(tiny_model.state_dict(), tiny_model.config, tmp_path / "real.safetensors")
    sidecar.write_text((tmp_path / "real.json").read_text())
    with pytest.raises(CheckpointError):
        emoclip.load_model(files["disguised"])
    # Through the command line: converting and predicting with it.
    assert main(["convert", str(files["zipped"]), str(tmp_path / "out.safetensors")]) == 1
    assert main(["predict", "x.webm", "--model", str(files["disguised"]), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("emoclip: error: ") == 2
    assert not marker.exists()
    assert not (tmp_path / "out.safetensors").exists()


def test_pickle_payload_detector_works(tmp_path):
    """The payloads above do run when unpickled unsafely (so the test above means something)."""
    marker = tmp_path / "PWNED"
    for payload in PAYLOADS.values():
        marker.unlink(missing_ok=True)
        result = pickle.loads(pickle.dumps(payload(marker)))
        if hasattr(result, "wait"):
            result.wait()
        if hasattr(result, "close"):
            result.close()
        assert marker.exists(), payload.__name__
