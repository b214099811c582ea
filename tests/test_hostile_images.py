"""Hostile still images and frame folders through every entry point (issue #10).

Entry points attacked: every file or folder of `hostile_cases.IMAGE_CASES` goes through (a)
`emoclip.media.images.read_image` (files only), (b) `EmotionPredictor.predict` with the tiny model and
(c) ``emoclip predict`` (`emoclip.cli.main`): a sensible result or a typed error whose message
names the file, never a traceback.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hostile_cases import (
    CLI_LIMITS,
    IMAGE_CASES,
    LIMITS,
    battery_predictor,
    check_error,
    cli_shown,
    image_case_files,
    save_tiny_weights,
)

from emoclip.cli import main


@pytest.fixture(scope="module")
def image_media(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], Path]:
    return image_case_files(tmp_path_factory.mktemp("hostile_images"))


@pytest.fixture(scope="module")
def predictor(tiny_model):
    p = battery_predictor(tiny_model)
    yield p
    p.close()


@pytest.fixture(scope="module")
def weights(tiny_model, tmp_path_factory) -> Path:
    return save_tiny_weights(tiny_model, tmp_path_factory.mktemp("weights"))


@pytest.mark.parametrize(
    "name", sorted(n for n in IMAGE_CASES if not n.startswith(("frames", "unrel")))
)
def test_image_reader(name, image_media):
    """(a) emoclip.media.images.read_image with the battery's pixel limit."""
    from emoclip.media.images import read_image

    case, path = IMAGE_CASES[name], image_media(name)
    try:
        still = read_image(path, max_pixels=LIMITS.max_pixels)
    except Exception as exc:  # noqa: BLE001
        assert case.expect != "ok", f"{type(exc).__name__}: {exc}"
        check_error(exc, case)
        return
    assert case.expect in ("ok", "any")
    assert still.image.dtype == np.uint8 and still.image.shape == (still.height, still.width, 3)


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
def test_image_predictor(name, image_media, predictor):
    """(b) EmotionPredictor.predict on images and frame folders."""
    case, path = IMAGE_CASES[name], image_media(name)
    try:
        pred = predictor.predict(path)
    except Exception as exc:  # noqa: BLE001
        assert case.expect != "ok", f"{type(exc).__name__}: {exc}"
        check_error(exc, case)
        return
    assert case.expect in ("ok", "any"), f"expected {case.expect}, got a prediction"
    probs = np.array(list(pred.probabilities.values()))
    assert np.isfinite(probs).all() and abs(probs.sum() - 1) < 1e-4
    assert abs(np.linalg.norm(pred.embedding) - 1) < 1e-4 and pred.video["name"] == path.name
    json.loads(pred.to_json())
    if pred.video["kind"] == "image":
        assert len(pred.timeline) == 0 and all(t.box is not None for t in pred.tracks)
        if name.startswith("face") or "ansi" in name or "img" in name:
            assert len(pred.tracks) == 1  # the astronaut
    elif name == "frames":
        assert pred.video["kind"] == "frames" and len(pred.timeline) >= 1


@pytest.mark.parametrize("name", sorted(IMAGE_CASES))
def test_image_cli(name, image_media, weights, capsys):
    """(c) emoclip predict IMAGE-OR-FOLDER --model tiny.safetensors --quiet (+ limits)."""
    case, path = IMAGE_CASES[name], image_media(name)
    code = main(["predict", str(path), "--model", str(weights), "--quiet", *CLI_LIMITS])
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "\x1b" not in out + err and "\x07" not in out + err
    shown = cli_shown(path)
    if code == 0:
        assert case.expect in ("ok", "any"), f"expected {case.expect}; stderr: {err}"
        assert out.startswith(f"{shown}: ") and "(" in out
        return
    assert code == 1 and case.expect != "ok", err
    if name == "unrelated_files":  # a folder that is neither a clip nor holds media
        assert f"no videos, images or frame folders found in {shown}" in err
        return
    line = next(line for line in err.splitlines() if line.startswith("emoclip: "))
    assert line.startswith(f"emoclip: {shown}: "), err
    assert case.match.lower() in line.lower(), err
    assert "unexpected" not in line, err
