"""A crawl worker process: one long-lived crawl engine (``crawler.worker``) fed by the service.

``lookout run`` starts ``crawl.workers`` of these (``python -m lookout.worker``) and talks to each
over its stdin and stdout (``lookout.workerproto``). Made once per worker and kept: the store's
connections, the gazetteer, the compiled rules, the extraction pool and the Scrapy engine. An
order naming a rules version the worker has not loaded yet loads it (in a thread) and replaces
the extraction pool, whose processes match with the rules: hot reload, no restart.

The worker dies with the service (the kernel's parent-death signal; and stdin closing), and its
extraction processes die with it. After ``crawl.max_crawls_per_worker`` crawls, or once its
memory is above ``crawl.max_worker_rss``, it says it is retiring, takes no new crawl, finishes the
ones it holds and exits 0; the service starts its replacement at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
from typing import TYPE_CHECKING, BinaryIO

from pydantic import ValidationError

from core.lifetime import children_of, die_with_parent, rss_bytes
from core.logs import setup_logging
from core.store import Store
from crawler.extract import ExtractionPool
from crawler.logsetup import quiet_libraries
from crawler.runner import RunRecorder, crawl_settings
from crawler.runtime import CrawlRuntime
from crawler.worker import CrawlEngine, run_engine
from lookout import __version__
from lookout.config import Config, load_config
from lookout.loaders import gazetteer_for
from lookout.pipeline import PipelineIngestor
from lookout.workerproto import TO_WORKER, Alive, CrawlDoneReport, CrawlOrder, Ready, Retiring, RulesRef, StopOrder
from rules.loader import load_ruleset

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crawler.state import SourceStats
    from rules.gazetteer import Gazetteer
    from rules.index import CompiledRuleset

log = logging.getLogger(__name__)

HEARTBEAT = 2.0  # seconds between ``Alive`` reports: the service kills a worker silent for long


class WorkerRules:
    """The compiled rules this worker matches with, by version."""

    def __init__(self, config: Config, gazetteer: Gazetteer, first: RulesRef | None):
        self.gazetteer = gazetteer
        self.version = first.version if first else ""
        paths = list(first.paths) if first else config.rule_paths()
        self.current: CompiledRuleset = load_ruleset(paths, gazetteer=gazetteer)

    def load(self, ref: RulesRef) -> CompiledRuleset:
        """Blocking: the rules files of ``ref`` loaded (the service accepted them already)."""
        return load_ruleset(list(ref.paths), gazetteer=self.gazetteer)


class ServiceLink:
    """The worker's loop: orders in from stdin, reports out on stdout."""

    def __init__(self, config: Config, runtime: CrawlRuntime, rules: WorkerRules, out: BinaryIO):
        self.config = config
        self.runtime = runtime
        self.rules = rules
        self.out = out
        self.crawls_done = 0
        self.running: dict[int, asyncio.Future[SourceStats]] = {}
        self.retiring = False
        self._retired = asyncio.Event()  # retiring, and the last crawl has ended
        self._reload: asyncio.Lock | None = None

    def send(self, message: Ready | CrawlDoneReport | Alive | Retiring) -> None:
        with contextlib.suppress(BrokenPipeError):  # the service is gone: stdin says so next
            self.out.write(message.line())
            self.out.flush()

    async def serve(self, engine: CrawlEngine) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 22)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
        self._reload = asyncio.Lock()
        self.send(Ready(pid=os.getpid()))
        beat = loop.create_task(self._heartbeat())
        try:
            while not (self.retiring and not self.running):
                line = await self._next_line(reader)
                if line is None:  # the service closed our stdin (or died): stop now
                    return
                if not line.strip():
                    continue
                try:
                    order = TO_WORKER.validate_json(line)
                except ValidationError as exc:
                    log.error("worker: unreadable order from the service: %s", exc)
                    continue
                if isinstance(order, StopOrder):
                    await self._drain(order.grace)
                    return
                await self._take(engine, order)
        finally:
            beat.cancel()

    async def _next_line(self, reader: asyncio.StreamReader) -> bytes | None:
        """The next order; None once the service closed stdin, or once retiring and idle."""
        read = asyncio.ensure_future(reader.readline())
        idle = asyncio.ensure_future(self._retired.wait())
        await asyncio.wait({read, idle}, return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        if read.done():
            return read.result() or None
        read.cancel()
        return None

    async def _take(self, engine: CrawlEngine, order: CrawlOrder) -> None:
        if order.rules is not None and order.rules.version != self.rules.version:
            await self._switch_rules(order.rules)
        future = engine.submit(order.source)
        self.running[order.id] = future
        future.add_done_callback(functools.partial(self._finished, order.id))

    async def _switch_rules(self, ref: RulesRef) -> None:
        assert self._reload is not None
        async with self._reload:
            if ref.version == self.rules.version:
                return
            ruleset = await asyncio.to_thread(self.rules.load, ref)
            old = self.runtime.extractor
            self.runtime.extractor = ExtractionPool(ruleset=ruleset).start()
            self.rules.current, self.rules.version = ruleset, ref.version
            log.info("worker: rules version %s in force", ref.version)
            await asyncio.to_thread(old.retire)

    def _finished(self, order_id: int, done: asyncio.Future[SourceStats]) -> None:
        self.running.pop(order_id, None)
        if self.retiring and not self.running:
            self._retired.set()
        self.crawls_done += 1
        stats = done.result()
        self.send(CrawlDoneReport(
            id=order_id, source=stats.source, result=stats.result, outcome=stats.outcome,
            seconds=round(stats.seconds, 3), fetched=stats.fetched, new=stats.new,
            failed=stats.failures, not_modified=stats.not_modified,
        ))
        self._maybe_retire()

    def _maybe_retire(self, *, check_memory: bool = False) -> None:
        """Retire after ``crawl.max_crawls_per_worker`` crawls, or (``check_memory``: the
        heartbeat's, reading /proc) above ``crawl.max_worker_rss``."""
        if self.retiring:
            return
        limit = self.config.crawl.max_crawls_per_worker
        reason = None
        if self.crawls_done >= limit:
            reason = f"{self.crawls_done} crawls done (crawl.max_crawls_per_worker: {limit})"
        elif check_memory and (rss := self.rss()) > (rss_limit := int(self.config.crawl.max_worker_rss)):
            reason = f"RSS {rss / 2**20:.0f} MiB above crawl.max_worker_rss ({rss_limit / 2**20:.0f} MiB)"
        if reason is not None:
            self.retiring = True
            log.info("worker: retiring: %s", reason)
            self.send(Retiring(reason=reason))
            if not self.running:
                self._retired.set()

    def rss(self) -> int:
        """This worker's memory with its extraction processes'."""
        return rss_bytes() + sum(rss_bytes(pid) for pid in children_of())

    async def _heartbeat(self) -> None:
        while True:
            self.send(Alive(rss=self.rss(), crawls_done=self.crawls_done, running=len(self.running)))
            self._maybe_retire(check_memory=True)
            await asyncio.sleep(HEARTBEAT)

    async def _drain(self, grace: float) -> None:
        if self.running:
            await asyncio.wait(list(self.running.values()), timeout=grace)


def worker_command(config_file: str | None, rules: RulesRef | None) -> list[str]:
    """The command line the service starts a worker with."""
    cmd = [sys.executable, "-m", "lookout.worker"]
    if config_file:
        cmd += ["--config", config_file]
    if rules is not None:
        cmd += ["--rules-version", rules.version]
        for path in rules.paths:
            cmd += ["--rules", path]
    return cmd


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lookout.worker", description="A crawl worker (started by `lookout run`).")
    parser.add_argument("--config")
    parser.add_argument("--rules", action="append", default=[])
    parser.add_argument("--rules-version", default="")
    args = parser.parse_args(argv)
    die_with_parent(os.getppid())
    # Reports go on a private copy of stdout; anything else printing there lands on stderr.
    out = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    config = load_config(args.config)
    token = config.telegram.token
    setup_logging(config.log_level, secrets=[token.get_secret_value()] if token is not None else [])
    quiet_libraries()
    first = RulesRef(version=args.rules_version, paths=tuple(args.rules)) if args.rules else None
    store = Store(config.database_url())
    rules = WorkerRules(config, gazetteer_for(config), first)
    ingestor = PipelineIngestor(store, lambda: rules.current, max_age=config.crawl.max_age)
    # The pool forks before the reactor starts: cheap, and safe.
    runtime = CrawlRuntime(config.crawl, store, ingestor, ExtractionPool(ruleset=rules.current).start())
    recorder = RunRecorder(store)
    link = ServiceLink(config, runtime, rules, out)
    try:
        settings = crawl_settings(config.crawl, version=__version__, debug=config.log_level == "DEBUG")
        run_engine(settings, CrawlEngine(runtime, on_finished=recorder.record), link.serve)
    finally:
        recorder.close()
        runtime.extractor.shutdown()
        runtime.close()
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
