"""Routes as the contract describes them: pages, /auth, logout, the session, the demo flow."""

from __future__ import annotations

import html
import json
import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from bridge.settings import parse_settings
from bridge.web import create_app
from tests.conftest import PROJECT_ID, PUBLIC_URL, auth, base_settings, login
from tests.idp import FakeIdP
from tests.security import hint_of, session_of


def test_auth_before_sign_in_is_401(client: TestClient) -> None:
    response = auth(client)
    assert response.status_code == 401
    assert response.json() == {"error": "not_signed_in"}
    assert response.headers["cache-control"] == "no-store"


def test_auth_after_sign_in_answers_the_reference_shape(client: TestClient, idp: FakeIdP) -> None:
    login(client, idp)
    body = auth(client).json()
    assert set(body) == {"token", "expires_at", "user"}
    assert body["token"].startswith("JWT ")
    assert body["user"] == {
        "_id": f"{PROJECT_ID}_acme_user-1",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "email": "ada@acme.test",
        "attributes": {"groups": ["support"], "idp": "acme"},
    }


def test_session_holds_no_idp_tokens_and_is_fresh_at_every_login(
    client: TestClient, idp: FakeIdP
) -> None:
    login(client, idp)
    first = session_of(client)
    assert set(first) == {"sid", "p", "u", "at", "sub"}
    assert hint_of(client) is not None
    assert first["sub"] == "user-1"
    access_tokens = list(idp.access_tokens)
    assert not any(token in json.dumps(first) for token in access_tokens)
    login(client, idp)
    second = session_of(client)
    assert second["sid"] != first["sid"]


def test_session_cookie_stays_small_with_a_huge_id_token(client: TestClient, idp: FakeIdP) -> None:
    idp.user = {**idp.user, "padding": "x" * 20000, "groups": [f"group-{i}" for i in range(500)]}
    response = login(client, idp)
    assert response.status_code == 303
    cookies = response.headers.get_list("set-cookie")
    assert all(len(cookie) < 4096 for cookie in cookies)
    assert "h" not in session_of(client)
    assert hint_of(client) is None
    assert auth(client).status_code == 200


def test_index_signed_out_shows_one_button_per_provider(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    links = re.findall(r'<a class="signin button" href="([^"]+)">', page.text)
    assert links == ["/login/acme", "/login/google", "/login/generic"]
    assert "Sign in with Acme SSO" in page.text
    assert 'id="signout"' not in page.text


def test_index_signed_in_embeds_the_widget_and_names_the_user(
    client: TestClient, idp: FakeIdP
) -> None:
    login(client, idp)
    page = client.get("/")
    assert '<span id="user-name">Ada Lovelace</span>' in page.text
    assert '<form id="signout" class="signout" method="post" action="/logout">' in page.text
    config = json.loads(re.search(r'id="bridge-config">(.*?)</script>', page.text, re.S).group(1))  # type: ignore[union-attr]
    assert config["tiledeskSettings"]["projectid"] == PROJECT_ID
    assert config["tiledeskSettings"]["autoStart"] is False
    assert config["widgetUrl"] == "https://widget.tiledesk.com/v5/launch.js"
    assert config["signedIn"] is True
    assert "JWT " not in page.text, "the token is fetched by the page, never inlined"


def test_widget_settings_pass_through(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    settings_data["tiledesk"]["widget"] = {
        "persistence": "session",
        "align": "left",
        "marginX": "20px",
    }
    with TestClient(
        create_app(parse_settings(settings_data), warm_up=False), base_url=PUBLIC_URL
    ) as client:
        config = json.loads(
            re.search(r'id="bridge-config">(.*?)</script>', client.get("/").text, re.S).group(1)
        )  # type: ignore[union-attr]
    assert config["tiledeskSettings"] == {
        "lang": "en",
        "persistence": "session",
        "align": "left",
        "marginX": "20px",
        "projectid": PROJECT_ID,
        "autoStart": False,
    }


def test_chooser_lists_providers_and_keeps_next(client: TestClient) -> None:
    page = client.get("/login?next=/help")
    assert page.status_code == 200
    assert "/login/acme?next=%2Fhelp" in page.text


def test_chooser_redirects_to_the_only_provider(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    for name in ("google", "generic"):
        del settings_data["providers"][name]
    with TestClient(
        create_app(parse_settings(settings_data), warm_up=False),
        base_url=PUBLIC_URL,
        follow_redirects=False,
    ) as client:
        response = client.get("/login")
    assert response.status_code == 303
    assert response.headers["location"] == "/login/acme"


def test_unknown_provider_is_a_404_page(client: TestClient) -> None:
    response = client.get("/login/nope")
    assert response.status_code == 404
    assert '<code id="error-code">not_found</code>' in response.text


def test_logout_ends_the_session_and_the_idp_session(client: TestClient, idp: FakeIdP) -> None:
    login(client, idp)
    response = client.post("/logout", headers={"Origin": PUBLIC_URL})
    assert response.status_code == 303
    target = urlsplit(response.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{idp.base}/logout"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["post_logout_redirect_uri"] == f"{PUBLIC_URL}/"
    assert query["client_id"] == idp.client_id
    assert query["id_token_hint"].count(".") == 2
    assert auth(client).status_code == 401


def test_logout_without_end_session_endpoint_returns_home(client: TestClient, idp: FakeIdP) -> None:
    idp.discovery_overrides["end_session_endpoint"] = None
    login(client, idp)
    response = client.post("/logout", headers={"Origin": PUBLIC_URL})
    assert response.headers["location"] == f"{PUBLIC_URL}/"
    assert auth(client).status_code == 401


def test_logout_when_not_signed_in_is_harmless(client: TestClient) -> None:
    response = client.post("/logout", headers={"Origin": PUBLIC_URL})
    assert response.status_code == 303
    assert response.headers["location"] == f"{PUBLIC_URL}/"


def test_get_logout_is_refused_with_a_page(client: TestClient) -> None:
    response = client.get("/logout")
    assert response.status_code == 405
    assert '<code id="error-code">method_not_allowed</code>' in response.text


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}


def test_readyz_reports_each_provider(client: TestClient) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    providers = response.json()["providers"]
    assert set(providers) == {"acme", "google", "generic"}
    assert providers["acme"]["ready"] is True
    assert providers["acme"]["keys"] == 2


def test_unexpected_error_is_a_page_not_a_traceback(
    client: TestClient, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bridge import identity

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(identity, "decide", boom)
    response = login(client, idp)
    assert response.status_code == 500
    assert '<code id="error-code">internal_error</code>' in response.text
    assert "Traceback" not in response.text and "secret internals" not in response.text
    assert response.headers["x-content-type-options"] == "nosniff"


# --- the demo: the built-in development IdP, in-process --------------------------------


@pytest.fixture
def demo() -> TestClient:
    data = base_settings()
    data["providers"] = {"dev": {"preset": "dev", "claims": {"attributes": {"groups": "groups"}}}}
    return TestClient(
        create_app(parse_settings(data), warm_up=False), base_url=PUBLIC_URL, follow_redirects=False
    )


def dev_sign_in(client: TestClient, name: str, email: str) -> None:
    location = client.get("/login/dev").headers["location"]
    assert location.startswith(f"{PUBLIC_URL}/dev-idp/authorize?")
    form_page = client.get(location)
    assert form_page.status_code == 200
    hidden = re.search(r'name="authorization_request" value="([^"]*)"', form_page.text).group(1)  # type: ignore[union-attr]
    answer = client.post(
        f"{PUBLIC_URL}/dev-idp/authorize",
        data={
            "authorization_request": html.unescape(hidden),
            "name": name,
            "email": email,
            "groups": "beta",
        },
    )
    assert answer.status_code == 302, answer.text
    done = client.get(answer.headers["location"])
    assert done.status_code == 303, done.text


def test_demo_flow_through_the_dev_idp(demo: TestClient) -> None:
    with demo:
        dev_sign_in(demo, "Ada Lovelace", "ada@example.com")
        page = demo.get("/")
        assert '<span id="user-name">Ada Lovelace</span>' in page.text
        assert 'id="token-details"' in page.text
        body = auth(demo).json()
        assert body["user"]["email"] == "ada@example.com"
        assert body["user"]["attributes"] == {"groups": ["beta"], "idp": "dev"}
        assert body["user"]["_id"].startswith(f"{PROJECT_ID}_dev_dev-")
        first_id = body["user"]["_id"]
        logout = demo.post("/logout", headers={"Origin": PUBLIC_URL})
        assert logout.headers["location"].startswith(f"{PUBLIC_URL}/dev-idp/logout?")
        assert auth(demo).status_code == 401
        dev_sign_in(demo, "Ada L.", "ada@example.com")
        assert auth(demo).json()["user"]["_id"] == first_id
        dev_sign_in(demo, "Grace Hopper", "grace@example.com")
        assert auth(demo).json()["user"]["_id"] != first_id


def test_dev_idp_is_not_mounted_without_a_dev_provider(client: TestClient) -> None:
    assert client.get("/dev-idp/.well-known/openid-configuration").status_code == 404


def test_own_form_post_under_no_referrer_is_accepted(client: TestClient, idp: FakeIdP) -> None:
    # Chromium sends "Origin: null" for a same-origin form POST under Referrer-Policy: no-referrer.
    login(client, idp)
    response = client.post("/logout", headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 303
    assert auth(client).status_code == 401


def test_null_origin_from_elsewhere_is_refused(client: TestClient, idp: FakeIdP) -> None:
    login(client, idp)
    for fetch_site in (None, "cross-site", "same-site"):
        headers = {"Origin": "null", **({"Sec-Fetch-Site": fetch_site} if fetch_site else {})}
        assert client.post("/logout", headers=headers).status_code == 403
    assert auth(client).status_code == 200


def test_token_demo_panel_only_for_dev_sessions(client: TestClient, idp: FakeIdP) -> None:
    login(client, idp)
    assert 'id="token-details"' not in client.get("/").text
