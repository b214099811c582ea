"""The class-set check: close pairs against the running model's own reference pairs, descriptions
cut at the text encoder's context, repeats; and ``emoclip classes check``."""

from __future__ import annotations

import json

import pytest

import emoclip
from emoclip import EmotionPredictor, cli
from emoclip.classes import ClassSet
from emoclip.evidence.classcheck import calibrate, check_classes, words_dropped
from emoclip.evidence.reference_pairs import DISTINCT_PAIRS, PARAPHRASE_PAIRS

# Not among the reference pairs (checked below): the same expression twice in the toy's words, and
# two different expressions.
PARAPHRASED = {
    "joy": "A face with a broad grin, lifted brows and big, wide eyes",
    "glee": "Someone whose mouth curves up into a smile while the eyebrows rise and the eyes "
    "open wide",
}
DISTINCT = {
    "gloom": "A face with a sulky, downturned mouth, arched eyebrows and steady eyes",
    "fury": "A face with a gaping mouth, knitted brows and eyes narrowed to slits",
}


@pytest.fixture(scope="module")
def toy(repo_root):
    model = emoclip.load_model(str(repo_root / "weights" / "emoclip-synthetic-tiny.safetensors"))
    return EmotionPredictor(model)


def _check(predictor, classes: ClassSet):
    return check_classes(
        classes,
        predictor.parts.text_cache.embed,
        predictor.class_embeddings(classes),
        predictor.model.context_length,
    )


def test_test_pairs_are_not_reference_pairs():
    reference = {t for pair in PARAPHRASE_PAIRS + DISTINCT_PAIRS for t in pair}
    assert not reference & (set(PARAPHRASED.values()) | set(DISTINCT.values()))


def test_paraphrased_classes_are_flagged_and_distinct_ones_are_not(toy):
    cal = calibrate(toy.parts.text_cache.embed)
    assert cal.threshold is not None
    close = _check(toy, ClassSet.from_dict({"classes": PARAPHRASED}))
    assert [(a, b) for a, b, _ in close.close_pairs] == [("joy", "glee")]
    assert "may confuse 'joy' and 'glee'" in close.warnings[0] and not close.errors
    apart = _check(toy, ClassSet.from_dict({"classes": DISTINCT}))
    assert not apart.close_pairs and not apart.warnings
    assert apart.similarity.shape == (2, 2) and apart.similarity[0, 1] < cal.threshold


def test_a_compound_is_not_flagged_against_its_own_parts(toy):
    classes = ClassSet.from_dict({"classes": DISTINCT, "compounds": {"grim": ["gloom", "fury"]}})
    report = _check(toy, classes)
    assert report.names == ["gloom", "fury", "grim"] and report.similarity.shape == (3, 3)
    assert not report.close_pairs


@pytest.mark.parametrize("context", [32, 77])
def test_words_dropped_counts_the_words_past_the_context(context):
    # "calm" is one BPE token: <start> + n words + <end> fits in n + 2 positions
    fits = context - 2
    assert words_dropped(" ".join(["calm"] * fits), context) == 0
    assert words_dropped(" ".join(["calm"] * (fits + 7)), context) == 7


def test_truncation_is_reported_with_the_running_models_context(toy):
    context = toy.model.context_length
    long = " ".join(["calm"] * (context - 2 + 4))
    report = _check(toy, ClassSet.from_dict({"classes": {"a": long, "b": DISTINCT["fury"]}}))
    assert report.truncated == [("a", 1, 4)]
    assert any(f"{context} tokens: its last 4 words are not read" in w for w in report.warnings)


def test_repeated_descriptions_across_classes_are_warned(toy):
    classes = ClassSet.from_dict(
        {"classes": {"a": [DISTINCT["fury"], "A calm face"], "b": ["a calm  face", "x"]}}
    )
    report = _check(toy, classes)
    assert any("'b' description 1 repeats 'a' description 2" in w for w in report.warnings)


def test_cli_classes_check(repo_root, tmp_path, capsys):
    weights = str(repo_root / "weights" / "emoclip-synthetic-tiny.safetensors")
    path = tmp_path / "set.yaml"
    path.write_text(json.dumps({"classes": PARAPHRASED}))
    assert cli.main(["classes", "check", str(path), "--model", weights]) == 0
    out = capsys.readouterr().out
    assert "may confuse 'joy' and 'glee'" in out
    assert cli.main(["classes", "check", str(path), "--model", weights, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["names"] == ["joy", "glee"] and data["close_pairs"][0][:2] == ["joy", "glee"]
    bad = tmp_path / "bad.yaml"
    bad.write_text("classes:\n  a: ''\n")
    assert cli.main(["classes", "check", str(bad), "--model", weights]) == 1
    assert "error:" in capsys.readouterr().out
    assert cli.main(["classes", "check", "no-such-preset", "--model", weights]) == 1
