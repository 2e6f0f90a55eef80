"""Issue 9, without a browser: [sites], /embed.js, sign-ins that start on a site and end on it
with a one-time handle, the handle's rules, and sign-out from a site."""

from __future__ import annotations

import asyncio
import html
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, quote, quote_plus, urlencode, urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from bridge import cli, embed
from bridge.handles import MemoryHandleStore
from bridge.settings import SettingsError, parse_settings
from tests.conftest import PUBLIC_URL, auth, base_settings
from tests.idp import FakeIdP
from tests.security import app_client
from tests.security.test_browser_input import REDIRECT_VARIANTS
from tests.tokens import carries_a_token

SHOP = "https://shop.acme.test"
BLOG = "https://blog.acme.test"
PAGE = f"{SHOP}/products/anvil?colour=black"


def settings_with(sites: dict[str, Any], **server: Any) -> dict[str, Any]:
    data = base_settings()
    data["sites"] = sites
    data["server"].update(server)
    return data


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(SettingsError) as info:
        parse_settings(data)
    return info.value.problems


@pytest.fixture
def sites_client(idps: dict[str, FakeIdP]) -> Iterator[TestClient]:
    data = settings_with({SHOP: {}, BLOG: {"providers": ["google"], "sign_in": "offered"}})
    with app_client(data) as client:
        yield client


def keys() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    return verifier, embed.challenge_of(verifier)


def site_login(
    client: TestClient,
    idp: FakeIdP,
    *,
    page: str = PAGE,
    mode: str = "popup",
    challenge: str,
    provider: str = "acme",
) -> Any:
    start = client.get(
        f"/login/{provider}", params={"return_to": page, "mode": mode, "challenge": challenge}
    )
    assert start.status_code == 302, start.text
    code, state = idp.authorize(start.headers["location"])
    return client.get(f"/callback/{provider}", params={"code": code, "state": state})


def landing(response: Any, page: str = PAGE) -> dict[str, str]:
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    url, _, fragment = location.partition("#")
    assert url == page
    return {k: v[0] for k, v in parse_qs(fragment).items()}


def redeem(client: TestClient, handle: str, verifier: str, origin: str = SHOP) -> Any:
    # From the site's page, where the bridge's cookie does not come along: a jar of its own.
    site_page = TestClient(client.app, base_url=PUBLIC_URL, follow_redirects=False)
    return site_page.post(
        "/auth", json={"handle": handle, "verifier": verifier}, headers={"Origin": origin}
    )


# --- [sites] ------------------------------------------------------------------------------


def test_sites_take_exact_https_origins_and_loopback_http() -> None:
    settings = parse_settings(
        settings_with(
            {
                SHOP: {"providers": ["acme"], "sign_in": "offered"},
                "http://localhost:5000": {},
                "http://127.0.0.1:5001": {},
                "https://[::1]:8443": {},
            }
        )
    )
    assert settings.site_providers(SHOP) == ("acme",)
    assert settings.site_providers("http://localhost:5000") == ("acme", "google", "generic")
    assert settings.sites[SHOP].sign_in == "offered"
    assert settings.sites["http://localhost:5000"].sign_in == "required"


@pytest.mark.parametrize(
    ("origin", "expected"),
    [
        ("https://shop.acme.test/", "is not an origin"),
        ("https://shop.acme.test/shop", "is not an origin"),
        ("https://user@shop.acme.test", "is not an origin"),
        ("shop.acme.test", "is not an origin"),
        ("*", "is not an origin"),
        ("https://*.acme.test", "is not an origin"),
        ("http://shop.acme.test", "a site must be https (plain http only on loopback, or"),
        ("ftp://shop.acme.test", "is not an origin"),
    ],
)
def test_a_site_that_is_not_an_exact_origin_is_refused_by_name(origin: str, expected: str) -> None:
    (line,) = problems(settings_with({origin: {}}))
    assert line.startswith("sites: ")
    assert expected in line


def test_sites_are_spelled_as_browsers_send_origins_and_only_once() -> None:
    settings = parse_settings(settings_with({"HTTPS://Shop.Acme.test:443": {}, BLOG: {}}))
    assert list(settings.sites) == [SHOP, BLOG]
    assert problems(settings_with({SHOP: {}, "https://SHOP.acme.test": {}})) == [
        f"sites: 'https://SHOP.acme.test' is '{SHOP}' again"
    ]


def test_plain_http_sites_need_loopback_or_allow_plain_http() -> None:
    data = settings_with({"http://intranet.acme:8080": {}})
    data["server"].update(public_url="http://chat.acme.internal", allow_plain_http=True)
    assert list(parse_settings(data).sites) == ["http://intranet.acme:8080"]


def test_a_site_naming_an_unknown_provider_is_refused() -> None:
    assert problems(settings_with({SHOP: {"providers": ["acme", "nope"]}})) == [
        f'sites."{SHOP}".providers: no provider named nope'
    ]


def test_the_bridge_itself_is_not_a_site() -> None:
    assert problems(settings_with({PUBLIC_URL: {}})) == [
        f'sites."{PUBLIC_URL}": is the bridge itself (server.public_url)'
    ]


def test_the_old_allowed_origins_key_says_where_it_went() -> None:
    assert problems(settings_with({}, allowed_origins=[SHOP])) == [
        "server.allowed_origins: replaced by [sites]: list each origin that embeds the chat "
        f'as its own table, e.g. [sites."{SHOP}"]'
    ]


# --- one-time handles ---------------------------------------------------------------------


def test_a_handle_is_redeemed_once_and_only_by_its_origin() -> None:
    async def scenario() -> list[Any]:
        store = MemoryHandleStore()
        first = await store.issue({"x": 1}, SHOP, ttl=60)
        second = await store.issue({"x": 2}, SHOP, ttl=60)
        expired = await store.issue({"x": 3}, SHOP, ttl=0)
        return [
            await store.redeem(first, SHOP),
            await store.redeem(first, SHOP),
            await store.redeem(second, BLOG),
            await store.redeem(second, SHOP),
            await store.redeem(expired, SHOP),
            await store.redeem("unknown", SHOP),
            len(first),
        ]

    assert asyncio.run(scenario()) == [{"x": 1}, None, None, None, None, None, 43]


# --- a sign-in that starts on a site ------------------------------------------------------


def test_a_popup_sign_in_ends_on_the_site_page_with_a_handle_and_no_token(
    sites_client: TestClient, idp: FakeIdP
) -> None:
    verifier, challenge = keys()
    answer = site_login(sites_client, idp, challenge=challenge)
    fields = landing(answer)
    assert set(fields) == {"tdb_mode", "tdb_handle"}
    assert fields["tdb_mode"] == "popup"
    assert not carries_a_token(answer.headers["location"])
    assert answer.headers["cache-control"] == "no-store"

    token = redeem(sites_client, fields["tdb_handle"], verifier)
    assert token.status_code == 200
    body = token.json()
    assert body["token"].startswith("JWT ")
    assert body["user"]["email"] == idp.user["email"]
    assert token.headers["access-control-allow-origin"] == SHOP
    assert token.headers["access-control-allow-credentials"] == "true"
    assert token.headers["cache-control"] == "no-store"
    # The popup's visit also signed the browser in at the bridge (first-party cookie).
    assert auth(sites_client).status_code == 200


def test_a_handle_is_single_use(sites_client: TestClient, idp: FakeIdP) -> None:
    verifier, challenge = keys()
    handle = landing(site_login(sites_client, idp, challenge=challenge))["tdb_handle"]
    assert redeem(sites_client, handle, verifier).status_code == 200
    again = redeem(sites_client, handle, verifier)
    assert again.status_code == 401
    assert again.json() == {"error": "not_signed_in"}


def test_a_handle_without_the_pages_verifier_is_worth_nothing(
    sites_client: TestClient, idp: FakeIdP
) -> None:
    verifier, challenge = keys()
    handle = landing(site_login(sites_client, idp, challenge=challenge))["tdb_handle"]
    for wrong in (secrets.token_urlsafe(48), challenge, "", None, 42):
        answer = sites_client.post(
            "/auth", json={"handle": handle, "verifier": wrong}, headers={"Origin": SHOP}
        )
        assert answer.status_code == 401, wrong
        assert "token" not in answer.json()
    assert redeem(sites_client, handle, verifier).status_code == 401, "spent by the first try"


def test_a_handle_is_bound_to_the_site_it_was_issued_for(
    sites_client: TestClient, idp: FakeIdP
) -> None:
    verifier, challenge = keys()
    handle = landing(site_login(sites_client, idp, challenge=challenge))["tdb_handle"]
    assert redeem(sites_client, handle, verifier, origin=BLOG).status_code == 401
    assert redeem(sites_client, handle, verifier).status_code == 401, "spent by the wrong origin"
    refused = redeem(sites_client, handle, verifier, origin="https://evil.test")
    assert refused.status_code == 403
    assert "access-control-allow-origin" not in refused.headers


def test_an_expired_handle_is_refused(
    sites_client: TestClient, idp: FakeIdP, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(embed, "SIGN_IN_HANDLE_TTL", 0.0)
    verifier, challenge = keys()
    handle = landing(site_login(sites_client, idp, challenge=challenge))["tdb_handle"]
    assert redeem(sites_client, handle, verifier).status_code == 401


@pytest.mark.parametrize(
    "body",
    [b"not json", b"[]", b'{"handle": "short"}', b'{"verifier": "x"}', b"{" + b" " * 2000 + b"}"],
    ids=["not-json", "not-an-object", "bad-handle", "no-handle", "too-long"],
)
def test_a_malformed_redemption_is_a_400(sites_client: TestClient, body: bytes) -> None:
    answer = sites_client.post(
        "/auth", content=body, headers={"Origin": SHOP, "Content-Type": "application/json"}
    )
    assert answer.status_code == 400
    assert answer.json() == {"error": "invalid_request"}


def test_redirect_mode_lands_on_the_same_page(sites_client: TestClient, idp: FakeIdP) -> None:
    verifier, challenge = keys()
    fields = landing(site_login(sites_client, idp, challenge=challenge, mode="redirect"))
    assert fields["tdb_mode"] == "redirect"
    assert redeem(sites_client, fields["tdb_handle"], verifier).status_code == 200


def test_the_pages_own_fragment_is_replaced(sites_client: TestClient, idp: FakeIdP) -> None:
    _, challenge = keys()
    answer = site_login(sites_client, idp, page=f"{PAGE}#reviews", challenge=challenge)
    assert landing(answer, PAGE)["tdb_mode"] == "popup"


def test_an_idp_refusal_is_sent_back_to_the_site(sites_client: TestClient, idp: FakeIdP) -> None:
    _, challenge = keys()
    start = sites_client.get(
        "/login/acme", params={"return_to": PAGE, "mode": "popup", "challenge": challenge}
    )
    _, state = idp.authorize(start.headers["location"])
    answer = sites_client.get(
        "/callback/acme",
        params={"state": state, "error": "access_denied", "error_description": "no"},
    )
    assert landing(answer) == {"tdb_mode": "popup", "tdb_error": "access_denied"}
    assert auth(sites_client).status_code == 401


def test_a_policy_refusal_is_sent_back_to_the_site(
    idps: dict[str, FakeIdP],
) -> None:
    data = settings_with({SHOP: {}})
    data["providers"]["acme"]["access"] = {"email_domains": ["elsewhere.test"]}
    with app_client(data) as client:
        _, challenge = keys()
        answer = site_login(client, idps["acme"], challenge=challenge)
        assert landing(answer) == {"tdb_mode": "popup", "tdb_error": "access_denied"}


def test_an_idp_that_is_down_at_the_start_is_reported_on_the_site(
    sites_client: TestClient, idp: FakeIdP
) -> None:
    _, challenge = keys()
    idp.faults["discovery"] = httpx.ConnectError
    answer = sites_client.get(
        "/login/acme", params={"return_to": PAGE, "mode": "popup", "challenge": challenge}
    )
    assert landing(answer) == {"tdb_mode": "popup", "tdb_error": "idp_error"}


def test_return_to_may_be_512_characters_and_no_more(
    sites_client: TestClient, idp: FakeIdP
) -> None:
    _, challenge = keys()
    longest = f"{SHOP}/" + "a" * (512 - len(SHOP) - 1)
    answer = site_login(sites_client, idp, page=longest, challenge=challenge)
    assert landing(answer, longest)["tdb_mode"] == "popup"
    refused = sites_client.get(
        "/login/acme", params={"return_to": longest + "a", "mode": "popup", "challenge": challenge}
    )
    assert refused.status_code == 400


RETURN_TO_VARIANTS = {
    **{f"next-{name}": raw for name, raw in REDIRECT_VARIANTS.items()},
    "suffix": "https://shop.acme.test.evil.test/",
    "prefix": "https://evil-shop.acme.test/",
    "userinfo": "https://shop.acme.test@evil.test/",
    "userinfo-encoded": "https://shop.acme.test%40evil.test/",
    "port": "https://shop.acme.test:444/",
    "default-port": "https://shop.acme.test:443/",
    "scheme": "http://shop.acme.test/",
    "protocol-relative": "//shop.acme.test/",
    "no-path": "https://shop.acme.test",
    "query-only": "https://shop.acme.test?x=1",
    "backslash": "https://shop.acme.test\\@evil.test/",
    "upper-case": "https://SHOP.acme.test/",
    "leading-space": " https://shop.acme.test/",
    "tab": "https://shop.acme.test/\t/evil",
    "newline": "https://shop.acme.test/\n",
    "javascript": "javascript:https://shop.acme.test/",
    "in-query": "https://evil.test/?https://shop.acme.test/",
    "bridge": f"{PUBLIC_URL}/",
    "too-long": "https://shop.acme.test/" + "a" * 3000,
}


@pytest.mark.parametrize("raw", RETURN_TO_VARIANTS.values(), ids=RETURN_TO_VARIANTS.keys())
def test_return_to_outside_sites_is_refused_before_the_idp(
    sites_client: TestClient, raw: str
) -> None:
    _, challenge = keys()
    for path in ("/login/acme", "/login"):
        answer = sites_client.get(
            path, params={"return_to": raw, "mode": "popup", "challenge": challenge}
        )
        assert answer.status_code == 400, (path, answer.headers.get("location"))
        assert "location" not in answer.headers


def test_return_to_needs_a_mode_and_a_challenge(sites_client: TestClient) -> None:
    _, challenge = keys()
    for params in (
        {"return_to": PAGE, "challenge": challenge},
        {"return_to": PAGE, "mode": "frame", "challenge": challenge},
        {"return_to": PAGE, "mode": "popup"},
        {"return_to": PAGE, "mode": "popup", "challenge": "short"},
    ):
        assert sites_client.get("/login/acme", params=params).status_code == 400, params


def test_a_site_is_offered_only_its_providers(sites_client: TestClient) -> None:
    _, challenge = keys()
    params = {"return_to": f"{BLOG}/", "mode": "popup", "challenge": challenge}
    assert sites_client.get("/login/acme", params=params).status_code == 400
    assert sites_client.get("/login/google", params=params).status_code == 302
    # One provider for this site: the chooser goes straight to it, carrying the return.
    chooser = sites_client.get("/login", params=params)
    assert chooser.status_code == 303
    target = urlsplit(chooser.headers["location"])
    assert target.path == "/login/google"
    assert parse_qs(target.query) == {k: [v] for k, v in params.items()}


def test_the_chooser_carries_the_sites_return_to_each_provider(sites_client: TestClient) -> None:
    _, challenge = keys()
    params = {"return_to": PAGE, "mode": "redirect", "challenge": challenge}
    page = sites_client.get("/login", params=params)
    assert page.status_code == 200
    links = [
        html.unescape(h.split('"')[0]) for h in page.text.split('class="signin button" href="')[1:]
    ]
    assert [urlsplit(link).path for link in links] == [
        "/login/acme",
        "/login/google",
        "/login/generic",
    ]
    for link in links:
        assert parse_qs(urlsplit(link).query) == {k: [v] for k, v in params.items()}


# --- /embed.js and /embed/config ----------------------------------------------------------


def test_embed_js_has_a_strong_validator(sites_client: TestClient) -> None:
    script = sites_client.get("/embed.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    etag = script.headers["etag"]
    assert etag == f'"{embed.script().version}"'
    assert not etag.startswith("W/")
    assert script.headers["cache-control"] == "public, max-age=300, must-revalidate"
    assert script.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "access-control-allow-origin" not in script.headers
    again = sites_client.get("/embed.js", headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    pinned = sites_client.get(f"/embed.js?v={embed.script().version}")
    assert pinned.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert (
        sites_client.get("/embed.js?v=old")
        .headers["cache-control"]
        .startswith("public, max-age=300")
    )


def test_embed_js_never_posts_to_any_origin_nor_evaluates_code(sites_client: TestClient) -> None:
    text = sites_client.get("/embed.js").text
    assert "'*'" not in text and '"*"' not in text
    assert "postMessage(message, location.origin)" in text
    for forbidden in (
        "eval(",
        "new Function",
        "innerHTML",
        "document.write",
        'setAttribute("style',
    ):
        assert forbidden not in text, forbidden


def test_embed_config_answers_a_listed_site_only(sites_client: TestClient) -> None:
    config = sites_client.get("/embed/config", headers={"Origin": BLOG})
    assert config.status_code == 200
    assert config.headers["access-control-allow-origin"] == BLOG
    body = config.json()
    assert body["signIn"] == "offered"
    assert body["providers"] == [{"name": "google", "displayName": "Google"}]
    assert body["tiledeskSettings"]["autoStart"] is False
    assert body["tiledeskSettings"]["projectid"] == base_settings()["tiledesk"]["project_id"]
    assert body["version"] == embed.script().version
    for origin in ("https://evil.test", f"{BLOG}.evil.test", "null", f"{BLOG}:443"):
        refused = sites_client.get("/embed/config", headers={"Origin": origin})
        assert refused.status_code == 403, origin
        assert "access-control-allow-origin" not in refused.headers
    assert sites_client.get("/embed/config").status_code == 403


def test_preflight_of_the_redemption_is_answered_for_sites_only(sites_client: TestClient) -> None:
    request = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "content-type",
    }
    ok = sites_client.options("/auth", headers={"Origin": SHOP, **request})
    assert ok.status_code == 204
    assert ok.headers["access-control-allow-origin"] == SHOP
    assert "Content-Type" in ok.headers["access-control-allow-headers"]
    assert (
        sites_client.options(
            "/auth", headers={"Origin": "https://evil.test", **request}
        ).status_code
        == 403
    )


# --- sign-out from a site -----------------------------------------------------------------


def test_sign_out_from_a_site_with_the_cookie_returns_the_idp_logout_and_comes_back(
    sites_client: TestClient, idp: FakeIdP
) -> None:
    verifier, challenge = keys()
    handle = landing(site_login(sites_client, idp, challenge=challenge))["tdb_handle"]
    assert redeem(sites_client, handle, verifier).status_code == 200

    answer = sites_client.post(f"/logout?return_to={quote(PAGE)}", headers={"Origin": SHOP})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == SHOP
    body = answer.json()
    assert body["signed_out"] is True
    end = urlsplit(body["redirect"])
    assert f"{end.scheme}://{end.netloc}{end.path}" == f"{idp.base}/logout"
    query = {k: v[0] for k, v in parse_qs(end.query).items()}
    assert query["post_logout_redirect_uri"] == f"{PUBLIC_URL}/"
    assert "id_token_hint" in query
    assert auth(sites_client).status_code == 401

    # The IdP sends the visitor to the registered post-logout URI with the state: on to the page.
    back = sites_client.get("/", params={"state": query["state"]})
    assert back.status_code == 303
    assert back.headers["location"] == PAGE
    assert sites_client.get("/", params={"state": query["state"]}).status_code == 200, "once"


def test_sign_out_from_a_site_without_the_cookie_says_so(sites_client: TestClient) -> None:
    answer = sites_client.post(f"/logout?return_to={quote(PAGE)}", headers={"Origin": SHOP})
    assert answer.json() == {"signed_out": False, "redirect": None}


def test_sign_out_cannot_send_the_visitor_to_another_sites_page(
    sites_client: TestClient, idp: FakeIdP
) -> None:
    verifier, challenge = keys()
    redeem(
        sites_client,
        landing(site_login(sites_client, idp, challenge=challenge))["tdb_handle"],
        verifier,
    )
    answer = sites_client.post(f"/logout?return_to={quote(BLOG + '/')}", headers={"Origin": SHOP})
    query = parse_qs(urlsplit(answer.json()["redirect"]).query)
    assert "state" not in query


def test_the_sign_out_page_for_a_cookieless_site_asks_for_a_click(
    sites_client: TestClient, idp: FakeIdP
) -> None:
    _, challenge = keys()
    site_login(sites_client, idp, challenge=challenge)
    page = sites_client.get("/logout/site", params={"return_to": PAGE})
    assert page.status_code == 200
    assert page.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert "<script" not in page.text.lower()
    assert "JWT" not in page.text
    assert f'action="/logout?return_to={quote_plus(PAGE)}"' in page.text
    assert f'href="{html.escape(PAGE)}"' in page.text
    assert auth(sites_client).status_code == 200, "a visit alone signs nobody out"

    done = sites_client.post(f"/logout?return_to={quote(PAGE)}", headers={"Origin": PUBLIC_URL})
    assert done.status_code == 303
    end = parse_qs(urlsplit(done.headers["location"]).query)
    back = sites_client.get("/", params={"state": end["state"][0]})
    assert back.headers["location"] == PAGE


def test_the_sign_out_pages_language_links_stay_on_the_sign_out_page(
    sites_client: TestClient, idp: FakeIdP
) -> None:
    """Choosing another language must not drop the visitor at the start, away from the site."""
    _, challenge = keys()
    site_login(sites_client, idp, challenge=challenge)
    page = sites_client.get("/logout/site", params={"return_to": PAGE})
    link = f"/logout/site?{urlencode({'return_to': PAGE, 'lang': 'it'})}"
    assert f'href="{html.escape(link)}"' in page.text
    italian = sites_client.get(link)
    assert italian.status_code == 200
    assert italian.headers["content-language"] == "it"
    assert f'action="/logout?return_to={quote_plus(PAGE)}"' in italian.text


def test_the_sign_out_page_refuses_other_pages_and_skips_when_signed_out(
    sites_client: TestClient,
) -> None:
    assert (
        sites_client.get("/logout/site", params={"return_to": "https://evil.test/"}).status_code
        == 400
    )
    skip = sites_client.get("/logout/site", params={"return_to": PAGE})
    assert skip.status_code == 303
    assert skip.headers["location"] == PAGE


def test_check_lists_each_site_and_how_it_signs_in(
    tmp_path: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f"""
[server]
public_url = "https://chat.acme.test"

[session]
secret = "{"s" * 40}"

[tiledesk]
project_id = "64f0c0ffee00000000000001"
secret = "0b1c6c52-41f7-4a8f-9d50-6a3c2f1a7e11"

[providers.dev]
preset = "generic"
issuer = "https://idp.acme.test"
client_id = "bridge"
client_secret = "x"

[sites."https://www.acme.test"]

[sites."https://shop.example.test"]
providers = ["dev"]
sign_in = "offered"
"""
    )
    assert cli.main(["check", "--settings", str(settings)]) == 0
    out = capsys.readouterr().out
    assert "sites: 2 may embed the chat with https://chat.acme.test/embed.js" in out
    assert (
        "  one-time handles: in this process's memory (one worker; [session] redis_url "
        "shares them between workers and instances)\n"
    ) in out
    assert "  https://www.acme.test: providers dev; sign-in required\n" in out
    assert "same site as the bridge: signed in through the session cookie (SameSite=lax)" in out
    assert "  https://shop.example.test: providers dev; sign-in offered\n" in out
    assert (
        "cross-site: sign-in in a popup that hands over a one-time handle; "
        "the Tiledesk token is kept in the site's storage until it expires"
    ) in out


def test_serve_refuses_several_workers_with_sites(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Handles live in one process without Redis: a second worker would not know them."""
    calls: list[Any] = []
    monkeypatch.setattr("uvicorn.run", lambda app, **kw: calls.append(app))
    settings = tmp_path / "settings.toml"
    settings.write_text(
        f"""
[server]
public_url = "https://chat.acme.test"

[session]
secret = "{"s" * 40}"

[tiledesk]
project_id = "64f0c0ffee00000000000001"
secret = "0b1c6c52-41f7-4a8f-9d50-6a3c2f1a7e11"

[providers.acme]
preset = "generic"
issuer = "https://idp.acme.test"
client_id = "bridge"
client_secret = "x"

[sites."https://www.acme.test"]
"""
    )
    assert cli.main(["serve", "--settings", str(settings), "--workers", "2"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "--workers: [sites] sign-ins hand over one-time handles kept in one process: serve "
        "them with one worker, or set [session] redis_url so that every worker shares them"
    ]
    assert calls == []

    # With Redis the handles are shared: several workers are fine.
    text = settings.read_text()
    settings.write_text(
        text.replace("[tiledesk]", 'redis_url = "redis://127.0.0.1:1/0"\n\n[tiledesk]')
    )
    assert cli.main(["serve", "--settings", str(settings), "--workers", "2"]) == 0
    assert calls == ["bridge.asgi:app"]


def test_a_site_removed_while_its_visitor_is_at_the_idp_gets_nothing(
    idps: dict[str, FakeIdP],
) -> None:
    """The bridge restarted without the site: no handle, no session, no redirect to it."""
    _, challenge = keys()
    with app_client(settings_with({SHOP: {}})) as before:
        start = before.get(
            "/login/acme", params={"return_to": PAGE, "mode": "popup", "challenge": challenge}
        )
        code, state = idps["acme"].authorize(start.headers["location"])
        cookies = dict(before.cookies)
    with app_client(settings_with({BLOG: {}})) as after:
        after.cookies.update(cookies)
        answer = after.get("/callback/acme", params={"code": code, "state": state})
        assert answer.status_code == 400
        assert "location" not in answer.headers
        assert auth(after).status_code == 401
