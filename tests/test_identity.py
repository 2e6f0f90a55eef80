"""Claim mapping and access policy: pure functions, tested as tables."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest

from bridge.identity import claim_value, decide, map_user, resolve, tiledesk_user_id
from bridge.settings import ProviderSettings

PROJECT = "64f0c0ffee00000000000001"
CLAIMS: dict[str, Any] = {
    "sub": "248289761001",
    "email": "Ada@Acme.com",
    "email_verified": True,
    "given_name": "Ada",
    "family_name": "Lovelace",
    "name": "Ada Lovelace",
    "groups": ["support", "staff"],
    "org": {"unit": {"name": "Research"}},
    "https://acme.com/plan": "gold",
    "hd": "acme.com",
}


def provider(**overrides: Any) -> ProviderSettings:
    data: dict[str, Any] = {
        "preset": "generic",
        "issuer": "https://idp.test",
        "client_id": "c",
        "client_secret": "s",
    }
    data.update(overrides)
    return ProviderSettings.model_validate(data)


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("given_name", "Ada"),
        ("org.unit.name", "Research"),
        ("https://acme.com/plan", "gold"),
        ("missing", None),
        ("org.missing.name", None),
        ("{given_name} {family_name}", "Ada Lovelace"),
        ("{given_name} ({org.unit.name})", "Ada (Research)"),
        ("{given_name} {missing}", None),
        (["missing", "nickname", "name"], "Ada Lovelace"),
        (["{missing}", "given_name"], "Ada"),
        ("groups", ["support", "staff"]),
    ],
)
def test_claim_specs(spec: Any, expected: Any) -> None:
    assert resolve(CLAIMS, spec) == expected


def test_a_key_holding_dots_wins_over_a_nested_path() -> None:
    claims = {"a.b": "flat", "a": {"b": "nested"}}
    assert claim_value(claims, "a.b") == "flat"
    assert claim_value({"a": {"b": "nested"}}, "a.b") == "nested"


def test_default_mapping() -> None:
    user = map_user(
        project_id=PROJECT,
        provider_name="acme",
        provider=provider(),
        issuer="https://idp.test",
        claims=CLAIMS,
    )
    assert (user.firstname, user.lastname, user.email) == ("Ada", "Lovelace", "Ada@Acme.com")
    assert user.id == f"{PROJECT}_acme_248289761001"
    assert user.attributes == {"idp": "acme"}


def test_firstname_falls_back_to_name() -> None:
    claims = {"sub": "1", "name": "Grace Hopper", "email": "g@x.test", "email_verified": True}
    user = map_user(
        project_id=PROJECT, provider_name="acme", provider=provider(), issuer="i", claims=claims
    )
    assert user.firstname == "Grace Hopper"
    assert user.lastname == ""


def test_operator_mapping_with_attributes() -> None:
    conf = provider(
        claims={
            "firstname": "{given_name}",
            "lastname": ["surname", "family_name"],
            "attributes": {
                "plan": "https://acme.com/plan",
                "unit": "org.unit.name",
                "groups": "groups",
                "none": "nope",
            },
        }
    )
    user = map_user(
        project_id=PROJECT, provider_name="acme", provider=conf, issuer="i", claims=CLAIMS
    )
    assert user.attributes == {
        "plan": "gold",
        "unit": "Research",
        "groups": ["support", "staff"],
        "idp": "acme",
    }


def test_non_finite_numbers_are_dropped_from_the_mapping() -> None:
    """NaN and Infinity are not JSON: such a claim counts as absent, never as ``NaN`` in a token."""
    nan, inf = float("nan"), float("inf")
    claims = {**CLAIMS, "score": nan, "ratio": inf, "low": -inf, "mixed": [1.5, nan, inf, 2]}
    conf = provider(
        claims={
            "firstname": ["{score}", "score", "given_name"],
            "lastname": "ratio",
            "attributes": {
                "score": "score",
                "ratio": ["ratio", "low"],
                "label": "score {score}",
                "mixed": "mixed",
                "plan": "https://acme.com/plan",
            },
        }
    )
    user = map_user(
        project_id=PROJECT, provider_name="acme", provider=conf, issuer="i", claims=claims
    )
    assert user.firstname == "Ada"
    assert user.lastname == ""
    assert user.attributes == {"mixed": ["1.5", "2"], "plan": "gold", "idp": "acme"}


def test_oversized_attributes_are_dropped_not_fatal() -> None:
    claims = {**CLAIMS, "big": ["x" * 200] * 50}
    conf = provider(claims={"attributes": {"big": "big", "plan": "https://acme.com/plan"}})
    user = map_user(
        project_id=PROJECT, provider_name="acme", provider=conf, issuer="i", claims=claims
    )
    assert "big" not in user.attributes
    assert user.attributes["plan"] == "gold"


def digest_id(subject: str, issuer: str = "https://idp.test") -> str:
    """The digest form, spelt out here so a change to it cannot go unnoticed."""
    return f"{PROJECT}_acme|" + hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:40]


@pytest.mark.parametrize(
    ("subject", "safe"),
    [
        ("248289761001", True),
        ("auth0|5f7c8ec7c33c6c004bbafe82", True),
        ("google-oauth2|104917262374637165491", True),
        ("f:6d5c:ada@acme", True),
        ("ada@acme", True),
        ("has space", False),
        ("dots.are.routing", False),
        ("star*", False),
        ("hash#", False),
        ("slash/", False),
        ("ü-unicode", False),
        ("x" * 200, False),
    ],
)
def test_user_id_is_safe_for_tiledesk(subject: str, safe: bool) -> None:
    user_id = tiledesk_user_id(PROJECT, "acme", "https://idp.test", subject)
    assert len(user_id) <= 128
    assert all(c.isascii() and (c.isalnum() or c in "_|:@-") for c in user_id)
    assert user_id == (f"{PROJECT}_acme_{subject}" if safe else digest_id(subject))


def test_hashed_ids_are_stable_and_distinct() -> None:
    one = tiledesk_user_id(PROJECT, "acme", "https://idp.test", "a b")
    assert one == tiledesk_user_id(PROJECT, "acme", "https://idp.test", "a b")
    assert one != tiledesk_user_id(PROJECT, "acme", "https://idp.test", "a c")
    assert one != tiledesk_user_id(PROJECT, "acme", "https://other.test", "a b")


def test_a_subject_spelling_another_users_digest_does_not_take_over_their_id() -> None:
    """The exploit: a chosen username equal to the digest part of a victim's id."""
    victim = tiledesk_user_id(PROJECT, "acme", "https://idp.test", "ada.lovelace")
    digest = hashlib.sha256(b"https://idp.test\nada.lovelace").hexdigest()[:40]
    assert victim == f"{PROJECT}_acme|{digest}"
    attacker = tiledesk_user_id(PROJECT, "acme", "https://idp.test", digest)
    assert attacker == f"{PROJECT}_acme_{digest}"
    for chosen in (digest, f"|{digest}", f"acme|{digest}", victim):
        assert tiledesk_user_id(PROJECT, "acme", "https://idp.test", chosen) != victim


def test_a_subject_with_a_lone_surrogate_gets_a_digest_not_an_error() -> None:
    assert tiledesk_user_id(PROJECT, "acme", "https://idp.test", "a\ud800") == (
        f"{PROJECT}_acme|"
        + hashlib.sha256("https://idp.test\na\ud800".encode("utf-8", "surrogatepass")).hexdigest()[
            :40
        ]
    )


def test_an_issuer_with_a_newline_is_refused() -> None:
    with pytest.raises(ValueError, match="issuer"):
        tiledesk_user_id(PROJECT, "acme", "https://idp.test\nx", "a b")


def test_subject_claim_can_be_oid() -> None:
    conf = provider(subject_claim="oid")
    claims = {**CLAIMS, "oid": "00000000-0000-0000-0000-000000000001"}
    user = map_user(
        project_id=PROJECT, provider_name="entra", provider=conf, issuer="i", claims=claims
    )
    assert user.id == f"{PROJECT}_entra_00000000-0000-0000-0000-000000000001"


def test_missing_subject_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'sub'"):
        map_user(
            project_id=PROJECT,
            provider_name="acme",
            provider=provider(),
            issuer="i",
            claims={"email": "x"},
        )


@pytest.mark.parametrize(
    ("access", "claims", "allowed"),
    [
        ({}, {}, True),
        ({"email_domains": ["acme.com"]}, {}, True),
        ({"email_domains": ["acme.com"]}, {"email": "ada@evil.com"}, False),
        ({"email_domains": ["acme.com"]}, {"email": "ada@sub.acme.com"}, False),
        ({"email_domains": [".acme.com"]}, {"email": "ada@sub.acme.com"}, True),
        ({"email_domains": ["acme.com"]}, {"email": "ada@acme.com.evil.com"}, False),
        ({"email_domains": ["acme.com"]}, {"email": None}, False),
        ({}, {"email_verified": False}, False),
        ({}, {"email_verified": "true"}, True),
        ({}, {"email_verified": "false"}, False),
        ({"require_email_verified": False}, {"email_verified": False}, True),
        ({"hosted_domain": "acme.com"}, {}, True),
        ({"hosted_domain": "acme.com"}, {"hd": "evil.com"}, False),
        ({"hosted_domain": "acme.com"}, {"hd": None}, False),
        ({"allowed_groups": ["staff"]}, {}, True),
        ({"allowed_groups": ["admins"]}, {}, False),
        ({"allowed_groups": ["staff"], "groups_claim": "roles"}, {"roles": "staff"}, True),
        ({"allowed_groups": ["staff"], "groups_claim": "roles"}, {}, False),
    ],
)
def test_access_policy(access: dict[str, Any], claims: dict[str, Any], allowed: bool) -> None:
    decision = decide(provider(access=access), {**CLAIMS, **claims})
    assert decision.allowed is allowed, decision.reason


def test_entra_preset_reads_email_verification_from_xms_edov() -> None:
    entra = ProviderSettings.model_validate(
        {
            "preset": "entra",
            "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "client_id": "c",
            "client_secret": "s",
        }
    )
    claims = {"sub": "x", "email": "ada@acme.com"}
    assert not decide(entra, claims).allowed
    assert decide(entra, {**claims, "xms_edov": True}).allowed
