"""Whether a text carries a token: what the tests look for in URLs, headers and pages."""

from __future__ import annotations

import re
from urllib.parse import unquote_plus

#: A compact JWS: a base64url JSON header (``{"`` is ``eyJ``), then the payload and the
#: signature, each after a dot. Random base64url values (states, nonces, challenges,
#: handles) have no dots, so they may spell ``JWT`` or ``eyJ`` but never match.
COMPACT_JWS = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


def carries_a_token(text: str) -> bool:
    """A Tiledesk token or any other JWS in ``text``, raw or percent-encoded."""
    return COMPACT_JWS.search(unquote_plus(text)) is not None
