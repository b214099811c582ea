"""Captions of the synthetic clips: the shared vocabulary (noun phrases, clauses, adverbs, leads)
and `caption`, a sample-level caption of an `Expression` in a random style (see `synthetic`)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from emoclip.train.synthetic_cues import CUES, Expression

__all__ = ["ADVERBS", "CLAUSES", "NOUNS", "NOUN_LEADS", "caption"]

# The caption vocabulary, public so that tests and the paraphrase checks can read every word a
# caption may use (with the template words of `caption`: "A face whose ... while ...", ", as ",
# ", with ", ", showing "). Read-only by convention.
#
# NOUNS[cue][value]: the noun phrases of one cue value ("a wide smile").
# CLAUSES[cue][value]: its clauses as (subject, predicate), so that they read both as
# "the eyes narrow" and as "a face whose eyes narrow". The neutral values get stative verbs.
# ADVERBS: put before a non-neutral predicate a quarter of the time ("slowly narrow").
# NOUN_LEADS: how a noun-phrase caption starts ("A face with "; "" for none).
NOUNS: dict[str, dict[str, tuple[str, ...]]] = {
    "mouth": {
        "smile": (
            "a smile",
            "a wide smile",
            "a broad grin",
            "a slight smile",
            "upturned lips",
            "a mouth turned up at the corners",
            "a grin",
        ),
        "frown": (
            "a frown",
            "a downturned mouth",
            "a deep frown",
            "lips turned down",
            "a mouth turned down at the corners",
            "a sulky, downturned mouth",
        ),
        "open": (
            "an open mouth",
            "a gaping mouth",
            "a gasp",
            "a round, open mouth",
            "a mouth dropped open",
            "an O-shaped mouth",
        ),
        "flat": (
            "a flat mouth",
            "a closed, straight mouth",
            "lips pressed into a straight line",
            "a tight, straight mouth",
            "a closed mouth",
            "a flat, even mouth",
        ),
    },
    "brows": {
        "raised": (
            "raised eyebrows",
            "lifted brows",
            "arched eyebrows",
            "high, raised brows",
            "eyebrows pulled up",
        ),
        "furrowed": (
            "furrowed brows",
            "lowered eyebrows",
            "knitted brows",
            "eyebrows drawn together",
            "a furrowed brow",
            "brows lowered and knitted",
        ),
        "neutral": (
            "level eyebrows",
            "brows at rest",
            "eyebrows at rest",
            "level, resting brows",
            "untroubled, level brows",
        ),
    },
    "eyes": {
        "wide": (
            "wide-open eyes",
            "wide eyes",
            "staring eyes",
            "eyes opened wide",
            "big, wide eyes",
        ),
        "narrowed": (
            "narrowed eyes",
            "squinting eyes",
            "half-closed eyes",
            "narrow eyes",
            "heavy-lidded eyes",
            "eyes narrowed to slits",
        ),
        "normal": (
            "ordinary eyes",
            "calm eyes",
            "normally open eyes",
            "calm, ordinary eyes",
            "steady eyes",
        ),
    },
}

CLAUSES: dict[str, dict[str, tuple[tuple[str, str], ...]]] = {
    "mouth": {
        "smile": (
            ("mouth", "curves up into a smile"),
            ("lips", "spread into a grin"),
            ("mouth", "turns up at the corners"),
            ("lips", "curl into a smile"),
        ),
        "frown": (
            ("mouth", "turns down into a frown"),
            ("lips", "turn down"),
            ("corners of the mouth", "droop"),
            ("mouth", "sinks into a frown"),
        ),
        "open": (
            ("mouth", "drops open"),
            ("jaw", "falls open in a gasp"),
            ("mouth", "opens into a round O"),
            ("lips", "part wide in a gasp"),
        ),
        "flat": (
            ("mouth", "stays closed and straight"),
            ("lips", "stay pressed together"),
            ("mouth", "remains a flat line"),
            ("lips", "stay closed and flat"),
        ),
    },
    "brows": {
        "raised": (
            ("eyebrows", "rise"),
            ("brows", "lift"),
            ("eyebrows", "arch upward"),
            ("brows", "shoot up"),
        ),
        "furrowed": (
            ("brows", "knit together"),
            ("eyebrows", "lower and draw together"),
            ("brows", "furrow"),
            ("eyebrows", "pull down into a furrow"),
        ),
        "neutral": (
            ("eyebrows", "stay level"),
            ("brows", "remain at rest"),
            ("eyebrows", "stay at rest"),
            ("brows", "stay level"),
        ),
    },
    "eyes": {
        "wide": (
            ("eyes", "widen"),
            ("eyes", "open wide"),
            ("eyes", "go wide"),
            ("eyes", "stare wide open"),
        ),
        "narrowed": (
            ("eyes", "narrow"),
            ("eyes", "squint"),
            ("eyes", "narrow to slits"),
            ("eyes", "half close"),
        ),
        "normal": (
            ("eyes", "stay calm"),
            ("eyes", "look ahead normally"),
            ("eyes", "remain ordinary"),
            ("eyes", "stay steady"),
        ),
    },
}

_NEUTRAL_VALUES = {"flat", "neutral", "normal"}
ADVERBS = ("slowly", "gradually", "suddenly")
NOUN_LEADS = (
    "A face with ",
    "A person with ",
    "Someone with ",
    "The face shows ",
    "A cartoon face with ",
    "An expression with ",
    "",
)


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _join(parts: Sequence[str]) -> str:
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _clause(cue: str, value: str, rng: np.random.Generator, *, article: bool = True) -> str:
    subject, predicate = _pick(rng, CLAUSES[cue][value])
    if value not in _NEUTRAL_VALUES and rng.random() < 0.25:
        predicate = f"{_pick(rng, ADVERBS)} {predicate}"
    return f"{'the ' if article else ''}{subject} {predicate}"


def caption(expr: Expression, rng: np.random.Generator) -> str:
    """A sample-level caption describing the cues of `expr`.

    Synonyms, a random cue order, one dropped cue a quarter of the time, and a style drawn among
    noun phrases ("A face with raised eyebrows and a wide smile."), clauses ("The eyes narrow
    and the mouth turns down into a frown.") and mixtures ("A face whose eyes widen while the
    brows lift, with an open mouth.").
    """
    cues = [(cue, getattr(expr, cue)) for cue in CUES]
    order = rng.permutation(len(cues))
    if rng.random() < 0.25:
        order = order[1:]
    cues = [cues[i] for i in order]
    nouns = [_pick(rng, NOUNS[cue][value]) for cue, value in cues]
    style = int(rng.integers(5))
    if style == 0:  # noun phrases only
        text = _pick(rng, NOUN_LEADS) + _join(nouns)
    elif style == 1:  # clauses only
        text = _join([_clause(cue, value, rng) for cue, value in cues])
    elif style == 2:  # "A face whose ... while ..."
        first = _clause(*cues[0], rng, article=False)
        rest = [_clause(cue, value, rng) for cue, value in cues[1:]]
        text = f"A face whose {first} while {_join(rest)}"
    elif style == 3:  # noun phrases, then a clause
        lead = _pick(rng, NOUN_LEADS[:-1])
        link = _pick(rng, (", as ", " while ", "; "))
        text = lead + _join(nouns[:-1]) + link + _clause(*cues[-1], rng)
    else:  # clauses, then a noun phrase
        clauses = [_clause(cue, value, rng) for cue, value in cues[:-1]]
        text = _join(clauses) + _pick(rng, (", with ", ", showing ")) + nouns[-1]
    return text[0].upper() + text[1:] + "."
