"""A fake OpenID Provider served with respx: real RSA and EC keys, real signatures.

Tests change its attributes to misbehave (a wrong issuer, a foreign key, a
missing claim) and the bridge must refuse. Nothing here reaches the network.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import respx
from joserfc import jwt
from joserfc.jwk import ECKey, OctKey, RSAKey

#: Every claim of the default user but ``sub``: the ID token carries no profile or email claim.
THIN_ID_TOKEN = ("email", "email_verified", "given_name", "family_name", "name", "groups")

# Keys are costly to make: one set per test session, shared by every fake IdP.
RSA_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"}, private=True)
RSA_KEY_2 = RSAKey.generate_key(2048, parameters={"kid": "rsa-2", "use": "sig"}, private=True)
EC_KEY = ECKey.generate_key("P-256", parameters={"kid": "ec-1", "use": "sig"}, private=True)
ATTACKER_KEY = RSAKey.generate_key(2048, parameters={"kid": "rsa-1", "use": "sig"}, private=True)


def s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode()).digest()[:16]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class Grant:
    nonce: str | None
    challenge: str | None
    redirect_uri: str
    user: dict[str, Any]


@dataclass
class FakeIdP:
    issuer: str
    client_id: str = "bridge-client"
    client_secret: str = "s3cr3t-client-value-for-tests"
    #: The user the next authorization signs in.
    user: dict[str, Any] = field(
        default_factory=lambda: {
            "sub": "user-1",
            "email": "ada@acme.test",
            "email_verified": True,
            "given_name": "Ada",
            "family_name": "Lovelace",
            "name": "Ada Lovelace",
            "groups": ["support"],
        }
    )
    signing_key: Any = field(default_factory=lambda: RSA_KEY)
    alg: str = "RS256"
    published_keys: list[Any] = field(default_factory=lambda: [RSA_KEY, EC_KEY])
    discovery_overrides: dict[str, Any] = field(default_factory=dict)
    #: Edit the ID token before it is signed: (claims, header) -> None.
    tamper: Any = None
    #: Replace the ID token entirely: (claims, header) -> str.
    forge: Any = None
    userinfo_overrides: dict[str, Any] | None = None
    #: Claims of the user that only userinfo sends: a "thin" code-flow ID token, as the
    #: OpenID certification OP and Okta's org authorization server issue.
    userinfo_only: tuple[str, ...] = ()
    token_response_overrides: dict[str, Any] = field(default_factory=dict)
    #: Make a route misbehave: route name -> an httpx.Response to answer, an exception
    #: class to raise (``httpx.ReadTimeout``), or a callable ``(request) -> Response``.
    faults: dict[str, Any] = field(default_factory=dict)
    grants: dict[str, Grant] = field(default_factory=dict)
    access_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    routes: dict[str, respx.Route] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.issuer.rstrip("/")

    def discovery(self) -> dict[str, Any]:
        doc = {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.base}/authorize",
            "token_endpoint": f"{self.base}/token",
            "jwks_uri": f"{self.base}/jwks",
            "userinfo_endpoint": f"{self.base}/userinfo",
            "end_session_endpoint": f"{self.base}/logout",
            "response_types_supported": ["code"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": ["RS256", "ES256"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        }
        doc.update(self.discovery_overrides)
        return {k: v for k, v in doc.items() if v is not None}

    def jwks(self) -> dict[str, Any]:
        return {"keys": [k.as_dict(private=False) for k in self.published_keys]}

    # --- the routes respx serves -------------------------------------------------

    def install(self, router: respx.MockRouter) -> FakeIdP:
        well_known = f"{self.base}/.well-known/openid-configuration"
        self.routes["discovery"] = router.get(well_known).mock(
            side_effect=self._faulty(
                "discovery", lambda r: httpx.Response(200, json=self.discovery())
            )
        )
        self.routes["jwks"] = router.get(f"{self.base}/jwks").mock(
            side_effect=self._faulty("jwks", lambda r: httpx.Response(200, json=self.jwks()))
        )
        self.routes["token"] = router.post(f"{self.base}/token").mock(
            side_effect=self._faulty("token", self._token)
        )
        self.routes["userinfo"] = router.get(f"{self.base}/userinfo").mock(
            side_effect=self._faulty("userinfo", self._userinfo)
        )
        return self

    def _faulty(self, name: str, handler: Any) -> Any:
        def serve(request: httpx.Request) -> httpx.Response:
            fault = self.faults.get(name)
            if fault is None:
                return handler(request)  # type: ignore[no-any-return]
            if isinstance(fault, type) and issubclass(fault, Exception):
                raise fault(f"fault injected on {name}", request=request)  # type: ignore[call-arg]
            if isinstance(fault, httpx.Response):
                return fault
            return fault(request)  # type: ignore[no-any-return]

        return serve

    def authorize(self, location: str) -> tuple[str, str]:
        """What the IdP does when the browser follows the redirect: returns (code, state)."""
        parts = urlsplit(location)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{self.base}/authorize", location
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert query["client_id"] == self.client_id
        assert query["response_type"] == "code"
        code = secrets.token_urlsafe(16)
        self.grants[code] = Grant(
            nonce=query.get("nonce"),
            challenge=query.get("code_challenge")
            if query.get("code_challenge_method") == "S256"
            else None,
            redirect_uri=query["redirect_uri"],
            user=dict(self.user),
        )
        return code, query["state"]

    def _client_ok(self, request: httpx.Request, form: dict[str, str]) -> bool:
        header = request.headers.get("authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return user == self.client_id and password == self.client_secret
        return (
            form.get("client_id") == self.client_id
            and form.get("client_secret") == self.client_secret
        )

    def _token(self, request: httpx.Request) -> httpx.Response:
        form = {k: v[0] for k, v in parse_qs(request.content.decode()).items()}
        if not self._client_ok(request, form):
            return httpx.Response(401, json={"error": "invalid_client"})
        grant = self.grants.pop(form.get("code", ""), None)
        if grant is None or form.get("grant_type") != "authorization_code":
            return httpx.Response(400, json={"error": "invalid_grant"})
        if grant.redirect_uri != form.get("redirect_uri"):
            return httpx.Response(400, json={"error": "invalid_grant"})
        if grant.challenge is None or s256(form.get("code_verifier", "")) != grant.challenge:
            return httpx.Response(400, json={"error": "invalid_grant", "error_description": "PKCE"})
        access_token = secrets.token_urlsafe(24)
        self.access_tokens[access_token] = grant.user
        body = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(grant.user, nonce=grant.nonce, access_token=access_token),
        }
        body.update(self.token_response_overrides)
        return httpx.Response(200, json={k: v for k, v in body.items() if v is not None})

    def _userinfo(self, request: httpx.Request) -> httpx.Response:
        header = request.headers.get("authorization", "")
        user = self.access_tokens.get(header.removeprefix("Bearer "))
        if user is None:
            return httpx.Response(401, json={"error": "invalid_token"})
        data = dict(user)
        if self.userinfo_overrides is not None:
            data.update(self.userinfo_overrides)
        return httpx.Response(200, json=data)

    # --- tokens ---------------------------------------------------------------------

    def id_token(
        self, user: dict[str, Any], *, nonce: str | None, access_token: str | None = None
    ) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            **{k: v for k, v in user.items() if k not in self.userinfo_only},
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if access_token is not None:
            claims["at_hash"] = at_hash(access_token)
        header: dict[str, Any] = {"alg": self.alg, "typ": "JWT"}
        if getattr(self.signing_key, "kid", None):
            header["kid"] = self.signing_key.kid
        if self.tamper is not None:
            self.tamper(claims, header)
        if self.forge is not None:
            return str(self.forge(claims, header))
        return sign(claims, header, self.signing_key)


def sign(claims: dict[str, Any], header: dict[str, Any], key: Any) -> str:
    """Sign with joserfc, allowing whatever algorithm the header names (tests forge on purpose)."""
    from joserfc.jws import JWSRegistry

    registry = JWSRegistry(algorithms=[header["alg"]], strict_check_header=False)
    return jwt.encode(header, claims, key, registry=registry)


def raw_sign(claims: dict[str, Any], header: dict[str, Any], key: Any) -> str:
    """Sign without any header check (joserfc refuses to even write a ``crit`` it doesn't know)."""
    from joserfc.jws import JWSRegistry

    def part(data: bytes) -> bytes:
        return base64.urlsafe_b64encode(data).rstrip(b"=")

    signing_input = part(json.dumps(header).encode()) + b"." + part(json.dumps(claims).encode())
    signature = JWSRegistry.algorithms[header["alg"]].sign(signing_input, key)
    return (signing_input + b"." + part(signature)).decode()


def unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({**header, 'alg': 'none'})}.{part(claims)}."


def hmac_key(secret: str | bytes) -> OctKey:
    return OctKey.import_key(secret if isinstance(secret, bytes) else secret.encode())
