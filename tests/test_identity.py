"""Claim mapping and access policy: pure functions, tested as tables."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.identity import (
    claim_value,
    claims_read,
    decide,
    map_user,
    resolve,
    tiledesk_user_id,
    userinfo_needed,
)
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


def entra_provider() -> ProviderSettings:
    return ProviderSettings.model_validate(
        {
            "preset": "entra",
            "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47",
            "client_id": "c",
            "client_secret": "s",
        }
    )


def test_entra_preset_reads_email_verification_from_xms_edov() -> None:
    entra = entra_provider()
    claims = {"sub": "x", "email": "ada@acme.com"}
    assert not decide(entra, claims).allowed
    assert decide(entra, {**claims, "xms_edov": True}).allowed


# --- which claims are read, and when userinfo is asked --------------------------------------

DEFAULT_READ = {"sub", "given_name", "name", "family_name", "email", "email_verified"}


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, DEFAULT_READ),
        ({"subject_claim": "oid"}, DEFAULT_READ - {"sub"} | {"oid"}),
        (
            {"claims": {"firstname": "{ given_name } ({org.unit.name})", "lastname": ""}},
            {"sub", "given_name", "org.unit.name", "email", "email_verified"},
        ),
        ({"claims": {"email": ""}}, {"sub", "given_name", "name", "family_name"}),
        ({"claims": {"firstname": "", "lastname": []}}, {"sub", "email", "email_verified"}),
        ({"access": {"require_email_verified": False}}, DEFAULT_READ - {"email_verified"}),
        (
            {"access": {"email_verified_claim": "verified"}},
            DEFAULT_READ - {"email_verified"} | {"verified"},
        ),
        ({"access": {"hosted_domain": "acme.com"}}, DEFAULT_READ | {"hd"}),
        ({"access": {"groups_claim": "roles"}}, DEFAULT_READ),
        (
            {"access": {"allowed_groups": ["staff"], "groups_claim": "roles"}},
            DEFAULT_READ | {"roles"},
        ),
        (
            {"claims": {"attributes": {"plan": "https://acme.com/plan", "unit": ["a.b", "{c}"]}}},
            DEFAULT_READ | {"https://acme.com/plan", "a.b", "c"},
        ),
    ],
)
def test_claims_read_lists_every_path_the_policy_and_the_mapping_read(
    overrides: dict[str, Any], expected: set[str]
) -> None:
    assert claims_read(provider(**overrides)) == expected


def test_the_entra_preset_reads_xms_edov() -> None:
    entra = entra_provider()
    assert claims_read(entra) == DEFAULT_READ - {"email_verified"} | {"xms_edov"}


def test_userinfo_is_needed_only_when_the_id_token_lacks_a_claim_read() -> None:
    auto = provider()
    assert not userinfo_needed(auto, CLAIMS)
    assert userinfo_needed(auto, {k: v for k, v in CLAIMS.items() if k != "family_name"})
    assert userinfo_needed(provider(userinfo=True), CLAIMS)
    assert not userinfo_needed(provider(userinfo=False), {"sub": "1"})


def test_a_dotted_path_needs_userinfo_unless_the_dotted_key_itself_is_in_the_id_token() -> None:
    """``claim_value`` prefers a literal ``org.unit.name`` key, which userinfo could send."""
    nested = provider(claims={"attributes": {"unit": "org.unit.name"}})
    assert userinfo_needed(nested, CLAIMS)
    assert not userinfo_needed(nested, {**CLAIMS, "org.unit.name": "Research"})


# A small world of claim names, so that generated settings, ID tokens and userinfo answers
# meet: nested objects under "org", dotted keys, a namespaced key, the policy's claims. Each
# name has a value that passes the policy, drawn often: a refusal on the first
# check would hide whatever the later ones read.
_GOOD: dict[str, Any] = {
    "sub": "user-1",
    "oid": "object-1",
    "email": "ada@acme.com",
    "email_verified": True,
    "verified": "true",
    "xms_edov": True,
    "given_name": "Ada",
    "family_name": "Lovelace",
    "name": "Ada Lovelace",
    "groups": ["support"],
    "roles": "support",
    "hd": "acme.com",
    "org": {"unit": {"name": "Research"}},
    "org.unit": {"name": "Lab"},
    "org.unit.name": "Studio",
    "https://acme.com/plan": "gold",
    "": "blank",
}
_NAME = st.sampled_from(sorted(_GOOD))
_SPEC_PART = _NAME | _NAME.map(lambda n: "{" + n + "}") | _NAME.map(lambda n: "{ " + n + " }")
_ONE_SPEC = _SPEC_PART | st.lists(_SPEC_PART, min_size=2, max_size=3).map(" ".join)
_SPEC = _ONE_SPEC | st.lists(_ONE_SPEC, max_size=3)
#: What an operator writes to map nothing.
_EMPTY = st.sampled_from(["", []])
_SCALAR = st.sampled_from(
    [True, False, "true", "", "acme.com", "ada@acme.com", "ada@evil.com", "support", "x", 0, 1.5]
) | st.text(max_size=6)
_VALUE = st.recursive(
    _SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_NAME, inner, max_size=3),
    max_leaves=6,
)


def _value(name: str) -> st.SearchStrategy[Any]:
    """A value for this claim; a spec like ``"{}"`` is a path of its own, with no good value."""
    return st.just(_GOOD[name]) | _VALUE if name in _GOOD else _VALUE


#: What userinfo sends: every name, or some of them.
_ANSWER = st.fixed_dictionaries({name: _value(name) for name in _GOOD}) | st.fixed_dictionaries(
    {}, optional={name: _value(name) for name in _GOOD}
)


@st.composite
def _providers(draw: st.DrawFn) -> ProviderSettings:
    access: dict[str, Any] = {
        "email_domains": draw(st.sampled_from([[], [], ["acme.com"], [".acme.com"]])),
        "hosted_domain": draw(st.none() | st.just("acme.com")),
        "groups_claim": draw(st.sampled_from(["groups", "roles"]) | _NAME),
        "allowed_groups": draw(st.sampled_from([[], ["support"], ["x", "support"]])),
        "require_email_verified": draw(st.none() | st.booleans()),
    }
    if draw(st.booleans()):
        access["email_verified_claim"] = draw(_NAME)
    preset: dict[str, Any] = draw(
        st.sampled_from(
            [
                {"preset": "generic", "issuer": "https://idp.test"},
                {"preset": "entra", "tenant": "72f988bf-86f1-41af-91ab-2d7cd011db47"},
            ]
        )
    )
    return ProviderSettings.model_validate(
        {
            **preset,
            "client_id": "c",
            "client_secret": "s",
            "subject_claim": draw(_NAME),
            "claims": {
                "firstname": draw(_EMPTY | _SPEC),
                "lastname": draw(_EMPTY | _SPEC),
                "email": draw(st.just("email") | _EMPTY | _SPEC),
                "attributes": draw(
                    st.dictionaries(st.sampled_from(["a", "b", "plan"]), _SPEC, max_size=3)
                ),
            },
            "access": access,
        }
    )


def _outcome(conf: ProviderSettings, claims: dict[str, Any]) -> tuple[Any, Any]:
    try:
        user: Any = map_user(
            project_id=PROJECT, provider_name="acme", provider=conf, issuer="i", claims=claims
        )
    except ValueError as exc:
        user = str(exc)
    return decide(conf, claims), user


@settings(max_examples=500, deadline=None)
@given(
    data=st.data(),
    conf=_providers(),
    extra=st.dictionaries(_NAME, _VALUE, max_size=2),
    userinfo=_ANSWER,
)
def test_userinfo_cannot_change_the_outcome_when_the_id_token_holds_every_claim_read(
    data: st.DataObject,
    conf: ProviderSettings,
    extra: dict[str, Any],
    userinfo: dict[str, Any],
) -> None:
    """The callback merges ``{**userinfo, **id_claims}``: ID-token claims win. So once every
    path of ``claims_read`` is a key of the ID token, no userinfo answer changes a thing,
    and ``userinfo = "auto"`` skips the call."""
    read = sorted(claims_read(conf))
    id_claims = {**extra, **{path: data.draw(_value(path), label=path) for path in read}}
    assert not userinfo_needed(conf, id_claims)
    assert _outcome(conf, {**userinfo, **id_claims}) == _outcome(conf, id_claims)
