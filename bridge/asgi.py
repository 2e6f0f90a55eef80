"""The app for ``uvicorn bridge.asgi:app`` and for each worker of ``serve --workers N``.

The development IdP keeps its codes and keys in one process, and so do the one-time handles
of [sites] sign-ins unless Redis shares them: either is refused here when this process is
one of several workers, however the server was started.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shlex
import sys
from pathlib import Path
from typing import NoReturn

from bridge.logs import setup_logging
from bridge.settings import SettingsError, load_settings
from bridge.web import create_app

#: uvicorn and gunicorn stop (rather than respawn) a worker set whose worker exits with 3.
EXIT_WORKER_BOOT_FAILURE = 3
EXIT_USAGE = 2

_WORKER_FLAGS = {
    "uvicorn": ("--workers",),
    "gunicorn": ("--workers", "-w"),
    "tiledesk-bridge": ("--workers",),
}


def _flag_value(argv: list[str], flags: tuple[str, ...]) -> str | None:
    """The last value given to one of ``flags`` (``--workers 2``, ``--workers=2``, ``-w2``)."""
    found = None
    for i, arg in enumerate(argv):
        for flag in flags:
            if arg == flag and i + 1 < len(argv):
                found = argv[i + 1]
            elif arg.startswith(f"{flag}="):
                found = arg.split("=", 1)[1]
            elif len(flag) == 2 and arg.startswith(flag) and len(arg) > 2:
                found = arg[2:]
    return found


def worker_count(argv: list[str], environ: dict[str, str] | os._Environ[str]) -> int:
    """How many workers the server runs, as far as this worker can tell.

    uvicorn's supervisor spawns workers with multiprocessing, which hands them the
    parent's ``sys.argv``; gunicorn forks, so its workers keep it too, and it also takes
    options from ``GUNICORN_CMD_ARGS``. Both read ``WEB_CONCURRENCY`` when no flag is
    given. A count from a gunicorn config file is not visible here.
    """
    program = Path(argv[0]) if argv else Path()
    if program.name == "__main__.py":  # python -m uvicorn
        program = program.parent
    flags = next((f for name, f in _WORKER_FLAGS.items() if program.name.startswith(name)), ())
    value = _flag_value(argv[1:], flags) if flags else None
    if value is None and program.name.startswith("gunicorn"):
        try:
            value = _flag_value(shlex.split(environ.get("GUNICORN_CMD_ARGS", "")), flags)
        except ValueError:  # unbalanced quotes: gunicorn itself refuses to start
            value = None
    if value is None:
        value = environ.get("WEB_CONCURRENCY")
    try:
        return max(int(value or 1), 1)
    except ValueError:
        return 1


def _refuse(lines: list[str]) -> NoReturn:
    for line in lines:
        print(line, file=sys.stderr)
    # A worker of a supervisor says "do not respawn me"; on its own, bad settings are 2.
    in_worker = multiprocessing.parent_process() is not None or "gunicorn" in sys.modules
    raise SystemExit(EXIT_WORKER_BOOT_FAILURE if in_worker else EXIT_USAGE)


try:
    _settings = load_settings()
except SettingsError as exc:
    _refuse([*exc.problems, *exc.warnings])

_workers = worker_count(sys.argv, os.environ)
if _settings.has_dev_provider and _workers > 1:
    _refuse(
        [
            f"workers: the dev IdP keeps its codes and keys in one process, but this server "
            f"runs {_workers} workers (--workers or WEB_CONCURRENCY): serve it with one worker"
        ]
    )

if _settings.sites and _workers > 1 and _settings.session.redis_url is None:
    _refuse(
        [
            f"workers: [sites] sign-ins hand over one-time handles kept in one process, but "
            f"this server runs {_workers} workers (--workers or WEB_CONCURRENCY): serve them "
            "with one worker, or set [session] redis_url so that every worker shares them"
        ]
    )

setup_logging(_settings.server.log_format, _settings.server.log_level)
for _warning in _settings.warnings:
    logging.getLogger("bridge").warning("%s", _warning)
app = create_app(_settings, freeze_heap=True)
