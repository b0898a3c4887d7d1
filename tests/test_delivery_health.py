"""What an operator sees of delivery falling behind (issue 11): ``/healthz`` and ``/metrics`` show
the oldest alert on its way and the chats in a flood wait; and the delivery lock names which
command holds it."""

from __future__ import annotations

import asyncio
import json
import urllib.request

from fakebotapi import FakeBotAPI
from service_harness import wait_until_async, without_workers, write_config
from sqlalchemy import inspect
from support.delivery import alert

from core.store import Store, outbox
from lookout.config import load_config
from lookout.lock import LockHeld, ServiceLock
from lookout.service import Service, ServiceOptions


def _get(port: int, path: str) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.read().decode()


def test_healthz_and_metrics_show_the_oldest_pending_alert_and_flood_waits(tmp_path):
    with FakeBotAPI() as fake:
        fake.force_429(chat_id="4000", retry_after=120)
        config_path = write_config(tmp_path / "svc", sources=[{"name": "one", "feed": "http://127.0.0.1:9/f",
                                                               "every": "1h"}], token=fake.token, api_url=fake.url)
        config = load_config(str(config_path))
        store = Store(config.database_url())
        alert(store, ["4000"])  # draws a 120 s flood wait
        alert(store, ["4001"])  # goes out at once
        store.dispose()
        options = ServiceOptions(http=("127.0.0.1", 0), rules_poll=0.3, sources_poll=0.3, metrics_every=0.2,
                                 stagger=0.1, dispatch_idle=0.2)
        service = Service(without_workers(config), options)

        async def scenario():
            task = asyncio.create_task(service.run())
            try:
                assert await wait_until_async(lambda: fake.messages(4001) and service.health().chats_in_flood_wait, 30)
                assert await wait_until_async(lambda: (service.health().oldest_pending_seconds or 0) > 0, 10)
                port = service.http.port
                health = json.loads(await asyncio.to_thread(_get, port, "/healthz"))
                metrics = await asyncio.to_thread(_get, port, "/metrics")
            finally:
                service._on_signal(15)
                assert await asyncio.wait_for(task, 60) == 0
            return health, metrics

        health, metrics = asyncio.run(scenario())
    assert health["chats_in_flood_wait"] == 1
    assert 100 < health["longest_flood_wait_seconds"] <= 120
    assert health["oldest_pending_seconds"] > 0
    assert "lookout_chats_in_flood_wait 1.0" in metrics
    oldest = next(line for line in metrics.splitlines() if line.startswith("lookout_outbox_oldest_pending_seconds "))
    assert float(oldest.split()[1]) > 0
    assert fake.messages(4000) == []  # still waiting, nothing sent into the flood wait


def test_the_delivery_lock_names_the_command_holding_it(sqlite_store):
    with ServiceLock(sqlite_store, command="lookout send"):
        try:
            ServiceLock(sqlite_store).impl.acquire(patience=0.0)
        except LockHeld as exc:
            refusal = str(exc)
        else:
            raise AssertionError("a second holder was let in")
    assert "lookout send, pid " in refusal


def test_opening_an_older_database_adds_the_claim_columns(store):
    with store.begin() as conn:
        for name in ("claimed_by", "claimed_at", "lease_until"):
            conn.exec_driver_sql(f"ALTER TABLE {_table(store)} DROP COLUMN {name}")
    assert "claimed_by" not in _columns(store)
    store.create()  # what opening the old database with this version does
    store.create()  # and again: nothing left to add
    assert {"claimed_by", "claimed_at", "lease_until"} <= _columns(store)
    alert(store, ["5000"])  # and the outbox works with them
    with store.connect() as conn:
        assert conn.exec_driver_sql(f"SELECT claimed_by FROM {_table(store)}").scalar_one() is None


def _table(store: Store) -> str:
    return f'"{store.schema}".outbox' if store.schema else "outbox"


def _columns(store: Store) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns(outbox.name, schema=store.schema)}
