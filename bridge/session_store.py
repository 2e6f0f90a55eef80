"""Where a session lives between two requests: one store interface, and the sealed cookie.

Modelled on oauth2-proxy's ``pkg/sessions``: the middleware only ever talks to a
:class:`SessionStore`; the cookie it sets is whatever the store hands back. The
cookie store keeps the whole session in the cookie, sealed (encrypted and
authenticated), so the visitor's browser holds it but cannot read or change it.
A server-side store (Redis) keeps the session itself and hands back a ticket.
"""

from __future__ import annotations

import abc
import base64
import binascii
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bridge.sessions import OPTIONAL_KEYS

Clock = Callable[[], float]

#: The sealed format's version, first in every cookie value, so a later format can coexist.
VERSION = "v1"
_HKDF_SALT = b"tiledesk-sso-bridge/session-cookie"
_HKDF_INFO = b"aes-256-gcm key v1"
_NONCE_BYTES = 12
_TAG_BYTES = 16
_B64URL_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
_URLSAFE_TO_STANDARD = bytes.maketrans(b"-_+/", b"+/-_")
#: Unpadded length mod 4 -> the low bits of the last character that encode nothing
#: (a remainder of 1 is never a valid length).
_SPARE_BITS = {0: 0, 2: 0b1111, 3: 0b11}
#: In a plaintext orjson wrote: every number in it reads back exactly with orjson. Readers
#: that predate it ignore the key, so a rolling upgrade signs nobody out.
_ORJSON_EXACT = "x"
#: Nothing longer is even tried: browsers never send a cookie this long back.
_MAX_COOKIE_CHARS = 8192


class SessionTooLarge(Exception):
    """The session cannot fit in a cookie browsers keep, even without its optional parts."""


@dataclass
class Loaded:
    """A session a store found for a request's cookie.

    ``stale`` asks the middleware to write the cookie again even when nothing changed
    (it was sealed with a previous secret). A server-side store subclasses this to
    remember its ticket, which :meth:`SessionStore.save` and ``clear`` then receive.
    """

    data: dict[str, Any]
    stale: bool = False


class SessionStore(abc.ABC):
    """How the session middleware keeps sessions; the cookie value is the store's handle.

    Lifetime is the middleware's rule (``bridge.sessions.Lifetime``): it hands the store
    a ``ttl`` in seconds, the time until the session must be gone, and a store must not
    return a session past it.
    """

    @abc.abstractmethod
    async def load(self, cookie: str) -> Loaded | None:
        """The session this cookie value names, or None: never an error for a bad cookie
        (tampered, foreign, from a removed secret, expired)."""

    @abc.abstractmethod
    async def save(
        self, data: Mapping[str, Any], *, ttl: int, previous: Loaded | None, renew: bool
    ) -> str:
        """Keep ``data`` for ``ttl`` seconds and return the cookie value that names it.

        ``previous`` is what :meth:`load` returned for this request; ``renew`` says the
        session was replaced (a new sign-in), so a server-side store must forget the old
        one and hand out a new ticket (no fixation). Raises :class:`SessionTooLarge`.
        """

    @abc.abstractmethod
    async def clear(self, previous: Loaded) -> None:
        """Forget a session (sign-out, or it ended); the middleware deletes the cookie."""


class CookieSealer:
    """AES-256-GCM under keys derived by HKDF-SHA256 from the session secrets.

    Seals with the current secret; opens with the current one, then each previous one,
    so a secret can be rotated without signing everyone out. The cookie's name is bound
    in as associated data: a value moved to another cookie opens nothing.
    """

    def __init__(self, secret: str, previous: Sequence[str] = (), *, cookie_name: str) -> None:
        self._keys = [AESGCM(_derive_key(s)) for s in (secret, *previous)]
        self._aad = f"{VERSION}|{cookie_name}".encode()

    def seal(self, plaintext: bytes) -> str:
        nonce = secrets.token_bytes(_NONCE_BYTES)
        sealed = nonce + self._keys[0].encrypt(nonce, plaintext, self._aad)
        return f"{VERSION}.{_b64encode(sealed)}"

    def open(self, value: str) -> tuple[bytes, bool] | None:
        """``(plaintext, sealed_with_a_previous_secret)``, or None for anything not ours."""
        version, dot, body = value.partition(".")
        if version != VERSION or not dot or len(value) > _MAX_COOKIE_CHARS:
            return None
        sealed = _b64decode(body)
        if sealed is None or len(sealed) < _NONCE_BYTES + _TAG_BYTES:
            return None
        nonce, ciphertext = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
        for index, key in enumerate(self._keys):
            try:
                return key.decrypt(nonce, ciphertext, self._aad), index > 0
            except InvalidTag:
                continue
        return None

    @staticmethod
    def sealed_length(plaintext_bytes: int) -> int:
        """The length of the cookie value that seals this many bytes."""
        raw = _NONCE_BYTES + plaintext_bytes + _TAG_BYTES
        return len(VERSION) + 1 + (raw * 4 + 2) // 3


@dataclass
class CookieStore(SessionStore):
    """The whole session in the cookie, sealed; nothing kept on the server.

    The plaintext is ``{"e": <expiry>, "d": <session>}``, with ``"x": 1`` when orjson wrote
    it (see :func:`_dumps`): the expiry is checked on every read, so a cookie replayed after
    its ``Max-Age`` opens nothing. It is not
    compressed: attacker-chosen text (a login's ``next``) shares the plaintext with the
    PKCE verifier and nonce, and a compressed length would leak them (CRIME).
    """

    sealer: CookieSealer
    #: The longest cookie value to hand out; the middleware leaves room for the attributes.
    max_value: int
    clock: Clock = field(default=time.time)

    async def load(self, cookie: str) -> Loaded | None:
        opened = self.sealer.open(cookie)
        if opened is None:
            return None
        plaintext, stale = opened
        try:
            envelope = _loads(plaintext)
        except ValueError:
            return None
        if not isinstance(envelope, dict) or not isinstance(envelope.get("d"), dict):
            return None
        expires = envelope.get("e")
        if not isinstance(expires, int | float) or expires <= self.clock():
            return None
        return Loaded(data=envelope["d"], stale=stale)

    async def save(
        self, data: Mapping[str, Any], *, ttl: int, previous: Loaded | None, renew: bool
    ) -> str:
        expires = int(self.clock()) + ttl
        for attempt in (dict(data), {k: v for k, v in data.items() if k not in OPTIONAL_KEYS}):
            plaintext = _dumps({"e": expires, "d": attempt})
            if self.sealer.sealed_length(len(plaintext)) <= self.max_value:
                return self.sealer.seal(plaintext)
        raise SessionTooLarge(
            f"the session needs a {self.sealer.sealed_length(len(plaintext))}-character "
            f"cookie value; at most {self.max_value} fit"
        )

    async def clear(self, previous: Loaded) -> None:
        """Nothing to forget: the cookie was the session, and the middleware deletes it."""


def _derive_key(secret: str) -> bytes:
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=_HKDF_SALT, info=_HKDF_INFO)
    return hkdf.derive(secret.encode())


def _dumps(envelope: dict[str, Any]) -> bytes:
    """The envelope as JSON: by orjson, marked, when that is exact; by json otherwise.

    orjson writes NaN and the infinities as ``null`` (so does ``None``: such a session
    goes to json too), and refuses an integer past 64 bits, a lone surrogate or a key that
    is not a string; whatever it does write, it reads back exactly.
    """
    try:
        plaintext = orjson.dumps({**envelope, _ORJSON_EXACT: 1})
    except orjson.JSONEncodeError:
        plaintext = b"null"
    if b"null" in plaintext:
        plaintext = json.dumps(envelope, separators=(",", ":"), ensure_ascii=False).encode()
    return plaintext


def _loads(plaintext: bytes) -> Any:
    """What :func:`_dumps` wrote, and what an older bridge sealed (json, unmarked).

    orjson reads an integer past 64 bits as a float, so only a plaintext marked as
    orjson's own is taken from it; any other is read by json, as before.
    """
    try:
        envelope = orjson.loads(plaintext)
    except orjson.JSONDecodeError:
        envelope = None
    if isinstance(envelope, dict) and envelope.get(_ORJSON_EXACT) == 1:
        return envelope
    return json.loads(plaintext)


def _b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64decode(text: str) -> bytes | None:
    """Strict: only the one spelling :func:`_b64encode` gives, so no two values are one.

    The decoder's strict mode refuses any character outside the alphabet; the spare
    low bits of the last character, which the encoder always leaves at zero, are
    checked here.
    """
    spare = _SPARE_BITS.get(len(text) % 4)
    if spare is None or not text.isascii():
        return None
    if spare and _B64URL_ALPHABET.find(text[-1]) & spare:
        return None
    standard = text.encode("ascii").translate(_URLSAFE_TO_STANDARD) + b"=" * (-len(text) % 4)
    try:
        return binascii.a2b_base64(standard, strict_mode=True)
    except binascii.Error:
        return None
