"""The crawl summary adds up: ``lookout crawl``'s progress line and table account for every URL
a source's index pages listed (seen = skipped + new + updated + unchanged + failed), with the
totals the sum of the rows."""

from __future__ import annotations

from collections import Counter

from crawler.runner import CrawlReport
from crawler.state import ACCOUNT, SourceStats, accounted, progress_line, unaccounted
from lookout.commands.crawl import format_report


def _wire() -> SourceStats:
    """A feed of 12 entries as the spider and the store pipeline count them: 4 stored already and
    unchanged, 2 backing off, 1 claimed by another source (7 skipped); of the 5 requested, 1
    answered 404 and 1 was a PDF (failed before being fetched), 3 were fetched: 1 new (a
    syndicated copy), 1 re-fetched for a changed entry marker and unchanged, 1 with no text."""
    return SourceStats(
        "wire", "feed", indexes_read=1, entries=12, skipped=7, backing_off=2, fetched=3, new=1, duplicates=1,
        unchanged=1, failed=Counter({"http-404": 1, "not-html": 1, "no-text": 1}), seconds=2.04,
        finish_reason="finished",
    )


def _blog() -> SourceStats:
    """A listing page of 6 links: 1 known, 5 fetched: 3 new, 2 updated (changed text)."""
    return SourceStats(
        "blog", "listing", indexes_read=1, entries=6, skipped=1, fetched=5, new=3, updated=2, seconds=0.5,
        finish_reason="finished",
    )


def test_the_account_adds_up_for_realistic_crawls():
    quiet = SourceStats("quiet", "feed", not_modified=1, finish_reason="finished")  # 304: nothing listed
    everything_known = SourceStats("known", "sitemap", indexes_read=3, entries=40, skipped=40,
                                   finish_reason="finished")
    for stats in (_wire(), _blog(), quiet, everything_known):
        assert accounted(stats), (stats.source, unaccounted(stats))


def test_the_account_says_when_the_counters_cannot_add_up():
    # The index page's own failure is in `failed` but lists nothing: counted apart, it adds up.
    broken = SourceStats("broken", "feed", index_error="http-500", index_reason="http-500",
                         failed=Counter({"http-500": 1}), index_failures=1, finish_reason="finished")
    assert unaccounted(broken) == 0 and accounted(broken)
    assert unaccounted(SourceStats("old", "feed", failed=Counter({"http-500": 1}))) == -1
    # Cut short: 3 pages were still in flight, never counted.
    cut = SourceStats("cut", "feed", indexes_read=1, entries=5, fetched=2, new=2, finish_reason="closespider_timeout")
    assert unaccounted(cut) == 3


def test_the_progress_line_reads_as_an_account():
    assert progress_line(_wire()) == (
        "wire: partial - seen 12, skipped 7 (2 backing off), fetched 3, new 1, updated 0, unchanged 1, "
        "duplicates 1, failed 3 (2.0 s)")
    assert progress_line(_blog()) == (
        "blog: ok - seen 6, skipped 1, fetched 5, new 3, updated 2, unchanged 0, duplicates 0, failed 0 (0.5 s)")


def test_the_table_has_the_account_columns_and_totals():
    lines = format_report(CrawlReport([_wire(), _blog()], 2.6)).splitlines()
    header = lines[0].split()
    assert header == ["source", "result", *ACCOUNT, "seconds"]
    assert header[2:10] == ["seen", "skipped", "fetched", "new", "updated", "unchanged", "duplicates", "failed"]
    wire, blog, total = (dict(zip(header, _cells(line), strict=True)) for line in lines[2:])
    assert wire == {"source": "wire", "result": "partial", "seen": "12", "skipped": "7", "fetched": "3", "new": "1",
                    "updated": "0", "unchanged": "1", "duplicates": "1",
                    "failed": "http-404 1, no-text 1, not-html 1", "seconds": "2.0"}
    assert (blog["seen"], blog["skipped"], blog["updated"], blog["failed"]) == ("6", "1", "2", "-")
    assert total == {"source": "total", "result": "partial", "seen": "18", "skipped": "8", "fetched": "8",
                     "new": "4", "updated": "2", "unchanged": "1", "duplicates": "1", "failed": "3", "seconds": "2.6"}
    # The totals add up as the rows do.
    seen, skipped, new, updated, unchanged, failed = (
        int(total[k]) for k in ("seen", "skipped", "new", "updated", "unchanged", "failed"))
    assert seen == skipped + new + updated + unchanged + failed


def test_an_empty_crawl_has_a_total_row_of_zeros():
    total = format_report(CrawlReport([], 0.0)).splitlines()[-1].split()
    assert total == ["total", "ok", *["0"] * len(ACCOUNT), "0.0"]


def _cells(line: str) -> list[str]:
    """A table row's cells: columns are two spaces apart at least, a cell has single spaces."""
    return [cell.strip() for cell in line.split("  ") if cell.strip()]
