"""Synthetic captioned-expression dataset: determinism, coverage, captions, cues, files on disk."""

from __future__ import annotations

import csv
import itertools
import re

import cv2
import numpy as np
import pytest
import yaml

from emoclip.train import (
    synthetic as syn,
    synthetic_captions as captions,
    synthetic_cues as cues,
    synthetic_drawing as drawing,
)


def _words(values):
    return {w for v in values for w in re.findall(r"[a-z-]+", v.lower())}


def test_classes_and_cues_are_consistent():
    assert len(syn.CLASSES) == 12
    assert len(set(syn.CLASSES.values())) == 12  # distinct combinations
    assert len(syn.VALIDATION) == len(syn.TEST) == 4
    assert syn.HELDOUT == syn.VALIDATION + syn.TEST and set(syn.HELDOUT) <= set(syn.CLASSES)
    for expr in syn.CLASSES.values():
        for cue, values in cues.CUES.items():
            assert getattr(expr, cue) in values
    with pytest.raises(ValueError):
        cues.Expression("smirk", "raised", "wide")


def test_class_descriptions_partition():
    seen, val, test, held, all_ = (
        syn.class_descriptions(w) for w in ("seen", "validation", "test", "heldout", "all")
    )
    assert set(val) == set(syn.VALIDATION) and set(test) == set(syn.TEST)
    assert set(held) == set(syn.HELDOUT) == set(val) | set(test)
    # seen / validation / test: pairwise disjoint and together all 12 classes
    assert len(seen) + len(val) + len(test) == len(set(seen) | set(val) | set(test)) == 12
    assert set(seen) | set(val) | set(test) == set(all_) == set(syn.CLASSES)
    assert list(all_) == list(syn.CLASSES)
    assert all(d.startswith("A facial expression with") for d in all_.values())
    with pytest.raises(ValueError):
        syn.class_descriptions("valid")


def test_every_cue_pair_of_a_heldout_class_is_seen_in_training():
    """Zero-shot stays meaningful: each validation/test class is a new combination of cue values
    that training shows in pairs, never a cue value training lacks."""
    train = syn.training_expressions()
    for name in syn.HELDOUT:
        expr = syn.CLASSES[name]
        for a, b in itertools.combinations(cues.CUES, 2):
            pair = (getattr(expr, a), getattr(expr, b))
            assert any((getattr(t, a), getattr(t, b)) == pair for t in train), (name, a, b)


_CAPTION_FUNCTION_WORDS = {"a", "an", "the", "of", "with", "and", "in", "into", "to", "at", "as"}


def _caption_vocabulary() -> set[str]:
    texts = [
        t for values in captions.NOUNS.values() for options in values.values() for t in options
    ]
    texts += [
        f"{s} {p}"
        for values in captions.CLAUSES.values()
        for options in values.values()
        for s, p in options
    ]
    texts += (
        list(captions.ADVERBS) + list(captions.NOUN_LEADS) + ["A face whose while showing as with"]
    )
    return {w for t in texts for w in re.findall(r"[a-z]+", t.lower())}


def test_caption_vocabulary_is_complete():
    """The vocabulary the paraphrase test relies on really covers what captions say."""
    vocab = _caption_vocabulary()
    rng = np.random.default_rng(5)
    for expr in syn.training_expressions():
        for _ in range(20):
            assert set(re.findall(r"[a-z]+", captions.caption(expr, rng).lower())) <= vocab


def test_paraphrases_use_no_caption_word():
    para = syn.paraphrase_descriptions()
    assert list(para) == [n for n in syn.CLASSES if n in syn.TEST]
    vocab = _caption_vocabulary()
    content = vocab - _CAPTION_FUNCTION_WORDS
    for name, text in para.items():
        words = set(re.findall(r"[a-z]+", text.lower()))
        assert not words & content, (name, words & content)
        # no stem of a caption word either ("lip" for "lips", "eyelids" for "eyes", ...)
        stems = {
            (w, c)
            for w in words - _CAPTION_FUNCTION_WORDS
            for c in content
            if len(c) >= 3 and (c in w or w in c or w[:3] == c[:3])
        }
        assert not stems, (name, stems)
        assert text != syn.class_descriptions("test")[name]
    shapes = ("A face", "A person", "Someone", "The face", "A cartoon", "An expression", "The ")
    assert not any(t.startswith(shapes) for t in para.values())


def test_paraphrased_class_set_replaces_only_test_descriptions():
    plain, para = syn.class_descriptions("all"), syn.class_descriptions("all", paraphrased=True)
    assert list(para) == list(plain)
    changed = {n for n in plain if plain[n] != para[n]}
    assert changed == set(syn.TEST)
    assert {n: para[n] for n in syn.TEST} == syn.paraphrase_descriptions()


def test_training_expressions_exclude_heldout():
    train = syn.training_expressions()
    held = {syn.CLASSES[n] for n in syn.HELDOUT}
    assert len(train) == len(set(train)) == 4 * 3 * 3 - 8
    assert not held & set(train)
    assert set(train) | held == set(
        itertools.starmap(cues.Expression, itertools.product(*cues.CUES.values()))
    )


def test_train_split_covers_every_seen_combination_and_never_heldout(monkeypatch):
    drawn = []

    def fake_render(expr, rng, *, num_frames=16, size=64):  # record instead of drawing
        drawn.append(expr)
        return np.zeros((num_frames, size, size, 3), np.uint8)

    monkeypatch.setattr(syn, "render_clip", fake_render)
    rng = np.random.default_rng(0)
    labels = {syn.sample(rng, split="train")[2] for _ in range(3000)}
    held = {syn.CLASSES[n] for n in syn.HELDOUT}
    assert set(drawn) == set(syn.training_expressions())
    assert not set(drawn) & held
    assert labels == set(syn.class_descriptions("seen")) | {None}
    counts = np.array([drawn.count(e) for e in syn.training_expressions()])
    assert counts.min() > 0.5 * counts.mean()  # roughly uniform over combinations


def test_heldout_and_all_splits_give_named_classes():
    rng = np.random.default_rng(1)
    held = {syn.sample(rng, split="heldout", num_frames=1, size=16)[2] for _ in range(300)}
    assert held == set(syn.HELDOUT)
    for split, names in (("validation", syn.VALIDATION), ("test", syn.TEST)):
        drawn = {syn.sample(rng, split=split, num_frames=1, size=16)[2] for _ in range(200)}
        assert drawn == set(names)
    every = {syn.sample(rng, split="all", num_frames=1, size=16)[2] for _ in range(400)}
    assert every == set(syn.CLASSES)
    with pytest.raises(ValueError):
        syn.sample(rng, split="valid")


def test_render_shape_dtype_and_determinism():
    expr = syn.CLASSES["surprise"]
    for size, frames in ((64, 16), (224, 3)):
        clip = drawing.render_clip(expr, np.random.default_rng(5), num_frames=frames, size=size)
        assert clip.shape == (frames, size, size, 3) and clip.dtype == np.uint8
    a = syn.sample(np.random.default_rng(7))
    b = syn.sample(np.random.default_rng(7))
    c = syn.sample(np.random.default_rng(8))
    assert np.array_equal(a[0], b[0]) and a[1:] == b[1:]
    assert not np.array_equal(a[0], c[0])


def test_expression_unfolds_over_time():
    clip = drawing.render_clip(syn.CLASSES["surprise"], np.random.default_rng(3), num_frames=16)
    neutral = drawing.render_clip(syn.CLASSES["neutral"], np.random.default_rng(3), num_frames=16)
    diff = np.abs(clip.astype(int) - neutral.astype(int)).mean(axis=(1, 2, 3))
    assert diff[0] < 0.5 * diff[-1]  # starts near neutral, ends far from it


def _final_frame(expr, seed=11, size=64):
    return drawing.render_clip(expr, np.random.default_rng(seed), num_frames=8, size=size)[-1]


@pytest.mark.parametrize(
    "cue, region",
    [
        ("mouth", (slice(38, 60), slice(12, 52))),
        ("brows", (slice(6, 26), slice(6, 58))),
        ("eyes", (slice(18, 36), slice(6, 58))),
    ],
)
def test_cues_are_visually_distinct(cue, region):
    base = syn.CLASSES["neutral"]
    frames = {}
    for value in cues.CUES[cue]:
        expr = cues.Expression(**{**base.__dict__, cue: value})
        frames[value] = _final_frame(expr).astype(np.float32)
    for a, b in itertools.combinations(cues.CUES[cue], 2):
        inside = np.abs(frames[a][region] - frames[b][region]).mean()
        assert inside > 3.0, (cue, a, b, inside)
    # Nuisance is shared: the change is local, the background is identical.
    first, second = frames[cues.CUES[cue][0]], frames[cues.CUES[cue][1]]
    assert np.array_equal(first[:, :3], second[:, :3])
    assert np.abs(first[region] - second[region]).mean() > 2 * np.abs(first - second).mean()


_CUE_WORDS = {
    "mouth": {"mouth", "lips", "jaw", "gasp"},
    "brows": {"eyebrows", "brows", "brow"},
    "eyes": {"eyes"},
}


def test_captions_vary_and_mention_cues():
    rng = np.random.default_rng(0)
    expr = syn.CLASSES["fear"]
    caps = [captions.caption(expr, rng) for _ in range(300)]
    assert len(set(caps)) > 200
    vocab = {
        value: _words(captions.NOUNS[cue][value])
        | _words(p for _, p in captions.CLAUSES[cue][value])
        for cue, value in zip(cues.CUES, (expr.mouth, expr.brows, expr.eyes))
    }
    for text in caps:
        assert text[0].isupper() and text.endswith(".")
        mentioned = sum(bool(_words([text]) & words) for words in vocab.values())
        assert mentioned >= 2, text
    # Cue order varies: each cue comes first in some captions.
    firsts = set()
    for text in caps:
        tokens = re.findall(r"[a-z]+", text.lower())
        firsts.add(next(c for t in tokens for c, ws in _CUE_WORDS.items() if t in ws))
    assert firsts == set(cues.CUES)
    # Synonyms: several different phrasings of the same cue value.
    used = {np_ for np_ in captions.NOUNS["mouth"]["open"] if any(np_ in c.lower() for c in caps)}
    assert len(used) >= 4
    # Both styles: noun phrases ("A face with ...") and clauses ("... the eyes widen ...").
    assert any(c.startswith(("A face with", "A person with", "Someone with")) for c in caps)
    assert any(c.startswith("A face whose") for c in caps)
    # Sometimes a cue is left out.
    assert any(sum(bool(_words([c]) & ws) for ws in _CUE_WORDS.values()) < 3 for c in caps)


def test_captions_are_not_class_descriptions():
    rng = np.random.default_rng(2)
    descriptions = set(syn.class_descriptions().values())
    for expr in syn.CLASSES.values():
        for _ in range(50):
            text = captions.caption(expr, rng)
            assert text.rstrip(".") not in descriptions
            assert not text.startswith("A facial expression")


def test_text_fits_a_32_token_context():
    from emoclip.model import tokenizer

    rng = np.random.default_rng(4)
    texts = list(syn.class_descriptions().values())
    texts += [captions.caption(e, rng) for e in syn.training_expressions() for _ in range(20)]
    assert max(tokenizer.count_tokens(t) for t in texts) <= 32


def test_main_writes_readable_dataset(tmp_path):
    out = tmp_path / "syn"
    argv = ["--out", str(out), "--clips", "3", "--seed", "1", "--size", "64", "--frames", "9"]
    assert syn.main(argv) == 0
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and list(rows[0]) == ["path", "caption", "label"]
    assert sorted(p.name for p in (out / "clips").iterdir()) == [f"{i:06d}.webm" for i in range(3)]
    for row in rows:
        path = out / row["path"]
        assert path.is_file() and row["caption"]
        assert row["label"] in set(syn.class_descriptions("seen")) | {""}
        cap = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame)
        cap.release()
        assert abs(len(frames) - 9) <= 1 and frames[0].shape == (64, 64, 3)
    for which in ("seen", "validation", "test", "heldout", "all"):
        doc = yaml.safe_load((out / f"classes_{which}.yaml").read_text(encoding="utf-8"))
        assert set(doc) == {"name", "classes"} and doc["name"] == f"synthetic-{which}"
        assert doc["classes"] == syn.class_descriptions(which)
    doc = yaml.safe_load((out / "classes_all_paraphrased.yaml").read_text(encoding="utf-8"))
    assert doc["name"] == "synthetic-all-paraphrased"
    assert doc["classes"] == syn.class_descriptions("all", paraphrased=True)


def test_write_dataset_is_deterministic(tmp_path):
    a = syn.write_dataset(tmp_path / "a", clips=2, seed=9, split="all", size=32, num_frames=4)
    b = syn.write_dataset(tmp_path / "b", clips=2, seed=9, split="all", size=32, num_frames=4)
    assert a.read_text() == b.read_text()
    assert all(row.split(",")[-1] for row in a.read_text().splitlines()[1:])  # all labelled
