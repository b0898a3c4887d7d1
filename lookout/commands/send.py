"""`lookout send`: deliver every pending alert to Telegram, keeping the rate limits, then exit.

It takes the database's delivery lock first: while ``lookout run`` holds it, that service is the
dispatcher and ``send`` refuses, naming it (it would otherwise race the service for its rows).
Returns within ``--max-wait`` seconds (plus the requests in flight then), earlier when nothing is
pending or what remains is due later; prints sent / failed / waiting, and until when they wait.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING

from alerts.dispatcher import Dispatcher, DispatchSummary
from alerts.telegram import DeliveryError, Fatal, PTBSender
from lookout.commands import add_command
from lookout.lock import LockHeld, ServiceLock

if TYPE_CHECKING:
    import argparse
    from datetime import datetime

    from lookout.commands import Subparsers
    from lookout.context import AppContext
    from rules.model import Ruleset


def register(sub: Subparsers) -> None:
    p = add_command(sub, "send")
    p.add_argument("--max-wait", type=float, default=60.0, metavar="SECONDS",
                   help="return within this many seconds; what waits longer stays queued (default: 60)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: AppContext) -> int:
    token = ctx.config.telegram.token
    if token is None:
        print("lookout send: no Telegram bot token: set telegram.token in the config "
              "or the TELEGRAM_BOT_TOKEN environment variable", file=sys.stderr)
        return 1
    if not args.max_wait >= 0:
        print("lookout send: --max-wait must be 0 or more seconds", file=sys.stderr)
        return 2
    lock = ServiceLock(ctx.store, command="lookout send")
    try:
        lock.acquire()
    except LockHeld as exc:
        print(f"lookout send: nothing sent: {exc.holder} delivers from this database "
              f"({exc.where}); it sends what is pending itself", file=sys.stderr)
        return 1
    try:
        summary = asyncio.run(_send(ctx, token.get_secret_value(), args.max_wait))
    except Fatal as exc:
        print(f"lookout send: telegram.token was rejected by Telegram ({exc.status})", file=sys.stderr)
        return 1
    except DeliveryError as exc:  # getMe failed: the Bot API is unreachable or failing
        print(f"lookout send: Telegram not reachable, nothing sent: {exc.reason}", file=sys.stderr)
        return 1
    finally:
        lock.release()
    print(summary_line(summary))
    return 1 if summary.failed else 0


def summary_line(summary: DispatchSummary) -> str:
    line = f"sent {summary.sent} · failed {summary.failed} · waiting {summary.waiting}"
    if summary.waiting and summary.first_due is not None:
        line += f" (due {_when(summary.first_due)}"
        if summary.last_due is not None and summary.last_due != summary.first_due:
            line += f" to {_when(summary.last_due)}"
        line += ")"
    extra = [line]
    if summary.cancelled:
        extra.append(f"cancelled {summary.cancelled} (chat blocked the bot or is gone)")
    if summary.folded:
        extra.append(f"{summary.folded} in digests (backlog over telegram.max_backlog)")
    if summary.edited:
        extra.append(f"edited {summary.edited}")
    if summary.recovered:
        extra.append(f"{summary.recovered} resent after an interrupted run (may arrive twice)")
    return " · ".join(extra)


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


async def _send(ctx: AppContext, token: str, max_wait: float) -> DispatchSummary:
    telegram = ctx.config.telegram
    ruleset: Ruleset | None
    try:
        ruleset = ctx.ruleset  # for "9 km E of Azaz" place lines; alerts go out without it too
    except Exception:
        ruleset = None
    async with PTBSender(token, telegram.api_url) as sender:
        return await Dispatcher(ctx.store, sender, telegram, ruleset=ruleset).drain(max_wait=max_wait)
