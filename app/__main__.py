"""``python -m app`` starts the service, like the ``lightbox`` command."""

from app.cli import main

raise SystemExit(main())
