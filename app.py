"""EmoCLIP demo: the Hugging Face Space's (and ``python app.py``'s) entry point.

The app is the `emoclip_app` package; this file only builds it. ``python app.py [--verbose]``
serves it (``gradio app.py`` for reload mode); the environment variables it reads are listed in
`emoclip_app.settings`.
"""

from __future__ import annotations

import sys

from emoclip_app import QUEUE, build_demo, main

demo = build_demo().queue(**QUEUE)  # module level: what `gradio app.py` and Spaces serve

if __name__ == "__main__":
    main(sys.argv[1:], demo)
