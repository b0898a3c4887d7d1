"""Dead sources are named before and after a crawl, without one: a broken ``follow`` selector and
a ``lang`` that is no ISO 639-1 code are located errors of the sources file; a crawl result says
``empty`` or ``failed: <reason>``; a fetch failure says which network fault it was; a callback's
exception is one line, its traceback at DEBUG only."""

from __future__ import annotations

import logging
from collections import Counter

import pytest
from scrapy import Request
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
)
from twisted.python.failure import Failure
from twisted.web.client import ResponseNeverReceived

from core.located import LocatedErrors
from crawler.middlewares import OneLineErrors, PrivateAddress
from crawler.runner import CrawlReport
from crawler.sources import load_sources
from crawler.spiders.base import classify_failure
from crawler.state import CrawlResult, SourceStats
from lookout.cli import main
from lookout.commands.crawl import format_report

SOURCES = """\
sources:
  - name: good
    listing: https://news.example/
    follow: "h2.entry-title a"
    every: 30m
    lang: ar
  - name: broken
    listing: https://news.example/latest
    follow: "h2 >> a["
    every: 30m
  - name: wordy
    feed: https://news.example/feed
    every: 30m
    lang: english
"""


def test_sources_check_locates_a_broken_selector_and_a_language_name(tmp_path, capsys):
    path = tmp_path / "sources.yaml"
    path.write_text(SOURCES, encoding="utf-8")
    cfg = tmp_path / "lookout.yaml"
    cfg.write_text(f"database: sqlite:///{tmp_path / 'db.sqlite'}\nrules: []\n", encoding="utf-8")

    assert main(["--config", str(cfg), "sources", "check", str(path)]) == 1
    err = capsys.readouterr().err.splitlines()
    selector = next(line for line in err if "not a valid CSS selector" in line)
    assert selector.startswith(f"{path}:9:5: source 2: follow: 'h2 >> a[' is not a valid CSS selector")
    lang = next(line for line in err if "ISO 639-1" in line)
    assert lang.startswith(f"{path}:14:5: source 3: lang: 'english' is not an ISO 639-1 language code")
    assert lang.endswith("did you mean 'en'?")
    assert err[-1] == f"{path}: 2 error(s)"

    fixed = SOURCES.replace('"h2 >> a["', '"h2 > a"').replace("lang: english", "lang: EN")
    path.write_text(fixed, encoding="utf-8")
    assert main(["--config", str(cfg), "sources", "check", str(path)]) == 0
    assert [s.lang for s in load_sources(path)] == ["ar", None, "en"]  # a code in capitals is the code


@pytest.mark.parametrize(("given", "suggested"), [
    ("Arabic", "'ar'"), ("en-US", "'en'"), ("eng", "'en'"), ("frnch", "'fr'"), ("klingon", None),
])
def test_a_language_that_is_no_code_gets_a_suggestion_when_one_is_close(tmp_path, given, suggested):
    path = tmp_path / "sources.yaml"
    path.write_text(f"- {{name: a, feed: 'https://x.example/f', every: 10m, lang: {given}}}\n", encoding="utf-8")
    with pytest.raises(LocatedErrors) as caught:
        load_sources(path)
    (error,) = caught.value.errors
    assert f"'{given}' is not an ISO 639-1 language code" in error.message
    assert (f"did you mean {suggested}?" in error.message) if suggested else ("did you mean" not in error.message)


def _failure(exc: Exception) -> Failure:
    failure = Failure(exc)
    failure.request = Request("https://news.example/a")  # as Scrapy sets it
    return failure


def test_fetch_failures_name_the_network_fault():
    from OpenSSL import SSL

    def chained(outer: Exception, inner: Exception) -> Exception:
        outer.__cause__ = inner
        return outer

    tls = chained(DownloadFailedError("handshake"), ResponseNeverReceived([Failure(SSL.Error("wrong version number"))]))
    cases = {
        "connection-refused": DownloadConnectionRefusedError("Connection was refused by other side: 111"),
        "dns": CannotResolveHostError("DNS lookup failed: no results for hostname lookup: x.invalid."),
        "tls": tls,
        "timeout": DownloadTimeoutError("Getting https://news.example/a took longer than 30.0 seconds."),
        "private-address": PrivateAddress("127.0.0.1, a private address"),
    }
    assert {reason: classify_failure(_failure(exc))[0] for reason, exc in cases.items()} == {r: r for r in cases}


def test_a_crawl_result_says_empty_or_failed_with_its_reason():
    empty = SourceStats("listing", indexes_read=1, empty_reason="selector matched nothing", finish_reason="finished")
    assert empty.result == CrawlResult.EMPTY == "empty"
    assert empty.outcome == "empty: selector matched nothing"
    not_a_feed = SourceStats("feed", indexes_read=1, index_reason="not-a-feed (HTML page)",
                             index_error="not-a-feed (HTML page): content-type text/html",
                             failed=Counter({"not-a-feed": 1}), finish_reason="finished")
    assert not_a_feed.outcome == "failed: not-a-feed (HTML page)"
    unchanged = SourceStats("quiet", indexes_read=0, not_modified=1, finish_reason="finished")
    assert unchanged.result == CrawlResult.OK  # a 304 is not an empty index
    all_known = SourceStats("known", indexes_read=1, entries=5, skipped=5, finish_reason="finished")
    assert all_known.result == CrawlResult.OK  # nothing new is not nothing listed

    rows = format_report(CrawlReport([empty, not_a_feed], 1.0)).splitlines()
    assert rows[2].startswith("listing  empty: selector matched nothing ")
    assert rows[3].startswith("feed     failed: not-a-feed (HTML page)  ")


class _Spider:
    def __init__(self) -> None:
        self.failed: list[tuple[str, Exception]] = []

    def callback_failed(self, response, exc: Exception) -> None:
        self.failed.append((response.url, exc))


class _Crawler:
    def __init__(self) -> None:
        self.spider = _Spider()


def test_a_callback_exception_is_recorded_and_its_traceback_kept_for_debug(caplog):
    from scrapy.http import HtmlResponse

    crawler = _Crawler()
    middleware = OneLineErrors(crawler)
    response = HtmlResponse("https://news.example/", body=b"<html></html>")
    try:
        raise ValueError("Expected selector, got <DELIM '>' at 4>")
    except ValueError as exc:
        error = exc
    with caplog.at_level(logging.DEBUG, logger="crawler.middlewares"):
        assert middleware.process_spider_exception(response, error) == []
    assert crawler.spider.failed == [("https://news.example/", error)]
    (record,) = [r for r in caplog.records if r.name == "crawler.middlewares"]
    assert record.levelno == logging.DEBUG  # the traceback: -v only
    assert "Traceback (most recent call last)" in caplog.text and "ValueError: Expected selector" in caplog.text
