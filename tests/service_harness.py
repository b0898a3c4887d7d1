"""Helpers for end-to-end service tests and the latency bench: a config directory wired to the
local news site and the fake Bot API, and ``lookout run`` as a subprocess."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules" / "examples" / "north-aleppo.yaml"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(
    directory: Path, *, sources: list[dict], token: str | None, api_url: str | None,
    admins: tuple[int, ...] = (), timeout: str = "60s", download_timeout: str = "20s", parallel: int = 2,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    rules = directory / "rules.yaml"
    if not rules.exists():
        rules.write_text(RULES.read_text(encoding="utf-8"), encoding="utf-8")
    lines = ["sources:"]
    for s in sources:
        lines.append(f"  - name: {s['name']}")
        lines.append(f"    feed: \"{s['feed']}\"")
        lines.append(f"    every: {s['every']}")
    (directory / "sources.yaml").write_text("\n".join(lines) + "\n")
    telegram = ""
    if token is not None:
        telegram = (f"telegram:\n  token: \"{token}\"\n  api_url: {api_url}\n"
                    f"  admins: [{', '.join(str(a) for a in admins)}]\n")
    config = directory / "lookout.yaml"
    config.write_text(
        "database: sqlite:///var/lookout.db\n"
        "rules: [rules.yaml]\n"
        "sources: sources.yaml\n"
        + telegram
        + "crawl:\n"
        f"  timeout: {timeout}\n"
        f"  download_timeout: {download_timeout}\n"
        f"  parallel: {parallel}\n"
        "  obey_robots: false\n"
        "  autothrottle: false\n"
        "  max_age: null\n"
    )
    return config


@dataclass
class ServiceProcess:
    config: Path
    http_port: int
    extra_args: tuple[str, ...] = ()  # more `lookout run` options
    proc: subprocess.Popen | None = None
    log_path: Path | None = None

    def start(self) -> ServiceProcess:
        self.log_path = self.config.parent / f"service-{int(time.time() * 1000)}.log"
        log = self.log_path.open("wb")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        env.pop("TELEGRAM_BOT_TOKEN", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "lookout.cli", "--config", str(self.config), "run",
             "--http", f"127.0.0.1:{self.http_port}", *self.extra_args],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.config.parent, env=env,
        )
        log.close()
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def get(self, path: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=5) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def wait_healthy(self, timeout: float = 30.0, *, status_code: int = 200) -> dict:
        """``/healthz`` once it answers ``status_code`` (200: scheduler and delivery run; 503
        with no token: crawling runs, delivery is disabled)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"service exited {self.proc.returncode}:\n{self.log()}")
            try:
                status, body = self.get("/healthz")
                if status == status_code and json.loads(body).get("scheduler") == "running":
                    return json.loads(body)
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"service not healthy in {timeout}s:\n{self.log()}")

    def terminate(self, timeout: float = 40.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"service ignored SIGTERM for {timeout}s:\n{self.log()}") from None

    def kill_if_running(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def lookout(config: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "lookout.cli", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=timeout, cwd=config.parent, env=env, check=False)


def start_lookout(config: Path, *args: str) -> subprocess.Popen:
    """``lookout`` as ``lookout()`` runs it, started in the background: the test goes on while it
    runs (``communicate()`` collects stdout and stderr)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    return subprocess.Popen([sys.executable, "-m", "lookout.cli", "--config", str(config), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=config.parent, env=env)


def lookout_in_process(config: Path, *args: str) -> int:
    """``lookout --config CONFIG ARGS`` in this process (output to the test's capsys): the same
    command as ``lookout``, without the interpreter start-up. The logging the command sets up is
    undone afterwards, so it does not leak into the tests that follow on this worker."""
    from lookout.cli import main

    loggers = [logging.getLogger(), logging.getLogger("httpx"), logging.getLogger("httpcore")]
    saved = [(lg, lg.level, lg.handlers[:]) for lg in loggers]
    try:
        return main(["--config", str(config), *args])
    finally:
        for lg, level, handlers in saved:
            lg.setLevel(level)
            lg.handlers[:] = handlers


def wait_until(predicate, timeout: float, interval: float = 0.05):
    """Poll ``predicate`` until it returns something truthy (returned) or ``timeout`` seconds
    pass (its last falsy answer is returned)."""
    deadline = time.monotonic() + timeout
    while True:
        found = predicate()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(interval)


async def wait_until_async(predicate, within: float, interval: float = 0.05):
    """``wait_until`` on a running event loop: the service under test keeps running meanwhile."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while loop.time() < deadline:
        found = predicate()
        if found:
            return found
        await asyncio.sleep(interval)
    return predicate()


def db_rows(config: Path, sql: str, *params: object) -> list[dict]:
    """Rows of a query on the service's SQLite database (``var/lookout.db`` beside the config),
    read directly: what ``lookout status`` would show, without starting a process. Empty while the
    database or the table does not exist yet."""
    db = config.parent / "var" / "lookout.db"
    if not db.exists():
        return []
    conn = sqlite3.connect(db, timeout=10)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    except sqlite3.OperationalError as exc:
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def crawl_runs_of(config: Path) -> list[dict]:
    """The service's ``crawl_runs``, oldest first."""
    return db_rows(config, "select * from crawl_runs order by id")


_STORY_WORDS = [
    "convoy", "checkpoint", "shelling", "bakery", "hospital", "crossing", "refugees", "council", "market",
    "school", "orchard", "bridge", "generator", "warehouse", "mosque", "clinic", "tanker", "ambulance",
    "courthouse", "stadium",
]


def matching_article(slug: str, title: str, n: int = 0):
    """An article that mentions Azaz (a watched place) and Islamic State, published now. Each
    ``slug`` gets its own wording, so articles are separate stories, not syndicated copies."""
    import random

    from support.newssite import SiteArticle

    rng = random.Random(slug)
    words = _STORY_WORDS[:]
    rng.shuffle(words)
    filler = " ".join(
        f"Witnesses described the {w} near {rng.choice(['the border', 'the old town', 'the highway'])} "
        f"on day {rng.randint(1, 28)} of the offensive." for w in words[:8]
    )
    return SiteArticle(
        slug=slug, title=title,
        paragraphs=[
            f"{title}. Islamic State fighters were reported near Azaz, residents said ({slug}).",
            filler,
            f"Report number {n or rng.randint(1000, 9999)}: {' '.join(words[8:])}.",
        ],
        published=datetime.now(UTC),
    )


def without_workers(config):
    """``config`` with ``crawl.workers: 0``: the service schedules its sources but crawls none (for
    tests of what the service does besides crawling)."""
    return config.model_copy(update={"crawl": config.crawl.model_copy(update={"workers": 0})})
