"""`lookout crawl [SOURCE...]`: crawl now (all sources when none named), store, match and
enqueue alerts; a progress line per source as it finishes, then a summary table. A source's
result carries its reason when it has one: ``empty: selector matched nothing``, ``failed:
not-a-feed (HTML page)``, ``failed: connection-refused``.

Both the line and the table are an account of every URL the source's index pages listed
(``crawler.state.ACCOUNT``, ``unaccounted``): each was seen, then skipped or requested, and each
page requested was stored (new, updated, unchanged) or failed."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from crawler.runner import CrawlReport, run_crawl
from crawler.sources import select_sources
from crawler.state import ACCOUNT, CrawlResult, SourceStats, account, progress_line
from lookout import __version__
from lookout.commands import add_command, table
from lookout.loaders import sources_from_config
from lookout.pipeline import build_ingestor

if TYPE_CHECKING:
    import argparse

    from lookout.commands import Subparsers
    from lookout.context import AppContext


def register(sub: Subparsers) -> None:
    p = add_command(
        sub, "crawl",
        description="Crawl the named sources (all when none are named) once, now.",
    )
    p.add_argument("sources", nargs="*", metavar="SOURCE", help="source names from the sources file")
    p.set_defaults(func=run)


def run(args: argparse.Namespace, ctx: AppContext) -> int:
    try:
        chosen = select_sources(sources_from_config(ctx.config), list(args.sources))
    except KeyError as exc:
        print(f"lookout crawl: {exc.args[0]}", file=sys.stderr)
        return 2
    if not chosen:
        print("lookout crawl: no sources configured (see `lookout sources check FILE`)", file=sys.stderr)
        return 2
    report = run_crawl(
        chosen, crawl=ctx.config.crawl, store=ctx.store, ingestor=build_ingestor(ctx.config, ctx.store),
        version=__version__, debug=ctx.config.log_level == "DEBUG", progress=_progress,
    )
    print(format_report(report))
    return 0 if report.ok else 1


def _progress(stats: SourceStats) -> None:
    print(progress_line(stats), flush=True)


def format_report(report: CrawlReport) -> str:
    """The summary table: a row per source (its failures by reason), then the totals."""
    header = ("source", "result", *ACCOUNT, "seconds")
    rows = [
        (s.source, s.outcome, *(str(n) for n in account(s)[:-1]), s.failed_text(), f"{s.seconds:.1f}")
        for s in report.sources
    ]
    totals = [sum(column) for column in zip(*(account(s) for s in report.sources), strict=True)]
    rows.append(
        (
            "total",
            CrawlResult.FAILED if not report.ok else CrawlResult.PARTIAL if report.failures else CrawlResult.OK,
            *(str(n) for n in totals or [0] * len(ACCOUNT)),
            f"{report.seconds:.1f}",
        )
    )
    return table(header, rows)
