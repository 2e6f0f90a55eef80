"""When a sign-in asks the userinfo endpoint: with ``userinfo = "auto"`` (the default) only when
the ID token lacks a claim the mapping or the access rules read; with ``true`` always; with
``false`` never. The ID token's claims win over the userinfo answer's either way."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tests.conftest import PROJECT_ID, auth, login
from tests.idp import FakeIdP
from tests.security import assert_no_session, assert_refused


def _client(
    settings_data: dict[str, Any], request: pytest.FixtureRequest, name: str, **provider: Any
) -> TestClient:
    settings_data["providers"][name].update(provider)
    client: TestClient = request.getfixturevalue("client")
    return client


def _user(client: TestClient) -> dict[str, Any]:
    answer = auth(client)
    assert answer.status_code == 200, answer.text
    return answer.json()["user"]  # type: ignore[no-any-return]


def test_auto_skips_userinfo_when_the_id_token_holds_every_claim_read(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.faults["userinfo"] = httpx.Response(500)  # a sign-in that asked would fail
    assert login(client, idp).status_code == 303
    assert idp.routes["userinfo"].call_count == 0
    assert _user(client) == {
        "_id": f"{PROJECT_ID}_acme_user-1",
        "firstname": "Ada",
        "lastname": "Lovelace",
        "email": "ada@acme.test",
        "attributes": {"groups": ["support"], "idp": "acme"},
    }


def test_auto_asks_userinfo_once_when_the_id_token_lacks_a_claim_read(
    client: TestClient, idp: FakeIdP
) -> None:
    idp.userinfo_only = ("family_name",)
    idp.userinfo_overrides = {"given_name": "Eve"}
    assert login(client, idp).status_code == 303
    assert idp.routes["userinfo"].call_count == 1
    user = _user(client)
    assert user["lastname"] == "Lovelace"  # from userinfo alone
    assert user["firstname"] == "Ada"  # the ID token's given_name wins


def test_auto_refuses_a_userinfo_answer_for_another_sub(client: TestClient, idp: FakeIdP) -> None:
    idp.userinfo_only = ("family_name",)
    idp.userinfo_overrides = {"sub": "someone-else"}
    assert_refused(login(client, idp), 401, "id_token_invalid")
    assert_no_session(client)
    assert idp.routes["userinfo"].call_count == 1


@pytest.mark.parametrize(
    ("groups", "status"), [(["support"], 303), (["sales"], 403)], ids=["member", "not-member"]
)
def test_auto_asks_userinfo_for_the_groups_claim_allowed_groups_reads(
    settings_data: dict[str, Any],
    request: pytest.FixtureRequest,
    idps: dict[str, FakeIdP],
    groups: list[str],
    status: int,
) -> None:
    client = _client(settings_data, request, "generic", access={"allowed_groups": ["support"]})
    idp = idps["generic"]
    idp.userinfo_only = ("groups",)
    idp.user["groups"] = groups
    assert login(client, idp, "generic").status_code == status
    assert idp.routes["userinfo"].call_count == 1


def test_auto_skips_userinfo_for_a_claim_nothing_reads(
    client: TestClient, idps: dict[str, FakeIdP]
) -> None:
    """The generic provider maps no groups and has no access rule on them."""
    idp = idps["generic"]
    idp.userinfo_only = ("groups",)
    assert login(client, idp, "generic").status_code == 303
    assert idp.routes["userinfo"].call_count == 0


def test_userinfo_true_asks_once_even_when_the_id_token_holds_every_claim(
    settings_data: dict[str, Any], request: pytest.FixtureRequest, idp: FakeIdP
) -> None:
    client = _client(settings_data, request, "acme", userinfo=True)
    idp.userinfo_overrides = {"family_name": "Byron"}
    assert login(client, idp).status_code == 303
    assert idp.routes["userinfo"].call_count == 1
    assert _user(client)["lastname"] == "Lovelace"  # the ID token's family_name wins


def test_userinfo_false_never_asks_even_when_the_id_token_lacks_a_claim(
    settings_data: dict[str, Any], request: pytest.FixtureRequest, idp: FakeIdP
) -> None:
    client = _client(settings_data, request, "acme", userinfo=False)
    idp.userinfo_only = ("family_name",)
    assert login(client, idp).status_code == 303
    assert idp.routes["userinfo"].call_count == 0
    assert _user(client)["lastname"] == ""
