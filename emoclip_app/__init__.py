"""The EmoCLIP Gradio app: analyse videos and photos, live webcam, classes and compounds,
latent explorer, About and API tabs, on top of the `emoclip` library.

Layout: `settings` (environment limits), `models` (the background model manager shared by all
sessions), `state` (what a session owns), `outputs` (what each handler returns, by component
name), `errors`, `figures`, `files`, `header` (status line and model menu), one module per tab in
`tabs/`, and `demo` (assembles them; `build_demo`, `main`). The About text is ``about.md``.

Importing this package does no model work (models load when a page opens or at
`emoclip_app.models.MODELS.start()`); it needs the ``app`` extra (``pip install emoclip[app]``).
"""

from __future__ import annotations

from .demo import build_demo, launch_options, main
from .files import delete_cache_policy
from .settings import QUEUE

__all__ = ["QUEUE", "build_demo", "delete_cache_policy", "launch_options", "main"]
