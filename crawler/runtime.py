"""What a crawl shares across its spiders: config, store, ingestor and the extraction pool.

The runner builds one and hands it to each spider as a keyword argument (Scrapy deep-copies
settings, so live objects do not travel there). Plain ``scrapy crawl`` builds its own.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from crawler.extract import ExtractionPool
from crawler.items import Article
from lookout.config import Config
from lookout.store import Store

log = logging.getLogger(__name__)


class Ingestor(Protocol):
    def ingest(self, article: Article) -> object: ...


@dataclass
class CrawlRuntime:
    config: Config
    store: Store
    ingestor: Ingestor
    extractor: ExtractionPool
    owned: list[Any] = field(default_factory=list)  # what close() must release

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

    def close(self) -> None:
        for thing in self.owned:
            if isinstance(thing, ExtractionPool):
                thing.shutdown()
            elif isinstance(thing, Store):
                thing.dispose()
        self.owned.clear()


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
        from crawler.storage import save_article
        from lookout.store import utcnow

        with self.store.begin() as conn:
            return save_article(conn, article, self.clusterer, max_age=self.max_age, now=utcnow())
