"""bench/floor.py, the libraries' floor that ``bench.py --auth-only --floor`` runs beside the
bridge: its figure means something only if it does a signed-in ``/auth``'s library work for
real (opens the bridge's own cookie, signs the token the bridge would) on the uvicorn
options ``serve`` uses."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import jwt
import pytest
from starlette.testclient import TestClient

from bridge import tiledesk
from bridge.cli import serve_options
from bridge.identity import TiledeskUser
from bridge.session_store import CookieSealer, CookieStore

REPO = Path(__file__).resolve().parent.parent
SESSION_SECRET = "s" * 48
TILEDESK_SECRET = "t" * 40
PROJECT_ID = "64f0c0ffee00000000000001"
USER = {
    "_id": "64f0c0ffee00000000000001_bench_ada",
    "firstname": "Ada",
    "lastname": "Lovelace",
    "email": "ada@acme.test",
    "attributes": {"groups": ["support-customers"], "idp": "bench"},
}


def _floor() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_floor", REPO / "bench" / "floor.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cookie(secret: str = SESSION_SECRET) -> str:
    store = CookieStore(CookieSealer(secret, cookie_name="bridge_session"), max_value=4000)
    value = asyncio.run(store.save({"u": USER, "p": "bench"}, ttl=3600, previous=None, renew=True))
    return f"other=1; bridge_session={value}"


def _client() -> TestClient:
    app = _floor().floor_app(SESSION_SECRET, TILEDESK_SECRET, "bridge_session", PROJECT_ID)
    return TestClient(app)


def test_the_floor_signs_the_token_the_bridge_would_for_the_session_in_its_cookie() -> None:
    answer = _client().post("/auth", headers={"Cookie": _cookie()})
    assert answer.status_code == 200
    body = answer.json()
    assert body["user"] == USER
    assert body["token"].startswith("JWT ")
    claims = jwt.decode(
        body["token"][4:],
        TILEDESK_SECRET,
        algorithms=["HS256"],
        audience=tiledesk.audience(PROJECT_ID),
    )
    assert claims["exp"] == body["expires_at"] == claims["iat"] + 600
    expected = tiledesk.build_payload(
        TiledeskUser.from_dict(USER), project_id=PROJECT_ID, ttl=600, now=claims["iat"]
    )
    assert len(claims["jti"]) == len(expected["jti"]) == 22
    assert {k: v for k, v in claims.items() if k != "jti"} == {
        k: v for k, v in expected.items() if k != "jti"
    }


@pytest.mark.parametrize(
    "cookie",
    ["", "other=1", "bridge_session=v1.AAAA", _cookie(secret="another secret" * 4)],
    ids=["none", "another cookie", "not sealed", "sealed under another secret"],
)
def test_the_floor_signs_nothing_without_a_session_it_can_open(cookie: str) -> None:
    answer = _client().post("/auth", headers={"Cookie": cookie} if cookie else {})
    assert answer.status_code == 401
    assert answer.json() == {"error": "not_signed_in"}


def test_the_floor_runs_on_the_options_serve_uses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Beside the bridge and the bare endpoint, on the same server (the one-write protocol)."""
    (tmp_path / "session_secret").write_text(SESSION_SECRET)
    (tmp_path / "tiledesk_secret").write_text(TILEDESK_SECRET)
    calls: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append((app, kw)))
    argv = ["floor.py", "--port", "9003", "--secrets", str(tmp_path)]
    argv += ["--cookie-name", "bridge_session", "--project-id", PROJECT_ID]
    monkeypatch.setattr(sys, "argv", argv)
    _floor().main()
    ((app, options),) = calls
    assert options == {"host": "127.0.0.1", "port": 9003, **serve_options()}
    assert TestClient(app).post("/auth", headers={"Cookie": _cookie()}).status_code == 200
