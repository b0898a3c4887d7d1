"""A crawl that ran to its end is reported by what it found (issue 12, point 7): the service's log
line and ``lookout_crawls_total{result}`` tell ``partial`` and ``empty`` from ``ok``, as the
crawl's own run row does."""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from core.store import Store, crawl_runs, utcnow
from crawler.state import CrawlResult
from lookout.crawljobs import CrawlJobs
from lookout.metrics import Metrics

# A stand-in for ``lookout crawl``: records its own run, with the result it is told, and exits 0.
CHILD = textwrap.dedent(
    """
    import sys
    from datetime import UTC, datetime
    from core.store import Store, crawl_runs
    url, name, result = sys.argv[1:4]
    store = Store(url, create=False)
    with store.begin() as conn:
        now = datetime.now(UTC)
        conn.execute(crawl_runs.insert().values(source=name, started_at=now, finished_at=now, result=result))
    """
)


@pytest.mark.parametrize("result", [CrawlResult.OK, CrawlResult.PARTIAL, CrawlResult.EMPTY])
def test_a_finished_crawl_is_counted_and_logged_by_its_own_result(sqlite_store: Store, tmp_path, caplog, result):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    metrics = Metrics()
    jobs = CrawlJobs(
        sqlite_store, command=lambda name: [sys.executable, str(script), sqlite_store.url, name, str(result)],
        parallel=1, timeout=timedelta(seconds=30), on_finished=lambda o: metrics.count_crawl(o.result),
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)},
    )
    caplog.set_level(logging.INFO, logger="lookout.crawljobs")
    started = utcnow()
    outcome = asyncio.run(jobs.run("feed"))
    assert outcome.result == result and outcome.ok
    assert f"result={result}" in caplog.text
    assert metrics.crawls.labels(str(result))._value.get() == 1
    others = [r for r in CrawlResult if r != result]
    assert all(metrics.crawls.labels(str(r))._value.get() == 0 for r in others)
    with sqlite_store.connect() as conn:  # the child's own row stands, no second one is written
        rows = conn.execute(crawl_runs.select().where(crawl_runs.c.started_at >= started)).all()
    assert [r.result for r in rows] == [result]
