"""``python -m emoclip`` runs the command line."""

from emoclip.cli import main

raise SystemExit(main())
