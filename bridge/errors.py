"""The error codes the bridge answers with: one hierarchy, a stable code and status each.

``public`` is what the visitor may read; ``detail`` is for the operator's log
and never holds a secret, a token or a code.
"""

from __future__ import annotations

import re


class BridgeError(Exception):
    code = "internal_error"
    status = 500
    public = "Something went wrong on our side. Please try again."

    def __init__(self, detail: str = "", *, public: str | None = None) -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code
        if public is not None:
            self.public = public


class InvalidRequest(BridgeError):
    code = "invalid_request"
    status = 400
    public = "The sign-in request was malformed. Please start again."


class StateMismatch(BridgeError):
    code = "state_mismatch"
    status = 400
    public = (
        "This sign-in link is no longer valid "
        "(expired, already used, or opened in another browser)."
    )


class MissingCode(BridgeError):
    code = "missing_code"
    status = 400
    public = "The identity provider did not send an authorization code."


class NotFound(BridgeError):
    code = "not_found"
    status = 404
    public = "There is no page here."


class IdTokenInvalid(BridgeError):
    code = "id_token_invalid"
    status = 401
    public = "The identity provider's answer could not be verified, so you were not signed in."


class AccessDenied(BridgeError):
    code = "access_denied"
    status = 403
    public = "Your account is not allowed to use this chat."


class CrossSiteRefused(BridgeError):
    code = "cross_site_refused"
    status = 403
    public = "This request came from another site and was refused."


class NotSignedIn(BridgeError):
    code = "not_signed_in"
    status = 401
    public = "You are not signed in."


class IdpError(BridgeError):
    code = "idp_error"
    status = 502
    public = "The identity provider answered with an error. Please try again later."


class IdpUnreachable(IdpError):
    """The IdP could not be reached at all (DNS, connection refused), as opposed to a bad answer."""


class IdpTimeout(BridgeError):
    code = "idp_timeout"
    status = 504
    public = "The identity provider did not answer in time. Please try again."


class StoreUnavailable(BridgeError):
    """The shared store (Redis) did not answer in time: nobody is let in on a guess."""

    code = "store_unavailable"
    status = 503
    public = "Sign-in is unavailable for a moment. Please try again shortly."


class IdpDenied(BridgeError):
    """An error the IdP itself sent back on the redirect (``?error=...``)."""

    status = 400

    def __init__(self, error: str, description: str | None) -> None:
        safe = re.sub(r"[^a-z0-9_]", "", error.lower())[:64] or "idp_error"
        super().__init__(f"the identity provider returned error={safe}")
        self.code = safe
        if safe in (
            "access_denied",
            "unauthorized_client",
            "interaction_required",
            "login_required",
        ):
            self.status = 403
        text = (description or "").strip()
        self.public = "The identity provider refused the sign-in" + (
            f": {text[:300]}" if text else "."
        )
