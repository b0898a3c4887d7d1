"""`lookout demo` end to end: seeds -> local site -> spiders -> trafilatura -> rules -> store -> alerts.

Run as a subprocess, as a user would (Twisted's reactor runs once per process). End to end
(marker ``e2e``): ``-m e2e`` runs these alone, ``-m "not e2e"`` skips them. The check of the
options, which never gets as far as the demo, runs in this process.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest
from conftest import ROOT
from fakebotapi import FakeBotAPI
from support.perrun import once, run_folder

from lookout.cli import main

# The tests that read the demo run, kept on one xdist worker by --dist loadgroup where that works
# (demo_run runs the demo once per run either way). The other tests may go to any worker.
shares_demo_run = pytest.mark.xdist_group("demo")

SEED_TITLES = {
    "000": "Islamic State withdraws from frontlines north of Aleppo",
    "001": "ISIS advances in flashpoint north Aleppo",
    "002": "Thousands Flee As Islamic State Offensive Threatens Syrian Rebel Supply Route",
}


def run_demo(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    env.pop("LOOKOUT_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "lookout.cli", "demo", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )


def alert_blocks(stdout: str) -> list[str]:
    """The printed messages: each starts with a '── to <chat> · message N ──' header."""
    parts = re.split(r"^── to .*──$", stdout, flags=re.M)
    return [p.strip() for p in parts[1:]]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, float]:
    """One `lookout demo` for the whole run: the first worker to ask runs it, any other reads it
    (the xdist group alone no longer keeps these tests on one worker; see support.perrun)."""

    def run() -> dict:
        started = time.monotonic()
        result = run_demo()
        seconds = time.monotonic() - started
        return {"args": result.args, "returncode": result.returncode, "stdout": result.stdout,
                "stderr": result.stderr, "seconds": seconds}

    got = once(run_folder(tmp_path_factory), "demo-run", run)
    return subprocess.CompletedProcess(got["args"], got["returncode"], got["stdout"], got["stderr"]), got["seconds"]


@pytest.mark.e2e
@shares_demo_run
def test_demo_exits_zero_within_30_seconds(demo_run):
    result, seconds = demo_run
    assert result.returncode == 0, result.stderr[-3000:]
    assert seconds < 30


@pytest.mark.e2e
@shares_demo_run
def test_demo_prints_one_alert_per_seed_with_the_matched_names(demo_run):
    result, _ = demo_run
    blocks = alert_blocks(result.stdout.split("Summary:")[0])
    assert len(blocks) == 3, result.stdout
    for title in SEED_TITLES.values():
        (block,) = [b for b in blocks if title in b]
        # Islamic State (by any alias) near Azaz or Marea, and the alert names what matched.
        assert re.search(r"Islamic State|ISIS|\bIS\b|Daesh", block)
        assert re.search(r"Azaz|Aazaz|Marea|Kafrah|Kafr Kalbin", block)
        assert "HIGH" in block and "Read" in block
        # Exactly as Telegram shows it: no HTML tags, no escaped entities.
        assert "<b>" not in block and "&amp;" not in block and "&lt;" not in block


@pytest.mark.e2e
@shares_demo_run
def test_demo_summary_counts_pages_articles_matches_alerts(demo_run):
    result, _ = demo_run
    summary = re.search(
        r"Summary: (\d+) pages fetched, (\d+) articles stored, (\d+) matches, (\d+) alerts", result.stdout
    )
    assert summary, result.stdout
    pages, stored, found, alerts = map(int, summary.groups())
    assert stored == 3
    assert pages >= 3
    assert found >= 3
    assert alerts == 3


@pytest.mark.e2e
def test_demo_delivers_the_alerts_to_a_bot_api_server():
    with FakeBotAPI() as fake:
        result = run_demo("--telegram-api", fake.url, "--token", fake.token, "--chat", "42")
        assert result.returncode == 0, result.stderr[-3000:]
        sent = fake.messages("42")
    assert len(sent) == 3
    texts = "\n".join(m.text for m in sent)
    for title in SEED_TITLES.values():
        assert title in texts
    assert all(m.parse_mode == "HTML" for m in sent)
    # Only the demo chat: the example rules' real notify channel is never contacted.
    assert {m.chat_id for m in fake.messages()} == {"42"}
    # The token never reaches the output.
    assert fake.token not in result.stdout + result.stderr


def test_demo_telegram_options_go_together(monkeypatch, capsys):
    # As run_demo runs it (from the project root, no LOOKOUT_CONFIG), but in this process: the
    # options are refused before any site, crawl or delivery starts.
    monkeypatch.delenv("LOOKOUT_CONFIG", raising=False)
    monkeypatch.chdir(ROOT)
    assert main(["demo", "--token", "1:a"]) == 2
    assert "go together" in capsys.readouterr().err
