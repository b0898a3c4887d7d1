"""`lookout status [--json]`: sources, outbox, subscribers, rules and latency at a glance.

Read-only: in a folder where nothing ran yet it shows the configuration and rules with empty
counts and creates no database."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from lookout.commands import add_command
from lookout.context import NoDatabase
from lookout.status import gather_status, render_text

if TYPE_CHECKING:
    import argparse

    from lookout.commands import Subparsers
    from lookout.context import AppContext


def register(sub: Subparsers) -> None:
    p = add_command(sub, "status")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=status)


def status(args: argparse.Namespace, ctx: AppContext) -> int:
    try:
        store = ctx.store
    except NoDatabase as exc:
        print(f"lookout status: {exc}", file=sys.stderr)
        store = None
    report = gather_status(ctx.config, store)
    print(report.to_json() if args.json else render_text(report))
    return 0
