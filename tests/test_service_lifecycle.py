"""The service in-process (no Telegram): what SIGTERM does to a running crawl, and what a refused
sources edit does to the crawls that follow."""

from __future__ import annotations

import asyncio
import html
import logging
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from service_harness import ROOT, matching_article, wait_until_async, write_config
from sqlalchemy import select
from support.newssite import NewsSite

from core.store import articles, crawl_runs
from lookout.config import load_config
from lookout.service import Service, ServiceOptions

QUICK = ServiceOptions(rules_poll=0.1, sources_poll=0.1, metrics_every=1.0, stagger=0.1)


def test_sigterm_lets_a_running_crawl_finish_within_the_grace(tmp_path, caplog):
    config_path = write_config(tmp_path / "svc", sources=[{"name": "one", "feed": "http://127.0.0.1:9/f",
                                                           "every": "1h"}], token=None, api_url=None)
    child = tmp_path / "child.py"
    started, release, ended = tmp_path / "started", tmp_path / "release", tmp_path / "ended"
    # A crawl that cannot end before SIGTERM comes: it waits for the test's release, sent just
    # after the signal, and still has 0.5 s of work then (well inside the service's 10 s grace).
    child.write_text(textwrap.dedent(f"""
        import pathlib, time
        pathlib.Path({str(started)!r}).touch()
        deadline = time.monotonic() + 60
        while not pathlib.Path({str(release)!r}).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.5)
        pathlib.Path({str(ended)!r}).touch()
    """))
    service = Service(load_config(str(config_path)), QUICK,
                      command=lambda name: [sys.executable, str(child)])

    async def scenario():
        task = asyncio.create_task(service.run())
        assert await wait_until_async(lambda: service.crawls is not None and "one" in service.crawls.running
                            and started.exists(), 30)
        assert not ended.exists()
        service._on_signal(15)  # what SIGTERM does
        release.touch()  # the crawl goes on to its end, after the signal
        return await asyncio.wait_for(task, 60)

    caplog.set_level(logging.INFO)
    assert asyncio.run(scenario()) == 0
    with service.store.connect() as conn:
        results = conn.execute(select(crawl_runs.c.result)).scalars().all()
    assert results == ["ok"], "the crawl was cut off instead of getting its grace"
    assert ended.exists(), "the crawl did not run to its end"
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
            accepted = service.accepted_sources.fingerprint
            sources_file.write_text(sources_file.read_text().replace("every:", "evry:"))
            refused = await wait_until_async(lambda: service.accepted_sources.fingerprint != accepted, 15)
            command = service._crawl_command("monitor")
            service._on_signal(15)
            await asyncio.wait_for(task, 60)
            return refused, command

        refused, command = asyncio.run(scenario())
        assert refused and list(service.schedule.sources) == ["monitor"]
        # The next crawl (as the service would start it) still runs on the accepted sources.
        child = subprocess.run(command, capture_output=True, text=True, timeout=120, cwd=config_path.parent,
                               env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}, check=False)
        assert child.returncode == 0, child.stderr[-2000:]
        with service.store.connect() as conn:
            stored = conn.execute(select(articles.c.title)).scalars().all()
            results = conn.execute(select(crawl_runs.c.result)).scalars().all()
        assert "Fighting near Azaz" in stored
        assert "failed" not in results
        assert Path(command[command.index("--sources") + 1]).read_text().count("every:") == 1




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
