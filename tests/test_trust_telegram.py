"""Telegram faults never stop the service: an unreachable Bot API is retried with backoff while
crawling, matching and queueing go on (``/healthz`` 503 ``retrying`` until delivery connects, then
200); a token Telegram rejects is a configuration error (one redacted line, exit 1); without a
token ``/healthz`` is 503 ``disabled``."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
import urllib.error
import urllib.request
from http.server import ThreadingHTTPServer

import pytest
from fakebotapi import DEFAULT_TOKEN, FakeBotAPI, _make_handler
from service_harness import (
    ServiceProcess,
    free_port,
    lookout,
    matching_article,
    wait_until,
    wait_until_async,
    without_workers,
    write_config,
)
from support.newssite import NewsSite

from alerts.config import TelegramConfig
from lookout.config import load_config
from lookout.delivery import DeliveryState, TelegramDelivery, TokenRejected
from lookout.service import Service, ServiceOptions

WRONG_TOKEN = "999:wrong-TOKEN-never-shown"
CHAT = 5001


class FakeBotAPIAt(FakeBotAPI):
    """The fake Bot API on a port chosen beforehand (``FakeBotAPI`` binds port 0): the service
    is pointed at a closed port, and the fake comes up there later."""

    def __init__(self, port: int, **kwargs):
        super().__init__(**kwargs)
        self.port = port

    def start(self) -> FakeBotAPIAt:
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fakebotapi-at", daemon=True)
        self._thread.start()
        return self


def _health(svc: ServiceProcess) -> tuple[int, dict] | None:
    try:
        status, body = svc.get("/healthz")
    except OSError:
        return None
    return status, json.loads(body)


def _finished_crawls(db) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return conn.execute("select count(*) from crawl_runs where finished_at is not null").fetchone()[0]
        except sqlite3.OperationalError:
            return 0


def _pending_alerts(db) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("select count(*) from outbox where state = 'pending'").fetchone()[0]


# -- lookout run as a subprocess ------------------------------------------------------------------

@pytest.mark.e2e
def test_rejected_token_exits_1_with_one_redacted_line(tmp_path):
    with FakeBotAPI() as fake:  # it answers 401 to any token but its own
        config = write_config(tmp_path / "svc", sources=[{"name": "one", "feed": "http://127.0.0.1:9/f",
                                                          "every": "1h"}], token=WRONG_TOKEN, api_url=fake.url)
        svc = ServiceProcess(config, free_port()).start()
        try:
            code = svc.proc.wait(timeout=60)
        finally:
            svc.kill_if_running()
    out = svc.log()
    assert code == 1, out
    lines = [line for line in out.splitlines() if "rejected" in line]
    assert lines == ["lookout run: telegram.token was rejected by Telegram (401)"], out
    assert "Traceback" not in out and "InvalidToken" not in out
    assert WRONG_TOKEN not in out and "wrong-TOKEN" not in out
    assert "crawl started" not in out  # refused before any crawl


@pytest.mark.e2e
def test_bot_api_down_at_start_crawls_go_on_then_delivery_connects(tmp_path):
    port = free_port()  # nothing listens here yet: the Bot API is down
    with NewsSite() as site:
        site.publish(matching_article("azaz-down", "Fighting near Azaz while Telegram is down"))
        config = write_config(tmp_path / "svc", sources=[{"name": "monitor", "feed": f"{site.url}/feed/rss.xml",
                                                          "every": "2s"}],
                              token=DEFAULT_TOKEN, api_url=f"http://127.0.0.1:{port}")
        subscribed = lookout(config, "subscribe", "--chat", str(CHAT), "--place", "Azaz")
        assert subscribed.returncode == 0, subscribed.stderr
        db = config.parent / "var" / "lookout.db"
        svc = ServiceProcess(
            config, free_port(), extra_args=("--telegram-retry", "0.2", "--telegram-retry-max", "1")
        ).start()
        fake = None
        try:
            # The service is up and says delivery is retrying, with 503.
            answer = wait_until(lambda: _health(svc) or (svc.proc.poll() is not None and (0, {})), 60)
            assert answer and answer[0] == 503, svc.log()
            assert answer[1]["delivery"] == "retrying" and answer[1]["scheduler"] == "running"
            assert "ConnectError" in answer[1]["delivery_error"] or "connect" in answer[1]["delivery_error"].lower()
            # Crawling, matching and queueing go on: crawls finish, the alert waits in the outbox.
            assert wait_until(lambda: _finished_crawls(db) >= 1, 60), svc.log()
            assert wait_until(lambda: _pending_alerts(db) >= 1, 30), svc.log()
            assert svc.proc.poll() is None, svc.log()
            status, health = _health(svc)
            assert status == 503 and health["delivery"] == "retrying"

            # The Bot API comes up: delivery connects, /healthz turns 200, the queued alert arrives.
            fake = FakeBotAPIAt(port).start()
            ok = wait_until(lambda: (_health(svc) or (0, {}))[0] == 200, 60)
            assert ok, svc.log()
            assert _health(svc)[1]["delivery"] == "running"
            assert fake.wait_for(lambda: any("Azaz" in m.visible for m in fake.messages(CHAT)), timeout=30), \
                svc.log()
            assert svc.terminate() == 0
        finally:
            svc.kill_if_running()
            if fake is not None:
                fake.stop()
    out = svc.log()
    assert "telegram not reachable" in out and "Traceback" not in out
    assert DEFAULT_TOKEN not in out


# -- in process: the delivery's retry loop and /healthz -------------------------------------------

async def _answer(*_args) -> str:
    return ""


async def _after(_summary) -> None:
    return None


def _delivery(api_url: str, token: str = DEFAULT_TOKEN, **kwargs) -> TelegramDelivery:
    config = TelegramConfig(token=token, api_url=api_url)
    return TelegramDelivery(config, dispatch_idle=0.2, retry_initial=0.05, retry_max=0.2, **kwargs)


async def _start(delivery: TelegramDelivery, store, rejected: list | None = None) -> None:
    await delivery.start(store, rules=lambda: None, on_crawl=_answer, on_reload=_answer, after_pass=_after,
                         on_rejected=(rejected.append if rejected is not None else None), first_wait=5.0)


def _attempts(caplog) -> list:
    return [r for r in caplog.records if "telegram not reachable" in r.getMessage()]


def test_delivery_retries_while_the_bot_api_is_down_then_runs(sqlite_store, caplog):
    port = free_port()
    delivery = _delivery(f"http://127.0.0.1:{port}")

    async def scenario():
        started = asyncio.get_running_loop().time()
        await _start(delivery, sqlite_store)
        took = asyncio.get_running_loop().time() - started
        assert took < 3, "start waited on an unreachable Bot API"
        assert delivery.state is DeliveryState.RETRYING and delivery.rejected is None
        assert delivery.dispatcher_state() == ("retrying", False)
        assert delivery.last_error and DEFAULT_TOKEN not in delivery.last_error
        # Several attempts, the pause capped at retry_max (waited for: a loaded machine is slow).
        assert await wait_until_async(lambda: len(_attempts(caplog)) >= 3, 10)
        fake = FakeBotAPIAt(port).start()
        try:
            assert await wait_until_async(lambda: delivery.state is DeliveryState.RUNNING, 10)
            assert delivery.dispatcher_state() == ("running", True)
            await delivery.stop()
        finally:
            fake.stop()
        return fake

    caplog.set_level("WARNING", logger="lookout.delivery")
    fake = asyncio.run(scenario())
    assert any(m == "getMe" for m, _ in fake.calls)
    assert len(_attempts(caplog)) >= 3  # retried, not given up
    assert delivery.state is DeliveryState.STOPPED


def test_token_rejected_at_once_is_reported_not_retried(sqlite_store, caplog):
    caplog.set_level("INFO")
    with FakeBotAPI() as fake:
        delivery = _delivery(fake.url, token=WRONG_TOKEN)
        rejected: list[TokenRejected] = []

        async def scenario():
            await _start(delivery, sqlite_store, rejected)
            await asyncio.sleep(0.3)  # several retry pauses: none may follow a rejection
            await delivery.stop()

        asyncio.run(scenario())
    assert isinstance(delivery.rejected, TokenRejected) and delivery.rejected.status == 401
    assert str(delivery.rejected) == "telegram.token was rejected by Telegram (401)"
    assert delivery.state is DeliveryState.REJECTED
    assert rejected == []  # found by start's caller, not also through the callback
    assert "telegram not reachable" not in caplog.text  # not retried
    assert WRONG_TOKEN not in caplog.text


def test_token_rejected_after_an_outage_goes_to_the_callback(sqlite_store):
    port = free_port()
    delivery = _delivery(f"http://127.0.0.1:{port}", token=WRONG_TOKEN)
    rejected: list[TokenRejected] = []

    async def scenario():
        await _start(delivery, sqlite_store, rejected)
        assert delivery.state is DeliveryState.RETRYING
        fake = FakeBotAPIAt(port).start()  # up now, with another token than ours
        try:
            assert await wait_until_async(lambda: bool(rejected), 10)
        finally:
            await delivery.stop()
            fake.stop()

    asyncio.run(scenario())
    assert [str(r) for r in rejected] == ["telegram.token was rejected by Telegram (401)"]
    assert delivery.state is DeliveryState.REJECTED


def test_healthz_is_503_disabled_without_a_token(tmp_path):
    config_path = write_config(tmp_path / "svc", sources=[{"name": "one", "feed": "http://127.0.0.1:9/f",
                                                           "every": "1h"}], token=None, api_url=None)
    options = ServiceOptions(http=("127.0.0.1", 0), rules_poll=0.3, sources_poll=0.3, metrics_every=1.0,
                             stagger=0.1)
    service = Service(without_workers(load_config(str(config_path))), options)

    def fetch(port: int) -> tuple[int, dict]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                return r.status, json.loads(r.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    async def scenario():
        task = asyncio.create_task(service.run())
        assert await wait_until_async(lambda: service.http is not None and service.http.server is not None, 30)
        answer = await asyncio.to_thread(fetch, service.http.port)
        health = service.health()
        service._on_signal(15)
        assert await asyncio.wait_for(task, 60) == 0
        return answer, health

    (status, body), health = asyncio.run(scenario())
    assert health.scheduler == "running" and not health.ok
    assert status == 503
    assert body["delivery"] == "disabled" and body["scheduler"] == "running"
    assert body["dispatcher"].startswith("disabled")
