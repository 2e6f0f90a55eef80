"""``python -m bridge`` is the ``tiledesk-bridge`` command."""

from bridge.cli import main

raise SystemExit(main())
