"""`lookout run`: the long-running service (scheduled crawls, the bot, continuous delivery)."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from lookout.commands import add_command
from lookout.delivery import RETRY_MAX, TokenRejected
from lookout.lock import LockHeld
from lookout.metrics import parse_listen
from lookout.service import Service, ServiceOptions

if TYPE_CHECKING:
    import argparse

    from lookout.commands import Subparsers
    from lookout.context import AppContext


def register(sub: Subparsers) -> None:
    p = add_command(
        sub, "run",
        description="Run until SIGTERM/SIGINT. One service per database (a lock refuses a second).",
    )
    p.add_argument("--http", metavar="HOST:PORT",
                   help="serve /healthz and Prometheus /metrics, e.g. 127.0.0.1:9108")
    p.add_argument("--telegram-retry", type=float, default=None, metavar="SECONDS",
                   help="first pause before reconnecting to an unreachable Bot API; it doubles up to "
                        "--telegram-retry-max (default: 1)")
    p.add_argument("--telegram-retry-max", type=float, default=None, metavar="SECONDS",
                   help=f"longest pause between reconnections (default: {RETRY_MAX:.0f})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: AppContext) -> int:
    options = ServiceOptions()
    if args.http:
        try:
            options.http = parse_listen(args.http)
        except ValueError as exc:
            print(f"lookout run: {exc}", file=sys.stderr)
            return 2
    for flag, value in (("--telegram-retry", args.telegram_retry), ("--telegram-retry-max", args.telegram_retry_max)):
        if value is not None and not value > 0:
            print(f"lookout run: {flag} must be a positive number of seconds", file=sys.stderr)
            return 2
    if args.telegram_retry is not None:
        options.telegram_retry = args.telegram_retry
    if args.telegram_retry_max is not None:
        options.telegram_retry_max = args.telegram_retry_max
    service = Service(ctx.config, options)
    try:
        service.acquire_lock()
    except LockHeld as exc:
        print(f"lookout run: refusing to start: {exc}", file=sys.stderr)
        return 1
    if ctx.config.telegram.token is None:
        print("lookout run: Telegram delivery is DISABLED (no telegram.token / TELEGRAM_BOT_TOKEN): "
              "crawling and matching run, alerts wait in the outbox", file=sys.stderr)
    try:
        return asyncio.run(service.run())
    except TokenRejected as exc:  # a configuration error: one line, the token never in it
        print(f"lookout run: {exc}", file=sys.stderr)
        return 1
