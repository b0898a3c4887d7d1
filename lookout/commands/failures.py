"""`lookout failures list [SOURCE]` and `lookout failures forget [URL...|--source NAME|--all]`: the
article URLs backing off after failing (``crawler.state``), and clearing them so the next crawl
requests them again.

``list`` never creates a database. ``forget`` with URLs forgets the known ones and exits 1 naming
the others; URLs are matched as given and in their canonical form (as the crawler stores them)."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from sqlalchemy import inspect

from core.store import failing_urls, utcnow
from crawler.canonical import canonicalize
from crawler.state import clear_failures, clear_source_failures, list_failing
from lookout.commands import add_command, table, usage_handler
from lookout.context import NoDatabase

if TYPE_CHECKING:
    import argparse
    from datetime import datetime

    from crawler.state import FailingUrl
    from lookout.commands import Subparsers
    from lookout.context import AppContext


def register(sub: Subparsers) -> None:
    p = add_command(sub, "failures")
    s = p.add_subparsers(dest="failures_command", metavar="COMMAND")
    ls = s.add_parser("list", help="failing article URLs: reason, tries, next try or 'given up'")
    ls.add_argument("source", metavar="SOURCE", nargs="?", help="only this source's")
    ls.set_defaults(func=list_failures)
    fg = s.add_parser("forget", help="clear failing URLs so the next crawl requests them again")
    fg.add_argument("urls", metavar="URL", nargs="*", help="the URLs to forget")
    fg.add_argument("--source", metavar="NAME", help="every failing URL of this source")
    fg.add_argument("--all", action="store_true", help="every failing URL")
    fg.set_defaults(func=forget)
    p.set_defaults(func=usage_handler(p, full=False))


def list_failures(args: argparse.Namespace, ctx: AppContext) -> int:
    try:
        store = ctx.existing_store()
    except NoDatabase:
        print("no failing URLs (no database yet)")
        return 0
    try:
        with store.connect() as conn:
            if not inspect(conn).has_table(failing_urls.name, schema=store.schema):
                rows: list[FailingUrl] = []
            else:
                rows = list_failing(conn, args.source)
    finally:
        store.dispose()
    if not rows:
        print(f"no failing URLs{f' for {args.source}' if args.source else ''}")
        return 0
    now = utcnow()
    print(table(
        ("url", "source", "reason", "tries", "next try"),
        [(f.url, f.source, f.reason, str(f.tries), next_try(f.next_try_at, now)) for f in rows],
    ))
    return 0


def next_try(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "given up"
    if when <= now:
        return "due (next crawl)"
    return when.strftime("%Y-%m-%d %H:%M UTC")


def forget(args: argparse.Namespace, ctx: AppContext) -> int:
    modes = sum((bool(args.urls), args.source is not None, bool(args.all)))
    if modes != 1:
        print("lookout failures forget: give URLs, --source NAME or --all (one of them)", file=sys.stderr)
        return 2
    with ctx.store.begin() as conn:
        if args.all:
            n = clear_source_failures(conn)
            print(f"forgot {n} failing URL(s)")
            return 0
        if args.source is not None:
            n = clear_source_failures(conn, args.source)
            print(f"forgot {n} failing URL(s) of {args.source}")
            return 0
        asked = {url: {url, canonicalize(url)} for url in dict.fromkeys(args.urls)}
        found = clear_failures(conn, {u for forms in asked.values() for u in forms})
    unknown = [url for url, forms in asked.items() if not forms & found]
    print(f"forgot {len(asked) - len(unknown)} failing URL(s)")
    if unknown:
        print(f"lookout failures forget: not failing: {', '.join(unknown)} (`lookout failures list` shows them)",
              file=sys.stderr)
        return 1
    return 0
