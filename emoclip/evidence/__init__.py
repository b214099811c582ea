"""Evidence for every answer: the key moments of a clip (leave-one-out re-pooling of its cached
frame embeddings), the words that matched, the margin, and the class-set check.

`report` holds the plain-data types (no torch); `moments`, `words` and `explain` compute them;
`classcheck` checks a class set against the running model's text tower.
"""

from __future__ import annotations

from emoclip._lazy import attach

__getattr__, __dir__, __all__ = attach(
    __name__,
    {
        "ClassWords": "report",
        "Evidence": "report",
        "Moment": "report",
        "explain_lines": "report",
        "explain": "explain",
        "explain_encoding": "explain",
        "leave_one_out": "moments",
        "check_classes": "classcheck",
    },
)
