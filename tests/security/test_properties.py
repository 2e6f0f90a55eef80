"""Properties, with hypothesis: no input makes the bridge answer 500, and no claim mapping can
put a reserved claim or an unsafe ``_id`` into a Tiledesk token."""

from __future__ import annotations

import base64
import json
import math
import re
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from bridge import identity, tiledesk
from bridge.settings import ProviderSettings
from tests.conftest import PROJECT_ID, PUBLIC_URL, start_login
from tests.idp import FakeIdP
from tests.security import error_code

FIXTURES_OK = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
PURE = settings(max_examples=120, deadline=None)

ASCII = st.characters(min_codepoint=0x20, max_codepoint=0x7E)
ANY_TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=60)
CALLBACK_KEYS = st.sampled_from(
    ["state", "code", "iss", "error", "error_description", "session_state", "next", "scope"]
) | st.text(ASCII, min_size=1, max_size=12)
SAFE_ID = re.compile(r"^[A-Za-z0-9_|:@-]{1,128}$")
TOKEN_CLAIMS = {"_id", "sub", "aud", "firstname", "lastname", "email", "attributes", "iat", "exp"}
RESERVED = {"role", "nbf", "iss", "sub", "aud", "exp", "iat", "jti"}


def _assert_clean_answer(response: Any) -> None:
    assert response.status_code < 500 or response.status_code in (502, 504), response.text[:300]
    if response.status_code >= 400:
        assert error_code(response) not in (None, "internal_error"), response.text[:300]


# --- the callback -------------------------------------------------------------------------


@FIXTURES_OK
@given(params=st.lists(st.tuples(CALLBACK_KEYS, ANY_TEXT), max_size=8))
def test_callback_query_without_a_flow_never_errors(
    client: TestClient, params: list[tuple[str, str]]
) -> None:
    response = client.get("/callback/acme", params=params)
    assert 400 <= response.status_code < 500, response.text[:300]
    assert error_code(response) in ("state_mismatch", "invalid_request")


@FIXTURES_OK
@given(raw=st.text(st.sampled_from("&=%;+?#/\\ab09ZxX-._~:@!$'()*,"), max_size=80))
def test_raw_callback_query_string_never_errors(client: TestClient, raw: str) -> None:
    response = client.get(f"/callback/acme?{raw}")
    assert 400 <= response.status_code < 500, response.text[:300]


@FIXTURES_OK
@given(
    code=st.none() | ANY_TEXT,
    iss=st.none() | st.sampled_from(["https://sso.acme.test/realms/acme", ""]) | ANY_TEXT,
    error=st.none() | ANY_TEXT,
    description=st.none() | ANY_TEXT,
    extra=st.lists(st.tuples(CALLBACK_KEYS, ANY_TEXT), max_size=4),
)
def test_callback_query_with_a_real_flow_never_errors(
    client: TestClient,
    idp: FakeIdP,
    code: str | None,
    iss: str | None,
    error: str | None,
    description: str | None,
    extra: list[tuple[str, str]],
) -> None:
    """With our own state, anything else in the query: a clean page, or a real sign-in."""
    _, state = idp.authorize(start_login(client))
    params = [("state", state)] + [
        (k, v)
        for k, v in (
            ("code", code),
            ("iss", iss),
            ("error", error),
            ("error_description", description),
        )
        if v is not None
    ]
    response = client.get("/callback/acme", params=params + extra)
    _assert_clean_answer(response)
    if response.status_code == 502:
        assert error_code(response) == "idp_error"  # the IdP refused an invented code


# --- /auth --------------------------------------------------------------------------------

HEADER_VALUE = st.text(ASCII, max_size=80)


@FIXTURES_OK
@given(
    origin=st.none() | HEADER_VALUE | st.sampled_from([PUBLIC_URL, "null", PUBLIC_URL.upper()]),
    fetch_site=st.none()
    | HEADER_VALUE
    | st.sampled_from(["same-origin", "same-site", "cross-site", "none"]),
    cookie=st.none() | HEADER_VALUE.map(lambda v: f"bridge_session={v}") | HEADER_VALUE,
    accept=st.none() | HEADER_VALUE,
)
def test_auth_with_arbitrary_headers_and_cookies_never_errors(
    client: TestClient,
    origin: str | None,
    fetch_site: str | None,
    cookie: str | None,
    accept: str | None,
) -> None:
    headers = {
        k: v
        for k, v in (
            ("origin", origin),
            ("sec-fetch-site", fetch_site),
            ("cookie", cookie),
            ("accept", accept),
        )
        if v is not None
    }
    client.cookies.clear()
    response = client.post("/auth", headers=headers)
    assert response.status_code in (401, 403), response.text[:300]
    assert response.json()["error"] in ("not_signed_in", "cross_site_refused")


# --- claim mappings -----------------------------------------------------------------------

JSON_SCALAR = st.none() | st.booleans() | st.integers() | st.floats() | ANY_TEXT
JSON_VALUE = st.recursive(
    JSON_SCALAR,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(ANY_TEXT, inner, max_size=4),
    max_leaves=12,
)
CLAIM_NAMES = st.sampled_from(
    sorted(
        RESERVED
        | {"email", "name", "given_name", "groups", "a.b", "https://x/roles", "_id", "score"}
    )
) | st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
CLAIMS = st.dictionaries(CLAIM_NAMES, JSON_VALUE, max_size=8)
#: Numbers as a JSON parser hands them over: Python's accepts NaN and Infinity.
NUMBER = st.sampled_from([math.nan, math.inf, -math.inf]) | st.floats() | st.integers()
SUBJECT = st.one_of(ANY_TEXT, st.text(st.sampled_from("ab:|@-_.*#/ \x00"), max_size=300))
PATHS = CLAIM_NAMES | CLAIM_NAMES.map(lambda c: "{" + c + "}") | st.text(max_size=30)
SPEC = PATHS | st.lists(PATHS, min_size=1, max_size=3)
ATTRIBUTE_NAMES = st.sampled_from(sorted(RESERVED | {"_id", "idp", "plan"})) | st.from_regex(
    r"\A[A-Za-z0-9_-]{1,64}\Z"
)


@PURE
@given(
    provider_name=st.from_regex(r"\A[a-z0-9-]{1,32}\Z"),
    project_id=st.from_regex(r"\A[A-Za-z0-9]{1,32}\Z"),
    subject=SUBJECT,
    claims=CLAIMS,
    attributes=st.dictionaries(ATTRIBUTE_NAMES, SPEC, max_size=6),
    firstname=SPEC,
    lastname=SPEC,
    email=SPEC,
    score=NUMBER | st.lists(NUMBER, max_size=3),
)
def test_no_claim_mapping_puts_a_reserved_claim_or_unsafe_id_in_the_token(
    provider_name: str,
    project_id: str,
    subject: str,
    claims: dict[str, Any],
    attributes: dict[str, Any],
    firstname: Any,
    lastname: Any,
    email: Any,
    score: float | list[float],
) -> None:
    provider = ProviderSettings.model_validate(
        {
            "preset": "generic",
            "issuer": "https://idp.example.test",
            "client_id": "c",
            "client_secret": "s",
            "claims": {
                "firstname": firstname,
                "lastname": lastname,
                "email": email,
                "attributes": {**attributes, "n": "score", "t": "{score}"},
            },
        }
    )
    claims = {**claims, "score": score, "sub": subject}  # NaN and Infinity included
    identity.decide(provider, claims)  # never raises, whatever the claims
    try:
        user = identity.map_user(
            project_id=project_id,
            provider_name=provider_name,
            provider=provider,
            issuer="https://idp.example.test",
            claims=claims,
        )
    except ValueError:
        assert not subject  # only a missing subject stops the mapping
        return
    payload = tiledesk.build_payload(user, project_id=project_id, ttl=3600, now=1_767_225_600)

    assert set(payload) - {"jti"} <= TOKEN_CLAIMS
    assert "role" not in payload and "nbf" not in payload
    assert payload["sub"] == "userexternal"
    assert payload["aud"] == f"https://tiledesk.com/projects/{project_id}"
    assert (payload["iat"], payload["exp"]) == (1_767_225_600, 1_767_225_600 + 3600)
    assert SAFE_ID.fullmatch(payload["_id"]), payload["_id"]
    assert payload["_id"][: len(project_id) + len(provider_name) + 2] in (
        f"{project_id}_{provider_name}_",
        f"{project_id}_{provider_name}|",
    )
    for key in ("firstname", "lastname", "email"):
        assert isinstance(payload.get(key, ""), str)
    assert isinstance(payload["attributes"], dict)
    assert payload["attributes"]["idp"] == provider_name
    json.dumps(payload, allow_nan=False)  # strict JSON: no NaN or Infinity from any claim
    minted = tiledesk.mint(user, project_id=project_id, secret="x" * 32, ttl=60, now=1_767_225_600)
    assert minted.token.startswith("JWT ")
    assert _strict_json(minted.token.split(".")[1]) == minted.payload


def _refuse_constant(name: str) -> Any:
    raise AssertionError(f"{name} is not JSON")


def _strict_json(segment: str) -> Any:
    """A JWS segment parsed the way a strict JSON parser (Tiledesk's JSON.parse) would."""
    raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
    return json.loads(raw, parse_constant=_refuse_constant)


@PURE
@given(subject=SUBJECT)
def test_user_id_is_stable_and_safe_for_any_subject(subject: str) -> None:
    first = identity.tiledesk_user_id(PROJECT_ID, "acme", "https://i", subject)
    assert first == identity.tiledesk_user_id(PROJECT_ID, "acme", "https://i", subject)
    assert SAFE_ID.fullmatch(first)
    plain = f"{PROJECT_ID}_acme_{subject}"
    assert first == plain if SAFE_ID.fullmatch(plain) else first.startswith(f"{PROJECT_ID}_acme|")
    if subject:
        other = identity.tiledesk_user_id(PROJECT_ID, "acme", "https://other", subject)
        assert other == first or SAFE_ID.fullmatch(plain) is None


#: Providers as configured: each name has one issuer.
PROVIDERS = {"acme": "https://sso.acme.test", "acme-2": "https://sso.acme.test/2", "a": "https://a"}
SAFE_SUBJECT = st.text(st.sampled_from("aZ09_|:@-"), min_size=1, max_size=140)


def _ids_of(pairs: list[tuple[str, str]]) -> dict[str, tuple[str, str]]:
    """Map each ``_id`` to the (provider, subject) it came from, failing on a second owner."""
    owners: dict[str, tuple[str, str]] = {}
    for provider, subject in pairs:
        user_id = identity.tiledesk_user_id(PROJECT_ID, provider, PROVIDERS[provider], subject)
        owner = owners.setdefault(user_id, (provider, subject))
        assert owner == (provider, subject), f"{owner} and {(provider, subject)} share {user_id}"
    return owners


@PURE
@given(
    pairs=st.lists(
        st.tuples(st.sampled_from(sorted(PROVIDERS)), SUBJECT.filter(bool) | SAFE_SUBJECT),
        min_size=2,
        max_size=8,
    ),
    data=st.data(),
)
def test_distinct_issuer_and_subject_pairs_never_share_an_id(
    pairs: list[tuple[str, str]], data: st.DataObject
) -> None:
    """Injective by construction: also when a subject spells (a part of) another user's id."""
    owners = _ids_of(pairs)
    spelt = []
    for user_id in owners:
        start = data.draw(st.integers(0, len(user_id) - 1))
        spelt.append((data.draw(st.sampled_from(sorted(PROVIDERS))), user_id[start:]))
        spelt.append(("acme", user_id[-40:]))
        spelt.append(("acme", user_id.split("_", 2)[-1]))
    _ids_of(pairs + spelt)
