"""Tests for emoclip.classes: presets, file formats, validation, edits, hostile input."""

from __future__ import annotations

import dataclasses
import json
import math
import time
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings, strategies as st

from emoclip.classes import (
    ClassSet,
    ClassSetError,
    Compound,
    EmotionClass,
    Limits,
    UnknownPresetError,
    preset,
    preset_names,
)

MAFW_ORDER = [
    "anger", "disgust", "fear", "happiness", "neutral", "sadness", "surprise",
    "contempt", "anxiety", "helplessness", "disappointment",
]  # fmt: skip
DFEW_ORDER = ["happiness", "sadness", "neutral", "anger", "surprise", "disgust", "fear"]
PRESETS_DIR = Path(__file__).resolve().parents[1] / "emoclip" / "presets"

# Copied from reference.md §6 (the authors' DataLoaders/class_descriptions.yml).
AUTHORS = {
    "anger": (
        "A facial expression showing irritation and unrest, with a wrinkled forehead, "
        "narrowed eyes, and tight lips or a frown"
    ),
    "disgust": (
        "An expression of repulsion and displeasure, with a raised upper lip, a scrunched "
        "nose, and a downturned mouth"
    ),
    "fear": (
        "An expression of tension and withdrawal, with wide-open eyes, raised eyebrows, and a "
        "slightly open mouth. The face may appear physically tense or frozen in fear"
    ),
    "happiness": (
        "An expression of contentment and pleasure, with a smile and the corners of the mouth "
        "turned up, often accompanied by crinkling around the eyes. The face may appear "
        "relaxed and at ease"
    ),
    "neutral": (
        "An expression of calm and neutrality, with a neutral mouth and no particular "
        "indication of emotion. The eyebrows are usually not raised or furrowed"
    ),
    "sadness": (
        "An expression of sadness and sorrow, with a downturned mouth or frown, and sometimes "
        "tears or a tightness around the eyes. The face may appear physically withdrawn or "
        "resigned."
    ),
    "surprise": (
        "An expression of shock and astonishment, with wide-open eyes and raised eyebrows, "
        "sometimes accompanied by a gasp or an open mouth"
    ),
    "contempt": (
        "An expression of disdain and superiority, with a slight smirk or sneer, often "
        "accompanied by a raised eyebrow or a lopsided smile"
    ),
    "anxiety": (
        "An expression of worry and apprehension, with furrowed eyebrows and a tight mouth. "
        "The eyes may appear wide and darting, and the face may appear physically tense or "
        "worried"
    ),
    "helplessness": (
        "An expression of defeat and resignation, with the eyes looking down and the mouth "
        "turned down. The eyebrows may be furrowed, and the face may appear resigned or "
        "resigned"
    ),
    "disappointment": (
        "An expression of frustration and disillusionment, with a slight frown or drooping of "
        "the mouth. The eyebrows may be lowered or furrowed, and the face may appear "
        "physically drawn or tired"
    ),
}
# The authors' unused NEUTRAL_DESCR list (reference.md §6).
NEUTRAL_DESCR = [
    (
        "Neutral facial expressions are characterized by a lack of emotional expression, as "
        "if the person's face is in a resting state."
    ),
    ("The facial muscles are generally relaxed, creating a smooth and even appearance."),
    ("The mouth is typically closed or slightly open, with the lips not turned up or down."),
    (
        "The eyebrows are in a neutral position, not furrowed or raised, and the eyes are "
        "generally looking straight ahead or slightly down."
    ),
    (
        "While the face may not show any specific emotions, the expression can still convey a "
        "sense of attentiveness or alertness."
    ),
]


def small_set() -> ClassSet:
    return ClassSet.from_dict(
        {
            "name": "small",
            "classes": {"anger": "angry face", "happiness": ["smile", "laugh"], "sadness": "tears"},
            "compounds": {"bittersweet": {"happiness": 0.6, "sadness": 0.4}},
        }
    )


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(ClassSetError) as info:
        call(*args, **kwargs)
    return str(info.value)


# ---- presets ---------------------------------------------------------------------------------


def test_authors_strings_have_their_quirks():
    assert AUTHORS["sadness"].endswith("withdrawn or resigned.")
    assert "resigned or resigned" in AUTHORS["helplessness"]
    assert not any(text.endswith(".") for name, text in AUTHORS.items() if name != "sadness")


@pytest.mark.parametrize("name", ["mafw-11", "mafw-11-neutral5"])
def test_mafw_presets_have_the_authors_strings_in_mafw_order(name):
    classes = preset(name)
    assert classes.names == MAFW_ORDER
    for emotion in classes.classes:
        if name.endswith("neutral5") and emotion.name == "neutral":
            continue
        assert emotion.descriptions == (AUTHORS[emotion.name],)


def test_mafw_exact_strings_spot_checks():
    by_name = {c.name: c.descriptions for c in preset("mafw-11").classes}
    assert by_name["sadness"] == (
        "An expression of sadness and sorrow, with a downturned mouth or frown, and sometimes "
        "tears or a tightness around the eyes. The face may appear physically withdrawn or "
        "resigned.",
    )
    assert by_name["helplessness"] == (
        "An expression of defeat and resignation, with the eyes looking down and the mouth "
        "turned down. The eyebrows may be furrowed, and the face may appear resigned or resigned",
    )
    assert by_name["anger"] == (
        "A facial expression showing irritation and unrest, with a wrinkled forehead, narrowed "
        "eyes, and tight lips or a frown",
    )


def test_neutral5_preset_uses_the_five_unused_sentences():
    neutral = preset("mafw-11-neutral5").classes[MAFW_ORDER.index("neutral")]
    assert neutral.descriptions == tuple(NEUTRAL_DESCR)
    assert len(preset("mafw-11-neutral5").texts) == 15


@pytest.mark.parametrize("name", ["dfew-7", "ferv39k-7", "afew-7", "DFEW-7", " Afew-7 "])
def test_seven_class_presets(name):
    classes = preset(name)
    assert classes.names == DFEW_ORDER
    assert classes.name == name.strip().lower()
    assert [c.descriptions for c in classes.classes] == [(AUTHORS[n],) for n in DFEW_ORDER]
    assert classes.compounds == ()


def test_basic_compounds_preset():
    classes = preset("basic-7+compounds")
    assert classes.names[:7] == DFEW_ORDER
    compounds = {c.name: c.parts for c in classes.compounds}
    assert compounds["happily surprised"] == ("happiness", "surprise")
    assert compounds["sadly angry"] == ("sadness", "anger")
    assert compounds["angrily disgusted"] == ("anger", "disgust")
    assert len(compounds) >= 5
    assert all(set(parts) <= set(DFEW_ORDER) for parts in compounds.values())
    assert classes.texts == [AUTHORS[n] for n in DFEW_ORDER]


def test_preset_names_and_files():
    names = preset_names()
    for expected in ["mafw-11", "dfew-7", "ferv39k-7", "afew-7", "basic-7+compounds"]:
        assert expected in names
    files = sorted(PRESETS_DIR.glob("*.yaml"))
    assert files
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert "source:" in text and "Apache-2.0" in text
        assert ClassSet.load(path) == preset(path.stem)
        assert preset(path.stem).name == path.stem


@pytest.mark.parametrize("name", ["mafw-11", "mafw-11-neutral5", "dfew-7", "basic-7+compounds"])
def test_presets_are_valid_without_warnings(name):
    assert preset(name).validate() == []


def test_unknown_preset_lists_the_available_ones():
    with pytest.raises(UnknownPresetError) as info:
        preset("mafw-12")
    message = str(info.value)
    assert "'mafw-12'" in message and "mafw-11" in message and "dfew-7" in message
    assert isinstance(info.value, KeyError) and isinstance(info.value, ClassSetError)


# ---- formats ---------------------------------------------------------------------------------


def test_authors_flat_format():
    text = "\n".join(f"{name}: {json.dumps(AUTHORS[name])}" for name in MAFW_ORDER)
    classes = ClassSet.parse(text, name="authors")
    assert classes.names == MAFW_ORDER and classes.name == "authors"
    assert classes == dataclasses.replace(preset("mafw-11"), name="authors")


def test_structured_format_with_compounds():
    classes = ClassSet.from_yaml(
        "name: my-set\n"
        "classes:\n"
        "  anger: A facial expression showing anger\n"
        "  happiness: [description 1, description 2]\n"
        "  surprise: Raised eyebrows\n"
        "  sadness: Tears\n"
        "compounds:\n"
        "  happily surprised: [Happiness, SURPRISE]\n"
        "  bittersweet: {happiness: 0.6, sadness: 2}\n"
    )
    assert classes.name == "my-set"
    assert classes.names == [
        "anger", "happiness", "surprise", "sadness", "happily surprised", "bittersweet",
    ]  # fmt: skip
    assert classes.classes[1].descriptions == ("description 1", "description 2")
    assert classes.compounds[0] == Compound("happily surprised", ("happiness", "surprise"))
    assert classes.compounds[1].weights == (0.6, 2.0)
    assert classes.texts == [
        "A facial expression showing anger", "description 1", "description 2",
        "Raised eyebrows", "Tears",
    ]  # fmt: skip


def test_list_of_entries_format():
    entries = [
        {"name": "joy", "descriptions": ["a", "b"]},
        {"name": "calm", "description": "c"},
    ]
    expected = ClassSet("custom", (EmotionClass("joy", ("a", "b")), EmotionClass("calm", ("c",))))
    assert ClassSet.from_dict(entries) == expected
    assert ClassSet.from_dict({"classes": entries}) == expected
    assert ClassSet.parse(json.dumps(entries)) == expected


def test_texts_are_distinct_in_first_seen_order():
    classes = ClassSet.from_dict({"a": ["x", "y"], "b": ["y", "z"], "c": "x"})
    assert classes.texts == ["x", "y", "z"]


def test_names_and_descriptions_are_stripped():
    classes = ClassSet.from_dict({"  anger \n": ["  angry face\t", "line\r\nbreak "]})
    assert classes.classes[0] == EmotionClass("anger", ("angry face", "line\nbreak"))


def test_json_looking_yaml_is_accepted():
    assert ClassSet.parse("{anger: angry face}").names == ["anger"]


WILD_TEXTS = {
    "emoji": "Grinning 😀👩‍👩‍👧 with a thumbs-up 👍🏽",
    "cjk": "愤怒的表情：眉头紧锁，嘴唇紧闭。怒った顔",
    "arabic": "تعبير عن الغضب مع تجاعيد الجبهة",
    "html": '<script>alert(1)</script><b onmouseover="x()">bold</b> &amp; &lt;',
    "markdown": "**bold** _it_ [link](javascript:alert(1)) `code`\n\n- item\n# heading",
    "yamlish": "key: value # not a comment\n--- ... {a: [b]} &anchor *alias !!python/object",
    "quotes": 'it\'s "quoted" \\ back\\slash\ttab',
}


@pytest.mark.parametrize("kind", sorted(WILD_TEXTS))
def test_wild_text_round_trips_unchanged(kind, tmp_path):
    text = WILD_TEXTS[kind]
    classes = ClassSet.from_dict(
        {"name": f"{kind} ✓", "classes": {f"{kind} {text[:8]}": text, "plain": [text, "other"]}}
    )
    assert classes.classes[0].descriptions == (text,)
    assert ClassSet.from_yaml(classes.to_yaml()) == classes
    assert ClassSet.from_json(classes.to_json()) == classes
    assert ClassSet.parse(classes.to_yaml()) == classes
    assert ClassSet.parse(classes.to_json()) == classes
    assert json.dumps(text, ensure_ascii=False) in classes.to_json()  # not \\u-escaped
    for suffix in (".yaml", ".yml", ".json"):
        path = tmp_path / f"set{suffix}"
        classes.save(path)
        assert ClassSet.load(path) == classes


def test_compounds_round_trip(tmp_path):
    classes = small_set().with_compound("mixed", ["anger", "happiness", "sadness"])
    assert ClassSet.from_yaml(classes.to_yaml()) == classes
    assert ClassSet.from_json(classes.to_json()) == classes
    assert "mixed: [anger, happiness, sadness]" in classes.to_yaml()
    assert "bittersweet: {happiness: 0.6, sadness: 0.4}" in classes.to_yaml()


def test_to_dict_shape():
    assert small_set().to_dict() == {
        "name": "small",
        "classes": {"anger": "angry face", "happiness": ["smile", "laugh"], "sadness": "tears"},
        "compounds": {"bittersweet": {"happiness": 0.6, "sadness": 0.4}},
    }


def test_load_names_the_set_after_the_file(tmp_path):
    path = tmp_path / "my classes.yml"
    path.write_text("anger: angry\njoy: happy\n", encoding="utf-8")
    assert ClassSet.load(path).name == "my classes"
    path.write_text("\ufeffname: named\nclasses: {anger: angry}\n", encoding="utf-8")
    assert ClassSet.load(path).name == "named"


def test_load_errors(tmp_path):
    assert "unsupported file type '.txt'" in error_of(ClassSet.load, tmp_path / "set.txt")
    assert "cannot read 'missing.yaml'" in error_of(ClassSet.load, tmp_path / "missing.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * 300_000, encoding="utf-8")
    assert "limit" in error_of(ClassSet.load, big)
    latin = tmp_path / "latin.json"
    latin.write_bytes('{"café": "x"}'.encode("latin-1"))
    assert "not UTF-8" in error_of(ClassSet.load, latin)
    assert "unsupported file type" in error_of(small_set().save, tmp_path / "out.csv")


def test_save_refuses_a_file_load_would_refuse(tmp_path):
    classes = ClassSet.from_dict({"a": "x" * 900, "b": "y" * 900})
    message = error_of(classes.save, tmp_path / "out.json", limits=Limits(max_file_bytes=1000))
    assert "limit" in message


# ---- validation --------------------------------------------------------------------------------


def many(count: int, prefix: str = "class") -> dict[str, str]:
    return {f"{prefix} {i}": f"description {i}" for i in range(count)}


def ab(compounds: dict) -> dict:
    """Classes 'a' and 'b' with the given compounds."""
    return {"classes": {"a": "x", "b": "y"}, "compounds": compounds}


INVALID = {
    "no classes": ({"classes": {}}, "no classes"),
    "too many classes": ({"classes": many(65)}, "too many classes"),
    "too many with compounds": (
        {
            "classes": many(63),
            "compounds": {"c1": ["class 0", "class 1"], "c2": ["class 2", "class 3"]},
        },
        "too many classes: 65",
    ),
    "empty name": ({"classes": {"ok": "x", "   ": "y"}}, "class 2 has an empty name"),
    "long name": ({"n" * 65: "x"}, "class '" + "n" * 40 + "…': the name is 65 characters"),
    "duplicate name": (
        {"Anger": "x", "anger ": "y"},
        "class 'anger' has the same name as class 'Anger'",
    ),
    "no descriptions": ({"anger": []}, "class 'anger' has no descriptions"),
    "null descriptions": ({"anger": None}, "class 'anger' has no descriptions"),
    "empty description": ({"anger": ["ok", " \n "]}, "class 'anger': description 2 is empty"),
    "too many descriptions": ({"anger": ["d"] * 17}, "class 'anger': 17 (the limit is 16)"),
    "long text": ({"anger": "x" * 1001}, "class 'anger': description 1 is 1001 characters long"),
    "control char in name": (
        {"ang\x00er": "x"},
        "class 'ang\\u0000er': the name contains the control character U+0000",
    ),
    "escape sequence in name": ({"fear\x1b[31m": "x"}, "class 'fear\\u001b[31m'"),
    "control char in text": (
        {"fear": "a\x07b"},
        "class 'fear': description 1 contains the control character U+0007",
    ),
    "number description": ({"fear": 3}, "class 'fear': descriptions must be text"),
    "number in list": (
        {"fear": ["ok", 3.5]},
        "class 'fear': description 2 must be text, got the number 3.5",
    ),
    "one part": (ab({"solo": ["a"]}), "compound 'solo' needs at least 2 parts, got 1"),
    "unknown part": (ab({"ab": ["a", "zzz"]}), "compound 'ab': 'zzz' is not a class of this set"),
    "compound of compound": (
        ab({"ab": ["a", "b"], "abb": ["ab", "b"]}),
        "compound 'abb': 'ab' is not a class of this set (compounds combine classes",
    ),
    "duplicate part": (ab({"aa": ["a", "A"]}), "compound 'aa': 'a' is listed twice"),
    "too many parts": (
        {"classes": many(9, "c"), "compounds": {"all": [f"c {i}" for i in range(9)]}},
        "too many parts in compound 'all'",
    ),
    "zero weight": (
        ab({"ab": {"a": 0, "b": 1}}),
        "compound 'ab': the weight of 'a' must be a positive number, got the number 0",
    ),
    "negative weight": (
        ab({"ab": {"a": 1, "b": -2.5}}),
        "compound 'ab': the weight of 'b' must be a positive",
    ),
    "nan weight": (ab({"ab": {"a": 1, "b": math.nan}}), "compound 'ab': the weight of 'b'"),
    "inf weight": (ab({"ab": {"a": math.inf, "b": 1}}), "compound 'ab': the weight of 'a'"),
    "text weight": (
        ab({"ab": {"a": "0.5", "b": 1}}),
        "compound 'ab': the weight of 'a' must be a number",
    ),
    "bool weight": (
        ab({"ab": {"a": True, "b": 1}}),
        "compound 'ab': the weight of 'a' must be a number",
    ),
    "compound clashes with class": (
        ab({"A": ["a", "b"]}),
        "compound 'A' has the same name as class 'a'",
    ),
}


@pytest.mark.parametrize("case", sorted(INVALID))
def test_invalid_sets_raise_naming_the_problem(case):
    data, expected = INVALID[case]
    message = error_of(ClassSet.from_dict, data)
    assert expected in message
    assert expected in error_of(ClassSet.parse, json.dumps(data, allow_nan=True))


def test_wrong_number_of_weights():
    classes = small_set()
    message = error_of(classes.with_compound, "mix", ["anger", "sadness"], [1.0])
    assert "compound 'mix' has 1 weights for 2 parts" in message
    bad = Compound("mix", ("anger", "sadness"), (1.0, 2.0, 3.0))
    direct = ClassSet("s", classes.classes, (bad,))
    assert "compound 'mix' has 3 weights for 2 parts" in error_of(direct.validate)


def test_all_problems_are_reported():
    with pytest.raises(ClassSetError) as info:
        ClassSet.from_dict({"a": "", "b": "x" * 2000, "c": "ok"})
    assert len(info.value.problems) == 2
    assert "class 'a'" in str(info.value) and "class 'b'" in str(info.value)


def test_newline_and_tab_are_allowed_in_names():
    classes = ClassSet.from_dict({"two\nlines": "x", "a\tb": "y"})
    assert classes.names == ["two\nlines", "a\tb"]


def test_custom_limits():
    data = {"a": ["x", "y"], "b": "z"}
    assert "too many classes" in error_of(ClassSet.from_dict, data, limits=Limits(max_classes=1))
    one_text = Limits(max_descriptions=1)
    assert "(the limit is 1)" in error_of(ClassSet.from_dict, data, limits=one_text)
    assert ClassSet.from_dict(many(100), limits=Limits(max_classes=100)).names[-1] == "class 99"


def test_direct_construction_with_wrong_types_is_reported():
    assert "class 'a': description 1 must be text" in error_of(
        ClassSet("s", (EmotionClass("a", (1,)),)).validate  # type: ignore[arg-type]
    )
    assert "class 1: the name must be text" in error_of(
        ClassSet("s", (EmotionClass(None, ("x",)),)).validate  # type: ignore[arg-type]
    )
    not_classes = ClassSet("s", ("anger",))  # type: ignore[arg-type]
    assert "classes must be" in error_of(not_classes.validate)


LONG_TEXT = " ".join(["A face with a wrinkled forehead, narrowed eyes and tight lips."] * 8)


def test_truncation_warning_for_long_descriptions():
    classes = ClassSet.from_dict({"anger": ["short", LONG_TEXT], "joy": "A broad smile"})
    warnings = classes.validate()
    assert len(warnings) == 1
    assert warnings[0].startswith("class 'anger': description 2 is ")
    assert warnings[0].endswith(" tokens; the text encoder reads only the first 77")
    tokens = int(warnings[0].split(" is ")[1].split()[0])
    assert tokens > 77


def test_no_warning_for_short_descriptions():
    assert ClassSet.from_dict({"anger": "A frown", "joy": "A smile"}).validate() == []


def test_other_warnings():
    warnings = ClassSet.from_dict({"a": ["x", "y", "x"], "b": ["y", "x"]}).validate()
    assert "class 'a': description 3 repeats description 1" in warnings
    assert any("'a' and 'b' have the same descriptions" in w for w in warnings)


# ---- edits -------------------------------------------------------------------------------------


def test_edits_are_immutable():
    classes = small_set()
    before = classes.to_dict()
    classes.with_class("fear", "wide eyes")
    classes.without("anger")
    classes.renamed("anger", "rage")
    classes.with_compound("mix", ["anger", "sadness"])
    assert classes.to_dict() == before
    with pytest.raises(dataclasses.FrozenInstanceError):
        classes.name = "other"  # type: ignore[misc]
    assert isinstance(classes.classes, tuple) and isinstance(classes.classes[0].descriptions, tuple)


def test_with_class_adds_or_replaces():
    classes = small_set()
    added = classes.with_class(" fear ", ["wide eyes", "frozen"])
    assert added.names[:4] == ["anger", "happiness", "sadness", "fear"]
    assert added.names[-1] == "bittersweet"
    replaced = classes.with_class("ANGER", "a deep frown")
    assert replaced.classes[0] == EmotionClass("anger", ("a deep frown",))
    assert replaced.names == classes.names
    assert "class 'fear' has no descriptions" in error_of(classes.with_class, "fear", [])
    assert "has the same name as compound 'bittersweet'" in error_of(
        classes.with_class, "Bittersweet", "x"
    ) or "compound 'bittersweet' has the same name as class 'Bittersweet'" in error_of(
        classes.with_class, "Bittersweet", "x"
    )


def test_without_class_drops_its_compounds_or_refuses():
    classes = small_set()
    dropped = classes.without("Sadness")
    assert dropped.names == ["anger", "happiness"]
    message = error_of(classes.without, "sadness", cascade=False)
    assert "'sadness'" in message and "'bittersweet'" in message
    assert classes.without("anger").names == ["happiness", "sadness", "bittersweet"]
    assert classes.without("bittersweet").compounds == ()
    assert "no class or compound named 'fear'" in error_of(classes.without, "fear")
    single = ClassSet.from_dict({"only": "x"})
    assert "no classes" in error_of(single.without, "only")


def test_renamed_updates_compounds():
    classes = small_set()
    renamed = classes.renamed("happiness", " joy ")
    assert renamed.names == ["anger", "joy", "sadness", "bittersweet"]
    assert renamed.compounds[0].parts == ("joy", "sadness")
    assert renamed.compounds[0].weights == (0.6, 0.4)
    assert classes.renamed("anger", "Anger").names[0] == "Anger"
    assert classes.renamed("bittersweet", "wistful").names[-1] == "wistful"
    assert "has the same name as" in error_of(classes.renamed, "anger", "SADNESS")
    assert "empty name" in error_of(classes.renamed, "anger", "  ")
    assert "no class or compound named 'fear'" in error_of(classes.renamed, "fear", "x")


def test_with_compound():
    classes = small_set()
    added = classes.with_compound("angry-sad", ["ANGER", "sadness"], [2, 1])
    assert added.compounds[-1] == Compound("angry-sad", ("anger", "sadness"), (2.0, 1.0))
    assert added.names[-2:] == ["bittersweet", "angry-sad"]
    replaced = classes.with_compound("Bittersweet", ["happiness", "sadness"])
    assert replaced.compounds == (Compound("Bittersweet", ("happiness", "sadness")),)
    assert "compound 'x': 'fear' is not a class" in error_of(
        classes.with_compound, "x", ["anger", "fear"]
    )
    assert "compound 'anger' has the same name as class 'anger'" in error_of(
        classes.with_compound, "anger", ["happiness", "sadness"]
    )


# ---- hostile and malformed input ---------------------------------------------------------------


MALFORMED = {
    "yaml syntax": ("classes:\n  anger: [unclosed\n", "YAML error at line"),
    "bad indentation": ("a: b\n  c: d\n", "YAML error at line 2"),
    "json syntax": ('{"classes": {"anger": "x" "joy": "y"}}', "JSON syntax error at line 1, col"),
    "json list syntax": ('[{"name": "a"', "JSON syntax error"),
    "scalar": ("just some text", "expected a mapping of class names"),
    "number": ("42", "got the number 42"),
    "empty": ("", "empty"),
    "comment only": ("# nothing\n", "empty"),
    "list where mapping": ("classes: [1, 2]", "class 1: expected a mapping"),
    "classes text": ("classes: anger", "'classes' must be a mapping"),
    "compounds list": ("classes: {a: x, b: y}\ncompounds: [a, b]", "'compounds' must be a mapping"),
    "nested garbage": ("anger: {a: {b: [c]}}", "class 'anger': descriptions must be text"),
    "unknown top key": ("classes: {a: x}\ncompunds: {}", "unknown top-level key 'compunds'"),
    "number key": ("1: x", "class names must be text, got the number 1; put it in quotes"),
    "bool key": ("yes: x", "got the true/false value true"),
    "null key": ("~: x", "got nothing (null)"),
    "date value": ("anger: 2024-01-01", "got a date"),
    "bad date": ("anger: 2024-02-31", "cannot be read"),
    "binary": ("anger: !!binary aGVsbG8=", "got binary data"),
    "set": ("anger: !!set {a, b}", "got a set"),
    "duplicate yaml key": ("anger: x\njoy: y\nanger: z\n", "line 3, column 1: duplicate key"),
    "duplicate json key": ('{"anger": "x", "anger": "y"}', "duplicate key 'anger'"),
    "python tag": ("!!python/object/apply:os.system ['echo pwned']", "YAML error"),
    "python name": ("anger: !!python/name:os.system", "YAML error"),
    "two documents": ("a: x\n---\nb: y\n", "YAML error"),
    "merge key": ("base: &b {x: 1}\nanger:\n  <<: *b\n", "merge keys"),
    "nul char": ("joy: x\nanger: a\x00b", "YAML error at line 2: the character U+0000"),
    "huge yaml int": ("anger: " + "9" * 5000, "a number is too long"),
    "huge int": ('{"a": ' + "9" * 5000 + "}", "too large"),
    "deep json": ("[" * 100_000 + "]" * 100_000, "JSON"),
    "deep yaml": ("- " * 100_000 + "x", "nested too deeply"),
    "too large": ("a: " + "x" * 300_000, "the limit is 256 kB"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_input_gives_clear_errors(case):
    text, expected = MALFORMED[case]
    assert expected in error_of(ClassSet.parse, text)


def test_yaml_and_json_readers_report_their_own_syntax():
    assert "JSON syntax error" in error_of(ClassSet.from_json, "anger: x")
    trailing_comma = '{"anger": "x",}'  # YAML but not JSON
    assert "JSON syntax error at line 1, column 15" in error_of(ClassSet.from_json, trailing_comma)
    assert ClassSet.parse(trailing_comma).names == ["anger"]
    assert "YAML error" in error_of(ClassSet.from_yaml, "anger: [x")


def test_alias_bombs_are_cheap_to_reject():
    laughs = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    laughs += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 12)]
    merges = ["m0: &m0 {k0: 1}"]
    merges += [f"m{i}: &m{i} {{<<: [*m{i - 1}, *m{i - 1}], k{i}: 1}}" for i in range(1, 40)]
    wide = "classes: [" + ", ".join(["*x"] * 20_000) + "]"
    for text in ("\n".join(laughs), "\n".join(merges), "x: &x [a]\n" + wide, "x: &a [*a]"):
        start = time.perf_counter()
        with pytest.raises(ClassSetError):
            ClassSet.parse(text)
        assert time.perf_counter() - start < 2


def test_never_loads_with_an_unsafe_loader(tmp_path):
    marker = tmp_path / "pwned"
    path = f"!!python/object/apply:pathlib.Path ['{marker}']"
    text = f"!!python/object/apply:pathlib.Path.touch [{path}]"
    with pytest.raises(ClassSetError):
        ClassSet.parse(text)
    assert not marker.exists()


def test_parse_rejects_non_text():
    with pytest.raises(TypeError):
        ClassSet.parse(b"anger: x")  # type: ignore[arg-type]


# ---- properties --------------------------------------------------------------------------------

CHARS = st.characters(blacklist_categories=("Cc", "Cs")) | st.sampled_from("\n\t")
NAMES = st.text(CHARS, min_size=1, max_size=20)
TEXTS = st.text(CHARS, min_size=1, max_size=60)
WEIGHTS = st.floats(min_value=1e-6, max_value=1e6, allow_nan=False, allow_infinity=False)
PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def class_sets(draw) -> ClassSet:
    entries = draw(
        st.lists(
            st.tuples(NAMES, st.lists(TEXTS, min_size=1, max_size=3)),
            min_size=1, max_size=6, unique_by=lambda e: e[0].strip().casefold(),
        )
    )  # fmt: skip
    classes = tuple(EmotionClass(name, tuple(texts)) for name, texts in entries)
    compounds = []
    if len(classes) >= 2:
        for index in range(draw(st.integers(0, 2))):
            parts = draw(st.permutations([c.name for c in classes]))[: draw(st.integers(2, 3))]
            weights = draw(st.none() | st.lists(WEIGHTS, min_size=len(parts), max_size=len(parts)))
            compounds.append(Compound(f"{draw(NAMES)} compound {index}", tuple(parts), weights))
    candidate = ClassSet(draw(NAMES), classes, tuple(compounds))
    try:
        candidate.validate()
    except ClassSetError:  # e.g. a name that is only whitespace, or names equal ignoring case
        reject()
    return candidate


@PROPERTY
@given(class_sets())
def test_property_valid_sets_round_trip_exactly(classes):
    assert ClassSet.from_yaml(classes.to_yaml()) == classes
    assert ClassSet.from_json(classes.to_json()) == classes
    assert ClassSet.parse(classes.to_yaml()) == classes
    assert ClassSet.parse(classes.to_json()) == classes
    assert ClassSet.from_dict(classes.to_dict()) == classes


def parses_or_raises_cleanly(text: str) -> None:
    try:
        result = ClassSet.parse(text)
    except ClassSetError as error:
        assert str(error)
    else:
        assert isinstance(result, ClassSet)
        result.validate()


@PROPERTY
@given(st.text())
def test_property_parse_any_text(text):
    parses_or_raises_cleanly(text)


@PROPERTY
@given(st.text(alphabet="ab: -\n\t[]{},&*!'\"#<>?|~.01\\"))
def test_property_parse_yaml_like_text(text):
    parses_or_raises_cleanly(text)


SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=12)
    | st.sampled_from(["classes", "compounds", "name", "anger", "joy", "<<"])
)  # fmt: skip
KEYS = st.text(max_size=8) | st.sampled_from(["classes", "compounds", "name", "anger", "joy"])
STRUCTURES = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=4),
    max_leaves=20,
)


@PROPERTY
@given(STRUCTURES)
def test_property_parse_any_structure(data):
    parses_or_raises_cleanly(json.dumps(data))
    parses_or_raises_cleanly(yaml.safe_dump(data, allow_unicode=True))
    try:
        result = ClassSet.from_dict(data)
    except ClassSetError:
        return
    assert isinstance(result, ClassSet)
