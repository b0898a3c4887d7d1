"""The service in-process (no Telegram): what SIGTERM does to a running crawl, and what a refused
sources edit does to the crawls that follow."""

from __future__ import annotations

import asyncio
import html
import logging
import os
import signal

import pytest
from service_harness import matching_article, wait_until_async, write_config
from sqlalchemy import select
from support.newssite import NewsSite

from core.store import articles, crawl_runs
from lookout.config import load_config
from lookout.service import Service, ServiceOptions

QUICK = ServiceOptions(rules_poll=0.1, sources_poll=0.1, metrics_every=1.0, stagger=0.1)


def _slow_feed_service(tmp_path, site: NewsSite, seconds: float) -> Service:
    """A service with one source whose feed answers ``seconds`` late."""
    site.publish(matching_article("azaz-one", "Fighting near Azaz"))
    feed = f"{site.url}/fault/slow-feed?seconds={seconds:g}"
    config_path = write_config(tmp_path / "svc", sources=[{"name": "one", "feed": feed, "every": "1h"}],
                               token=None, api_url=None)
    return Service(load_config(str(config_path)), QUICK)


def _crawling(service: Service, name: str) -> bool:
    return service.schedule is not None and name in service.schedule.running


@pytest.mark.e2e
def test_sigterm_lets_a_running_crawl_finish_within_the_grace(tmp_path, caplog):
    with NewsSite() as site:
        # A feed that answers 3 s late: SIGTERM comes while it is being crawled, well inside the
        # service's 10 s grace.
        service = _slow_feed_service(tmp_path, site, 3)

        async def scenario():
            task = asyncio.create_task(service.run())
            assert await wait_until_async(lambda: _crawling(service, "one"), 60)
            await asyncio.sleep(0.5)
            service._on_signal(15)  # what SIGTERM does
            return await asyncio.wait_for(task, 60)

        caplog.set_level(logging.INFO)
        assert asyncio.run(scenario()) == 0
    with service.store.connect() as conn:
        results = conn.execute(select(crawl_runs.c.result)).scalars().all()
        stored = conn.execute(select(articles.c.title)).scalars().all()
    assert results == ["ok"], "the crawl was cut off instead of getting its grace"
    assert stored == ["Fighting near Azaz"]
    assert "raised an exception" not in caplog.text


@pytest.mark.e2e
def test_refused_sources_edit_keeps_crawls_on_the_accepted_sources(tmp_path):
    with NewsSite() as site:
        site.publish(matching_article("azaz-one", "Fighting near Azaz"))
        config_path = write_config(
            tmp_path / "svc", sources=[{"name": "monitor", "feed": f"{site.url}/feed/rss.xml", "every": "1h"}],
            token=None, api_url=None)
        sources_file = config_path.parent / "sources.yaml"
        service = Service(load_config(str(config_path)), QUICK)

        async def scenario():
            task = asyncio.create_task(service.run())
            assert await wait_until_async(lambda: service.schedule is not None, 30)
            assert await wait_until_async(lambda: _results(service) == ["ok"], 60)
            accepted = service.accepted_sources.fingerprint
            sources_file.write_text(sources_file.read_text().replace("every:", "evry:"))
            refused = await wait_until_async(lambda: service.accepted_sources.fingerprint != accepted, 15)
            site.publish(matching_article("marea-two", "Shelling near Marea"))
            assert service.schedule.run_now("monitor")  # the admin's /crawl
            crawled = await wait_until_async(lambda: len(_results(service)) == 2, 60)
            service._on_signal(15)
            await asyncio.wait_for(task, 60)
            return refused, crawled

        refused, crawled = asyncio.run(scenario())
        assert refused and crawled and list(service.schedule.sources) == ["monitor"]
        assert service.schedule.sources["monitor"].every.total_seconds() == 3600
        with service.store.connect() as conn:
            stored = conn.execute(select(articles.c.title)).scalars().all()
        assert sorted(stored) == ["Fighting near Azaz", "Shelling near Marea"]
        assert _results(service) == ["ok", "ok"]


def _results(service: Service) -> list[str]:
    with service.store.connect() as conn:
        return list(conn.execute(select(crawl_runs.c.result).order_by(crawl_runs.c.id)).scalars())


def test_long_refusal_reaches_admins_as_valid_html(tmp_path):
    """Twenty long rule errors exceed one message: the cut must not split a tag or an entity, or
    Telegram refuses the message and the admins hear nothing."""
    from types import SimpleNamespace

    from fakebotapi import FakeBotAPI
    from telegram.constants import ParseMode
    from telegram.ext import Defaults, ExtBot

    with FakeBotAPI() as fake:
        config_path = write_config(tmp_path / "svc", sources=[], token=fake.token, api_url=fake.url,
                                   admins=(42,))
        service = Service(load_config(str(config_path)), QUICK)
        errors = [f"/etc/lookout/rules/north-aleppo.yaml:{n}:3: term 'A&B' <unknown> " + "x" * 230
                  for n in range(20)]
        text = "⚠️ Rule edit refused:\n" + "\n".join(f"<code>{html.escape(e)}</code>" for e in errors)
        assert len(text) > 4096

        async def scenario():
            bot = ExtBot(fake.token, base_url=f"{fake.url}/bot", defaults=Defaults(parse_mode=ParseMode.HTML))
            async with bot:
                service.delivery.app = SimpleNamespace(bot=bot)
                await service.delivery.tell_admins(text)

        asyncio.run(scenario())
        sent = [m.visible for m in fake.messages(42)]
    assert len(sent) == 1, "the admin got no message"
    assert sent[0].startswith("⚠️ Rule edit refused") and "north-aleppo.yaml:0:3: term 'A&B' <unknown>" in sent[0]


@pytest.mark.e2e
def test_a_worker_killed_mid_crawl_is_replaced_and_the_source_crawled_again(tmp_path):
    with NewsSite() as site:
        service = _slow_feed_service(tmp_path, site, 4)

        async def scenario():
            task = asyncio.create_task(service.run())
            try:
                assert await wait_until_async(lambda: _crawling(service, "one"), 60)
                (worker,) = service.workers.workers
                os.kill(worker.pid, signal.SIGKILL)  # as the kernel's OOM killer would
                assert await wait_until_async(lambda: _results(service) == ["killed", "ok"], 60)
                (replacement,) = service.workers.workers
                return worker.pid, replacement.pid
            finally:
                service._on_signal(15)
                await asyncio.wait_for(task, 60)

        killed, replacement = asyncio.run(scenario())
    assert replacement != killed
    with service.store.connect() as conn:
        errors = conn.execute(select(crawl_runs.c.error).order_by(crawl_runs.c.id)).scalars().all()
        stored = conn.execute(select(articles.c.title)).scalars().all()
    assert errors[0] == "killed (signal 9)"
    assert stored == ["Fighting near Azaz"]  # crawled by the replacement


@pytest.mark.e2e
def test_no_worker_until_there_is_something_to_crawl(tmp_path):
    with NewsSite() as site:
        site.publish(matching_article("azaz-one", "Fighting near Azaz"))
        config_path = write_config(tmp_path / "svc", sources=[], token=None, api_url=None)
        sources_file = config_path.parent / "sources.yaml"
        sources_file.write_text("sources: []\n")
        service = Service(load_config(str(config_path)), QUICK)

        async def scenario():
            task = asyncio.create_task(service.run())
            try:
                assert await wait_until_async(lambda: service.schedule is not None, 30)
                await asyncio.sleep(0.5)
                idle = (service.workers.started, list(service.workers.workers))
                sources_file.write_text(f"sources:\n  - name: one\n    feed: \"{site.url}/feed/rss.xml\"\n"
                                        "    every: 1h\n")
                crawled = await wait_until_async(lambda: _results(service) == ["ok"], 60)
                return idle, crawled
            finally:
                service._on_signal(15)
                await asyncio.wait_for(task, 60)

        (started, workers), crawled = asyncio.run(scenario())
    assert not started and workers == []  # a service with no sources runs no worker
    assert crawled  # the first source added started one, and it crawled
