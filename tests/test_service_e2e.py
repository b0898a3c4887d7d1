"""`lookout run` end to end, as a subscriber and an operator meet it: a subprocess against the
local news site and the fake Bot API server."""

from __future__ import annotations

import json
import time
from datetime import datetime

import pytest
from fakebotapi import FakeBotAPI
from service_harness import (
    ServiceProcess,
    crawl_runs_of,
    db_rows,
    free_port,
    lookout_in_process,
    matching_article,
    start_lookout,
    wait_until,
    write_config,
)
from support.newssite import NewsSite

from lookout.lock import lock_path_for, read_holder

pytestmark = pytest.mark.e2e

EVERY = 2  # seconds between crawls of the test source
CHAT = 5001  # the subscriber, also the admin


def _alerts(fake: FakeBotAPI, titles: list[str]) -> dict[str, int]:
    """How many messages to CHAT carry each title (alerts only; command replies do not)."""
    texts = [m.visible for m in fake.messages(CHAT)]
    return {t: sum(t in text for text in texts) for t in titles}


@pytest.fixture
def site():
    with NewsSite() as s:
        yield s


@pytest.fixture
def fake():
    with FakeBotAPI() as f:
        yield f


def test_watch_alert_restart_no_repeat_and_broken_rules(tmp_path, site, fake, capsys):
    feed = {"name": "monitor", "feed": f"{site.url}/feed/rss.xml", "every": f"{EVERY}s"}
    config = write_config(tmp_path / "svc", sources=[feed], token=fake.token, api_url=fake.url,
                          admins=(CHAT,))
    svc = ServiceProcess(config, free_port()).start()
    titles = ["Rebels brace as ISIS nears Azaz", "Convoy shelled on the Azaz road",
              "Night raid reported north of Azaz"]
    second = None
    try:
        health = svc.wait_healthy()
        assert health["dispatcher"] == "running" and health["scheduler"] == "running"

        # A second service on the same database is refused, naming the holder. It retries the lock
        # for a moment before giving up: it does so while the subscriber's story below goes on.
        second = start_lookout(config, "run")

        # The subscriber types /watch Azaz.
        fake.inject_message(CHAT, "/watch Azaz")
        replied = fake.wait_for(lambda: any("Azaz" in m.visible for m in fake.messages(CHAT)), timeout=15)
        assert replied, svc.log()

        # The site publishes a matching article: the alert arrives within every + 10 s.
        site.publish(matching_article("isis-nears-azaz", titles[0]))
        t0 = time.monotonic()
        assert fake.wait_for(lambda: _alerts(fake, titles)[titles[0]] >= 1, timeout=EVERY + 10), svc.log()
        latency = time.monotonic() - t0
        assert latency <= EVERY + 10

        # A broken rule edit: refused, the admin is told, the old rules keep matching.
        rules = config.parent / "rules.yaml"
        good_rules = rules.read_text(encoding="utf-8")
        rules.write_text(good_rules.replace("places:", "placez:", 1), encoding="utf-8")
        assert fake.wait_for(lambda: any("refused" in m.visible for m in fake.messages(CHAT)), timeout=15), \
            svc.log()
        refusal = next(m.visible for m in fake.messages(CHAT) if "refused" in m.visible)
        assert "rules.yaml:" in refusal  # file:line:col of the error
        site.publish(matching_article("convoy-shelled-azaz", titles[1]))
        # What counts here is that the old rules still match; the latency bound is checked above.
        assert fake.wait_for(lambda: _alerts(fake, titles)[titles[1]] >= 1, timeout=30), svc.log()
        rules.write_text(good_rules, encoding="utf-8")

        # The second service gave up while this one ran, naming it.
        _out, second_err = second.communicate(timeout=60)
        assert second.returncode == 1, second_err
        assert f"pid {svc.proc.pid}" in second_err

        # Metrics and status while running.
        status, metrics = svc.get("/metrics")
        assert status == 200
        assert "lookout_crawls_total{result=\"ok\"}" in metrics
        assert "lookout_alert_latency_seconds_bucket" in metrics
        # Telegram has both alerts; their "sent" records follow its answers within moments.
        assert wait_until(lambda: len(db_rows(config, "select id from outbox where state = 'sent'")) >= 2, 10)
        capsys.readouterr()
        assert lookout_in_process(config, "status", "--json") == 0
        state = json.loads(capsys.readouterr().out)
        assert state["service"] and f"pid {svc.proc.pid}" in state["service"]
        assert state["sources"][0]["name"] == "monitor" and state["sources"][0]["last_result"] == "ok"
        assert state["outbox"]["sent_24h"] >= 2 and state["latency"]["samples"] >= 2
        assert fake.token not in json.dumps(state)

        # SIGTERM: a clean stop, the lock released.
        assert svc.terminate() == 0
        assert "service stopped" in svc.log()
        assert read_holder(lock_path_for(f"sqlite:///{config.parent / 'var' / 'lookout.db'}")) is None

        # The site publishes while the service is down; after a restart exactly that alert arrives.
        site.publish(matching_article("night-raid-azaz", titles[2]))
        svc = ServiceProcess(config, free_port()).start()
        svc.wait_healthy()
        assert fake.wait_for(lambda: _alerts(fake, titles)[titles[2]] >= 1, timeout=30), svc.log()
        # Several more crawls of the same feed, each to its end, and every alert they queued
        # delivered: nothing may repeat.
        # (An uneventful crawl, nothing new, leaves no run row: its end shows in sources.last_crawl_at.)
        ends: set[str] = set()

        def crawl_ends() -> set[str]:
            ends.update(r["last_crawl_at"] for r in db_rows(config, "select last_crawl_at from sources"))
            return ends

        first_end = set(crawl_ends())
        more = wait_until(lambda: len(crawl_ends() - first_end) >= 2, timeout=60, interval=0.1)
        assert more, f"no further crawls after the restart:\n{svc.log()}"
        undelivered = "select id from outbox where state in ('pending', 'sending')"
        assert wait_until(lambda: not db_rows(config, undelivered), timeout=15), svc.log()
        assert _alerts(fake, titles) == dict.fromkeys(titles, 1)
        assert svc.terminate() == 0
        assert fake.token not in svc.log()
    finally:
        svc.kill_if_running()
        if second is not None and second.poll() is None:
            second.kill()
            second.communicate()


def test_hung_crawl_is_killed_and_the_next_runs_without_telegram(tmp_path, site):
    # The feed route never answers within the crawl's 3 s budget (download timeout is longer).
    config = write_config(
        tmp_path / "svc",
        sources=[{"name": "stuck", "feed": f"{site.url}/fault/slow?seconds=40", "every": "1s"}],
        token=None, api_url=None, timeout="3s", download_timeout="60s",
    )
    svc = ServiceProcess(config, free_port()).start()
    try:
        # No token: the scheduler runs and crawls, /healthz says 503 with delivery disabled.
        health = svc.wait_healthy(status_code=503)
        assert health["delivery"] == "disabled" and health["dispatcher"].startswith("disabled")

        def timeout_then_next():
            """The first crawl judged a timeout and the crawl that started after it, if any; with
            the source's row as ``lookout status`` reads it, in the same read."""
            runs = crawl_runs_of(config)
            src = db_rows(config, "select last_crawl_at, last_result, last_error from sources where name = 'stuck'")
            first = next((r for r in runs if r["result"] == "timeout"), None)
            later = [r for r in runs if first is not None and r["id"] > first["id"]]
            return (first, later[0], src[0]) if later and src else None

        # Read straight from the database (what `lookout status` shows), not by running it.
        found = wait_until(timeout_then_next, timeout=40, interval=0.1)
        assert found, f"no second crawl after a timeout:\n{svc.log()}"
        first, following, src = found
        assert "timed out" in first["error"] and "abandoned" in first["error"]
        # The next crawl ran after the first was abandoned (never alongside it).
        assert datetime.fromisoformat(following["started_at"]) >= datetime.fromisoformat(first["finished_at"])
        assert datetime.fromisoformat(src["last_crawl_at"]) >= datetime.fromisoformat(first["finished_at"])
        assert src["last_result"] == "timeout" and "timed out" in src["last_error"]
        assert svc.proc.poll() is None, "the service must survive hung crawls"
        assert svc.terminate() == 0
        assert "Telegram delivery is DISABLED" in svc.log()
    finally:
        svc.kill_if_running()
