"""The CLI skeleton: every command answers --help, and a bad command line gets usage."""

from __future__ import annotations

import pytest

from lookout.cli import build_parser, main

COMMANDS = [
    ["demo"], ["crawl"], ["send"], ["run"], ["status"], ["rules", "check"], ["rules", "test"],
    ["rules", "backtest"], ["sources", "list"], ["sources", "check"], ["subscribe"], ["unsubscribe"],
    ["subscribers", "list"], ["alerts", "list"], ["alerts", "retry"], ["gazetteer", "import"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lookout " + " ".join(command))


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in {c[0] for c in COMMANDS}:
        assert name in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: lookout" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err


def test_sources_list_shows_a_failing_source_backing_off(tmp_path, capsys, monkeypatch):
    from datetime import UTC, datetime, timedelta

    from service_harness import lookout_in_process, write_config

    from core.store import Store, sources

    monkeypatch.delenv("LOOKOUT_CONFIG", raising=False)
    config = write_config(tmp_path, sources=[
        {"name": "flaky", "feed": "http://127.0.0.1:9/feed", "every": "1m"},
        {"name": "hourly", "feed": "http://127.0.0.1:9/hourly", "every": "1h"},
        {"name": "good", "feed": "http://127.0.0.1:9/good", "every": "10m"},
    ], token=None, api_url=None)
    next_poll = datetime.now(UTC).replace(second=0, microsecond=0) + timedelta(minutes=5)
    (tmp_path / "var").mkdir(exist_ok=True)
    store = Store(f"sqlite:///{tmp_path / 'var' / 'lookout.db'}")
    try:
        with store.begin() as conn:
            for row in (
                {"name": "flaky", "kind": "feed", "url": "http://127.0.0.1:9/feed", "last_result": "failed",
                 "last_error": "connection-refused: nobody listens", "failures_in_row": 3, "next_run_at": next_poll},
                {"name": "hourly", "kind": "feed", "url": "http://127.0.0.1:9/hourly", "last_result": "timeout",
                 "last_error": "timed out", "failures_in_row": 2},
                {"name": "good", "kind": "feed", "url": "http://127.0.0.1:9/good", "last_result": "ok"},
            ):
                conn.execute(sources.insert().values(**row))
    finally:
        store.dispose()
    capsys.readouterr()
    assert lookout_in_process(config, "sources", "list") == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split("  ")
    assert [h.strip() for h in header if h.strip()] == [
        "source", "kind", "every", "last crawl", "last success", "result", "new 24h", "next poll", "backoff",
        "last error"]
    rows = {line.split()[0]: line for line in lines[2:]}
    assert set(rows) == {"flaky", "hourly", "good"}
    assert f" {next_poll:%Y-%m-%d %H:%M} UTC " in rows["flaky"]
    assert " backing off: 3 failures in a row (every 8m instead of 1m) " in rows["flaky"]
    assert rows["flaky"].rstrip().endswith("connection-refused: nobody listens")  # the last error stays last
    assert " failing: 2 failures in a row (every 1h: not backed off, crawl.max_backoff is 1h) " in rows["hourly"]
    assert "backing off" not in rows["good"] and "failing" not in rows["good"]
