"""`lookout demo`'s run: the whole pipeline on embedded defaults, on loopback only.

Serves ``seeds/`` as a local news site (lookout/demo/site.py), crawls it with the real spiders
(RSS, Atom, news sitemap and listing page: the same three articles, each fetched once), cleans
with trafilatura, matches the example rules, stores into a temporary SQLite database, and
delivers the alerts to the console (and, when asked, to a Bot API server) through the real
outbox and dispatcher. Owns the demo's config (``demo_config``), its run (``run_demo``) and its
result (``DemoSummary``).
"""

from __future__ import annotations

import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from alerts import subscriptions as subs
from alerts.dispatcher import Dispatcher, DispatchSummary
from alerts.keys import SubscriptionKind
from alerts.telegram import Button, ConsoleSender, PTBSender, Sender
from core.store import Store
from crawler.runner import run_crawl
from crawler.sources import parse_sources
from lookout import __version__
from lookout.demo.site import SEEDS_DIR, NewsSite
from lookout.loaders import gazetteer_for
from lookout.pipeline import PipelineIngestor
from rules import load_ruleset

if TYPE_CHECKING:
    from collections.abc import Sequence

    from crawler.state import SourceStats
    from lookout.config import Config, CrawlConfig
    from rules.index import CompiledRuleset

EXAMPLE_RULES = Path(__file__).resolve().parent.parent.parent / "rules" / "examples" / "north-aleppo.yaml"
DEMO_CHAT = "1"  # the console "chat" when no --chat is given


@dataclass(frozen=True)
class TelegramTarget:
    api_url: str
    token: str
    chat: str


@dataclass
class DemoSummary:
    pages_fetched: int
    articles_stored: int
    matches: int
    alerts: int
    alerts_sent_telegram: int
    failed_pages: int
    seconds: float


class TeeSender:
    """Prints every message as Telegram shows it and also sends it through a real sender."""

    def __init__(self, console: ConsoleSender, remote: Sender) -> None:
        self.console = console
        self.remote = remote
        self.sent = 0

    async def send_message(self, chat_id: str, html: str, buttons: Sequence[Button] = ()) -> int:
        message_id = await self.remote.send_message(chat_id, html, buttons)
        self.sent += 1
        await self.console.send_message(chat_id, html, buttons)
        return message_id

    async def send_plain(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        message_id = await self.remote.send_plain(chat_id, text, buttons)
        self.sent += 1
        await self.console.send_plain(chat_id, text, buttons)
        return message_id

    async def edit_message(self, chat_id: str, message_id: int, html: str, buttons: Sequence[Button] = ()) -> None:
        await self.remote.edit_message(chat_id, message_id, html, buttons)
        await self.console.edit_message(chat_id, message_id, html, buttons)

    async def send_location(self, chat_id: str, lat: float, lon: float) -> int:
        message_id = await self.remote.send_location(chat_id, lat, lon)
        await self.console.send_location(chat_id, lat, lon)
        return message_id


def demo_config(base: Config, database_url: str, site_url: str) -> Config:
    """Embedded defaults pointed at the local site; no age limit: the seeds are from 2016."""
    sources = [
        {"name": "demo-rss", "feed": f"{site_url}/feed/rss.xml", "every": "10m"},
        {"name": "demo-atom", "feed": f"{site_url}/feed/atom.xml", "every": "10m"},
        {"name": "demo-sitemap", "sitemap": f"{site_url}/news-sitemap.xml", "every": "15m"},
        {"name": "demo-listing", "listing": f"{site_url}/", "follow": "h2.entry-title a", "every": "30m"},
    ]
    crawl: CrawlConfig = base.crawl.model_copy(update={"max_age": None, "autothrottle": False})
    folder = database_url.removeprefix("sqlite:///").rsplit("/", 1)[0]
    gazetteer = base.gazetteer.model_copy(update={"cache_dir": f"{folder}/gazetteer"})
    return base.model_copy(update={
        "database": database_url, "sources": sources, "rules": [str(EXAMPLE_RULES)], "crawl": crawl,
        "gazetteer": gazetteer,
    })


def run_demo(
    base: Config,
    *,
    seeds_dir: Path | None = None,
    telegram: TelegramTarget | None = None,
    out: TextIO,
    workdir: Path | None = None,
) -> DemoSummary:
    """Serve, crawl, match, store and deliver; print progress, the alerts and a summary to ``out``."""
    started = time.monotonic()
    # The demo prints its own progress and summary; per-article log lines would bury them.
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        logging.getLogger("lookout.pipeline").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="lookout-demo-") as tmp, NewsSite.from_seeds(
        seeds_dir or SEEDS_DIR
    ) as site:
        folder = workdir or Path(tmp)
        config = demo_config(base, f"sqlite:///{folder / 'demo.db'}", site.url)
        print(f"News site with {len(site.articles)} seed articles at {site.url}", file=out)
        ruleset = load_ruleset(config.rule_paths(), gazetteer=gazetteer_for(config))
        store = Store(config.database_url())
        chat = telegram.chat if telegram else DEMO_CHAT
        with store.begin() as conn:
            for rule_id in ruleset.rules:
                subs.add(conn, chat, SubscriptionKind.RULE, rule_id)
        print(f"Chat {chat} watches {len(ruleset.rules)} rules from {EXAMPLE_RULES.name}", file=out)

        sources = parse_sources(config.sources, "<demo>")
        ingestor = PipelineIngestor(store, lambda: ruleset, max_age=None, only_chats=frozenset({chat}))

        def progress(stats: SourceStats) -> None:
            print(
                f"  crawled {stats.source:<13} fetched {stats.fetched}  new {stats.new}  "
                f"already seen {stats.skipped}  failed {stats.failures}",
                file=out, flush=True,
            )

        print("Crawling:", file=out, flush=True)
        report = run_crawl(
            sources,
            crawl=config.crawl,
            store=store,
            ingestor=ingestor,
            version=__version__,
            progress=progress,
        )
        print("\nAlerts, as Telegram shows them:\n", file=out, flush=True)
        sent_remote, summary = asyncio.run(_deliver(store, config, telegram, ruleset, out))
        totals = ingestor.totals
        result = DemoSummary(
            pages_fetched=report.total("fetched"),
            articles_stored=totals.new,
            matches=totals.matches,
            alerts=summary.sent,
            alerts_sent_telegram=sent_remote,
            failed_pages=report.failures,
            seconds=time.monotonic() - started,
        )
        store.dispose()
    print(
        f"Summary: {result.pages_fetched} pages fetched, {result.articles_stored} articles stored, "
        f"{result.matches} matches, {result.alerts} alerts"
        + (f" ({result.alerts_sent_telegram} sent to {telegram.api_url})" if telegram else "")
        + f", {result.failed_pages} failed pages, {result.seconds:.1f} s",
        file=out,
    )
    return result


async def _deliver(
    store: Store, config: Config, telegram: TelegramTarget | None, ruleset: CompiledRuleset, out: TextIO
) -> tuple[int, DispatchSummary]:
    """Drain the outbox to the console, or to the console and the Bot API; (sent remotely, summary)."""
    console = ConsoleSender(out)
    if telegram is None:
        summary = await Dispatcher(store, console, config.telegram, ruleset=ruleset).drain()
        return 0, summary
    tg_config = config.telegram.model_copy(update={"api_url": telegram.api_url.rstrip("/")})
    async with PTBSender(telegram.token, tg_config.api_url) as remote:
        tee = TeeSender(console, remote)
        summary = await Dispatcher(store, tee, tg_config, ruleset=ruleset).drain()
        return tee.sent, summary
