"""The bridge's calls to an IdP carry no cookie: one shared client must not mix visitors."""

from __future__ import annotations

from collections.abc import Callable

import httpx
from starlette.testclient import TestClient

from tests.conftest import login
from tests.idp import FakeIdP
from tests.security import assert_signed_in


def test_a_cookie_the_idp_sets_for_one_visitor_is_never_sent_for_another(
    new_client: Callable[[], TestClient], idp: FakeIdP
) -> None:
    sent: list[str | None] = []
    for name in ("token", "userinfo"):
        route = idp.routes[name]
        serve = route.side_effect

        def with_cookie(request: httpx.Request, serve: object = serve) -> httpx.Response:
            sent.append(request.headers.get("cookie"))
            response: httpx.Response = serve(request)  # type: ignore[operator]
            response.headers["set-cookie"] = "AWSALB=alice-stickiness; Path=/"
            return response

        route.side_effect = with_cookie

    alice, bob = new_client(), new_client()
    assert_signed_in(login(alice, idp), alice)
    assert_signed_in(login(bob, idp), bob)
    assert sent == [None, None, None, None]
