"""Crawler parts without a reactor: canonical URLs, the sources file, language detection,
page checks, story clustering and the storage contract (on SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from scrapy.http import HtmlResponse, Request, Response
from sqlalchemy import distinct, func, select
from support.newssite import ARABIC_PARAGRAPHS, load_seed_articles

from core.located import LocatedErrors
from core.store import story_bands
from crawler.canonical import canonicalize, same_site
from crawler.extract import detect_language, extract_page
from crawler.items import Article
from crawler.sources import load_sources, parse_sources
from crawler.spiders.base import changed_since, page_problem
from crawler.storage import save_article
from crawler.stories import StoryClusterer

NOW = datetime(2016, 6, 9, 12, 0, tzinfo=UTC)


def test_canonicalize():
    assert (
        canonicalize("HTTP://Example.COM:80/a/b?utm_source=x&id=3&fbclid=z#frag")
        == "http://example.com/a/b?id=3"
    )
    assert canonicalize("https://example.com:443") == "https://example.com/"
    assert canonicalize("https://example.com:8443/x") == "https://example.com:8443/x"
    assert canonicalize("../news/a.html", base="https://ex.com/feed/rss.xml") == "https://ex.com/news/a.html"
    assert same_site("https://www.ex.com/a", "http://ex.com/b") and not same_site(
        "https://ex.com", "https://ex.org"
    )


def test_sources_file_errors_are_all_located(tmp_path):
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n"
        "  - name: Bad_Name\n    feed: https://a.example/feed\n    every: 10m\n"  # line 2
        "  - name: both\n    feed: https://a.example/f\n    sitemap: https://a.example/s\n    every: 5m\n"
        "  - name: lst\n    listing: https://a.example/\n    every: soon\n"  # no follow, bad every
        "  - name: both\n    feed: https://b.example/f\n    every: 1h\n    colour: red\n",
        encoding="utf-8",
    )
    with pytest.raises(LocatedErrors) as info:
        load_sources(path)
    text = str(info.value)
    lines = [str(e.location.line) for e in info.value.errors]
    assert f"{path}:2:" in text and "lower-case" in text
    assert "exactly one of feed, sitemap, listing" in text
    assert "not a duration" in text
    assert "unknown key 'colour'" in text
    assert "needs 'follow'" in text and "duplicate source name 'both'" in text
    # Every error at once, each at its own line, even several in one source (3: follow and every).
    assert lines == ["2", "7", "10", "11", "12", "15"]
    assert all(str(e).startswith(f"{path}:") for e in info.value.errors)


def test_sources_parse_kinds():
    found = parse_sources(
        [
            {"name": "a", "feed": "https://x.example/feed", "every": "10m"},
            {"name": "b", "sitemap": "https://x.example/s.xml", "every": "15m", "lang": "ar"},
            {"name": "c", "listing": "https://x.example/", "follow": "h2 a", "every": "30m"},
        ],
        "inline",
    )
    assert [(s.kind, s.every) for s in found] == [
        ("feed", timedelta(minutes=10)),
        ("sitemap", timedelta(minutes=15)),
        ("listing", timedelta(minutes=30)),
    ]
    with pytest.raises(LocatedErrors, match="needs 'follow'"):
        parse_sources([{"name": "c", "listing": "https://x.example/", "every": "30m"}], "inline")
    for every in ("0m", 0, "0s"):  # a zero interval would have the scheduler crawl without pause
        with pytest.raises(LocatedErrors, match="'every' must be a positive duration"):
            parse_sources([{"name": "a", "feed": "https://x.example/f", "every": every}], "inline")


def test_language_detection():
    assert detect_language(" ".join(ARABIC_PARAGRAPHS)) == "ar"
    assert detect_language("The rebels said that the town was taken and the road to Azaz is closed.") == "en"
    assert detect_language("Azaz") is None


def test_extract_page_drops_furniture_and_declares_language():
    html = (
        "<html lang='en'><head><title>T</title></head><body><nav><a href='/'>Azaz live updates</a></nav>"
        "<article><h1>Fighting near Marea</h1>" + "<p>Rebels said the fighting near Marea went on all night "
        "and that the road to the border was closed to civilians trying to reach the camps.</p>"
        * 4
        + "</article><div id='comments' class='comments'><p>Daesh will never hold Manbij</p></div>"
        "<footer>Newsletter: the week in Marea</footer></body></html>"
    )
    found = extract_page(html, "https://ex.com/a.html")
    assert "road to the border" in found.text
    assert "live updates" not in found.text and "Daesh" not in found.text and "Newsletter" not in found.text
    assert found.language == "en"


def _response(body: bytes, ctype: str) -> Response:
    cls = HtmlResponse if ctype.startswith("text/html") else Response
    return cls(
        url="https://ex.com/a",
        body=body,
        headers={"Content-Type": ctype},
        request=Request("https://ex.com/a"),
    )


def test_page_problems():
    assert page_problem(_response(b"%PDF-1.4", "application/pdf")) == "not-html"
    assert page_problem(_response(b"\x89PNG\0\0\0", "text/html")) == "binary"
    assert (
        page_problem(_response(b"<p>" + bytes(range(128, 256)) * 20, "text/html; charset=utf-8"))
        == "undecodable"
    )
    arabic = "<html><head><meta charset='windows-1256'></head><body><p>إعزاز</p></body></html>"
    response = _response(arabic.encode("windows-1256"), "text/html")
    assert page_problem(response) is None and "إعزاز" in response.text


def test_changed_since():
    assert changed_since("2016-06-02T00:00:00+00:00", "2016-06-01T00:00:00+00:00")
    assert not changed_since("2016-06-01T00:00:00+00:00", "2016-06-01T00:00:00+00:00")
    assert not changed_since(None, "2016-06-01T00:00:00+00:00")


def _article(url: str, text: str, title: str = "T", published: datetime | None = NOW) -> Article:
    return Article(url=url, source="s", title=title, text=text, published=published)


def test_storage_contract(store):
    seeds = load_seed_articles()
    original = seeds[1].text
    edited = (
        original.replace("BEIRUT – ", "").replace("monitoring NGO", "monitor").replace("Kafrah", "Kafra", 1)
    )
    with store.begin() as conn:
        clusterer = StoryClusterer.load(conn)
        first = save_article(
            conn, _article("https://a.example/1", original), clusterer, max_age=timedelta(days=3), now=NOW
        )
        copy = save_article(
            conn, _article("https://b.example/x", edited), clusterer, max_age=timedelta(days=3), now=NOW
        )
        other = save_article(
            conn,
            _article("https://a.example/2", seeds[0].text, published=NOW - timedelta(days=9)),
            clusterer,
            max_age=timedelta(days=3),
            now=NOW,
        )
        same = save_article(
            conn, _article("https://a.example/1", original), clusterer, max_age=timedelta(days=3), now=NOW
        )
    assert (first.status, first.new_story, first.alertable) == ("new", True, True)
    assert (copy.status, copy.new_story, copy.story_id) == ("new", False, first.story_id)
    assert (other.status, other.new_story, other.alertable) == ("new", True, False)  # older than max_age
    assert other.story_id != first.story_id
    assert (same.status, same.article_id) == ("unchanged", first.article_id)

    # A fresh clusterer rebuilt from the store still knows the stories; an update keeps its story.
    with store.begin() as conn:
        reloaded = StoryClusterer.load(conn)
        indexed = select(func.count(distinct(story_bands.c.article_id)))
        assert conn.execute(indexed).scalar_one() == 3  # the index is in the database
        updated = save_article(
            conn,
            _article("https://a.example/2", seeds[0].text + "\n\nUpdate: more."),
            reloaded,
            max_age=None,
            now=NOW,
        )
        syndicated = save_article(
            conn, _article("https://c.example/y", seeds[0].text), reloaded, max_age=None, now=NOW
        )
    assert (updated.status, updated.story_id, updated.alertable) == ("updated", other.story_id, False)
    assert (syndicated.new_story, syndicated.story_id) == (False, other.story_id)


def test_sources_check_without_file_checks_the_configured_sources(tmp_path, capsys):
    from lookout.cli import main

    cfg = tmp_path / "lookout.yaml"
    cfg.write_text(
        f"database: sqlite:///{tmp_path / 'db.sqlite'}\nrules: []\nsources:\n"
        "  - {name: a, feed: 'https://x.example/f', every: 10m}\n"
        "  - {name: b, sitemap: 'https://x.example/s.xml', every: 0m}\n",
        encoding="utf-8",
    )
    assert main(["--config", str(cfg), "sources", "check"]) == 1
    err = capsys.readouterr().err
    assert f"{cfg}:5:" in err and "'every' must be a positive duration" in err
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("every: 0m", "every: 15m"), encoding="utf-8")
    assert main(["--config", str(cfg), "sources", "check"]) == 0
    assert capsys.readouterr().out.startswith(f"{cfg}: 2 source(s) OK: a (feed")


def test_crawl_summary_table_totals_say_partial_ok_or_failed():
    from collections import Counter

    from crawler.runner import CrawlReport
    from crawler.state import SourceStats
    from lookout.commands.crawl import format_report

    clean = SourceStats("rss", entries=3, fetched=3, new=3, finish_reason="finished")
    flaky = SourceStats("sitemap", entries=2, fetched=2, new=1, failed=Counter({"http-404": 1}),
                        finish_reason="finished")

    def total(*stats) -> list[str]:
        return format_report(CrawlReport(list(stats), 1.0)).splitlines()[-1].split()

    assert total(clean)[:5] == ["total", "ok", "3", "0", "3"]  # seen, skipped, fetched
    assert total(clean, flaky)[:5] == ["total", "partial", "5", "0", "5"]
    assert total(clean, flaky)[9] == "1"  # failed pages
    broken = SourceStats("listing", index_error="http-500: Internal Server Error", finish_reason="finished")
    assert total(clean, broken)[1] == "failed"


def test_crawls_open_no_remote_control_endpoint():
    # Scrapy 2.19 enables RemoteControl (an /execute endpoint on 127.0.0.1) by default.
    from scrapy.settings import Settings
    from scrapy.utils.conf import build_component_list

    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    enabled = build_component_list(settings.getwithbase("EXTENSIONS"))
    assert "scrapy.extensions.remote_control.RemoteControl" not in enabled
    assert "scrapy.extensions.corestats.CoreStats" in enabled  # the list itself is read right
    assert settings.getbool("REMOTE_CONTROL_ENABLED") is False


def _true_jaccard(a: str, b: str) -> float:
    import re

    def grams(t: str) -> set[tuple[str, ...]]:
        w = re.findall(r"\w+", t.lower())
        return {tuple(w[i : i + 3]) for i in range(len(w) - 2)}

    x, y = grams(a), grams(b)
    return len(x & y) / len(x | y)


def test_story_signatures_estimate_similarity_and_the_index_finds_copies():
    import random

    from crawler.stories import NUM_PERM, jaccard, signature_of

    seeds = load_seed_articles()
    base = seeds[1].text
    rnd = random.Random(3)
    words = base.split()
    errors = []
    for _ in range(60):
        edited = list(words)
        for _ in range(rnd.randint(0, len(words) // 3)):
            edited[rnd.randrange(len(edited))] = rnd.choice(["lorem", "ipsum", "Azaz", str(rnd.random())])
        other = " ".join(edited)
        sa, sb = (np.frombuffer(signature_of(t), dtype=np.uint32) for t in (base, other))
        errors.append(jaccard(sa, sb) - _true_jaccard(base, other))
    # 128 permutations: standard error about 0.04; the estimates must scatter around the truth.
    assert abs(float(np.mean(errors))) < 0.03 and float(np.std(errors)) < 0.06
    assert len(signature_of(base)) == NUM_PERM * 4
    assert signature_of("too short to cluster") is None
    assert signature_of("Daesh " * 200) is None  # one shingle repeated is not a text
    assert signature_of("a b c d e f g h i j k l") != signature_of("l k j i h g f e d c b a")
    # The index itself (in the database): tests/test_story_index.py.
