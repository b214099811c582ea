"""The reference pairs that calibrate the class-set check (`classcheck`) for the running model.

Text towers differ in how alike they embed any two sentences, so "too close" is measured against
the model itself: the same model embeds these pairs, and a class pair is flagged when its
similarity is nearer the paraphrases' than the distinct pairs' (`classcheck.calibrate`).

PARAPHRASE_PAIRS say the same facial expression in different words; DISTINCT_PAIRS describe
different expressions in the same style. They describe faces by their parts (mouth, brows, eyes),
in words any CLIP text tower reads and in the vocabulary the synthetic toy model was trained on,
plus a few emotion-word pairs. No test class set uses these sentences (tests/test_classcheck.py
checks that its own pairs are not among them).
"""

from __future__ import annotations

__all__ = ["DISTINCT_PAIRS", "PARAPHRASE_PAIRS"]

PARAPHRASE_PAIRS: tuple[tuple[str, str], ...] = (
    (
        "A face with a wide smile and calm eyes",
        "A person whose lips curl into a grin while the eyes stay calm",
    ),
    (
        "A face with a deep frown and lowered eyebrows",
        "Someone whose mouth turns down while the brows knit together",
    ),
    (
        "A face with wide-open eyes and an open mouth",
        "A person whose eyes go wide and whose jaw falls open",
    ),
    (
        "A face with narrowed eyes and a tight, straight mouth",
        "Someone with squinting eyes and lips pressed together",
    ),
    (
        "A face with raised eyebrows and staring eyes",
        "A person whose brows shoot up and whose eyes widen",
    ),
    (
        "A calm face with a closed mouth and level eyebrows",
        "A face at rest: lips closed, brows level",
    ),
    ("A happy, smiling person", "A cheerful person grinning"),
    ("An angry person scowling", "A furious person glaring"),
)

DISTINCT_PAIRS: tuple[tuple[str, str], ...] = (
    (
        "A face with a wide smile and calm eyes",
        "A face with a deep frown and lowered eyebrows",
    ),
    (
        "A face with wide-open eyes and an open mouth",
        "A calm face with a closed mouth and level eyebrows",
    ),
    (
        "A face with narrowed eyes and a tight, straight mouth",
        "A face with raised eyebrows and staring eyes",
    ),
    (
        "A person whose lips curl into a grin while the eyes stay calm",
        "A person whose eyes go wide and whose jaw falls open",
    ),
    (
        "Someone with squinting eyes and lips pressed together",
        "Someone whose mouth turns down while the brows knit together",
    ),
    (
        "A person whose brows shoot up and whose eyes widen",
        "A face at rest: lips closed, brows level",
    ),
    ("A happy, smiling person", "An angry person scowling"),
    ("A cheerful person grinning", "A sad person crying"),
)
