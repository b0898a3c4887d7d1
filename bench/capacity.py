"""Capacity bench (issue 12): how many small feeds one ``lookout run`` keeps fresh, and at what
CPU and memory cost per poll, next to a bare asyncio conditional-GET poller as the anchor.

For each N of ``--sizes``: N RSS feeds on H loopback hosts (bench/feedfarm.py: 127.0.0.2 ...,
one politeness slot each, 304 once fetched), all ``every: --every``, crawled by ``lookout run``
delivering to the fake Bot API (tests/fakebotapi.py) where one subscriber typed ``/watch Azaz``.
After the warm-up (every feed fetched once with 200, its 3 articles read, and no feed left
overdue by the busy first crawls: the "warm-up s" column, from the service's start) the bench
measures a window of ``--minutes``:

* polls per minute against what was due (N × 60 / interval); a service that polls in bursts
  makes this depend on how many bursts the window holds, so the details below the table also
  give the median interval between a feed's polls and the busiest 10 s;
* fresh: the share of feeds never left unpolled longer than interval + 30 s in the window;
* CPU ms per poll of the whole service process tree (bench/proctree.py: the service and every
  crawl process or worker under it), and the cores that makes (CPU seconds / wall seconds);
* peak RSS of the tree (whole run, warm-up included: the sum over its live processes);
* publish → alert: one matching article (it names Azaz) published into one feed early in the
  window, until the fake Bot API accepted the alert (it includes up to one poll interval).

The service is then stopped and the anchor runs in its own process over the same feeds at the same
interval for ``--anchor-minutes`` (after its own warm-up round): httpx.AsyncClient, one request at
a time per host, ETag / Last-Modified kept per feed, feedparser on a 200; its CPU per poll is
``time.process_time`` over its window. The window's CPU includes the one changed feed and its
article, which is noise next to hundreds of unchanged polls.

Targets: an unchanged poll costs at most 3x the anchor's CPU; 10,000 sources at a 10-minute
interval stay fresh using under half of one core while feeds are unchanged; peak RSS under 1 GB.

Full run (10-minute interval, each size takes warm-up + 11 min + the anchor's 2 min)::

    .venv/bin/python bench/capacity.py [--sizes 1000,3000,10000] [--hosts 200] [--workers 1]

Short run (60 s interval: the same rates in a few minutes per size)::

    .venv/bin/python bench/capacity.py --every 60 --minutes 3 [--sizes 1000,3000,10000]

``--minutes`` defaults to the interval + 1 minute (each feed polled at least once after its
warm-up poll). ``--keep DIR`` leaves each size's config, database, service log and every feed's
poll times (polls.json) under DIR.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import multiprocessing
import os
import re
import shutil
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

from fakebotapi import FakeBotAPI
from feedfarm import FeedCounts, FeedFarm
from proctree import ProcTree, read_stat
from service_harness import RULES, ServiceProcess, free_port, matching_article

if TYPE_CHECKING:
    from argparse import Namespace

    import httpx
    from fakebotapi import SentMessage

    Validators = dict[str, tuple[str | None, str | None]]  # feed URL -> (ETag, Last-Modified)

CHAT = 7001
FRESH_SLACK = 30.0  # seconds a poll may come after its interval and still count as fresh
SETTLE = 3.0  # seconds without an article fetch that end the warm-up's article reading


@dataclass
class Window:
    """The service's measured window."""

    seconds: float = 0.0
    polls: int = 0
    ok: int = 0  # 200s: changed feeds, or a warm-up that ran into the window
    fresh: int = 0
    never: int = 0  # feeds not polled at all in the window
    cpu: float = 0.0  # service tree CPU seconds in the window
    peak_rss: int = 0  # bytes, whole run
    warmup: float | None = None  # seconds from start to the steady state (the window's start); None: not reached
    latency: float | None = None  # publish -> alert, seconds
    published: tuple[int, float] | None = None  # the matching article: feed, seconds after the window began
    requests: dict[str, int] = field(default_factory=dict)  # farm's counts in the window, by kind
    errors: list[str] = field(default_factory=list)  # service log lines worth reading
    gaps: list[float] = field(default_factory=list)  # each feed's largest gap in the window, sorted
    median_interval: float = 0.0  # between consecutive polls of a feed, both in the window
    busiest_10s: int = 0  # most polls in one 10-second slice of the window: lock-step shows here


@dataclass
class Anchor:
    seconds: float = 0.0
    polls: int = 0
    cpu: float = 0.0
    answers: dict[str, int] = field(default_factory=dict)


@dataclass
class Row:
    n: int
    every: int
    service: Window
    anchor: Anchor

    @property
    def due_per_min(self) -> float:
        return self.n * 60 / self.every

    @property
    def service_ms(self) -> float | None:
        return self.service.cpu * 1000 / self.service.polls if self.service.polls else None

    @property
    def anchor_ms(self) -> float | None:
        return self.anchor.cpu * 1000 / self.anchor.polls if self.anchor.polls else None


# -- the service side ------------------------------------------------------------------------------
def write_bench_config(directory: Path, farm: FeedFarm, fake: FakeBotAPI, args: Namespace) -> Path:
    """lookout.yaml, sources.yaml and the example rules in ``directory``: the crawl section at the
    service's defaults except what the flags set."""
    (directory / "rules.yaml").write_text(RULES.read_text(encoding="utf-8"), encoding="utf-8")
    sources = "".join(
        f'  - name: feed-{i}\n    feed: "{farm.feed_url(i)}"\n    every: {args.every}s\n' for i in range(farm.n)
    )
    (directory / "sources.yaml").write_text("sources:\n" + sources, encoding="utf-8")
    crawl = f"  workers: {args.workers}\n"
    if args.parallel is not None:
        crawl += f"  parallel: {args.parallel}\n"
    config = directory / "lookout.yaml"
    config.write_text(
        "database: sqlite:///var/lookout.db\n"
        "rules: [rules.yaml]\n"
        "sources: sources.yaml\n"
        f'telegram:\n  token: "{fake.token}"\n  api_url: {fake.url}\n'
        f"crawl:\n{crawl}",
        encoding="utf-8",
    )
    return config


def subscribe(fake: FakeBotAPI) -> None:
    fake.inject_message(CHAT, "/watch Azaz")
    if not fake.wait_for(lambda: bool(fake.messages(CHAT)), timeout=60):
        raise RuntimeError("the bot did not answer /watch Azaz within 60 s")


def wait_warm(farm: FeedFarm, svc: ServiceProcess, started: float, timeout: float, limit: float) -> bool:
    """Wait for the steady state: every feed answered 200 once, the article fetches that follow
    over, and no feed overdue (each polled within ``limit`` seconds: the second polls a busy
    warm-up delayed are made). False if ``timeout`` (from ``started``) ran out first."""
    deadline = started + timeout
    next_note = time.monotonic() + 30
    settled = False
    while time.monotonic() < deadline:
        _check_alive(svc)
        snap = farm.snapshot()
        warmed = sum(1 for f in snap if f.ok)
        if warmed == farm.n and not settled:
            _settle(farm, svc, deadline)
            settled = True
            continue
        overdue = sum(1 for f in snap if f.times and time.monotonic() - f.times[-1] > limit)
        if settled and not overdue:
            return True
        if time.monotonic() >= next_note:
            _note(f"  warm-up: {warmed}/{farm.n} feeds fetched, {overdue} overdue, "
                  f"after {time.monotonic() - started:.0f}s")
            next_note += 30
        time.sleep(1)
    warmed = sum(1 for f in farm.snapshot() if f.ok)
    _note(f"  warm-up incomplete after {timeout:.0f}s: {warmed}/{farm.n} feeds fetched; measuring anyway")
    return False


def _settle(farm: FeedFarm, svc: ServiceProcess, deadline: float) -> None:
    """The warm-up's article pages are read (3 a feed) or none came for ``SETTLE`` seconds."""
    last, quiet_since = farm.counts["article"], time.monotonic()
    while time.monotonic() < deadline and last < 3 * farm.n:
        _check_alive(svc)
        time.sleep(0.5)
        now = farm.counts["article"]
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif time.monotonic() - quiet_since >= SETTLE:
            return


def measure_window(farm: FeedFarm, fake: FakeBotAPI, svc: ServiceProcess, tree: ProcTree,
                   args: Namespace) -> Window:
    """The measured minutes: polls, freshness, CPU; the matching article published early on."""
    window = Window()
    seconds = args.minutes * 60
    before = collections.Counter(farm.counts)
    ok0 = sum(f.ok for f in farm.snapshot())
    t0, c0 = time.monotonic(), tree.cpu()
    publish_at = t0 + min(10.0, seconds / 10)
    publication = None
    while (now := time.monotonic()) < t0 + seconds:
        _check_alive(svc)
        if publication is None and now >= publish_at:
            i = farm.n // 2
            title = f"Capacity bench report from the Azaz front, feed {i}"
            publication = farm.publish(i, matching_article(f"capacity-{farm.n}-{i}", title, i))
        time.sleep(min(1.0, max(0.0, t0 + seconds - now)))
    t1, c1 = time.monotonic(), tree.cpu()
    window.seconds, window.cpu = t1 - t0, c1 - c0
    window.requests = dict(collections.Counter(farm.counts) - before)
    feeds = farm.snapshot()
    window.ok = sum(f.ok for f in feeds) - ok0
    _count_polls(window, feeds, t0, t1, args.every + FRESH_SLACK)
    if publication is not None:
        # Outside the CPU window: a 10-minute interval may deliver after the window ends.
        alert = _wait_alert(fake, publication.title, timeout=args.every + 60)
        window.latency = alert.at - publication.at if alert else None
        window.published = (publication.feed, publication.at - t0)
    return window


def _count_polls(window: Window, feeds: list[FeedCounts], t0: float, t1: float, limit: float) -> None:
    intervals: list[float] = []
    slices: collections.Counter[int] = collections.Counter()
    for f in feeds:
        inside = [t for t in f.times if t0 <= t <= t1]
        window.polls += len(inside)
        window.never += not inside
        window.gaps.append(largest_gap(f.times, t0, t1))
        window.fresh += window.gaps[-1] <= limit
        intervals += [b - a for a, b in itertools.pairwise(inside)]
        slices.update(int((t - t0) // 10) for t in inside)
    window.gaps.sort()
    window.median_interval = statistics.median(intervals) if intervals else 0.0
    window.busiest_10s = max(slices.values(), default=0)


def largest_gap(times: list[float], t0: float, t1: float) -> float:
    """The longest a feed went unpolled within [t0, t1]: from its last poll before t0 (t0 if
    none), between its polls, and from its last poll to t1."""
    before = [t for t in times if t <= t0]
    points = [before[-1] if before else t0, *(t for t in times if t0 < t <= t1), t1]
    return max(b - a for a, b in itertools.pairwise(points))


def _wait_alert(fake: FakeBotAPI, title: str, timeout: float) -> SentMessage | None:
    def hit() -> list[SentMessage]:
        return [m for m in fake.messages(CHAT) if title in m.visible]

    fake.wait_for(lambda: bool(hit()), timeout=timeout)
    found = hit()
    return found[0] if found else None


def run_service(farm: FeedFarm, fake: FakeBotAPI, directory: Path, args: Namespace) -> Window:
    config = write_bench_config(directory, farm, fake, args)
    svc = ServiceProcess(config, free_port())
    started = time.monotonic()
    svc.start()
    assert svc.proc is not None
    tree = ProcTree(svc.proc.pid).start()
    try:
        svc.wait_healthy(180)
        subscribe(fake)
        # Default: room for two intervals, and for a service that reads 2 new feeds a second.
        warm_timeout = args.warmup_minutes * 60 if args.warmup_minutes else max(2 * args.every + 300, farm.n / 2)
        steady = wait_warm(farm, svc, started, warm_timeout, args.every + FRESH_SLACK)
        warmup = time.monotonic() - started if steady else None
        window = measure_window(farm, fake, svc, tree, args)
        window.warmup = warmup
        window.peak_rss = tree.peak_rss
        _stop_service(svc, window)
        window.errors += log_problems(svc.log())
        return window
    finally:
        tree.stop()
        svc.kill_if_running()
        _kill_leftovers(tree)


def _stop_service(svc: ServiceProcess, window: Window) -> None:
    try:
        code = svc.terminate(timeout=60)
    except AssertionError:
        window.errors.append("service ignored SIGTERM for 60 s: killed")
        return
    if code != 0:
        window.errors.append(f"service exit code on SIGTERM: {code}")


def _kill_leftovers(tree: ProcTree) -> None:
    """Kill what is left of the service's tree (crawl processes, workers): only processes seen
    under the service this bench started, each checked by start time against pid reuse."""
    for pid, start in tree.members():
        stat = read_stat(pid)
        if stat is not None and stat.start == start:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def log_problems(log: str, limit: int = 8) -> list[str]:
    """The service log's ERROR and CRITICAL lines, each with the exception its traceback ends
    with, counted by message (timestamps dropped), most frequent first."""
    lines = log.splitlines()
    found: collections.Counter[str] = collections.Counter()
    for k, line in enumerate(lines):
        if " ERROR " in line or " CRITICAL " in line:
            message = line.split(" ", 2)[-1]  # without the date and time
            exception = _exception_after(lines, k + 1)
            found[f"{message} -> {exception}" if exception else message] += 1
    out = [f"{count}x {message}" for message, count in found.most_common(limit)]
    if len(found) > limit:
        out.append(f"... {len(found) - limit} more kinds of error in the service log")
    return out


_EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(: |$)")  # "sqlite3.OperationalError: database is locked"


def _exception_after(lines: list[str], start: int) -> str | None:
    """The last exception line of the traceback in the log record continuing at ``lines[start]``
    (chained ones included: the outermost), or None when the record has no traceback."""
    last, in_traceback = None, False
    for line in lines[start:]:
        if line[:4].isdigit():  # the next log record ("2026-...")
            break
        if line.startswith("Traceback"):
            in_traceback = True
        elif in_traceback and _EXCEPTION_LINE.match(line):
            last = line
    return last


def _check_alive(svc: ServiceProcess) -> None:
    if svc.proc is not None and svc.proc.poll() is not None:
        tail = "\n".join(svc.log().splitlines()[-30:])
        raise RuntimeError(f"lookout run exited with {svc.proc.returncode}; log tail:\n{tail}")


# -- the anchor --------------------------------------------------------------------------------------
def run_anchor(farm: FeedFarm, args: Namespace) -> Anchor:
    """The bare poller in its own process (its CPU is its own, not the farm's or the bench's)."""
    by_host = [[farm.feed_url(i) for i in range(h, farm.n, farm.hosts)] for h in range(farm.hosts)]
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    proc = ctx.Process(target=anchor_process, args=(by_host, farm.n, args.every, args.anchor_minutes * 60, results))
    proc.start()
    try:
        # The warm-up round is quick; the window is known: wait for it with room to spare.
        out = results.get(timeout=args.anchor_minutes * 60 + 600)
        proc.join(timeout=30)
        return Anchor(**out)
    finally:
        if proc.is_alive():
            proc.kill()
            proc.join()


def anchor_process(by_host: list[list[str]], n: int, every: float, seconds: float,
                   results: multiprocessing.Queue) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the bench, which kills this process
    results.put(asyncio.run(_anchor(by_host, n, every, seconds)))


async def _anchor(by_host: list[list[str]], n: int, every: float, seconds: float) -> dict:
    import httpx

    validators: Validators = {}
    answers: collections.Counter[str] = collections.Counter()
    # One client per host, one connection each: the politeness slot, and httpcore's pool scans
    # all its connections for every request (a shared pool of 200 made a poll cost 20 ms).
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        # verify=False: plain http, and loading the CA store per client costs 50 ms each.
        clients = [await stack.enter_async_context(
            httpx.AsyncClient(limits=limits, timeout=30, trust_env=False, verify=False)) for _ in by_host]
        # Warm-up: every feed once (200, parsed), one request at a time per host.
        await asyncio.gather(*(
            _poll_all(c, urls, validators, answers) for c, urls in zip(clients, by_host, strict=True)
        ))
        answers.clear()
        loop = asyncio.get_running_loop()
        t0, c0 = loop.time(), time.process_time()
        polls = await asyncio.gather(*(
            _host_rhythm(c, urls, h, len(by_host), n, every, t0, t0 + seconds, validators, answers)
            for h, (c, urls) in enumerate(zip(clients, by_host, strict=True))
        ))
        cpu, wall = time.process_time() - c0, loop.time() - t0
    return {"seconds": wall, "polls": sum(polls), "cpu": cpu, "answers": dict(answers)}


async def _poll_all(client: httpx.AsyncClient, urls: list[str], validators: Validators,
                    answers: collections.Counter[str]) -> None:
    for url in urls:
        await _poll(client, url, validators, answers)


async def _host_rhythm(client: httpx.AsyncClient, urls: list[str], h: int, hosts: int, n: int, every: float,
                       t0: float, t1: float, validators: Validators, answers: collections.Counter[str]) -> int:
    """Poll this host's feeds at their due times until t1: feed i (= h + j * hosts) is due at
    t0 + (i / n) * every, then every ``every`` seconds, so the N feeds' polls spread evenly."""
    loop = asyncio.get_running_loop()
    polls, rnd = 0, 0
    while True:
        for j, url in enumerate(urls):
            due = t0 + ((h + j * hosts) / n + rnd) * every
            if due >= t1:
                return polls
            await asyncio.sleep(max(0.0, due - loop.time()))
            await _poll(client, url, validators, answers)
            polls += 1
        rnd += 1


async def _poll(client: httpx.AsyncClient, url: str, validators: Validators, answers: collections.Counter[str]) -> None:
    """One conditional GET; a 200 is parsed with feedparser, as any feed reader would."""
    import feedparser

    etag, modified = validators.get(url, (None, None))
    headers = {}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    try:
        r = await client.get(url, headers=headers)
    except Exception as exc:  # a bench counts failures, it does not stop on them
        answers[type(exc).__name__] += 1
        return
    answers[str(r.status_code)] += 1
    if r.status_code == 200:
        feedparser.parse(r.content, response_headers={"content-location": url,
                                                        "content-type": r.headers.get("content-type", "")})
        validators[url] = (r.headers.get("etag"), r.headers.get("last-modified"))


# -- report ------------------------------------------------------------------------------------------
HEADER = (f"{'N':>6} {'every':>6} {'due/min':>8} {'polls/min':>9} {'fresh':>6} {'svc ms/poll':>11} "
          f"{'anchor ms':>9} {'ratio':>7} {'cores':>6} {'RSS MB':>7} {'alert s':>7} {'warm-up s':>9}")


def format_row(row: Row) -> str:
    s = row.service
    polls_min = s.polls * 60 / s.seconds if s.seconds else 0.0
    ratio = row.service_ms / row.anchor_ms if row.service_ms and row.anchor_ms else None
    return (f"{row.n:>6} {row.every:>5}s {row.due_per_min:>8.0f} {polls_min:>9.0f} "
            f"{100 * s.fresh / row.n:>5.1f}% {_num(row.service_ms, 11, 2)} {_num(row.anchor_ms, 9, 3)} "
            f"{_num(ratio, 6, 1)}x {s.cpu / s.seconds if s.seconds else 0:>6.2f} {s.peak_rss / 2**20:>7.0f} "
            f"{_num(s.latency, 7, 1)} {_num(s.warmup, 9, 0)}")


def format_details(row: Row) -> list[str]:
    s, a = row.service, row.anchor
    req = ", ".join(f"{k} {v}" for k, v in sorted(s.requests.items())) or "none"
    out = [
        f"  N={row.n}: service window {s.seconds:.0f}s, {s.polls} polls ({req}), CPU {s.cpu:.1f}s, "
        f"{s.ok} answered 200, {row.n - s.fresh} stale, {s.never} never polled in the window",
        f"  N={row.n}: largest gap between a feed's polls in the window: p50 {_pct(s.gaps, 50):.0f}s, "
        f"p95 {_pct(s.gaps, 95):.0f}s, max {_pct(s.gaps, 100):.0f}s (fresh: <= {row.every + FRESH_SLACK:.0f}s); "
        f"median interval {s.median_interval:.1f}s; busiest 10 s: {s.busiest_10s} polls "
        f"(evenly spread: {row.n * 10 / row.every:.0f})",
        f"  N={row.n}: anchor window {a.seconds:.0f}s, {a.polls} polls "
        f"({', '.join(f'{k} {v}' for k, v in sorted(a.answers.items())) or 'none'}), CPU {a.cpu:.2f}s",
    ]
    if s.published is not None:
        feed, at = s.published
        alert = f"alert {s.latency:.1f}s later" if s.latency is not None else "no alert"
        out.append(f"  N={row.n}: matching article published into feed {feed} at +{at:.0f}s: {alert}")
    out += [f"  N={row.n}: service: {line}" for line in s.errors]
    return out


def _pct(values: list[float], p: float) -> float:
    """The p-th percentile of sorted ``values`` (nearest rank; 0 when empty)."""
    if not values:
        return 0.0
    return values[min(len(values) - 1, max(0, round(p / 100 * len(values)) - 1))]


def _num(value: float | None, width: int, digits: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.{digits}f}"


def _note(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- main ----------------------------------------------------------------------------------------------
def bench_size(n: int, args: Namespace) -> Row:
    directory = Path(tempfile.mkdtemp(prefix=f"lookout-capacity-{n}-", dir=args.keep))
    try:
        with FeedFarm(n, hosts=args.hosts) as farm, FakeBotAPI() as fake:
            _note(f"N={n}: {farm.hosts} hosts on port {farm.port}; starting lookout run in {directory}")
            window = run_service(farm, fake, directory, args)
            if args.keep is not None:
                _dump_polls(farm, directory / "polls.json")
            _note(f"N={n}: service measured; anchor for {args.anchor_minutes:g} min")
            anchor = run_anchor(farm, args)
        return Row(n, args.every, window, anchor)
    finally:
        if args.keep is None:
            shutil.rmtree(directory, ignore_errors=True)


def _dump_polls(farm: FeedFarm, path: Path) -> None:
    """Every feed's poll times (monotonic seconds) and answers, for a closer look at staleness."""
    feeds = [{"url": farm.feed_url(i), "times": f.times, "ok": f.ok, "not_modified": f.not_modified}
             for i, f in enumerate(farm.snapshot())]
    path.write_text(json.dumps({"published": [p.__dict__ for p in farm.published], "feeds": feeds}))


def parse_args(argv: list[str] | None = None) -> Namespace:
    parser = argparse.ArgumentParser(description=" ".join((__doc__ or "").split("\n\n")[0].split()))
    parser.add_argument("--sizes", default="1000,3000,10000", help="comma-separated source counts")
    parser.add_argument("--hosts", type=int, default=200, help="loopback hosts the feeds spread over")
    parser.add_argument("--every", type=int, default=600, help="poll interval of every source, seconds")
    parser.add_argument("--minutes", type=float, default=None, help="measured window (default: interval + 1 min)")
    parser.add_argument("--anchor-minutes", type=float, default=2.0, help="the bare poller's window")
    parser.add_argument("--warmup-minutes", type=float, default=None,
                        help="longest wait for the steady state (default: 2 intervals + 5 min, at least N/2 s)")
    parser.add_argument("--workers", type=int, default=1, help="crawl.workers of the service")
    parser.add_argument("--parallel", type=int, default=None, help="crawl.parallel (default: the service's)")
    parser.add_argument("--keep", type=Path, default=None, metavar="DIR",
                        help="keep each size's config, database and service log under DIR")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if args.minutes is None:
        args.minutes = args.every / 60 + 1
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    return args


def _sigterm(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # unwinds through every finally: service, farm and anchor stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _sigterm)
    rows: list[Row] = []
    failed = False
    try:
        for n in args.sizes:
            try:
                row = bench_size(n, args)
            except (RuntimeError, AssertionError) as exc:  # the service died or never got healthy
                _note(f"N={n}: failed: {exc}")
                failed = True
                continue
            rows.append(row)
            _note(HEADER)
            _note(format_row(row))
    except KeyboardInterrupt:
        _note("interrupted: service, farm and anchor stopped")
        return 130
    finally:
        if rows:
            print(HEADER)
            for row in rows:
                print(format_row(row))
            for row in rows:
                print("\n".join(format_details(row)))
            print(f"targets: ratio <= 3x; 10,000 sources every 600s fresh (within interval + {FRESH_SLACK:.0f}s) "
                  "with cores < 0.5; peak RSS < 1024 MB")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
