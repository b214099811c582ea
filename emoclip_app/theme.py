"""The app's theme: gradio's default layout with colours that meet WCAG AA contrast (4.5:1 for
text) on primary and stop buttons, the selected tab, and hint texts; the browser tests compute
the contrast of the rendered colours (`tests/test_app_ux_browser.py`).

Measured ratios (white text on the fill, or the text on white): primary #1d4ed8 6.7:1, stop
#b91c1c 6.5:1, accent text #1d4ed8 6.7:1, hints #4b5563 7.6:1.
"""

from __future__ import annotations

from typing import Any

PRIMARY = "#1d4ed8"  # blue-700
PRIMARY_HOVER = "#1e40af"  # blue-800
STOP = "#b91c1c"  # red-700
STOP_HOVER = "#991b1b"  # red-800
SUBDUED = "#4b5563"  # gray-600


def theme() -> Any:
    """A `gr.themes.Default` with the colours above (light and dark)."""
    import gradio as gr

    return gr.themes.Default(primary_hue=gr.themes.colors.blue).set(
        button_primary_background_fill=PRIMARY,
        button_primary_background_fill_dark=PRIMARY,
        button_primary_background_fill_hover=PRIMARY_HOVER,
        button_primary_background_fill_hover_dark=PRIMARY_HOVER,
        button_primary_text_color="#ffffff",
        button_primary_text_color_dark="#ffffff",
        button_primary_border_color=PRIMARY,
        button_primary_border_color_dark=PRIMARY,
        button_cancel_background_fill=STOP,
        button_cancel_background_fill_dark=STOP,
        button_cancel_background_fill_hover=STOP_HOVER,
        button_cancel_background_fill_hover_dark=STOP_HOVER,
        button_cancel_text_color="#ffffff",
        button_cancel_text_color_dark="#ffffff",
        button_cancel_border_color=STOP,
        button_cancel_border_color_dark=STOP,
        color_accent=PRIMARY,
        color_accent_soft="#dbeafe",
        block_info_text_color=SUBDUED,
        body_text_color_subdued=SUBDUED,
    )
