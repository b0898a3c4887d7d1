"""What a crawl shares across its spiders: config, store, ingestor, the extraction pool, the
article URLs already claimed in this run, and the writer thread that ingests in batches.

The runner builds one and hands it to each spider as a keyword argument (Scrapy deep-copies
settings, so live objects do not travel there). Plain ``scrapy crawl`` builds its own.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from crawler.extract import ExtractionPool
from crawler.items import Article
from lookout.config import Config
from lookout.store import Store

if TYPE_CHECKING:
    from lookout.ingest import Analysed

log = logging.getLogger(__name__)

BATCH_SIZE = 64  # articles per transaction at most
# A batch closes BATCH_WAIT seconds after its first article at the latest (group commit: one
# fsync per batch, not per article). The deadline counts from the first article, not the last:
# the articles of a batch hold their responses' slots in Scrapy until stored, so waiting for a
# batch to fill would stall the crawl once every slot is waiting on the writer.
BATCH_WAIT = 0.05


class Ingestor(Protocol):
    def ingest(self, article: Article) -> object: ...


@dataclass
class CrawlRuntime:
    config: Config
    store: Store
    ingestor: Ingestor
    extractor: ExtractionPool
    owned: list[Any] = field(default_factory=list)  # what close() must release
    claimed: set[str] = field(default_factory=set)  # article URLs some spider of this run fetches
    writer: IngestWriter | None = None

    @classmethod
    def build(
        cls,
        config: Config,
        *,
        store: Store | None = None,
        ingestor: Ingestor | None = None,
        extractor: ExtractionPool | None = None,
    ) -> CrawlRuntime:
        owned: list[Any] = []
        if store is None:
            store = getattr(ingestor, "store", None) or Store(config.database_url())
            owned.append(store)
        if ingestor is None:
            ingestor = default_ingestor(config, store)
        if extractor is None:
            extractor = ExtractionPool().start()
            owned.append(extractor)
        return cls(config, store, ingestor, extractor, owned)

    def claim(self, url: str) -> bool:
        """True for the first spider of this run to want ``url``: two sources on one site
        (its feed and its sitemap, say) download each article page once. Only the reactor
        thread calls this."""
        if url in self.claimed:
            return False
        self.claimed.add(url)
        return True

    def ingest(self, article: Article, analysed: Analysed | None = None) -> asyncio.Future:
        """Hand ``article`` to the writer thread; the future gives the ingest outcome."""
        if self.writer is None:
            self.writer = IngestWriter(self.ingestor)
        return asyncio.wrap_future(self.writer.submit(article, analysed))

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        for thing in self.owned:
            if isinstance(thing, ExtractionPool):
                thing.shutdown()
            elif isinstance(thing, Store):
                thing.dispose()
        self.owned.clear()


class IngestWriter:
    """One thread that ingests articles off the reactor thread, several per transaction.

    Each article's row, matches and outbox rows still commit together; a batch commits as a
    whole. When a batch fails, its articles are retried one by one so one bad article cannot
    take the others down with it."""

    def __init__(self, ingestor: Ingestor, *, batch_size: int = BATCH_SIZE, wait: float = BATCH_WAIT):
        self.ingestor = ingestor
        self.batch_size = batch_size
        self.wait = wait
        self._queue: queue.Queue[tuple[Article, Analysed | None, Future] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="lookout-ingest", daemon=True)
        self._thread.start()

    def submit(self, article: Article, analysed: Analysed | None = None) -> Future:
        future: Future = Future()
        self._queue.put((article, analysed, future))
        return future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()

    def _run(self) -> None:
        closing = False
        while not closing:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = time.monotonic() + self.wait
            try:
                while len(batch) < self.batch_size:
                    more = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                    if more is None:
                        closing = True
                        break
                    batch.append(more)
            except queue.Empty:
                pass
            self._write(batch)

    def _write(self, batch: list[tuple[Article, Analysed | None, Future]]) -> None:
        many = getattr(self.ingestor, "ingest_many", None)
        if many is None:
            for article, _, future in batch:
                self._settle(future, lambda a=article: self.ingestor.ingest(a))
            return
        if len(batch) > 1:
            try:
                outcomes = many([a for a, _, _ in batch], [x for _, x, _ in batch])
            except Exception:
                log.warning("a batch of %d articles failed; storing them one by one", len(batch))
            else:
                for (_, _, future), outcome in zip(batch, outcomes, strict=True):
                    future.set_result(outcome)
                return
        for article, analysed, future in batch:
            self._settle(future, lambda a=article, x=analysed: many([a], [x])[0])

    @staticmethod
    def _settle(future: Future, work) -> None:
        try:
            future.set_result(work())
        except Exception as exc:
            future.set_exception(exc)


def default_ingestor(config: Config, store: Store) -> Ingestor:
    """lookout.ingest's (store, match, enqueue); until the rules can load, store only."""
    try:
        from lookout.ingest import build_ingestor

        return build_ingestor(config, store=store)
    except ImportError as exc:
        log.warning("rules unavailable (%s): articles are stored without matching", exc)
        return StoreOnlyIngestor(store, config)


class StoreOnlyIngestor:
    """Stores articles (story clustering included) without matching rules."""

    def __init__(self, store: Store, config: Config):
        from crawler.stories import StoryClusterer

        self.store = store
        self.max_age = config.crawl.max_age
        with store.connect() as conn:
            self.clusterer = StoryClusterer.load(conn)

    def ingest(self, article: Article):
        return self.ingest_many([article])[0]

    def ingest_many(self, batch: list[Article], analysed: list | None = None) -> list:
        from crawler.storage import save_article
        from lookout.store import utcnow

        with self.store.begin() as conn:
            return [
                save_article(conn, article, self.clusterer, max_age=self.max_age, now=utcnow())
                for article in batch
            ]
