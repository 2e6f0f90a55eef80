"""docs/providers.md: every settings block in it is valid, and the preset behaviour it promises."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from starlette.testclient import TestClient

from bridge.settings import SettingsError, parse_settings
from bridge.web import create_app
from tests.conftest import (
    PROJECT_ID,
    PUBLIC_URL,
    SESSION_SECRET,
    TILEDESK_SECRET,
    login,
    start_login,
)
from tests.idp import FakeIdP

DOC = Path(__file__).resolve().parent.parent / "docs" / "providers.md"
BLOCKS = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.DOTALL)
ISSUERS = {
    "acme": "https://sso.acme.com/realms/acme",
    "google": "https://accounts.google.com",
    "entra": "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
    "okta": "https://acme.okta.com/oauth2/default",
    "auth0": "https://acme.eu.auth0.com/",
    "sso": "https://login.acme.com/application/o/tiledesk/",
}


def test_the_doc_has_a_block_per_preset() -> None:
    presets = {tomllib.loads(block)["providers"].popitem()[1]["preset"] for block in BLOCKS}
    assert presets == {"keycloak", "google", "entra", "okta", "auth0", "generic"}


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.split("]", 1)[0].strip("[\n"))
def test_each_documented_block_is_valid_settings(
    block: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in re.findall(r'"env:([A-Z0-9_]+)"', block):
        monkeypatch.setenv(name, "client-secret-value")
    block = re.sub(r'"file:[^"]+"', '"file:secret"', block)
    (tmp_path / "secret").write_text("client-secret-value\n")
    data: dict[str, Any] = {
        "server": {"public_url": "https://chat.acme.com"},
        "session": {"secret": SESSION_SECRET},
        "tiledesk": {"project_id": PROJECT_ID, "secret": TILEDESK_SECRET},
        **tomllib.loads(block),
    }
    settings = parse_settings(data, tmp_path)
    ((name, _),) = settings.providers.items()
    assert settings.issuer(name) == ISSUERS[name]


def test_google_hosted_domain_is_sent_as_the_hd_hint(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    settings_data["providers"]["google"]["access"] = {"hosted_domain": "acme.test"}
    with _client(settings_data) as client:
        query = parse_qs(urlsplit(start_login(client, "google")).query)
    assert query["hd"] == ["acme.test"]


def test_google_hd_hint_can_be_overridden_but_the_claim_is_still_checked(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    google = settings_data["providers"]["google"]
    google["access"] = {"hosted_domain": "acme.test"}
    google["authorize_params"] = {"hd": "*"}
    with _client(settings_data) as client:
        query = parse_qs(urlsplit(start_login(client, "google")).query)
        assert query["hd"] == ["*"]
        assert login(client, idps["google"], "google").status_code == 403
        idps["google"].user = {**idps["google"].user, "hd": "acme.test"}
        assert login(client, idps["google"], "google").status_code == 303


def test_other_presets_send_no_hd(client: TestClient, settings_data: dict[str, Any]) -> None:
    query = parse_qs(urlsplit(start_login(client, "acme")).query)
    assert "hd" not in query


def test_auth0_namespaced_claims_are_read_whole(
    settings_data: dict[str, Any], idps: dict[str, FakeIdP]
) -> None:
    generic = settings_data["providers"]["generic"]
    generic["claims"] = {"attributes": {"groups": "https://acme.com/groups"}}
    generic["access"] = {
        "groups_claim": "https://acme.com/groups",
        "allowed_groups": ["chat-customer"],
    }
    idp = idps["generic"]
    with _client(settings_data) as client:
        assert login(client, idp, "generic").status_code == 403
        idp.user = {**idp.user, "https://acme.com/groups": ["chat-customer"]}
        assert login(client, idp, "generic").status_code == 303
        user = client.post("/auth", headers={"Origin": PUBLIC_URL}).json()["user"]
    assert user["attributes"]["groups"] == ["chat-customer"]


def _client(data: dict[str, Any]) -> TestClient:
    app = create_app(parse_settings(data), warm_up=False)
    return TestClient(app, base_url=PUBLIC_URL, follow_redirects=False)


@pytest.mark.parametrize(
    ("tenant", "reason"),
    [
        (
            "acme.com",
            "a domain name's discovery document gives the issuer with the tenant's GUID, "
            "so an issuer built from the name never matches",
        ),
        ("common", "'common' and 'organizations' publish a '{tenantid}' placeholder issuer"),
        ("organizations", "'common' and 'organizations' publish a '{tenantid}' placeholder"),
    ],
)
def test_an_entra_tenant_that_is_not_a_guid_is_refused_for_the_documented_reason(
    tenant: str, reason: str
) -> None:
    data: dict[str, Any] = {
        "server": {"public_url": PUBLIC_URL},
        "session": {"secret": SESSION_SECRET},
        "tiledesk": {"project_id": PROJECT_ID, "secret": TILEDESK_SECRET},
        "providers": {
            "entra": {"preset": "entra", "tenant": tenant, "client_id": "c", "client_secret": "s"}
        },
    }
    with pytest.raises(SettingsError) as caught:
        parse_settings(data)
    (problem,) = caught.value.problems
    assert problem.startswith(
        "providers.entra.tenant: required for the entra preset: the Directory (tenant) ID, a GUID; "
    )
    assert reason in problem
