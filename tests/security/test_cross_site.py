"""Cross-site: state-changing POSTs only from our origin (or an allowed one, with CORS), cookies
that stay first-party, and security headers on every answer, error pages included."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

import httpx
import pytest
from starlette.testclient import TestClient

from tests.conftest import PUBLIC_URL, auth, login, start_login
from tests.idp import FakeIdP
from tests.security import app_client, assert_refused, assert_signed_in

ALLOWED = "https://shop.acme.test"
FOREIGN_ORIGINS = [
    "https://evil.test",
    "null",
    "http://127.0.0.1:8001",
    "https://127.0.0.1:8000",
    "http://localhost:8000",
    "http://127.0.0.1:8000.evil.test",
    f"{PUBLIC_URL}/",
]


@pytest.fixture
def cors_client(settings_data: dict[str, Any], idps: dict[str, FakeIdP]) -> Any:
    settings_data["sites"] = {ALLOWED: {}}
    with app_client(settings_data) as client:
        yield client


# --- POST /auth and /logout from other sites ----------------------------------------------


def test_auth_from_another_origin_is_refused(client: TestClient, idp: FakeIdP) -> None:
    assert_signed_in(login(client, idp), client)
    for origin in FOREIGN_ORIGINS:
        response = client.post("/auth", headers={"Origin": origin})
        assert response.status_code == 403, origin
        assert response.json() == {"error": "cross_site_refused"}
        assert "access-control-allow-origin" not in response.headers
        assert "JWT" not in response.text


def test_logout_from_another_origin_is_refused(client: TestClient, idp: FakeIdP) -> None:
    assert_signed_in(login(client, idp), client)
    for origin in FOREIGN_ORIGINS:
        response = client.post("/logout", headers={"Origin": origin})
        assert_refused(response, 403, "cross_site_refused")
    assert auth(client).status_code == 200, "the session survives cross-site logout attempts"


def test_sec_fetch_site_cross_site_without_origin_is_refused(
    client: TestClient, idp: FakeIdP
) -> None:
    assert_signed_in(login(client, idp), client)
    for path in ("/auth", "/logout"):
        for site in ("cross-site", "same-site"):
            response = client.post(path, headers={"Sec-Fetch-Site": site})
            assert response.status_code == 403, (path, site)
            assert "JWT" not in response.text
    assert auth(client).status_code == 200


@pytest.mark.parametrize("site", ["same-origin", "none"])
def test_sec_fetch_site_same_origin_is_accepted(
    client: TestClient, idp: FakeIdP, site: str
) -> None:
    assert_signed_in(login(client, idp), client)
    assert client.post("/auth", headers={"Sec-Fetch-Site": site}).status_code == 200


def test_same_origin_with_sec_fetch_site_is_accepted(client: TestClient, idp: FakeIdP) -> None:
    assert_signed_in(login(client, idp), client)
    headers = {"Origin": PUBLIC_URL, "Sec-Fetch-Site": "same-origin"}
    response = client.post("/auth", headers=headers)
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers


def test_get_auth_is_not_a_way_around(client: TestClient, idp: FakeIdP) -> None:
    assert_signed_in(login(client, idp), client)
    response = client.get("/auth")
    assert response.status_code == 405
    assert "JWT" not in response.text


# --- [sites]: CORS with credentials for exactly those origins ---------------------


def test_allowed_origin_gets_cors_with_credentials(cors_client: TestClient, idp: FakeIdP) -> None:
    assert_signed_in(login(cors_client, idp), cors_client)
    response = cors_client.post("/auth", headers={"Origin": ALLOWED})
    assert response.status_code == 200
    assert response.json()["token"].startswith("JWT ")
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "origin" in response.headers["vary"].lower()


def test_allowed_origin_not_signed_in_still_gets_cors(cors_client: TestClient) -> None:
    response = cors_client.post("/auth", headers={"Origin": ALLOWED})
    assert response.status_code == 401
    assert response.headers["access-control-allow-origin"] == ALLOWED


def test_allowed_origin_preflight_is_answered(cors_client: TestClient) -> None:
    response = cors_client.options(
        "/auth",
        headers={
            "Origin": ALLOWED,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == ALLOWED
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "POST" in response.headers["access-control-allow-methods"]


@pytest.mark.parametrize(
    "origin", ["https://evil.test", "https://shop.acme.test.evil.test", "null"]
)
def test_other_origins_are_still_refused_when_some_are_allowed(
    cors_client: TestClient, idp: FakeIdP, origin: str
) -> None:
    assert_signed_in(login(cors_client, idp), cors_client)
    response = cors_client.post("/auth", headers={"Origin": origin})
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers
    preflight = cors_client.options(
        "/auth", headers={"Origin": origin, "Access-Control-Request-Method": "POST"}
    )
    assert preflight.status_code == 403
    assert "access-control-allow-origin" not in preflight.headers


def test_preflight_without_sites_is_refused(client: TestClient) -> None:
    response = client.options(
        "/auth", headers={"Origin": "https://evil.test", "Access-Control-Request-Method": "POST"}
    )
    assert response.status_code == 403
    assert "access-control-allow-origin" not in response.headers


# --- cookies ------------------------------------------------------------------------------


def _session_set_cookie(response: httpx.Response) -> str:
    cookies = [
        c for c in response.headers.get_list("set-cookie") if c.startswith("bridge_session=")
    ]
    assert len(cookies) == 1, response.headers
    return cookies[0].lower()


def test_session_cookie_is_httponly_and_samesite_lax(client: TestClient, idp: FakeIdP) -> None:
    start = client.get("/login/acme")
    signed_in = login(client, idp)
    for response in (start, signed_in):
        cookie = _session_set_cookie(response)
        assert "httponly" in cookie
        assert "samesite=lax" in cookie
        assert "path=/" in cookie
        assert "secure" not in cookie, "http public_url: a Secure cookie would never come back"


def test_session_cookie_is_secure_when_public_url_is_https(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    settings_data["server"]["public_url"] = "https://chat.acme.test"
    with app_client(settings_data) as client:
        response = client.get("/login/acme")
        assert response.status_code == 302
        cookie = _session_set_cookie(response)
        assert "secure" in cookie and "httponly" in cookie and "samesite=lax" in cookie
        assert (
            "redirect_uri=https%3A%2F%2Fchat.acme.test%2Fcallback%2Facme"
            in (response.headers["location"])
        )
        assert response.headers["strict-transport-security"].startswith("max-age=")


# --- security headers on every answer -----------------------------------------------------


def _answers(client: TestClient, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    answers: dict[str, Any] = {
        "index": client.get("/"),
        "chooser": client.get("/login"),
        "login-redirect": client.get("/login/acme"),
        "not-found": client.get("/nope"),
        "method-not-allowed": client.get("/logout"),
        "state-mismatch": client.get("/callback/acme", params={"state": "x", "code": "y"}),
        "auth-401": auth(client),
        "auth-403": client.post("/auth", headers={"Origin": "https://evil.test"}),
        "preflight-403": client.options("/auth", headers={"Origin": "https://evil.test"}),
        "healthz": client.get("/healthz"),
        "readyz": client.get("/readyz"),
        "metrics": client.get("/metrics"),
        "static": client.get("/static/bridge.css"),
        "static-404": client.get("/static/nope.js"),
    }
    idp.tamper = lambda claims, header: claims.update(aud="x")
    answers["id-token-invalid"] = login(client, idp)
    idp.tamper = None
    answers["callback-redirect"] = login(client, idp)
    answers["index-signed-in"] = client.get("/")
    answers["auth-200"] = auth(client)
    answers["logout-redirect"] = client.post("/logout", headers={"Origin": PUBLIC_URL})
    idp.faults["token"] = httpx.ReadTimeout
    answers["idp-timeout"] = login(client, idp)
    idp.faults.clear()

    from bridge import identity

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("internals")

    monkeypatch.setattr(identity, "decide", boom)
    answers["internal-error"] = login(client, idp)
    return answers


EXPECTED_STATUS = {
    "index": 200,
    "chooser": 200,
    "login-redirect": 302,
    "not-found": 404,
    "method-not-allowed": 405,
    "state-mismatch": 400,
    "auth-401": 401,
    "auth-403": 403,
    "preflight-403": 403,
    "healthz": 200,
    "readyz": 200,
    "metrics": 200,
    "static": 200,
    "static-404": 404,
    "id-token-invalid": 401,
    "callback-redirect": 303,
    "index-signed-in": 200,
    "auth-200": 200,
    "logout-redirect": 303,
    "idp-timeout": 504,
    "internal-error": 500,
}


def test_security_headers_on_every_answer(
    client: TestClient, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = _answers(client, idp, monkeypatch)
    assert {name: r.status_code for name, r in answers.items()} == EXPECTED_STATUS
    for name, response in answers.items():
        headers = response.headers
        assert headers.get("referrer-policy") == "no-referrer", name
        assert headers.get("x-content-type-options") == "nosniff", name
        assert headers.get("x-frame-options") == "DENY", name
        csp = headers.get("content-security-policy", "")
        assert "frame-ancestors 'none'" in csp, name
        assert "default-src 'none'" in csp or "object-src 'none'" in csp, name
        assert "base-uri 'none'" in csp, name


#: What a JSON answer carries (a datum, never a page): a policy that lets it load, submit
#: or frame nothing, and none of the headers only documents read.
JSON_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "content-security-policy": (
        "default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
DOCUMENT_ONLY = {
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def test_json_answers_carry_the_data_policy_and_documents_the_document_headers(
    client: TestClient, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = _answers(client, idp, monkeypatch)
    json_answers = {
        name
        for name, r in answers.items()
        if r.headers.get("content-type", "").startswith("application/json")
    }
    assert json_answers == {"auth-401", "auth-403", "auth-200", "healthz", "readyz"}
    for name, response in answers.items():
        headers = response.headers
        if name in json_answers:
            assert {k: headers.get(k) for k in JSON_HEADERS} == JSON_HEADERS, name
            assert [k for k in DOCUMENT_ONLY if k in headers] == [], name
        else:
            assert {k: headers.get(k) for k in DOCUMENT_ONLY} == DOCUMENT_ONLY, name
            assert headers["content-security-policy"] != JSON_HEADERS["content-security-policy"]


RESOURCE = re.compile(
    r"<(?:link|script|img|iframe|source|video|audio|embed|object)\b[^>]*?\s(?:href|src|data)="
    r"\"([^\"]*)\"",
    re.I,
)


@pytest.mark.parametrize(
    "make",
    [
        lambda c, i: c.get("/callback/acme", params={"state": "x", "code": "y"}),
        lambda c, i: c.get("/nope"),
        lambda c, i: c.get("/logout"),
        lambda c, i: c.get("/callback/acme", params={"state": "x" * 5000}),
    ],
    ids=["state-mismatch", "not-found", "method-not-allowed", "invalid-request"],
)
def test_error_page_loads_no_third_party_resource(
    client: TestClient, idp: FakeIdP, make: Callable[[TestClient, FakeIdP], httpx.Response]
) -> None:
    page = make(client, idp)
    assert page.status_code >= 400
    resources = RESOURCE.findall(page.text)
    assert resources, "the page's own stylesheet at least"
    assert all(url.startswith("/static/") for url in resources), resources
    assert "<script" not in page.text.lower(), "no script at all on an error page"
    assert "url(" not in page.text and "@import" not in page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"


def test_id_token_error_page_loads_no_third_party_resource(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.tamper = lambda claims, header: claims.update(iss="https://evil.test")
    page = login(client, idp)
    assert_refused(page, 401, "id_token_invalid")
    assert all(url.startswith("/static/") for url in RESOURCE.findall(page.text))
    assert "<script" not in page.text.lower()


def test_login_redirect_carries_no_referrer_leak(client: TestClient) -> None:
    location = start_login(client, next_path="/private%3Fcase%3D42")
    # Whole words: the redirect's random state, nonce and challenge can spell "case".
    decoded = unquote(unquote(location))
    assert "private" not in decoded and "case=42" not in decoded
