"""Crawl subprocesses: the cap on parallel crawls, the timeout that kills a hung crawl (and its
workers), crashes recorded with their reason, and the next crawl running regardless. The child
here is a small Python script standing in for ``lookout crawl``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import textwrap
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from core.store import crawl_runs, sources, utcnow
from lookout.crawljobs import CrawlJobs, crawl_command, mark_interrupted_runs

CHILD = textwrap.dedent(
    """
    import os, signal, subprocess, sys, time
    name, log = sys.argv[1], sys.argv[2]
    with open(log, "a") as f:
        f.write(f"start {name} {time.monotonic()}\\n")
    if name.startswith("hang"):
        # A worker in the same group, like Scrapy's extraction pool: it must die too.
        worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        with open(log, "a") as f:
            f.write(f"worker {worker.pid}\\n")
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a truly stuck crawl ignores SIGTERM
        time.sleep(120)
    elif name.startswith("crash"):
        print("Traceback ...", file=sys.stderr)
        print("RuntimeError: feed parser exploded", file=sys.stderr)
        sys.exit(3)
    elif name.startswith("oom"):
        os.kill(os.getpid(), signal.SIGKILL)
    else:
        time.sleep(0.1)
    with open(log, "a") as f:
        f.write(f"end {name} {time.monotonic()}\\n")
    """
)


def _jobs(store, tmp_path: Path, *, parallel=2, timeout=5.0, finished=None) -> tuple[CrawlJobs, Path]:
    """Crawl jobs on the stand-in child. A SIGTERM the child ignores is followed by SIGKILL after
    0.2 s: what is under test is that the kill comes, not how long the grace is."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    log = tmp_path / "child.log"
    jobs = CrawlJobs(
        store,
        command=lambda name: [sys.executable, str(script), name, str(log)],
        parallel=parallel,
        timeout=timedelta(seconds=timeout),
        kill_grace=0.2,
        on_finished=finished,
        source_info=lambda name: ("feed", f"http://127.0.0.1/{name}.xml"),
    )
    return jobs, log


def _wait_for_line(log: Path, prefix: str, within: float = 30) -> str:
    """The first line of the child's log starting with ``prefix``, once the child has written it."""
    deadline = time.monotonic() + within
    while True:
        lines = log.read_text().splitlines() if log.exists() else []
        found = next((line for line in lines if line.startswith(prefix)), None)
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"the child never wrote {prefix!r}: {lines}")
        time.sleep(0.01)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_hung_crawl_is_killed_with_its_workers_and_the_next_runs(sqlite_store, tmp_path):
    finished = []
    jobs, log = _jobs(sqlite_store, tmp_path, timeout=0.5, finished=finished.append)

    async def scenario():
        t0 = time.monotonic()
        hung = await jobs.run("hang-site")
        took = time.monotonic() - t0
        after = await jobs.run("good-site")
        return hung, took, after

    hung, took, after = asyncio.run(scenario())
    assert hung.result == "timeout"
    assert "timed out" in hung.reason and "killed" in hung.reason
    # Killed at 0.5 s + 0.2 s grace; generous for a loaded CI box, far below the 120 s hang.
    assert took < 15, "the crawl must be killed near its timeout"
    worker = int(next(line.split()[1] for line in log.read_text().splitlines() if line.startswith("worker")))
    deadline = time.monotonic() + 5
    while _alive(worker) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not _alive(worker), "the hung crawl's worker process survived"
    assert after.result == "ok"
    assert [o.source for o in finished] == ["hang-site", "good-site"]
    with sqlite_store.connect() as conn:
        runs = conn.execute(select(crawl_runs).order_by(crawl_runs.c.id)).mappings().all()
        src = conn.execute(select(sources).where(sources.c.name == "hang-site")).mappings().one()
    assert [(r["source"], r["result"]) for r in runs] == [("hang-site", "timeout"), ("good-site", "ok")]
    assert "timed out" in runs[0]["error"]
    assert src["last_result"] == "timeout" and "timed out" in src["last_error"]


def test_crash_and_oom_are_recorded_with_reason(store, tmp_path):
    jobs, _ = _jobs(store, tmp_path)

    async def scenario():
        return await jobs.run("crash-site"), await jobs.run("oom-site")

    crash, oom = asyncio.run(scenario())
    assert crash.result == "failed" and crash.returncode == 3
    assert crash.reason == "exit code 3: RuntimeError: feed parser exploded"
    assert oom.result == "failed" and "SIGKILL" in oom.reason
    with store.connect() as conn:
        rows = {r["name"]: r for r in conn.execute(select(sources)).mappings()}
        runs = conn.execute(select(crawl_runs.c.source, crawl_runs.c.result)).all()
    assert rows["crash-site"]["last_error"] == crash.reason
    assert rows["oom-site"]["last_result"] == "failed"
    assert sorted(runs) == [("crash-site", "failed"), ("oom-site", "failed")]


def test_at_most_parallel_crawls_at_once(sqlite_store, tmp_path):
    jobs, log = _jobs(sqlite_store, tmp_path, parallel=2)

    async def scenario():
        return await asyncio.gather(*(jobs.run(f"site-{i}") for i in range(5)))

    outcomes = asyncio.run(scenario())
    assert all(o.ok for o in outcomes)
    events = []
    for line in log.read_text().splitlines():
        kind, _name, at = line.split()
        events.append((float(at), 1 if kind == "start" else -1))
    running = peak = 0
    for _, delta in sorted(events):
        running += delta
        peak = max(peak, running)
    assert peak == 2


def test_stop_kills_running_crawls_and_records_them(sqlite_store, tmp_path):
    jobs, log = _jobs(sqlite_store, tmp_path, timeout=60)

    async def scenario():
        task = asyncio.create_task(jobs.run("hang-site"))
        # Mid-crawl: the child has started its worker (it ignores SIGTERM from then on).
        await asyncio.to_thread(_wait_for_line, log, "worker")
        assert not task.done()
        t0 = time.monotonic()
        await jobs.stop(grace=0.2)
        outcome = await task
        refused = await jobs.run("good-site")
        return outcome, time.monotonic() - t0, refused

    outcome, took, refused = asyncio.run(scenario())
    assert outcome.result == "stopped"
    assert took < 15  # grace 0.2 s then killed; the child would hang 120 s
    assert refused.result == "stopped"  # nothing new starts while stopping
    with sqlite_store.connect() as conn:
        results = conn.execute(select(crawl_runs.c.result)).scalars().all()
    assert results == ["stopped"]


def test_unfinished_runs_of_a_dead_service_are_closed(sqlite_store):
    with sqlite_store.begin() as conn:
        conn.execute(crawl_runs.insert().values(source="a", started_at=utcnow() - timedelta(minutes=5)))
    assert mark_interrupted_runs(sqlite_store, utcnow()) == 1
    with sqlite_store.connect() as conn:
        row = conn.execute(select(crawl_runs)).mappings().one()
    assert row["result"] == "failed" and row["finished_at"] is not None


def test_child_command_names_config_rules_and_source():
    cmd = crawl_command("/etc/lookout.yaml", ["/snap/r1"], "enab-baladi")
    assert cmd[0] == sys.executable
    assert cmd[1:] == ["-m", "lookout.crawljobs", "--config", "/etc/lookout.yaml", "--rules", "/snap/r1",
                       "enab-baladi"]


PARENT = textwrap.dedent(
    """
    import subprocess, sys, time
    child = subprocess.Popen(sys.argv[1:], start_new_session=True)  # as CrawlJobs starts it
    print(child.pid, flush=True)
    time.sleep(300)
    """
)


def _group_alive(pgid: int) -> list[int]:
    """Live (non-zombie) processes of a process group."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(entry.name))
    return pids


@pytest.mark.e2e
def test_crawl_child_dies_with_a_killed_service(tmp_path):
    """SIGKILL of the service (or the OOM killer) must not leave its crawl running as an orphan
    next to the crawls of the service that replaces it."""
    import signal
    import subprocess

    from service_harness import ROOT, write_config
    from support.newssite import NewsSite

    from core.store import Store

    with NewsSite() as site:
        config = write_config(
            tmp_path / "svc", sources=[{"name": "stuck", "feed": f"{site.url}/fault/slow?seconds=90",
                                        "every": "1h"}],
            token=None, api_url=None, timeout="120s", download_timeout="120s",
        )
        parent = subprocess.Popen(
            [sys.executable, "-c", PARENT, *crawl_command(str(config), [], "stuck")],
            stdout=subprocess.PIPE, text=True, cwd=config.parent, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        child = int(parent.stdout.readline())
        try:
            store = Store(f"sqlite:///{config.parent / 'var' / 'lookout.db'}", create=False)
            deadline = time.monotonic() + 60
            started = False
            while time.monotonic() < deadline and not started:  # the child is mid-crawl
                time.sleep(0.05)
                try:
                    with store.connect() as conn:
                        started = conn.execute(select(crawl_runs.c.id)).first() is not None
                except Exception:
                    pass  # tables not created yet
            store.dispose()
            assert started and _group_alive(child), "the crawl child never started"
            parent.kill()
            parent.wait(timeout=10)
            deadline = time.monotonic() + 20
            while _group_alive(child) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _group_alive(child), "the crawl outlived its service"
        finally:
            if parent.poll() is None:
                parent.kill()
                parent.wait()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child, signal.SIGKILL)
