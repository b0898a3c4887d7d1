"""`lookout alerts list [--failed]` and `lookout alerts retry [ID...]`: the outbox, for operators.

Neither creates a database: ``list`` is read-only, and ``retry`` has nothing to retry without one.
``retry`` with ids refuses them all when one is unknown, and names it."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from sqlalchemy import select

from alerts import outbox as ob
from alerts.outbox import OutboxState
from core.store import outbox, utcnow
from lookout.commands import add_command

if TYPE_CHECKING:
    import argparse

    from core.store import Store
    from lookout.commands import Subparsers
    from lookout.context import AppContext


def register(sub: Subparsers) -> None:
    p = add_command(sub, "alerts")
    cmds = p.add_subparsers(dest="alerts_command", metavar="ACTION", required=True)
    ls = cmds.add_parser("list", help="the most recent alerts and their delivery state")
    ls.add_argument("--failed", action="store_true", help="only failed and cancelled alerts")
    ls.add_argument("--state", choices=[state.value for state in OutboxState],
                    help="only alerts in this state")
    ls.add_argument("--limit", type=int, default=50)
    ls.set_defaults(func=list_alerts)
    rt = cmds.add_parser("retry", help="queue failed alerts again (all, or the given ids)")
    rt.add_argument("ids", nargs="*", type=int, metavar="ID")
    rt.set_defaults(func=retry_alerts)


def list_alerts(args: argparse.Namespace, ctx: AppContext) -> int:
    states = [OutboxState.FAILED, OutboxState.CANCELLED] if args.failed else ([args.state] if args.state else None)
    with ctx.store.connect() as conn:
        rows = ob.list_rows(conn, states=states, limit=args.limit)
        counts = ob.counts(conn)
    summary = ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "empty"
    print(f"outbox: {summary}")
    for r in rows:
        when = (r.sent_at or r.next_attempt_at or r.created_at)
        stamp = when.strftime("%Y-%m-%d %H:%M") if when else "-"
        title = " ".join((r.title or "").split())[:60]
        print(f"{r.id:>6}  {r.state:<9} {stamp}  chat {r.chat_id:<14} {r.alert_key:<24} "
              f"tries {r.attempts}  {title}")
        if r.last_error and r.state != OutboxState.SENT:
            print(f"        {r.last_error}")
    return 0


RETRYABLE = (OutboxState.FAILED, OutboxState.CANCELLED)  # what ``retry ID`` queues again


def retry_alerts(args: argparse.Namespace, ctx: AppContext) -> int:
    ids: list[int] = list(dict.fromkeys(args.ids))
    store = ctx.existing_store()
    try:
        return _retry(store, ids)
    finally:
        store.dispose()


def _retry(store: Store, ids: list[int]) -> int:
    with store.begin() as conn:
        states: dict[int, str] = {}
        if ids:
            states = {row.id: row.state
                      for row in conn.execute(select(outbox.c.id, outbox.c.state).where(outbox.c.id.in_(ids)))}
            unknown = [i for i in ids if i not in states]
            if unknown:
                print(f"lookout alerts retry: no alert with id {', '.join(map(str, unknown))}; "
                      "nothing queued again (`lookout alerts list` shows the ids)", file=sys.stderr)
                return 1
        n = ob.retry(conn, ids or None, utcnow())
    what = "the given alerts" if ids else "failed alerts"
    print(f"{n} alert(s) queued again ({what}); `lookout send` or the service delivers them")
    left = [f"{i} ({states[i]})" for i in ids if states[i] not in RETRYABLE]
    if left:
        print(f"not failed or cancelled, left as they are: {', '.join(left)}")
    return 0
