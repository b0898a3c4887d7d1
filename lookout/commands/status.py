"""`lookout status [--json]`: sources, outbox, subscribers, rules and latency at a glance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lookout.commands import add_command
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
    report = gather_status(ctx.config, ctx.store)
    print(report.to_json() if args.json else render_text(report))
    return 0
