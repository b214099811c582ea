"""Which words matched: each description's (and each compound part's) similarity to the clip,
the best-matching one per class, and the margin of the top class over the runner-up.

`UNCERTAIN_MARGIN` was chosen on calibration data the tests never assert on:
``python scripts/calibrate_uncertain.py --clips 160`` (the shipped synthetic toy model on fresh
clips of the synthetic generator's validation classes, seed 777, drawn at 32 px so that some
answers are wrong, scored against all twelve synthetic classes) chose 0.80 by Youden's J (the
margin that best separates wrong answers from right ones): answers less than 0.70 ahead were right
60 % of the time (50 clips), answers further ahead 98 % (110 clips). docs/evidence.md records the
run and what it means for other models.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from emoclip.evidence.report import ClassWords

__all__ = ["UNCERTAIN_MARGIN", "class_words", "margin", "ranked"]

UNCERTAIN_MARGIN = 0.80  # top probability - runner-up's; see the module docstring


def ranked(probabilities: dict[str, float]) -> list[str]:
    """Class names, most probable first (ties keep the class set's order)."""
    return sorted(probabilities, key=lambda name: -probabilities[name])


def margin(probabilities: dict[str, float]) -> tuple[str, str | None, float]:
    """``(top, runner-up, top probability - runner-up probability)``; (top, None, 1.0) for one class."""
    order = ranked(probabilities)
    if len(order) < 2:
        return order[0], None, 1.0
    return order[0], order[1], float(probabilities[order[0]] - probabilities[order[1]])


def class_words(
    clip: torch.Tensor,
    classes: Sequence[tuple[str, Sequence[str]]],
    compounds: Sequence[tuple[str, Sequence[str]]],
    texts: Sequence[str],
    text_embeddings: torch.Tensor,
    class_embeddings: torch.Tensor,
) -> list[ClassWords]:
    """Each class's descriptions and each compound's parts with their similarity to the clip.

    Args:
        clip: (D,) the clip embedding.
        classes: (name, descriptions) per class, in score order.
        compounds: (name, part names) per compound, in score order.
        texts: The distinct descriptions, the rows of `text_embeddings`.
        text_embeddings: (N, D) their embeddings (the text cache's: nothing is encoded here).
        class_embeddings: (C, D) the class then compound embeddings, in score order.

    Returns:
        One `ClassWords` per class then per compound, in score order.
    """
    video = F.normalize(clip.float().reshape(1, -1), dim=-1)
    sims = (video @ F.normalize(text_embeddings.float(), dim=-1).t())[0].numpy()
    by_text = dict(zip(texts, sims.tolist()))
    class_sims = (video @ F.normalize(class_embeddings.float(), dim=-1).t())[0].numpy()
    by_class = dict(zip([n for n, _ in classes], class_sims.tolist()))
    out = []
    for name, descriptions in classes:
        items = [(d, float(by_text[d])) for d in dict.fromkeys(descriptions)]
        out.append(ClassWords(name, "class", items, _best(items)))
    for name, parts in compounds:
        items = [(p, float(by_class[p])) for p in parts]
        out.append(ClassWords(name, "compound", items, _best(items)))
    return out


def _best(items: list[tuple[str, float]]) -> str:
    return items[int(np.argmax([s for _, s in items]))][0]
