"""`lookout send`: deliver every pending alert to Telegram, keeping the rate limits, then exit.

Exits when nothing is pending or what remains waits on a retry longer than ``--max-wait``
seconds (a flood wait, a backoff, a muted chat); prints sent / failed / waiting."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse


def register(sub) -> None:
    p = sub.add_parser("send", help="deliver pending alerts to Telegram and exit")
    p.add_argument("--max-wait", type=float, default=60.0, metavar="SECONDS",
                   help="stop when what remains waits longer than this (default: 60)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx) -> int:
    from alerts.telegram import Fatal

    telegram = ctx.config.telegram
    if telegram.token is None:
        print("lookout send: no Telegram bot token: set telegram.token in the config "
              "or the TELEGRAM_BOT_TOKEN environment variable", file=sys.stderr)
        return 1
    try:
        summary = asyncio.run(_send(ctx, args.max_wait))
    except Fatal as exc:
        print(f"lookout send: Telegram refused the bot: {exc.reason}", file=sys.stderr)
        return 1
    extra = []
    if summary.cancelled:
        extra.append(f"cancelled {summary.cancelled} (chat blocked the bot or is gone)")
    if summary.edited:
        extra.append(f"edited {summary.edited}")
    line = f"sent {summary.sent} · failed {summary.failed} · waiting {summary.waiting}"
    print(" · ".join([line, *extra]))
    return 1 if summary.failed else 0


async def _send(ctx, max_wait: float):
    from alerts.dispatcher import Dispatcher
    from alerts.telegram import PTBSender

    telegram = ctx.config.telegram
    try:
        ruleset = ctx.ruleset  # for "9 km E of Azaz" place lines; alerts go out without it too
    except Exception:
        ruleset = None
    async with PTBSender(telegram.token.get_secret_value(), telegram.api_url) as sender:
        return await Dispatcher(ctx.store, sender, telegram, ruleset=ruleset).drain(max_wait=max_wait)
