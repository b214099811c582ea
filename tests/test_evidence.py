"""Evidence for every answer: key moments (leave-one-out re-pooling of the cached frame
embeddings), matched words, margin, and their export."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import emoclip
from emoclip import EmotionPredictor
from emoclip.classes import ClassSet
from emoclip.evidence import explain_lines
from emoclip.evidence.moments import clip_picks
from emoclip.zeroshot import probabilities


def _frames(n: int, seed: int = 0, side: int = 64) -> np.ndarray:
    return (np.random.default_rng(seed).random((n, side, side, 3)) * 255).astype(np.uint8)


def _removed_probability(model, predictor, encoding, classes, frame: int) -> np.ndarray:
    """The clip's probabilities when `frame` is really removed from the pooled sequence."""
    picks = clip_picks(len(encoding.frame_embeddings), model.config.preprocess.num_frames)
    kept = picks[picks != frame]
    with torch.inference_mode():
        video = model.aggregate(encoding.frame_embeddings[torch.as_tensor(kept)][None])
    text = predictor.class_embeddings(classes)
    return probabilities(video, text, model.logit_scale.detach().float())[0].numpy()


@pytest.mark.parametrize("name", ["test-emoclip-tiny", "test-clip-tiny"])
def test_each_drop_is_the_change_of_really_removing_the_frame(name):
    torch.manual_seed(0)
    model = emoclip.load_model(name)
    predictor = EmotionPredictor(model, face_fallback="center")
    classes = predictor.default_classes()
    encoding = predictor.encode(_frames(20), fps=4.0)
    prediction = predictor.score(encoding, classes)
    e = prediction.evidence
    assert e is not None and len(e.moments) == model.config.preprocess.num_frames
    names = prediction.classes
    top, runner = names.index(e.top), names.index(e.runner_up)
    for m in e.moments:
        removed = _removed_probability(model, predictor, encoding, classes, m.index)
        assert m.drop == pytest.approx(prediction.probabilities[e.top] - removed[top], abs=2e-6)
        assert m.runner_up_drop == pytest.approx(
            prediction.probabilities[e.runner_up] - removed[runner], abs=2e-6
        )
        assert m.time == pytest.approx(encoding.frame_times[m.index])
    drops = [e.moments[i].drop for i in e.key_moments]
    assert drops == sorted(drops, reverse=True) and all(d > 0 for d in drops)
    assert len(e.key_moments) == min(3, sum(m.drop > 0 for m in e.moments))


def test_evidence_is_counted_work_free(tiny_model):
    """Scoring again (evidence included) decodes and encodes nothing; another class set embeds only
    its own texts and pools nothing (the leave-one-out embeddings are kept with the encoding)."""
    predictor = EmotionPredictor(tiny_model, face_fallback="center")
    encoding = predictor.encode(_frames(12), fps=4.0)
    predictor.score(encoding)
    encoded = predictor.parts.text_cache.encoded
    calls, pooled = [], []
    real, real_pool = predictor.parts.encoder.encode, predictor.parts.pooler.pool
    predictor.parts.encoder.encode = lambda *a, **k: calls.append(1) or real(*a, **k)  # type: ignore[method-assign]
    predictor.parts.pooler.pool = lambda x: pooled.append(len(x)) or real_pool(x)  # type: ignore[method-assign]
    edited = ClassSet.from_dict({"classes": {"a": "a smiling face", "b": "a frowning face"}})
    first = predictor.score(encoding)
    again = predictor.score(encoding, edited)  # another class set: its texts, nothing pooled
    assert first.evidence is not None and first.evidence.moments
    assert again.evidence is not None and len(again.evidence.moments) == len(first.evidence.moments)
    assert not calls and not pooled and predictor.parts.text_cache.encoded == encoded + 2


def test_the_key_moment_of_a_toy_clip_lies_in_the_frames_showing_the_cue(repo_root):
    """The toy model; a neutral face everywhere except a few known frames showing a class's cue."""
    from emoclip.train import synthetic

    model = emoclip.load_model(str(repo_root / "weights" / "emoclip-synthetic-tiny.safetensors"))
    predictor = EmotionPredictor(model)
    for cls, seed, start in [("surprise", 10, 4), ("rage", 11, 8), ("delight", 12, 12)]:
        neutral = synthetic.render_clip(
            synthetic.CLASSES["neutral"], np.random.default_rng(seed), num_frames=16, size=64
        )
        cue = synthetic.render_clip(
            synthetic.CLASSES[cls], np.random.default_rng(seed), num_frames=16, size=64
        )
        frames = neutral.copy()
        shown = range(start, start + 3)
        for i in shown:
            frames[i] = cue[-1]  # the expression fully formed, same face, pose and colours
        prediction = predictor.predict(frames, fps=model.config.preprocess.sample_fps)
        e = prediction.evidence
        assert prediction.top == cls and e is not None and e.key_moments
        assert e.moments[e.key_moments[0]].index in shown, (cls, e.to_dict()["key_moments"])


def test_a_photo_says_it_has_no_moments(tiny_model):
    predictor = EmotionPredictor(tiny_model, face_fallback="center")
    prediction = predictor.predict(_frames(1, side=96)[0])
    e = prediction.evidence
    assert e is not None and not e.moments and not e.key_moments and e.against is None
    assert "photo has no moments" in e.no_moments
    assert any("photo has no moments" in line.lower() for line in explain_lines(e))


def test_best_descriptions_margin_and_uncertain_flag(tiny_model):
    classes = ClassSet.from_dict(
        {
            "classes": {
                "happy": ["a smiling face", "a person laughing with joy"],
                "sad": ["a crying face", "a frowning person"],
                "calm": "a neutral face",
            },
            "compounds": {"bittersweet": ["happy", "sad"]},
        }
    )
    predictor = EmotionPredictor(tiny_model, face_fallback="center")
    prediction = predictor.predict(_frames(12), classes, fps=4.0)
    e = prediction.evidence
    assert e is not None
    ranked = sorted(prediction.probabilities.values(), reverse=True)
    assert e.margin == pytest.approx(ranked[0] - ranked[1], abs=1e-6)
    assert e.uncertain == (e.margin < e.uncertain_below)
    assert [w.name for w in e.words[:2]] == [e.top, e.runner_up]
    clip = torch.as_tensor(prediction.embedding)
    for w in e.words:
        if w.kind == "class":
            texts = [t for t, _ in w.items]
            sims = (predictor.parts.text_cache.embed(texts) @ clip).tolist()
            assert [s for _, s in w.items] == pytest.approx(sims, abs=1e-5)
            assert w.best == texts[int(np.argmax(sims))]
        else:
            assert w.name == "bittersweet" and [t for t, _ in w.items] == ["happy", "sad"]
    data = json.loads(prediction.to_json())["evidence"]
    assert data["best_description"] == e.best_description(e.top)
    assert data["uncertain"] == e.uncertain and len(data["key_moments"]) == len(e.key_moments)
    rows = [r for r in prediction.csv_rows() if r["scope"] == "best_description"]
    assert {r["class"] for r in rows} == set(classes.names)
    assert [r for r in prediction.csv_rows() if r["scope"] == "margin"][0]["evidence"] in (
        "uncertain",
        "clear",
    )


def test_cli_predict_explain_prints_the_evidence_in_plain_words(repo_root, tmp_path, capsys):
    from emoclip import cli
    from emoclip.testing.media import write_video
    from emoclip.train import synthetic

    frames = synthetic.render_clip(
        synthetic.CLASSES["surprise"], np.random.default_rng(3), num_frames=16, size=64
    )
    clip = write_video(tmp_path / "clip.webm", frames, fps=4.0)
    weights = str(repo_root / "weights" / "emoclip-synthetic-tiny.safetensors")
    out_json = tmp_path / "p.json"
    args = ["predict", str(clip), "--model", weights, "--quiet", "--json", str(out_json)]
    assert cli.main([*args, "--explain"]) == 0
    printed = capsys.readouterr().out
    data = json.loads(out_json.read_text())
    e = data["evidence"]
    assert f"'{e['top']}' is ahead of '{e['runner_up']}' by" in printed
    assert f"Best-matching words for '{e['top']}': \"{e['best_description']}\"" in printed
    assert printed.count("Key moment at") == len(e["key_moments"])
    assert cli.main(args) == 0 and "Key moment" not in capsys.readouterr().out
