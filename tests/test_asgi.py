"""``bridge.asgi``: the dev IdP only when configured, and never under several workers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from bridge.asgi import worker_count
from tests.conftest import TILEDESK_SECRET

REPO = Path(__file__).resolve().parent.parent
REFUSAL = (
    "workers: the dev IdP keeps its codes and keys in one process, but this server runs 2 "
    "workers (--workers or WEB_CONCURRENCY): serve it with one worker"
)
PRODUCTION = """
[server]
public_url = "https://chat.acme.test"

[session]
secret = "file:.secrets/session_secret"

[tiledesk]
project_id = "64f0c0ffee00000000000001"
secret = "file:.secrets/tiledesk_secret"

[providers.acme]
preset = "generic"
issuer = "https://sso.acme.test"
client_id = "bridge"
client_secret = "file:.secrets/session_secret"
"""


def _settings_dir(tmp_path: Path, text: str) -> Path:
    (tmp_path / ".secrets").mkdir()
    (tmp_path / ".secrets" / "session_secret").write_text("s" * 48 + "\n")
    (tmp_path / ".secrets" / "tiledesk_secret").write_text(TILEDESK_SECRET + "\n")
    (tmp_path / "settings.toml").write_text(text)
    return tmp_path / "settings.toml"


def _env(settings: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WEB_CONCURRENCY", "BRIDGE_SETTINGS")}
    return {**env, "BRIDGE_SETTINGS": str(settings), **extra}


@pytest.mark.parametrize(
    ("text", "loaded"),
    [(PRODUCTION, "False"), ((REPO / "settings.toml").read_text(), "True")],
)
def test_the_dev_idp_is_imported_only_when_a_dev_provider_is_configured(
    tmp_path: Path, text: str, loaded: str
) -> None:
    settings = _settings_dir(tmp_path, text)
    code = (
        "import sys; import bridge.web, bridge.cli; "
        "from bridge.settings import load_settings; "
        "bridge.web.create_app(load_settings()); "
        "print('bridge.devidp' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        env=_env(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == loaded


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize(
    ("flags", "extra_env"),
    [(["--workers", "2"], {}), ([], {"WEB_CONCURRENCY": "2"})],
    ids=["--workers", "WEB_CONCURRENCY"],
)
def test_uvicorn_with_several_workers_refuses_the_dev_idp_cleanly(
    tmp_path: Path, flags: list[str], extra_env: dict[str, str]
) -> None:
    settings = _settings_dir(tmp_path, (REPO / "settings.toml").read_text())
    uvicorn = Path(sys.executable).parent / "uvicorn"
    argv = [str(uvicorn), "bridge.asgi:app", "--host", "127.0.0.1"]
    server = subprocess.Popen(
        [*argv, "--port", str(_free_port()), *flags],
        env=_env(settings, **extra_env),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so a server that keeps running is stopped with its workers
    )
    try:
        _, stderr = server.communicate(timeout=90)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.communicate()
        pytest.fail("uvicorn kept serving the dev IdP with several workers")
    assert REFUSAL in stderr.splitlines(), stderr
    assert "Traceback" not in stderr
    # uvicorn stops the whole worker set when a worker exits with its startup-failure code.
    assert "failed to start, stopping the parent process" in stderr


def test_the_asgi_entry_refuses_sites_under_several_workers(tmp_path: Path) -> None:
    """A site's sign-in handle issued by one worker would be unknown to the next."""
    settings = _settings_dir(tmp_path, PRODUCTION + '\n[sites."https://www.acme.test"]\n')
    result = subprocess.run(
        [sys.executable, "-c", "import bridge.asgi"],
        env=_env(settings, WEB_CONCURRENCY="2"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "workers: [sites] sign-ins hand over one-time handles kept in one process, but this "
        "server runs 2 workers (--workers or WEB_CONCURRENCY): serve them with one worker, "
        "or set [session] redis_url so that every worker shares them"
    ]


#: The entry's app is the bridge's Starlette app (``BridgeApp`` is one).
PRINT_IS_STARLETTE = (
    "import bridge.asgi, starlette.applications as s; "
    "print(isinstance(bridge.asgi.app, s.Starlette))"
)


def test_the_asgi_entry_takes_sites_under_several_workers_that_share_redis(
    tmp_path: Path,
) -> None:
    shared = PRODUCTION.replace("[tiledesk]", 'redis_url = "redis://127.0.0.1:1/0"\n\n[tiledesk]')
    assert shared != PRODUCTION
    settings = _settings_dir(tmp_path, shared + '\n[sites."https://www.acme.test"]\n')
    result = subprocess.run(
        [sys.executable, "-c", PRINT_IS_STARLETTE],
        env=_env(settings, WEB_CONCURRENCY="2"),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "True\n"
    assert "workers:" not in result.stderr


def test_the_asgi_entry_alone_refuses_bad_settings_with_exit_2(tmp_path: Path) -> None:
    settings = _settings_dir(tmp_path, PRODUCTION.replace('preset = "generic"', "preset = 1"))
    result = subprocess.run(
        [sys.executable, "-c", "import bridge.asgi"],
        env=_env(settings),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines()[0].startswith("providers.acme.preset: ")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["/venv/bin/uvicorn", "bridge.asgi:app", "--workers", "3"], {}, 3),
        (["/venv/bin/uvicorn", "bridge.asgi:app", "--workers=4"], {}, 4),
        (["uvicorn", "bridge.asgi:app", "--workers", "1"], {"WEB_CONCURRENCY": "4"}, 1),
        (["uvicorn", "bridge.asgi:app"], {"WEB_CONCURRENCY": "2"}, 2),
        (["/venv/lib/site-packages/uvicorn/__main__.py", "app", "--workers", "2"], {}, 2),
        (["gunicorn", "-w", "5", "-k", "uvicorn.workers.UvicornWorker", "bridge.asgi:app"], {}, 5),
        (["gunicorn", "-w2", "bridge.asgi:app"], {}, 2),
        (["tiledesk-bridge", "serve", "--workers", "2"], {}, 2),
        (["python", "-w", "7"], {}, 1),
        (["uvicorn", "bridge.asgi:app"], {"WEB_CONCURRENCY": "many"}, 1),
        (["uvicorn", "bridge.asgi:app"], {}, 1),
    ],
)
def test_worker_count_reads_the_servers_flags_then_web_concurrency(
    argv: list[str], environ: dict[str, str], expected: int
) -> None:
    assert worker_count(argv, environ) == expected


@pytest.mark.parametrize(
    ("argv", "environ", "expected"),
    [
        (["gunicorn", "bridge.asgi:app"], {"GUNICORN_CMD_ARGS": "--workers 3 --bind :8000"}, 3),
        (["gunicorn", "bridge.asgi:app"], {"GUNICORN_CMD_ARGS": "-w4", "WEB_CONCURRENCY": "1"}, 4),
        (["gunicorn", "-w", "1", "bridge.asgi:app"], {"GUNICORN_CMD_ARGS": "-w 4"}, 1),
        (["gunicorn", "bridge.asgi:app"], {"GUNICORN_CMD_ARGS": "--name 'unbalanced"}, 1),
        (["uvicorn", "bridge.asgi:app"], {"GUNICORN_CMD_ARGS": "--workers 3"}, 1),
    ],
)
def test_worker_count_reads_gunicorn_cmd_args_under_gunicorn(
    argv: list[str], environ: dict[str, str], expected: int
) -> None:
    """gunicorn takes options from GUNICORN_CMD_ARGS too, below its command line."""
    assert worker_count(argv, environ) == expected
