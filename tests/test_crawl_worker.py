"""A crawl worker process (``lookout.worker``) on its own: orders in on stdin, reports out on
stdout, as the service drives it. One process crawls source after source and several at once,
abandons a hanging source at its timeout while its other crawls go on, loads a new rules version
when an order names one, and takes its extraction processes with it when killed."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from service_harness import ROOT, db_rows, matching_article, wait_until, write_config
from support.newssite import NewsSite

from core.lifetime import children_of
from crawler.sources import Source
from lookout.workerproto import CrawlOrder, RulesRef, StopOrder

pytestmark = pytest.mark.e2e


class WorkerProcess:
    """``python -m lookout.worker`` with pipes, as ``lookout.workers.WorkerPool`` starts it."""

    def __init__(self, config: Path, *extra: str):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lookout.worker", "--config", str(config), *extra],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=config.parent,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
        )
        self.reports: list[dict] = []
        self.ready = self.next("ready", timeout=60)

    def order(self, order: CrawlOrder | StopOrder) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(order.line())
        self.proc.stdin.flush()

    def next(self, kind: str, timeout: float = 60) -> dict:
        """The next report of ``kind`` (heartbeats in between are kept in ``reports``)."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise AssertionError(f"the worker ended: {self.stderr()}")
            report = json.loads(line)
            self.reports.append(report)
            if report["kind"] == kind:
                return report
        raise AssertionError(f"no {kind} report in {timeout} s")

    def finished(self, count: int, timeout: float = 60) -> dict[str, dict]:
        return {r["source"]: r for r in (self.next("finished", timeout) for _ in range(count))}

    def stderr(self) -> str:
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.communicate(timeout=10)[1].decode(errors="replace")[-3000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.order(StopOrder(grace=5))
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _source(name: str, url: str) -> Source:
    return Source(name=name, feed=url, every="1h")


@pytest.fixture
def site():
    with NewsSite() as s:
        yield s


_order_ids = itertools.count(1)


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One worker for the tests that only send it orders (a worker's start is seconds of CPU):
    ``crawl.timeout`` 3 s, its own database. Its tests run on one xdist worker (``xdist_group``)."""
    directory = tmp_path_factory.mktemp("shared-worker")
    config = write_config(directory, sources=[], token=None, api_url=None, timeout="3s", download_timeout="30s")
    worker = WorkerProcess(config)
    yield config, worker
    worker.close()


@pytest.mark.xdist_group("shared-worker")
def test_one_worker_crawls_one_source_after_another_and_several_at_once(shared, site):
    config, worker = shared
    site.publish(matching_article("azaz-one", "Fighting near Azaz"))
    pid = worker.ready["pid"]
    worker.order(CrawlOrder(id=next(_order_ids), source=_source("first", f"{site.url}/feed/rss.xml")))
    first = worker.finished(1)["first"]
    assert first["result"] == "ok" and first["new"] == 1
    worker.order(CrawlOrder(id=next(_order_ids), source=_source("second", f"{site.url}/feed/atom.xml")))
    second = worker.finished(1)["second"]
    assert second["result"] == "ok" and second["new"] == 0  # stored already by the first
    site.publish(matching_article("marea-two", "Shelling near Marea"))
    for name in ("a", "b", "c"):
        worker.order(CrawlOrder(id=next(_order_ids), source=_source(name, f"{site.url}/feed/rss.xml")))
    at_once = worker.finished(3)
    assert {r["result"] for r in at_once.values()} == {"ok"}
    assert sum(r["new"] for r in at_once.values()) == 1  # one download of the new article, not three
    assert worker.proc.pid == pid and worker.proc.poll() is None  # the same process throughout
    names = ("a", "b", "c", "first", "second")
    rows = [r for r in db_rows(config, "select name, last_result from sources where last_crawl_at is not null")
            if r["name"] in names]
    assert sorted(r["name"] for r in rows) == list(names)
    assert {r["last_result"] for r in rows} == {"ok"}
    # A run row for each crawl that fetched something; uneventful ones (all known) only in `sources`.
    runs = [r for r in db_rows(config, "select source, fetched from crawl_runs order by id") if r["source"] in names]
    assert len(runs) == 2 and runs[0]["source"] == "first"
    assert all(r["fetched"] == 1 for r in runs)


@pytest.mark.xdist_group("shared-worker")
def test_a_hanging_source_is_abandoned_at_its_timeout_while_another_completes(shared, site):
    config, worker = shared
    site.publish(matching_article("azaz-three", "Fighting near Azaz again"))
    t0 = time.monotonic()
    worker.order(CrawlOrder(id=next(_order_ids), source=_source("stuck", f"{site.url}/fault/slow-feed?seconds=20")))
    worker.order(CrawlOrder(id=next(_order_ids), source=_source("fine", f"{site.url}/feed/rss.xml")))
    done = worker.finished(2, timeout=30)
    assert done["fine"]["result"] == "ok" and done["fine"]["new"] == 1
    assert done["stuck"]["result"] == "timeout"
    assert 2.5 <= done["stuck"]["seconds"] < 10 and time.monotonic() - t0 < 15
    # The worker goes on crawling after the abandoned one.
    worker.order(CrawlOrder(id=next(_order_ids), source=_source("again", f"{site.url}/feed/atom.xml")))
    assert worker.finished(1)["again"]["result"] == "ok"
    stuck = db_rows(config, "select result, error from crawl_runs where source = 'stuck'")
    assert stuck == [{"result": "timeout", "error": "timed out after 3s (crawl.timeout); abandoned"}]


@pytest.mark.xdist_group("shared-worker")
def test_an_order_with_a_new_rules_version_is_matched_with_it(shared, site):
    config, worker = shared
    site.publish(matching_article("kafr-one", "Clashes in Kafr Nasih", n=1))
    new_rules = config.parent / "rules-v2.yaml"
    new_rules.write_text((config.parent / "rules.yaml").read_text() + (
        "  - id: kafr-nasih\n    title: Kafr Nasih\n    severity: high\n    examples:\n"
        "      match: [\"Clashes in Kafr Nasih\"]\n    any:\n      - keyword: Kafr Nasih\n"
    ))
    worker.order(CrawlOrder(id=next(_order_ids), source=_source("one", f"{site.url}/feed/rss.xml"),
                            rules=RulesRef(version="v2", paths=(str(new_rules),))))
    assert worker.finished(1)["one"]["result"] == "ok"
    matched = db_rows(config, "select rule_id from matches")
    assert {"rule_id": "kafr-nasih"} in matched


def test_a_killed_worker_takes_its_extraction_processes_with_it(tmp_path, site):
    config = write_config(tmp_path, sources=[], token=None, api_url=None)
    worker = WorkerProcess(config)
    pool = children_of(worker.proc.pid)
    assert pool, "the worker's extraction processes"
    os.kill(worker.proc.pid, signal.SIGKILL)  # the process alone, not its group
    worker.proc.wait(timeout=10)
    assert wait_until(lambda: not any(Path(f"/proc/{p}").exists() and _alive(p) for p in pool), timeout=10)


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] not in "ZX"
    except OSError:
        return False


# A stand-in service: starts a worker as ``WorkerPool`` does (its own session, pipes), prints the
# worker's pid and its extraction processes' pids, then waits to be killed.
PARENT = """
import subprocess, sys, time, json
proc = subprocess.Popen(sys.argv[1:], stdin=subprocess.PIPE, stdout=subprocess.PIPE, start_new_session=True)
proc.stdout.readline()  # ready
print(proc.pid, flush=True)
time.sleep(600)
"""


def test_a_worker_dies_with_a_killed_service(tmp_path):
    """SIGKILL of the service (or the OOM killer) must not leave its worker crawling as an orphan
    next to the workers of the service that replaces it."""
    config = write_config(tmp_path, sources=[], token=None, api_url=None)
    parent = subprocess.Popen(
        [sys.executable, "-c", PARENT, sys.executable, "-m", "lookout.worker", "--config", str(config)],
        stdout=subprocess.PIPE, text=True, cwd=config.parent, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        worker = int(parent.stdout.readline())
        family = [worker, *children_of(worker)]
        assert len(family) > 1 and all(_alive(p) for p in family)
        parent.kill()
        parent.wait(timeout=10)
        assert wait_until(lambda: not any(_alive(p) for p in family), timeout=20), "the worker outlived its service"
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_worker_retires_after_its_crawls_without_losing_one_in_flight(tmp_path, site):
    site.publish(matching_article("azaz-one", "Fighting near Azaz"))
    config = write_config(tmp_path, sources=[], token=None, api_url=None)
    with config.open("a") as f:  # the crawl section is the file's last
        f.write("  max_crawls_per_worker: 2\n")
    worker = WorkerProcess(config)
    try:
        for n in range(1, 4):  # the third is in flight when the second ends
            worker.order(CrawlOrder(id=n, source=_source(f"s{n}", f"{site.url}/fault/slow-feed?seconds={n * 0.3}")))
        done = worker.finished(3)
        assert {r["result"] for r in done.values()} == {"ok"}
        assert any(r["kind"] == "retiring" and "2 crawls done" in r["reason"] for r in worker.reports)
        assert worker.proc.wait(timeout=20) == 0  # ended by itself, once its crawls were done
    finally:
        worker.close()
