"""What the service and its crawl workers say to each other: one JSON object a line, on the
worker's stdin (orders) and stdout (reports), each a typed pydantic model told apart by ``kind``.

An order carries the whole ``Source`` (a sources-file edit reaches the worker at the next poll)
and the version and snapshot paths of the rules the service accepted (a worker never crawls
with a rule file the service refused, and loads a new version when it first sees one)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from crawler.sources import Source
from crawler.state import CrawlResult


class _Message(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def line(self) -> bytes:
        return self.model_dump_json().encode("utf-8") + b"\n"


class RulesRef(_Message):
    version: str
    paths: tuple[str, ...]


class CrawlOrder(_Message):
    kind: Literal["crawl"] = "crawl"
    id: int  # the service's number for this crawl
    source: Source
    rules: RulesRef | None = None  # None: the rules the worker started with


class StopOrder(_Message):
    kind: Literal["stop"] = "stop"
    grace: float  # seconds the running crawls get to end


class Ready(_Message):
    kind: Literal["ready"] = "ready"
    pid: int


class CrawlDoneReport(_Message):
    kind: Literal["finished"] = "finished"
    id: int
    source: str
    result: CrawlResult
    outcome: str  # the result with its reason: "failed: http-404", "empty: the feed has no entries"
    seconds: float
    fetched: int = 0
    new: int = 0
    failed: int = 0
    not_modified: int = 0


class Alive(_Message):
    kind: Literal["alive"] = "alive"
    rss: int  # bytes, the worker and its extraction processes
    crawls_done: int
    running: int


class Retiring(_Message):
    kind: Literal["retiring"] = "retiring"
    reason: str  # "500 crawls done (crawl.max_crawls_per_worker)", "RSS 1.1 GiB above crawl.max_worker_rss"


ToWorker = Annotated[CrawlOrder | StopOrder, Field(discriminator="kind")]
FromWorker = Annotated[Ready | CrawlDoneReport | Alive | Retiring, Field(discriminator="kind")]
TO_WORKER: TypeAdapter[CrawlOrder | StopOrder] = TypeAdapter(ToWorker)
FROM_WORKER: TypeAdapter[Ready | CrawlDoneReport | Alive | Retiring] = TypeAdapter(FromWorker)
