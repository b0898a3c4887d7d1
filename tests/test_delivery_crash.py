"""The crash guarantee and the delivery lock, end to end (issue 11): ``lookout send`` and
``lookout run`` as real processes against the fake Bot API, killed with SIGKILL mid-delivery.

The guarantee under test, as the README states it: a crash re-sends only the alerts that were
in flight (claimed, at most ``telegram.max_in_flight``), so it costs at most that many duplicate
messages and loses nothing; and a ``lookout send`` beside a running service never takes the
service's rows."""

from __future__ import annotations

import contextlib
import random
import signal
import time
import uuid
from collections import Counter
from typing import TYPE_CHECKING

import pytest
import sqlalchemy
from conftest import PG_URL, postgres_available
from fakebotapi import DEFAULT_TOKEN, FakeBotAPI
from service_harness import RULES, ServiceProcess, free_port, lookout, start_lookout, wait_until
from sqlalchemy import func, select
from support.delivery import alert

from core.store import Store, outbox, utcnow

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def database(backend: str, tmp_path: Path) -> Iterator[str]:
    """A database URL for the processes under test: a SQLite file, or a fresh PostgreSQL
    database (a service's advisory lock is per database) dropped afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'var' / 'lookout.db'}"
        return
    ok, reason = postgres_available()
    if not ok:
        pytest.skip(reason)
    name = f"lookout_e2e_{uuid.uuid4().hex[:10]}"
    admin = sqlalchemy.create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sqlalchemy.make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def write_config(directory: Path, url: str, fake: FakeBotAPI, **telegram: object) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "rules.yaml").write_text(RULES.read_text(encoding="utf-8"), encoding="utf-8")
    extra = "".join(f"  {key}: {value}\n" for key, value in telegram.items())
    config = directory / "lookout.yaml"
    config.write_text(
        f"database: {url}\n"
        "rules: [rules.yaml]\n"
        "sources: []\n"
        f'telegram:\n  token: "{DEFAULT_TOKEN}"\n  api_url: {fake.url}\n' + extra
    )
    return config


def received(fake: FakeBotAPI) -> Counter[str]:
    return Counter(m.chat_id for m in fake.messages())


def in_state(store: Store, state: str) -> int:
    with store.connect() as conn:
        return conn.execute(select(func.count()).where(outbox.c.state == state)).scalar_one()


def test_kill_9_mid_delivery_resends_only_what_was_in_flight(tmp_path):
    rng = random.Random(20261201)
    chats = [str(10_000 + i) for i in range(120)]
    with FakeBotAPI() as fake, database("sqlite", tmp_path) as url:
        fake.delay = 0.3  # each send is 300 ms in flight: kills land mid-request
        config = write_config(tmp_path / "cfg", url, fake, max_in_flight=8)
        store = Store(url)
        alert(store, chats)
        kills, claimed_at_kills = 0, []
        for _ in range(3):
            before = len(fake.sent)
            proc = start_lookout(config, "send", "--max-wait", "60")
            target = before + rng.randint(5, 25)
            assert wait_until(lambda t=target, p=proc: len(fake.sent) >= t or p.poll() is not None, 30)
            time.sleep(rng.uniform(0.0, 0.3))  # anywhere in a send's 300 ms
            if proc.poll() is not None:
                break  # it finished first: nothing was in flight
            proc.send_signal(signal.SIGKILL)
            proc.communicate()
            kills += 1
            claimed_at_kills.append(in_state(store, "sending"))
        assert kills >= 2
        done = lookout(config, "send", "--max-wait", "60")
        assert done.returncode == 0, done.stderr
        assert "resent after an interrupted run" in done.stdout
        counts = received(fake)
        assert set(counts) == set(chats)  # nothing lost
        duplicates = sum(n - 1 for n in counts.values())
        # Each kill left at most max_in_flight claims, and only those were sent again.
        assert all(n <= 8 for n in claimed_at_kills), claimed_at_kills
        assert duplicates <= sum(claimed_at_kills) <= 8 * kills
        assert fake.peak_concurrent_sends <= 8
        assert in_state(store, "sent") == len(chats)
        store.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_lookout_send_beside_a_running_service_takes_none_of_its_rows(tmp_path, backend):
    chats = [str(20_000 + i) for i in range(600)]
    with FakeBotAPI(global_per_second=200) as fake, database(backend, tmp_path) as url:
        fake.delay = 0.05  # 8 in flight: about 150 a second, so the service is mid-way when send starts
        config = write_config(tmp_path / "cfg", url, fake, rate_global=200)
        store = Store(url)
        alert(store, chats)
        svc = ServiceProcess(config, free_port()).start()
        try:
            svc.wait_healthy()
            assert wait_until(lambda: len(fake.sent) >= 40, 30), svc.log()
            send = lookout(config, "send", "--max-wait", "30")
            assert send.returncode == 1
            assert f"lookout run, pid {svc.proc.pid}" in send.stderr, send.stderr
            assert "nothing sent" in send.stderr
            assert wait_until(lambda: len(fake.sent) >= len(chats), 60), svc.log()
            time.sleep(0.3)  # a duplicate would arrive now
            assert svc.terminate() == 0
        finally:
            svc.kill_if_running()
        counts = received(fake)
        assert set(counts) == set(chats) and set(counts.values()) == {1}  # none lost, none twice
        assert in_state(store, "sent") == len(chats)
        store.dispose()


def test_send_max_wait_returns_in_time_beside_an_hour_long_flood_wait(tmp_path):
    with FakeBotAPI() as fake, database("sqlite", tmp_path) as url:
        fake.force_429(chat_id="30000", retry_after=3600)
        config = write_config(tmp_path / "cfg", url, fake)
        store = Store(url)
        alert(store, ["30000"])
        alert(store, [str(30_001 + i) for i in range(5)])
        started = time.monotonic()
        done = lookout(config, "send", "--max-wait", "20", timeout=60)
        elapsed = time.monotonic() - started
        assert done.returncode == 0, done.stderr
        assert elapsed < 20  # the flooded chat is not waited for
        assert set(received(fake)) == {str(30_001 + i) for i in range(5)}
        assert "sent 5 · failed 0 · waiting 1 (due " in done.stdout
        with store.connect() as conn:
            state, due = conn.execute(select(outbox.c.state, outbox.c.next_attempt_at)
                                      .where(outbox.c.chat_id == "30000")).one()
        assert state == "pending"
        assert (due - utcnow()).total_seconds() > 3500
        store.dispose()
