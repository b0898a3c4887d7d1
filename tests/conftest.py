"""Shared fixtures: a store on SQLite and (where a server answers) PostgreSQL, and the seeds."""

from __future__ import annotations

import functools
import os
import uuid
from pathlib import Path

import pytest

from core.store import Store

pytest_plugins = ("support.delivery",)  # the delivery fixtures: fake, clock, vfake

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "seeds"
PG_URL = os.environ.get("LOOKOUT_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@functools.cache
def postgres_available() -> tuple[bool, str]:
    """Probe once (per process: each xdist worker probes once); the reason is printed in the skip
    message when no server answers."""
    try:
        import sqlalchemy

        engine = sqlalchemy.create_engine(PG_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sqlalchemy.text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure means: skip with the reason
        return False, f"PostgreSQL not available at {PG_URL}: {type(exc).__name__}: {exc}"
    return True, ""


def make_store(backend: str, tmp_path: Path) -> Store:
    if backend == "sqlite":
        return Store(f"sqlite:///{tmp_path / 'lookout.db'}")
    ok, reason = postgres_available()
    if not ok:
        pytest.skip(reason)
    return Store(PG_URL, schema=f"t_{uuid.uuid4().hex[:12]}")


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path):
    """A fresh, empty store on each backend (a private schema on PostgreSQL)."""
    s = make_store(request.param, tmp_path)
    yield s
    if s.schema:
        s.drop()
    s.dispose()


@pytest.fixture
def sqlite_store(tmp_path: Path):
    s = make_store("sqlite", tmp_path)
    yield s
    s.dispose()


@pytest.fixture(scope="session")
def seed_files() -> list[Path]:
    files = sorted(SEEDS.glob("*.txt"))
    assert len(files) == 3, "seeds/ must hold the three sample articles"
    return files


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests first: they are the longest (subprocesses, servers), and the four workers
    finish together when the long ones start early instead of trailing at the end."""
    items.sort(key=lambda item: item.get_closest_marker("e2e") is None)
