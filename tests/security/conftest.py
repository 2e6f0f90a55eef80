"""The security suite's IdPs send a thin code-flow ID token, as the certification OP does.

Its profile and email claims come from userinfo only, so every sign-in these tests let
through asks userinfo (``userinfo = "auto"``): a refusal that leaves userinfo unasked, and
a fault injected on userinfo, both mean something.
"""

from __future__ import annotations

import pytest

from tests.idp import THIN_ID_TOKEN, FakeIdP


@pytest.fixture
def idps(idps: dict[str, FakeIdP]) -> dict[str, FakeIdP]:
    for idp in idps.values():
        idp.userinfo_only = THIN_ID_TOKEN
    return idps
