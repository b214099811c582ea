"""What each handler returns, by name: one named tuple per kind of event.

A handler returns one of these records; the event's outputs are the components of the same
names (`components(ui, Record)`), so nothing is wired by position or by a counted length. The
names are the attributes of the app's `ui` namespace, each component named once (`demo.py`).
"""

from __future__ import annotations

from collections import namedtuple
from collections.abc import Iterable
from typing import Any

import gradio as gr


def _record(name: str, fields: Iterable[str]) -> Any:
    """A named tuple class with `fields` (a type checker cannot follow computed fields into
    ``namedtuple``: to it the records are Any; `test_app` checks them against the UI)."""
    return namedtuple(name, tuple(fields))


STATUS = ("session", "status", "model", "card", "timer")
EDITOR = ("table", "yaml", "message", "class_pick", "parts", "compound_pick")


RESULT = (
    "summary",
    "label",
    "evidence",
    "bars",
    "bars_text",
    "timeline",
    "timeline_text",
    "gallery",
    "files",
    "timings",
    "warnings",
    "classes_label",
    "rescore",
    *("faces_image", "faces", "face_pick", "face_table"),  # a photo's faces (cleared by a video)
    "timeline_box",  # a layout, last: hidden for a photo (no time axis); API clients get no value
)

MODEL_CONTROLS = ("fallback", "gallery", "photo_box", "live_note")
ModelChange = _record("ModelChange", (*STATUS, *EDITOR, *MODEL_CONTROLS))
"""The status line, model menu, model card and timer, the class editor, and the controls and
captions that depend on what the running model does."""
Analysed = _record("Analysed", ("session", *RESULT))
"""A video's or a photo's result in the Analyse tab and in the Classes tab (for a photo, the
chosen face's, with the photo's numbered boxes, the faces table and the face selector)."""
ClassChange = _record("ClassChange", ("session", *EDITOR, *RESULT))
"""A class-set change: the editors, and the current video re-scored."""
ClassAdded = _record("ClassAdded", (*ClassChange._fields, "new_name", "new_desc"))
PresetChosen = _record("PresetChosen", (*ClassChange._fields, "undo_btn"))
ClassRenamed = _record("ClassRenamed", (*ClassChange._fields, "rename_to"))
CompoundAdded = _record("CompoundAdded", (*ClassChange._fields, "preview"))
LiveStep = _record("LiveStep", ("live_label", "live_plot", "live_info", "live_buffer"))
Explored = _record("Explored", ("session", "latent_plot", "point_pick", "explore_info"))
Picked = _record("Picked", ("neighbours", "point_video", "point_info", "latent_plot"))
Clicked = _record("Clicked", (*Picked._fields, "point_pick"))


def skipped(record: Any, **values: Any) -> Any:
    """`record` with `values` set and every other output left as it is (gr.skip())."""
    return record(**{name: values.get(name, gr.skip()) for name in record._fields})


def components(ui: Any, record: Any) -> list[Any]:
    """The components of `ui` named by `record`'s fields (a record class above) or by the names
    given (an iterable of str), in order."""
    names: Iterable[str] = getattr(record, "_fields", record)
    return [getattr(ui, name) for name in names]
