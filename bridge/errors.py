"""The error codes the bridge answers with: one hierarchy, a stable code and status each.

``title`` and ``public`` are what the visitor reads (English msgids, translated when the
page is rendered; ``{provider}`` becomes the IdP's display name); ``detail`` is for the
operator's log and never holds a secret, a token or a code. ``retry`` says whether
starting the same sign-in again can help.
"""

from __future__ import annotations

import re


def _(message: str) -> str:
    """Marks a visitor-facing string for the catalogue; the page translates it."""
    return message


SIGN_IN_FAILED = _("We could not sign you in")
#: Stands in for {provider} where the page cannot tell which IdP it was.
ANY_PROVIDER = _("the sign-in service")


class BridgeError(Exception):
    code = "internal_error"
    status = 500
    title = _("Something went wrong")
    public = _(
        "Something went wrong on our side. Please try again in a few minutes; "
        "if it keeps happening, contact support."
    )
    retry = False

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code)
        self.detail = detail or self.code


class InvalidRequest(BridgeError):
    code = "invalid_request"
    status = 400
    title = SIGN_IN_FAILED
    public = _("The sign-in request was incomplete or damaged. Please start again.")


class StateMismatch(BridgeError):
    code = "state_mismatch"
    status = 400
    title = SIGN_IN_FAILED
    public = _(
        "This sign-in attempt has expired or was already used, or it was started in "
        "another browser or tab. Please sign in again."
    )
    retry = True


class MissingCode(BridgeError):
    code = "missing_code"
    status = 400
    title = SIGN_IN_FAILED
    public = _("{provider} did not send back what we need to sign you in. Please try again.")
    retry = True


class NotFound(BridgeError):
    code = "not_found"
    status = 404
    title = _("Page not found")
    public = _("There is no page at this address. Check the link, or go to the start page.")


class MethodNotAllowed(BridgeError):
    code = "method_not_allowed"
    status = 405
    title = _("Page not found")
    public = _("This page cannot be opened this way. Go to the start page and try from there.")


class IdTokenInvalid(BridgeError):
    code = "id_token_invalid"
    status = 401
    title = SIGN_IN_FAILED
    public = _(
        "We could not verify the answer from {provider}, so you were not signed in. "
        "Please try again; if it keeps happening, contact support."
    )


class AccessDenied(BridgeError):
    code = "access_denied"
    status = 403
    title = SIGN_IN_FAILED
    public = _(
        "Your account is not allowed to use this chat. "
        "If you have another account, sign in with that one, or contact support."
    )
    retry = True


class CrossSiteRefused(BridgeError):
    code = "cross_site_refused"
    status = 403
    title = _("Request refused")
    public = _("This request came from another website, so it was refused for your safety.")


class NotSignedIn(BridgeError):
    code = "not_signed_in"
    status = 401
    title = _("You are not signed in")
    public = _("You are not signed in. Please sign in first.")


class IdpError(BridgeError):
    code = "idp_error"
    status = 502
    title = SIGN_IN_FAILED
    public = _(
        "{provider} answered with an error, so you were not signed in. "
        "Please try again in a few minutes."
    )
    retry = True


class IdpUnreachable(IdpError):
    """The IdP could not be reached at all (DNS, connection refused), as opposed to a bad answer."""

    public = _(
        "We could not reach {provider}: it may be down, or our server cannot connect to it. "
        "Please try again in a few minutes."
    )


class IdpTimeout(BridgeError):
    code = "idp_timeout"
    status = 504
    title = SIGN_IN_FAILED
    public = _("{provider} did not answer in time. Please try again.")
    retry = True


class StoreUnavailable(BridgeError):
    """The shared store (Redis) did not answer in time: nobody is let in on a guess."""

    code = "store_unavailable"
    status = 503
    public = _("Sign-in is unavailable for a moment. Please try again shortly.")


class IdpDenied(BridgeError):
    """An error the IdP itself sent back on the redirect (``?error=...``)."""

    status = 400
    title = SIGN_IN_FAILED
    public = _("{provider} did not sign you in. Please try again, or contact support.")
    retry = True

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
        #: The IdP's own words, in its language: shown as a quote, never translated.
        self.idp_text = (description or "").strip()[:300]
