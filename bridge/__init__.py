"""tiledesk-sso-bridge: OpenID Connect sign-in for the Tiledesk chat widget."""

__version__ = "0.1.0"
