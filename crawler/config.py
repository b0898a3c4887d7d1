"""The ``crawl:`` section of the configuration: politeness, limits and the crawl's own timing."""

from __future__ import annotations

from datetime import timedelta

from pydantic import ByteSize, Field

from core.durations import Duration
from core.strict import StrictModel


class CrawlConfig(StrictModel):
    max_age: Duration | None = timedelta(days=3)  # older articles are stored, never alerted
    parallel: int = Field(default=32, ge=1)  # sources each worker crawls at once
    timeout: Duration = timedelta(minutes=10)  # one source's crawl: abandoned (``timeout``) after this
    workers: int = Field(default=1, ge=0)  # long-lived crawl worker processes `lookout run` supervises
    # Then the worker is replaced (no crawl lost): at 10,000 sources every 10 min, every ~100 min.
    max_crawls_per_worker: int = Field(default=100_000, ge=1)
    max_worker_rss: ByteSize = ByteSize(1024**3)  # "1GiB": a worker above it is replaced the same way
    max_backoff: Duration = timedelta(hours=1)  # a failing source's polls spread out up to this apart
    download_timeout: Duration = timedelta(seconds=30)
    max_body_bytes: int = Field(default=5 * 1024 * 1024, gt=0)
    max_redirects: int = Field(default=5, ge=0)
    min_text_chars: int = Field(default=80, ge=0)  # less article text (links, headline left out): no-text
    obey_robots: bool = True
    concurrency_per_domain: int = Field(default=4, ge=1)
    autothrottle: bool = True
    contact_url: str = "https://github.com/lookout-osint/lookout"
    user_agent: str | None = None  # default: "Lookout/<version> (+<contact_url>)"
    stale_after: Duration = timedelta(days=3)  # a source whose index lists nothing this long is stale
    # Article links to loopback, private or link-local addresses are refused unless the source's
    # own URL is on such an address; true: follow them from any source.
    allow_private: bool = False
