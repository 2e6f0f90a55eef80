"""A token endpoint whose answer is JSON but not a JSON object is a 502 ``idp_error``.

Authlib before 1.9 hands such a body straight back (or trips over it with a
``TypeError``), so the bridge checks the shape itself, whatever Authlib version
is installed: never a 500, never a token made of a list of pairs.
"""

from __future__ import annotations

import httpx
import pytest
from starlette.testclient import TestClient

from tests.conftest import login
from tests.idp import FakeIdP
from tests.security import assert_no_session, assert_refused

PAIRS = b'[["access_token", "x"], ["token_type", "Bearer"], ["id_token", "a.b.c"]]'

SHAPES: dict[str, bytes] = {
    "bare-number": b"42",
    "bare-zero": b"0",
    "bare-float": b"-1.5e3",
    "bare-true": b"true",
    "string": b'"a token"',
    "list": b'["access_token", "id_token"]',
    "list-of-pairs": PAIRS,
    "null": b"null",
    "empty-body": b"",
    "whitespace": b" \n",
}


@pytest.mark.parametrize("status", [200, 400])
@pytest.mark.parametrize("body", SHAPES.values(), ids=list(SHAPES))
def test_token_answer_that_is_not_a_json_object_is_idp_error(
    client: TestClient,
    idp: FakeIdP,
    caplog: pytest.LogCaptureFixture,
    body: bytes,
    status: int,
) -> None:
    idp.faults["token"] = httpx.Response(
        status, content=body, headers={"content-type": "application/json"}
    )
    response = login(client, idp)
    assert_refused(response, 502, "idp_error")
    assert_no_session(client)
    assert idp.routes["token"].call_count == 1
    assert idp.routes["userinfo"].called is False
    assert "internal_error" not in caplog.text
