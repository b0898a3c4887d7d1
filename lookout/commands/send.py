"""`lookout send`: deliver every pending alert to Telegram, keeping the rate limits, then exit.

Exits when nothing is pending or what remains waits on a retry longer than ``--max-wait``
seconds (a flood wait, a backoff, a muted chat); prints sent / failed / waiting."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from alerts.dispatcher import Dispatcher, DispatchSummary
from alerts.telegram import DeliveryError, Fatal, PTBSender
from lookout.commands import add_command

if TYPE_CHECKING:
    import argparse

    from lookout.commands import Subparsers
    from lookout.context import AppContext
    from rules.model import Ruleset


def register(sub: Subparsers) -> None:
    p = add_command(sub, "send")
    p.add_argument("--max-wait", type=float, default=60.0, metavar="SECONDS",
                   help="stop when what remains waits longer than this (default: 60)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: AppContext) -> int:
    token = ctx.config.telegram.token
    if token is None:
        print("lookout send: no Telegram bot token: set telegram.token in the config "
              "or the TELEGRAM_BOT_TOKEN environment variable", file=sys.stderr)
        return 1
    try:
        summary = asyncio.run(_send(ctx, token.get_secret_value(), args.max_wait))
    except Fatal as exc:
        print(f"lookout send: telegram.token was rejected by Telegram ({exc.status})", file=sys.stderr)
        return 1
    except DeliveryError as exc:  # getMe failed: the Bot API is unreachable or failing
        print(f"lookout send: Telegram not reachable, nothing sent: {exc.reason}", file=sys.stderr)
        return 1
    extra = []
    if summary.cancelled:
        extra.append(f"cancelled {summary.cancelled} (chat blocked the bot or is gone)")
    if summary.edited:
        extra.append(f"edited {summary.edited}")
    line = f"sent {summary.sent} · failed {summary.failed} · waiting {summary.waiting}"
    print(" · ".join([line, *extra]))
    return 1 if summary.failed else 0


async def _send(ctx: AppContext, token: str, max_wait: float) -> DispatchSummary:
    telegram = ctx.config.telegram
    ruleset: Ruleset | None
    try:
        ruleset = ctx.ruleset  # for "9 km E of Azaz" place lines; alerts go out without it too
    except Exception:
        ruleset = None
    async with PTBSender(token, telegram.api_url) as sender:
        return await Dispatcher(ctx.store, sender, telegram, ruleset=ruleset).drain(max_wait=max_wait)
