"""The tests' own check for a token in a URL, a header or a page: ``tests.tokens``.

A browser test failed once because a sign-in's random PKCE challenge spelled ``JWT``
(``challenge=DNCm_zJWT2Ck...``): the check looked for the letters, not for a token. A
token is a compact JWS, ``eyJ...`` (a JSON header) and two more dot-separated segments;
random base64url values have no dots, so they can spell anything and never look like one.
"""

from __future__ import annotations

import jwt
import pytest

from tests.tokens import carries_a_token

TOKEN = jwt.encode({"_id": "acme_alice", "sub": "userexternal"}, "s" * 32, algorithm="HS256")
CHALLENGE_URL = (
    "http://127.0.0.1:59437/login/acme?return_to=http%3A%2F%2Flocalhost%3A35889%2F"
    "redirect.html%3Forder%3D42&mode=redirect&challenge=DNCm_zJWT2Ck6DkigIxCOXs9GJXk1Mzr8XcXiqOjt8o"
)


@pytest.mark.parametrize(
    "text",
    [
        CHALLENGE_URL,  # the failure's URL: a random challenge that spells JWT
        "http://localhost/page.html#tdb_handle=Q3eyJ0k9_x-eyJ&tdb_mode=popup",
        "state=eyJhbGci&nonce=abc.def",  # a dot, but no second one after a segment
    ],
)
def test_random_values_that_spell_jwt_or_eyj_are_not_tokens(text: str) -> None:
    assert not carries_a_token(text)


@pytest.mark.parametrize(
    "text",
    [
        f"http://localhost/page.html#token={TOKEN}",
        f"http://localhost/page.html?t=JWT%20{TOKEN}",
        f'{{"token": "JWT {TOKEN}"}}',
        f"http://localhost/?t=JWT+{TOKEN.replace('.', '%2E')}",  # dots percent-encoded
    ],
)
def test_a_token_is_found_however_it_is_quoted(text: str) -> None:
    assert carries_a_token(text)
