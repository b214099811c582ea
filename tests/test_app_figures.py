"""The app's plots: the live timeline, built on every webcam frame, is the figure plotly's
validated construction gives, only cheaper."""

from __future__ import annotations

import html
import json

import numpy as np
import pytest

NAMES = ["happiness", "sadness", "<b>bold</b> & <a href='x'>link</a>"]


def _history(n: int) -> tuple[list[float], np.ndarray]:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(NAMES)), size=n).astype(np.float32)
    return [0.5 * i for i in range(n)], probs


@pytest.mark.parametrize("n", [0, 1, 240])
def test_live_figure_equals_the_validated_figure(n):
    import plotly.graph_objects as go

    from emoclip_app.figures import live_figure, live_figure_spec

    times, probs = _history(n)
    fast = json.loads(live_figure(times, probs, NAMES).to_json())
    validated = json.loads(go.Figure(live_figure_spec(times, probs, NAMES)).to_json())
    assert fast == validated
    # the legend starts with the class the latest prediction ranks first
    order = list(np.argsort(-probs[-1], kind="stable")) if n else [0, 1, 2]
    escaped = [html.escape(n, quote=True) for n in NAMES]
    assert [t["name"] for t in fast["data"]][:2] == [escaped[j] for j in order[:2]]
    assert all(len(t["x"]) == len(t["y"]) == n for t in fast["data"])
    if n:
        got = np.array([t["y"] for t in fast["data"]]).T
        np.testing.assert_allclose(got, probs[:, order], rtol=1e-6)
    assert fast["layout"]["yaxis"]["range"] == [0, 1]
    assert fast["layout"]["template"]["layout"]  # the template travels with the figure


def test_live_figure_escapes_class_names():
    from emoclip_app.figures import live_figure

    times, probs = _history(3)
    shown = json.loads(live_figure(times, probs, NAMES).to_json())
    assert "&lt;b&gt;bold&lt;/b&gt; &amp; &lt;a href=&#x27;x&#x27;&gt;link&lt;/a&gt;" in [
        t["name"] for t in shown["data"]
    ]


def test_live_figure_refuses_a_history_of_the_wrong_shape():
    from emoclip_app.figures import live_figure

    times, probs = _history(4)
    with pytest.raises(ValueError):
        live_figure(times, probs[:, :2], NAMES)
