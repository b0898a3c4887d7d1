"""What a crawl shares across its spiders: crawl settings, store, ingestor, the extraction
pool, the article URLs already claimed in this run, and the writer thread that ingests in
batches.

The runner builds one and hands it to each spider as a keyword argument (Scrapy deep-copies
settings, so live objects do not travel there). Plain ``scrapy crawl`` asks the object named by
the ``LOOKOUT_STANDALONE`` setting to build one (the composition root wires it, so the crawler
never imports it).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol, TypeVar, runtime_checkable

from core.store import Store, utcnow
from crawler.state import cached_validators
from crawler.storage import save_article
from crawler.stories import StoryClusterer

if TYPE_CHECKING:
    from collections.abc import Sequence

    from scrapy.settings import BaseSettings

    from crawler.config import CrawlConfig
    from crawler.extract import ExtractionPool
    from crawler.items import Article, ArticleStatus
    from crawler.sources import Source
    from rules.index import CompiledRuleset
    from rules.types import Analysis

log = logging.getLogger(__name__)
T = TypeVar("T")

BATCH_SIZE = 64  # articles per transaction at most
# A batch closes BATCH_WAIT seconds after its first article at the latest (group commit: one
# fsync per batch, not per article). The deadline counts from the first article, not the last:
# the articles of a batch hold their responses' slots in Scrapy until stored, so waiting for a
# batch to fill would stall the crawl once every slot is waiting on the writer.
BATCH_WAIT = 0.05


class Stored(Protocol):
    """What the crawl learns back about an article it handed over."""

    @property
    def status(self) -> ArticleStatus: ...
    @property
    def new_story(self) -> bool: ...


class Ingestor(Protocol):
    """Takes the crawl's cleaned articles: stores them (and may match the rules and queue alerts
    in the same transaction), one ``Stored`` per article in order. ``ruleset`` is what the
    extraction workers match with, or None to match nothing there."""

    def ruleset(self) -> CompiledRuleset | None: ...

    def ingest_many(self, batch: list[Article], analyses: list[Analysis | None]) -> Sequence[Stored]: ...


@runtime_checkable
class Standalone(Protocol):
    """What plain ``scrapy crawl`` needs from outside the crawler: the configuration's crawl
    settings, and a runtime (store, ingestor, sources) built from the configuration file."""

    def apply_settings(self, settings: BaseSettings) -> None: ...

    def runtime(self, settings: BaseSettings) -> CrawlRuntime: ...


@dataclass
class CrawlRuntime:
    """The live objects of one crawl run, shared by its spiders and the store pipeline."""

    crawl: CrawlConfig
    store: Store
    ingestor: Ingestor
    extractor: ExtractionPool
    sources: list[Source] = field(default_factory=list)  # what ``scrapy crawl -a source=NAME`` picks from
    owned_store: bool = False  # close() disposes of the store too
    owned_extractor: bool = False  # close() shuts the pool down too
    claimed: set[str] = field(default_factory=set)  # article URLs some running source crawl fetches
    validators: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)  # by index URL
    writer: IngestWriter | None = None

    def claim(self, url: str) -> bool:
        """True for the first running crawl to want ``url``: two sources on one site (its feed
        and its sitemap, say) crawled at once download each article page once. Only the reactor
        thread calls this; a crawl's claims are released when it ends (``release``)."""
        if url in self.claimed:
            return False
        self.claimed.add(url)
        return True

    def validators_for(self, url: str) -> tuple[str | None, str | None]:
        """The ETag and Last-Modified last saved for an index URL: from memory once read (a
        long-lived worker polls the same feeds all day), else from ``http_cache``. Another
        worker's newer save costs at worst one full answer instead of a 304."""
        known = self.validators.get(url)
        if known is None:
            with self.store.connect() as conn:
                known = self.validators[url] = cached_validators(conn, url)
        return known

    def release(self, urls: list[str]) -> None:
        """A finished crawl's claims: its articles are stored by now, or failed."""
        self.claimed.difference_update(urls)

    def ingest(self, article: Article, analysis: Analysis | None = None) -> asyncio.Future[Stored]:
        """Hand ``article`` to the writer thread; the future gives the ingest outcome."""
        if self.writer is None:
            self.writer = IngestWriter(self.ingestor)
        return asyncio.wrap_future(self.writer.submit(article, analysis))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if self.owned_extractor:
            self.extractor.shutdown()
            self.owned_extractor = False
        if self.owned_store:
            self.store.dispose()
            self.owned_store = False


def take_batch(items: queue.Queue[T | None], wait: float, limit: int) -> tuple[list[T], bool] | None:
    """A writer thread's next batch: the first item to come, then whatever comes within ``wait``
    seconds of it, at most ``limit``; and whether ``None`` (close) came after them. None: it came
    first. The deadline counts from the first item: a batch is never held back for more."""
    first = items.get()
    if first is None:
        return None
    batch = [first]
    deadline = time.monotonic() + wait
    while len(batch) < limit:
        try:
            more = items.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            break
        if more is None:
            return batch, True
        batch.append(more)
    return batch, False


class IngestWriter:
    """One thread that ingests articles off the reactor thread, several per transaction.

    Each article's row, matches and outbox rows still commit together; a batch commits as a
    whole. When a batch fails, its articles are retried one by one so one bad article cannot
    take the others down with it."""

    def __init__(self, ingestor: Ingestor, *, batch_size: int = BATCH_SIZE, wait: float = BATCH_WAIT):
        self.ingestor = ingestor
        self.batch_size = batch_size
        self.wait = wait
        self._queue: queue.Queue[_Pending | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="lookout-ingest", daemon=True)
        self._thread.start()

    def submit(self, article: Article, analysis: Analysis | None = None) -> Future[Stored]:
        future: Future[Stored] = Future()
        self._queue.put(_Pending(article, analysis, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        while (taken := take_batch(self._queue, self.wait, self.batch_size)) is not None:
            batch, closing = taken
            self._write(batch)
            if closing:
                return

    def _write(self, batch: list[_Pending]) -> None:
        if len(batch) > 1:
            try:
                outcomes = self.ingestor.ingest_many([p.article for p in batch], [p.analysis for p in batch])
            except Exception:
                log.warning("a batch of %d articles failed; storing them one by one", len(batch))
            else:
                for pending, outcome in zip(batch, outcomes, strict=True):
                    pending.future.set_result(outcome)
                return
        for pending in batch:
            try:
                pending.future.set_result(self.ingestor.ingest_many([pending.article], [pending.analysis])[0])
            except Exception as exc:
                pending.future.set_exception(exc)


@dataclass(frozen=True)
class _Pending:
    article: Article
    analysis: Analysis | None
    future: Future[Stored]


class StoreOnlyIngestor:
    """Stores articles (story clustering included) without matching rules."""

    def __init__(self, store: Store, crawl: CrawlConfig):
        self.store = store
        self.max_age = crawl.max_age
        with store.connect() as conn:
            self.clusterer = StoryClusterer.load(conn)

    def ruleset(self) -> CompiledRuleset | None:
        return None

    def ingest_many(
        self,
        batch: list[Article],
        analyses: list[Analysis | None],  # noqa: ARG002 - the Ingestor protocol's; nothing is matched here
    ) -> list[Stored]:
        with self.store.begin() as conn:
            return [
                save_article(conn, article, self.clusterer, max_age=self.max_age, now=utcnow())
                for article in batch
            ]
