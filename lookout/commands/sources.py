"""`lookout sources list|check`: the crawl state of each source (its last result included:
``empty`` when its index listed nothing; when the scheduler polls it next, and how far apart
while it keeps failing: ``lookout.pollbackoff``), and validation of a sources file (every error at once,
as ``file:line:col: message``: a ``follow`` selector that does not compile, a ``lang`` that is no
ISO 639-1 code, ...)."""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from core.located import LocatedErrors
from core.store import articles, sources, utcnow
from crawler.sources import load_sources
from lookout.commands import add_command, table, usage_handler
from lookout.loaders import sources_from_config
from lookout.pollbackoff import failing_text

if TYPE_CHECKING:
    import argparse

    from lookout.commands import Subparsers
    from lookout.context import AppContext


def register(sub: Subparsers) -> None:
    p = add_command(sub, "sources")
    s = p.add_subparsers(dest="sources_command", metavar="COMMAND")
    ls = s.add_parser(
        "list", help="each source: last crawl, last success, last result, new in 24 h, next poll, backoff, last error"
    )
    ls.set_defaults(func=list_sources)
    ck = s.add_parser("check", help="validate a sources file (all errors at once, file:line)")
    ck.add_argument(
        "file", metavar="FILE", nargs="?", help="a sources file (default: the configured sources)"
    )
    ck.set_defaults(func=check)
    p.set_defaults(func=usage_handler(p, full=False))


def check(args: argparse.Namespace, ctx: AppContext) -> int:
    # Without FILE: what the crawler would read (a sources file, or `sources:` in lookout.yaml).
    origin = args.file or (
        str(ctx.config.resolve(ctx.config.sources)) if isinstance(ctx.config.sources, str) else ctx.config.origin
    )
    try:
        found = load_sources(args.file) if args.file else sources_from_config(ctx.config)
    except LocatedErrors as exc:
        print(str(exc), file=sys.stderr)
        print(f"{origin}: {len(exc.errors)} error(s)", file=sys.stderr)
        return 1
    kinds = ", ".join(f"{s.name} ({s.kind}, every {s.every})" for s in found)
    print(f"{origin}: {len(found)} source(s) OK{': ' + kinds if kinds else ''}")
    return 0


def list_sources(_args: argparse.Namespace, ctx: AppContext) -> int:
    configured = sources_from_config(ctx.config)
    max_backoff = ctx.config.crawl.max_backoff
    since = utcnow() - timedelta(hours=24)
    with ctx.store.connect() as conn:
        state = {r.name: r for r in conn.execute(select(sources))}
        recent: dict[str, int] = dict(
            conn.execute(
                select(articles.c.source, func.count())
                .where(articles.c.first_seen >= since)
                .group_by(articles.c.source)
            ).all()
        )
    rows = []
    for s in configured:
        r = state.get(s.name)
        rows.append(
            (
                s.name,
                s.kind,
                str(s.every),
                _when(r.last_crawl_at if r else None),
                _when(r.last_success_at if r else None),
                (r.last_result or "-") if r else "-",
                str(recent.get(s.name, 0)),
                _when(r.next_run_at if r else None),
                # The same words as `lookout status`, the next poll being the column before.
                failing_text(s.every, r.failures_in_row if r else None, max_backoff) or "-",
                (r.last_error or "-") if r else "never crawled",
            )
        )
    # The last error stays last: it is the long one.
    header = ("source", "kind", "every", "last crawl", "last success", "result", "new 24h", "next poll", "backoff",
              "last error")
    print(table(header, rows))
    return 0


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "-"
