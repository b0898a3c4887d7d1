"""Failing article URLs back off: a 404 or 410 is tried again after 1 h, then 6 h, then given up;
a 5xx or a timeout after 10 min, doubling up to 12 h; a URL waiting for its next try is not
requested and not counted as a failure (its source is ``ok`` again). The schedule on both
backends, ``lookout failures list|forget``, and three crawls in a row fetching a 404 once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from support.crawl import crawl_in_subprocess
from support.routedsite import Site, rss

from core.store import Store, crawl_failures, crawl_runs, failing_urls
from crawler.state import (
    clear_failures,
    clear_source_failures,
    failing_states,
    list_failing,
    note_failure,
    record_failure,
)
from lookout.cli import main

T0 = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
GONE = "https://news.example/gone.html"
HOUR = timedelta(hours=1)


def test_a_404_is_tried_again_after_an_hour_then_six_hours_then_given_up(store):
    with store.begin() as conn:
        first = note_failure(conn, "wire", GONE, "http-404", "HttpError: Ignoring non-200 response", T0)
    assert (first.tries, first.next_try_at) == (1, T0 + HOUR)
    with store.connect() as conn:
        state = failing_states(conn, [GONE, "https://news.example/fine.html"])
    assert list(state) == [GONE]  # only URLs that failed have a state
    assert state[GONE].waiting(T0 + timedelta(minutes=59))
    assert not state[GONE].waiting(T0 + timedelta(minutes=61))  # due: the next crawl requests it

    with store.begin() as conn:
        second = note_failure(conn, "wire", GONE, "http-404", None, T0 + HOUR)
        third = note_failure(conn, "wire", GONE, "http-410", None, T0 + 7 * HOUR)
    assert (second.tries, second.next_try_at) == (2, T0 + 7 * HOUR)
    assert (third.tries, third.next_try_at, third.given_up) == (3, None, True)
    with store.connect() as conn:
        (row,) = list_failing(conn)
    assert (row.url, row.reason, row.tries, row.given_up) == (GONE, "http-410", 3, True)
    assert row.waiting(T0 + timedelta(days=1000))  # never requested again


def test_server_errors_and_timeouts_retry_with_growing_delays_never_given_up(store):
    delays = []
    with store.begin() as conn:
        at = T0
        for _ in range(10):
            state = note_failure(conn, "wire", GONE, "http-503", None, at)
            assert state.next_try_at is not None
            delays.append(state.next_try_at - at)
            at = state.next_try_at
        timeout = note_failure(conn, "wire", "https://news.example/slow.html", "timeout", None, T0)
    minutes = [d.total_seconds() / 60 for d in delays]
    assert minutes[:7] == [10, 20, 40, 80, 160, 320, 640]
    assert minutes[7:] == [720, 720, 720]  # capped at 12 h
    assert timeout.next_try_at == T0 + timedelta(minutes=10)


def test_a_failure_backs_off_its_article_url_but_not_an_index_or_a_storage_error(store):
    record_failure(store, "wire", GONE, "http-404", "HttpError", backoff_url=GONE, now=T0)
    record_failure(store, "wire", "https://news.example/feed.xml", "http-500", "index page")  # no backoff_url
    record_failure(store, "wire", "https://news.example/a.html", "store-error", "disk full",
                   backoff_url="https://news.example/a.html", now=T0)
    with store.connect() as conn:
        assert [r.reason for r in conn.execute(select(crawl_failures).order_by(crawl_failures.c.id))] == [
            "http-404", "http-500", "store-error"]  # every failure is still recorded
        assert [f.url for f in list_failing(conn)] == [GONE]

    with store.begin() as conn:
        note_failure(conn, "other", "https://other.example/x", "timeout", None, T0)
        assert clear_failures(conn, [GONE, "https://never.example/"]) == {GONE}
        assert [f.source for f in list_failing(conn)] == ["other"]
        assert clear_source_failures(conn, "other") == 1
        assert list_failing(conn) == []


def test_failures_list_and_forget(tmp_path, capsys):
    cfg = tmp_path / "lookout.yaml"
    db = tmp_path / "lookout.db"
    cfg.write_text(f"database: sqlite:///{db}\nrules: []\n", encoding="utf-8")
    store = Store(f"sqlite:///{db}")
    now = datetime.now(UTC)
    with store.begin() as conn:
        for _ in range(3):
            note_failure(conn, "wire", GONE, "http-404", None, now)
        note_failure(conn, "wire", "https://news.example/busy.html", "http-503", None, now)
        note_failure(conn, "other", "https://other.example/slow.html", "timeout", None, now)
    store.dispose()

    assert main(["--config", str(cfg), "failures", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["url", "source", "reason", "tries", "next", "try"]
    rows = {line.split()[0]: line.split() for line in out[2:]}
    assert rows[GONE][1:5] == ["wire", "http-404", "3", "given"] and out[-1].endswith("given up")
    assert rows["https://news.example/busy.html"][1:4] == ["wire", "http-503", "1"]
    assert rows["https://news.example/busy.html"][-1] == "UTC"  # a time: when it is tried next
    assert main(["--config", str(cfg), "failures", "list", "other"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()[2:]] == [
        "https://other.example/slow.html"]

    # A URL as a user pastes it (capitals, tracking parameters) is found in its canonical form.
    assert main(["--config", str(cfg), "failures", "forget", "HTTPS://News.Example/gone.html?utm_source=x",
                 "https://nowhere.example/"]) == 1
    captured = capsys.readouterr()
    assert "forgot 1 failing URL(s)" in captured.out and "not failing: https://nowhere.example/" in captured.err
    assert main(["--config", str(cfg), "failures", "forget", "--source", "other"]) == 0
    assert "forgot 1 failing URL(s) of other" in capsys.readouterr().out
    assert main(["--config", str(cfg), "failures", "forget"]) == 2  # say what to forget
    assert main(["--config", str(cfg), "failures", "forget", "--all"]) == 0
    assert "forgot 1 failing URL(s)" in capsys.readouterr().out
    assert main(["--config", str(cfg), "failures", "list"]) == 0
    assert capsys.readouterr().out.strip() == "no failing URLs"


@pytest.mark.e2e
def test_a_404_is_fetched_once_in_three_crawls_and_again_once_its_delay_is_over(tmp_path):
    with Site() as site:
        site.routes["/feed.xml"] = (200, "application/rss+xml", rss([site.add_article("/a.html", "Marea"),
                                                                      site.link("/gone.html")]))
        cfg = tmp_path / "lookout.yaml"
        db = tmp_path / "lookout.db"
        cfg.write_text(
            f"database: sqlite:///{db}\nrules: []\nsources:\n"
            f"  - {{name: wire, feed: '{site.link('/feed.xml')}', every: 10m}}\n",
            encoding="utf-8",
        )
        reports = [crawl_in_subprocess(cfg)["sources"]["wire"] for _ in range(3)]
        assert site.count("/gone.html") == 1  # the 2nd and 3rd crawl did not ask again
        assert site.count("/feed.xml") == 3

        store = Store(f"sqlite:///{db}")
        try:
            with store.begin() as conn:  # the hour has passed
                (waiting,) = conn.execute(select(failing_urls)).all()
                conn.execute(update(failing_urls).values(next_try_at=datetime.now(UTC) - timedelta(seconds=1)))
            fourth = crawl_in_subprocess(cfg)["sources"]["wire"]
            with store.connect() as conn:
                (again,) = conn.execute(select(failing_urls)).all()
                results = [r.result for r in conn.execute(select(crawl_runs).order_by(crawl_runs.c.id))]
        finally:
            store.dispose()
        assert site.count("/gone.html") == 2

    assert reports[0]["result"] == "partial" and reports[0]["failed"] == {"http-404": 1}
    for later in reports[1:]:
        assert later["result"] == "ok" and later["failed"] == {} and later["skipped"] == 2  # known + backing off
    assert (waiting.url, waiting.reason, waiting.tries) == (site.link("/gone.html"), "http-404", 1)
    assert timedelta(minutes=59) < waiting.next_try_at - waiting.last_failed_at <= HOUR
    assert fourth["result"] == "partial" and fourth["failed"] == {"http-404": 1}
    assert again.tries == 2 and again.next_try_at - again.last_failed_at == 6 * HOUR
    # The two uneventful crawls (nothing fetched, nothing failed) leave no run row, only their
    # sources row (crawler.runner.record_run).
    assert results == ["partial", "partial"]
