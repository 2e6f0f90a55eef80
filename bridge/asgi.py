"""The app for ``uvicorn bridge.asgi:app`` and for each worker of ``serve --workers N``."""

from __future__ import annotations

import sys

from bridge.logs import setup_logging
from bridge.settings import SettingsError, load_settings
from bridge.web import create_app

try:
    _settings = load_settings()
except SettingsError as exc:
    for line in exc.problems:
        print(line, file=sys.stderr)
    raise SystemExit(2) from None

setup_logging(_settings.server.log_format, _settings.server.log_level)
app = create_app(_settings)
