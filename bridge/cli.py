"""``tiledesk-bridge``: serve, check, mint.

Exit codes: 0 ok, 1 a check failed or the policy refused, 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from bridge.settings import (
    SENTINEL_SCHEME,
    ProviderSettings,
    Settings,
    SettingsError,
    is_same_site,
    load_settings,
    parse_sentinel_url,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class _Usage(Exception):
    """Bad usage or settings: the lines are already printed, the exit status is 2."""


def _load(path: str | None) -> Settings:
    try:
        return load_settings(path)
    except SettingsError as exc:
        for line in [*exc.problems, *exc.warnings]:
            print(line, file=sys.stderr)
        raise _Usage from None


def serve_options() -> dict[str, Any]:
    """The uvicorn options of ``serve`` but the app, host, port and workers.

    Also what bench/bare.py, the benchmark's framework ceiling, runs on.
    """
    from bridge.http_protocol import OneWriteProtocol

    return {
        # uvicorn's own proxy_headers stays off: the app honours forwarded headers only from
        # [server].trusted_proxies, and builds every URL from public_url, never from Host.
        "proxy_headers": False,
        "server_header": False,
        "log_config": None,
        "access_log": False,
        # uvicorn's httptools protocol, each answer's head and body sent in one write.
        "http": OneWriteProtocol,
    }


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.logs import setup_logging
    from bridge.web import create_app

    settings = _load(args.settings)
    if args.workers > 1 and settings.sites and settings.session.redis_url is None:
        print(
            "--workers: [sites] sign-ins hand over one-time handles kept in one process: "
            "serve them with one worker, or set [session] redis_url so that every worker "
            "shares them",
            file=sys.stderr,
        )
        return EXIT_USAGE
    if args.workers > 1 and settings.has_dev_provider:
        print(
            "--workers: the dev IdP keeps its codes and keys in one process: "
            "serve it with one worker",
            file=sys.stderr,
        )
        return EXIT_USAGE
    setup_logging(settings.server.log_format, settings.server.log_level)
    if args.workers > 1 and settings.session.redis_url is None:
        logging.getLogger("bridge").warning(
            "%d workers without [session] redis_url: each remembers its own spent states and "
            "logout records; set redis_url so that all of them share one",
            args.workers,
        )
    if args.workers == 1:
        # With several workers each one logs them as it loads bridge.asgi.
        for warning in settings.warnings:
            logging.getLogger("bridge").warning("%s", warning)
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    logging.getLogger("bridge").info(
        "serving %s on %s:%s with %d worker(s)",
        settings.server.public_url,
        host,
        port,
        args.workers,
    )
    options = serve_options()
    if args.workers > 1:
        # Each worker builds its own app from the same file.
        import os

        if args.settings:
            os.environ["BRIDGE_SETTINGS"] = str(Path(args.settings).resolve())
        uvicorn.run("bridge.asgi:app", host=host, port=port, workers=args.workers, **options)
        return EXIT_OK
    uvicorn.run(create_app(settings, freeze_heap=True), host=host, port=port, **options)
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    settings = _load(args.settings)
    for warning in settings.warnings:
        print(warning, file=sys.stderr)
    print(f"settings: ok ({len(settings.providers)} provider(s))")
    for name, provider in settings.providers.items():
        print(f"  {name}: preset {provider.preset}, issuer {settings.issuer(name)}")
        print(f"    redirect URI to register at the IdP: {settings.redirect_uri(name)}")
        print(f"    post-logout redirect URI: {settings.url('/')}")
        print(f"    back-channel logout URI: {settings.backchannel_logout_uri(name)}")
    for line in _store_report(settings) + _sites_explained(settings):
        print(line)
    if not args.online:
        return EXIT_OK
    from bridge.selftest import run_online_checks

    return EXIT_OK if run_online_checks(settings) else EXIT_FAILED


def _sites_explained(settings: Settings) -> list[str]:
    """Each [sites] entry and how its visitors will sign in."""
    if not settings.sites:
        return ["sites: none (the chat runs on the bridge's own page only)"]
    lines = [
        f"sites: {len(settings.sites)} may embed the chat with {settings.url('/embed.js')}",
        "  one-time handles: "
        + (
            "in Redis, shared by every worker and instance"
            if settings.session.redis_url is not None
            else "in this process's memory (one worker; [session] redis_url shares them "
            "between workers and instances)"
        ),
    ]
    for origin, site in settings.sites.items():
        providers = ", ".join(settings.site_providers(origin))
        how = (
            "same site as the bridge: signed in through the session cookie (SameSite="
            f"{settings.session.same_site}), a popup when it is not there"
            if is_same_site(origin, settings.server.origin)
            else "cross-site: sign-in in a popup that hands over a one-time handle; "
            + (
                "the cookie (SameSite=None) also works where third-party cookies are allowed"
                if settings.session.same_site == "none"
                else "the Tiledesk token is kept in the site's storage until it expires"
            )
        )
        lines.append(f"  {origin}: providers {providers}; sign-in {site.sign_in}")
        lines.append(f"    {how}")
    return lines


def _store_report(settings: Settings) -> list[str]:
    """Where sessions and single-use records live, and what that means for several workers."""
    session = settings.session
    if session.redis_url is None:
        return [
            "sessions: in the cookie; spent states and logout records in process memory",
            "  warning: with several workers or instances, a replayed sign-in or a back-channel "
            "logout is only known to the process that saw it: set [session] redis_url",
        ]
    url = session.redis_url.get_secret_value()
    if url.startswith(f"{SENTINEL_SCHEME}://"):
        sentinel = parse_sentinel_url(url)
        hosts = ", ".join(f"{host}:{port}" for host, port in sentinel.sentinels)
        where = f"through Sentinel at {hosts} (primary {sentinel.primary}, db {sentinel.db})"
    else:
        target = urlsplit(url)
        where = f"at {target.scheme}://{target.hostname}:{target.port or 6379}{target.path or '/0'}"
    kept = "in Redis behind an opaque ticket" if session.store == "redis" else "in the cookie"
    return [f"sessions: {kept}; spent states and logout records in Redis {where}"]


def _read_claims(value: str) -> dict[str, Any]:
    text = value
    if not value.lstrip().startswith(("{", "[")):
        path = Path(value)
        try:
            text = sys.stdin.read() if value == "-" else path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ValueError(f"cannot read {value}: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the claims are not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("the claims must be a JSON object")
    return data


def _policy_explained(provider: ProviderSettings, claims: dict[str, Any]) -> list[str]:
    """The rules of [providers.NAME.access] that applied to these claims, one line each."""
    from bridge import identity

    access = provider.access
    email = identity.resolve(claims, provider.claims.email) if provider.claims.email else None
    lines = []
    if email and identity.requires_verified_email(provider):
        lines.append(f"email verified: {identity.email_verified_claim(provider)} is true")
    elif email:
        lines.append("email verification not required (require_email_verified = false)")
    if access.email_domains:
        lines.append(f"email domain of {email} is in email_domains")
    if access.hosted_domain is not None:
        lines.append(f"hd claim is {access.hosted_domain}")
    if access.allowed_groups:
        value = identity.claim_value(claims, access.groups_claim)
        groups = [value] if isinstance(value, str) else value if isinstance(value, list) else []
        shared = sorted(set(map(str, groups)) & set(access.allowed_groups))
        lines.append(f"{access.groups_claim} holds {', '.join(shared)} from allowed_groups")
    if not lines:
        lines.append("no access rule is configured: every verified sign-in is allowed")
    return lines


def cmd_mint(args: argparse.Namespace) -> int:
    from bridge import identity, tiledesk

    settings = _load(args.settings)
    provider = settings.providers.get(args.provider)
    if provider is None:
        print(
            f"--provider: no provider named {args.provider!r} "
            f"(have: {', '.join(settings.providers)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        claims = _read_claims(args.claims)
    except ValueError as exc:
        print(f"--claims: {exc}", file=sys.stderr)
        return EXIT_USAGE
    issuer = settings.issuer(args.provider)
    print(f"provider: {args.provider} (preset {provider.preset}, issuer {issuer})")
    decision = identity.decide(provider, claims)
    if not decision.allowed:
        print(f"access: refused: {decision.reason}")
        return EXIT_FAILED
    print("access: allowed")
    for line in _policy_explained(provider, claims):
        print(f"  {line}")
    try:
        user = identity.map_user(
            project_id=settings.tiledesk.project_id,
            provider_name=args.provider,
            provider=provider,
            issuer=issuer,
            claims=claims,
        )
    except ValueError as exc:
        print(f"mapping: refused: {exc}")
        return EXIT_FAILED
    subject = identity.subject_of(provider, claims)
    how = "" if user.id.endswith(f"_{subject}") else " (a digest: the subject is not id-safe)"
    print(f"user id: from {provider.subject_claim} = {subject!r}{how}")
    minted = tiledesk.mint(
        user,
        project_id=settings.tiledesk.project_id,
        secret=settings.tiledesk.secret.get_secret_value(),
        ttl=settings.tiledesk.token_ttl,
    )
    print("payload:")
    print(json.dumps(minted.payload, indent=2, ensure_ascii=False))
    print("token:")
    print(minted.token)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tiledesk-bridge",
        description="Sign chat visitors in with OpenID Connect and hand Tiledesk a custom JWT.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def settings_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--settings",
            metavar="PATH",
            help="settings file (default: $BRIDGE_SETTINGS or ./settings.toml)",
        )

    serve = sub.add_parser("serve", help="serve the bridge")
    settings_arg(serve)
    serve.add_argument("--host", help="address to bind (default: [server].host)")
    serve.add_argument("--port", type=int, help="port to bind (default: [server].port)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes (default 1)")
    serve.set_defaults(func=cmd_serve)

    check = sub.add_parser(
        "check", help="validate the settings (and, with --online, the IdPs and Tiledesk)"
    )
    settings_arg(check)
    check.add_argument(
        "--online",
        action="store_true",
        help="also fetch discovery and keys, and ask Tiledesk to accept a token",
    )
    check.set_defaults(func=cmd_check)

    mint = sub.add_parser(
        "mint", help="show the Tiledesk token that these ID-token claims would produce"
    )
    settings_arg(mint)
    mint.add_argument("--provider", required=True, metavar="NAME")
    mint.add_argument(
        "--claims",
        required=True,
        metavar="FILE_OR_JSON",
        help="a JSON file, '-' for stdin, or inline JSON",
    )
    mint.set_defaults(func=cmd_mint)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "workers", 1) < 1:
        print("--workers: must be at least 1", file=sys.stderr)
        return EXIT_USAGE
    try:
        result: int = args.func(args)
    except _Usage:
        return EXIT_USAGE
    return result


if __name__ == "__main__":
    raise SystemExit(main())
