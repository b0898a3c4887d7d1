"""`lookout subscribe`, `lookout unsubscribe` and `lookout subscribers list`: what the bot's
/watch, /near and /unwatch do, for operators at the command line."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from alerts import subscriptions
from alerts.keys import SubscriptionKind
from lookout.commands import add_command

if TYPE_CHECKING:
    import argparse

    from lookout.commands import Subparsers
    from lookout.context import AppContext
    from rules.model import Ruleset


def register(sub: Subparsers) -> None:
    p = add_command(
        sub, "subscribe",
        description="Subscribe a Telegram chat (numeric id or @channel). Names are resolved by id, "
                    "name or alias from the rule files.",
    )
    _chat_and_target(p)
    p.set_defaults(func=cmd_subscribe)

    p = add_command(sub, "unsubscribe")
    _chat_and_target(p, allow_all=True)
    p.set_defaults(func=cmd_unsubscribe)

    p = add_command(sub, "subscribers")
    inner = p.add_subparsers(dest="subscribers_command", metavar="ACTION", required=True)
    lp = inner.add_parser("list", help="every subscription: chat, kind, target, km, paused")
    lp.add_argument("--chat", help="only this chat")
    lp.set_defaults(func=cmd_list)


def _chat_and_target(p: argparse.ArgumentParser, *, allow_all: bool = False) -> None:
    p.add_argument("--chat", required=True, help="chat id (e.g. 123456789, -1001234567890) or @channel")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--place", metavar="P", help="a place: every article that mentions it")
    target.add_argument("--group", metavar="G", help="an armed group: every article that mentions it")
    target.add_argument("--rule", metavar="R", help="a rule: every match of it")
    target.add_argument("--near", metavar="P", help="rule matches with a place within --km of place P")
    if allow_all:
        target.add_argument("--all", action="store_true", help="every subscription of the chat")
    p.add_argument("--km", type=float, help="distance for --near, in km")


class _Invalid(Exception):
    pass


def _target(args: argparse.Namespace) -> tuple[SubscriptionKind, str]:
    for kind in SubscriptionKind:
        value = getattr(args, kind, None)
        if value is not None:
            return kind, value
    raise _Invalid("give one of --place, --group, --rule, --near")


def _resolve(ruleset: Ruleset, kind: SubscriptionKind, value: str) -> str:
    """The id ``value`` names, checked against the kind the option asked for."""
    want = SubscriptionKind.PLACE if kind is SubscriptionKind.NEAR else kind
    resolved = ruleset.resolve(value)
    if resolved is None:
        hint = ruleset.suggest(value, n=3)
        more = f" Did you mean: {', '.join(hint)}?" if hint else ""
        raise _Invalid(f"unknown {want} '{value}'.{more}")
    if resolved.kind != want.value:
        raise _Invalid(f"'{value}' is a {resolved.kind} ({resolved.id}), not a {want}; use --{resolved.kind}")
    return resolved.id


def _chat(value: str) -> str:
    chat = value.strip()
    if not chat or not (chat.startswith("@") or chat.lstrip("-").isdigit()):
        raise _Invalid(f"'{value}' is not a chat id (a number such as -1001234567890, or @channel)")
    return chat


def _fail(command: str, exc: Exception) -> int:
    print(f"lookout {command}: {exc}", file=sys.stderr)
    return 1


def cmd_subscribe(args: argparse.Namespace, ctx: AppContext) -> int:
    try:
        chat = _chat(args.chat)
        kind, value = _target(args)
        if kind is SubscriptionKind.NEAR and (args.km is None or not args.km > 0):
            raise _Invalid("--near needs --km with a distance greater than 0")
        if kind is not SubscriptionKind.NEAR and args.km is not None:
            raise _Invalid("--km only goes with --near")
        target = _resolve(ctx.ruleset, kind, value)
    except _Invalid as exc:
        return _fail("subscribe", exc)
    with ctx.store.begin() as conn:
        added = subscriptions.add(conn, chat, kind, target, args.km)
    what = f"{kind} {target}" + (f" within {args.km:g} km" if kind is SubscriptionKind.NEAR else "")
    print(f"{chat}: {'subscribed to' if added else 'already subscribed to'} {what}")
    return 0


def cmd_unsubscribe(args: argparse.Namespace, ctx: AppContext) -> int:
    try:
        chat = _chat(args.chat)
        if args.all:
            with ctx.store.begin() as conn:
                removed = subscriptions.remove_all(conn, chat)
            print(f"{chat}: removed {removed} subscription(s)")
            return 0
        kind, value = _target(args)
        with ctx.store.begin() as conn:
            # The raw id first: a rule may have left the rule files while chats still watch it.
            if subscriptions.remove(conn, chat, kind, value):
                target = value
            else:
                target = _resolve(ctx.ruleset, kind, value)
                if not subscriptions.remove(conn, chat, kind, target):
                    raise _Invalid(f"{chat} is not subscribed to {kind} {target}")
    except _Invalid as exc:
        return _fail("unsubscribe", exc)
    print(f"{chat}: unsubscribed from {kind} {target}")
    return 0


def cmd_list(args: argparse.Namespace, ctx: AppContext) -> int:
    with ctx.store.connect() as conn:
        rows = subscriptions.list_all(conn)
    if args.chat:
        rows = [r for r in rows if r.subscription.chat_id == args.chat.strip()]
    if not rows:
        print("no subscriptions")
        return 0
    table = [("CHAT", "KIND", "TARGET", "KM", "PAUSED")]
    for r in rows:
        s = r.subscription
        paused = f"yes ({r.paused_reason})" if r.paused and r.paused_reason else ("yes" if r.paused else "no")
        table.append((s.chat_id, s.kind, s.target, f"{s.km:g}" if s.km is not None else "", paused))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0
