"""``tiledesk-bridge``: serve, check, mint.

Exit codes: 0 ok, 1 a check failed or the policy refused, 2 bad usage or settings.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from bridge.settings import Settings, SettingsError, load_settings

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _load(path: str | None) -> Settings:
    try:
        return load_settings(path)
    except SettingsError as exc:
        for line in exc.problems:
            print(line, file=sys.stderr)
        raise SystemExit(EXIT_USAGE) from None


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bridge.logs import setup_logging
    from bridge.web import create_app

    settings = _load(args.settings)
    setup_logging(settings.server.log_format, settings.server.log_level)
    host = args.host or settings.server.host
    port = args.port or settings.server.port
    if args.workers > 1:
        # Each worker builds its own app from the same file.
        import os

        if args.settings:
            os.environ["BRIDGE_SETTINGS"] = str(Path(args.settings).resolve())
        uvicorn.run(
            "bridge.asgi:app",
            host=host,
            port=port,
            workers=args.workers,
            proxy_headers=False,
            server_header=False,
            log_config=None,
            access_log=False,
        )
        return EXIT_OK
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        proxy_headers=False,
        server_header=False,
        log_config=None,
        access_log=False,
    )
    return EXIT_OK


def cmd_check(args: argparse.Namespace) -> int:
    settings = _load(args.settings)
    print(f"settings: ok ({len(settings.providers)} provider(s))")
    for name, provider in settings.providers.items():
        print(f"  {name}: preset {provider.preset}, issuer {settings.issuer(name)}")
        print(f"    redirect URI to register at the IdP: {settings.redirect_uri(name)}")
        print(f"    post-logout redirect URI: {settings.url('/')}")
    if not args.online:
        return EXIT_OK
    from bridge.selftest import run_online_checks

    return EXIT_OK if run_online_checks(settings) else EXIT_FAILED


def _read_claims(value: str) -> dict[str, Any]:
    text = value
    if not value.lstrip().startswith("{"):
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
    decision = identity.decide(provider, claims)
    print(f"access: {'allowed' if decision.allowed else 'refused'} ({decision.reason})")
    if not decision.allowed:
        return EXIT_FAILED
    try:
        user = identity.map_user(
            project_id=settings.tiledesk.project_id,
            provider_name=args.provider,
            provider=provider,
            issuer=settings.issuer(args.provider),
            claims=claims,
        )
    except ValueError as exc:
        print(f"mapping: {exc}", file=sys.stderr)
        return EXIT_FAILED
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
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
