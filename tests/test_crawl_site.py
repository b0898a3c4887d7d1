"""End-to-end crawls of the local news site, each in a fresh process (the reactor runs once
per process): every feed format, sitemaps, listing, syndication, updates, re-crawl, faults.

``crawl_in_subprocess`` forks each crawl from a server that has done the imports once
(tests/support/crawl.py); ``lookout crawl`` and ``scrapy crawl`` run as a user runs them, with a
gazetteer cache built once for the whole run (``gazetteer_dir``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select
from support.crawl import crawl_in_subprocess, shared_gazetteer_cache
from support.newssite import (
    COMMENT_PHRASE,
    FAULTS,
    FOOTER_PHRASE,
    NAV_PHRASE,
    RELATED_PHRASES,
    NewsSite,
    SiteArticle,
    arabic_article,
)
from support.perrun import run_folder

from core.store import Store, articles, crawl_failures, crawl_runs, http_cache, sources
from lookout.cli import main

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent

SYNDICATED_FROM = "isis-advances-flashpoint-north-aleppo"


def write_config(tmp_path: Path, sources_yaml: str, *, gazetteer: Path | None = None, **crawl: str) -> Path:
    """With ``gazetteer`` (the ``gazetteer_dir`` fixture), the gazetteer's cache is that folder:
    for the crawls that load it (``lookout crawl``, ``scrapy crawl``; not ``crawl_in_subprocess``)."""
    crawl_lines = "".join(f"  {k}: {v}\n" for k, v in {"max_age": "3d", **crawl}.items())
    gazetteer_lines = f"gazetteer:\n  cache_dir: {gazetteer}\n" if gazetteer else ""
    path = tmp_path / "lookout.yaml"
    path.write_text(
        f"database: sqlite:///{tmp_path / 'lookout.db'}\nrules: []\ncrawl:\n{crawl_lines}{gazetteer_lines}"
        f"sources:\n{sources_yaml}",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="session")
def gazetteer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default gazetteer's cache, built once for this run (its xdist workers share it)."""
    return shared_gazetteer_cache(run_folder(tmp_path_factory) / "gazetteer-cache")


def source(name: str, kind: str, url: str, follow: str | None = None) -> str:
    extra = f'    follow: "{follow}"\n' if follow else ""
    return f"  - name: {name}\n    {kind}: {url}\n    every: 10m\n{extra}"


def rows(tmp_path: Path, table, *where):
    store = Store(f"sqlite:///{tmp_path / 'lookout.db'}")
    try:
        with store.connect() as conn:
            return conn.execute(select(table).where(*where)).mappings().all()
    finally:
        store.dispose()


def make_site() -> NewsSite:
    site = NewsSite.from_seeds()
    site.add(arabic_article())
    site.syndicate(
        SYNDICATED_FROM,
        outlet="Levant Wire",
        edits={"BEIRUT – ": "", "ten kilometers": "10 km", "monitoring NGO": "monitor"},
    )
    return site


KINDS = {
    "rss2": ("feed", "/feed/rss.xml", None),
    "rss091": ("feed", "/feed/rss091.xml", None),
    "rss1": ("feed", "/feed/rss1.rdf", None),
    "atom": ("feed", "/feed/atom.xml", None),
    "broken": ("feed", "/feed/broken.xml", None),
    "news-sitemap": ("sitemap", "/news-sitemap.xml", None),
    "sitemap-index": ("sitemap", "/sitemap-index.xml", None),
    "listing": ("listing", "/", "h2.entry-title a"),
}


def test_every_source_kind_stores_clean_articles_and_clusters_syndicated_copies(tmp_path):
    sites = {name: make_site().start() for name in KINDS}  # one site each: distinct URLs per source
    try:
        config = write_config(
            tmp_path,
            "".join(
                source(name, kind, sites[name].link(path), follow)
                for name, (kind, path, follow) in KINDS.items()
            ),
        )
        report = crawl_in_subprocess(config)
    finally:
        for s in sites.values():
            s.stop()

    stored = rows(tmp_path, articles)
    expected = {a.path: a for a in make_site().articles}
    for name in KINDS:
        got = report["sources"][name]
        assert got["result"] == "ok", (name, got)
        assert got["fetched"] == 5 and got["failed"] == {}, (name, got)
        mine = {r["url"].split(":", 2)[2].split("/", 1)[1]: r for r in stored if r["source"] == name}
        assert sorted("/" + p for p in mine) == sorted(expected), name
    assert len(stored) == 5 * len(KINDS)

    for r in stored:
        for phrase in (NAV_PHRASE, *RELATED_PHRASES, COMMENT_PHRASE, FOOTER_PHRASE, "Most read", "Share on"):
            assert phrase not in r["text"], (r["url"], phrase)
        path = "/" + r["url"].split("/", 3)[3]
        site_article = expected[path]
        assert r["title"] == site_article.title
        assert site_article.paragraphs[1][:60] in r["text"]
        assert r["published"].date() == site_article.published.date()
        assert r["alertable"] is False  # 2016 articles are older than max_age: 3d
        assert "utm_" not in r["url"]

    arabic = [r for r in stored if r["url"].endswith("/news/azaz-arabic.html")]
    assert len(arabic) == len(KINDS)
    assert all(
        "إعزاز" in r["text"] and r["language"] == "ar" and r["title"] == "تنظيم الدولة يتقدم نحو إعزاز"
        for r in arabic
    )
    assert all(r["language"] == "en" for r in stored if r not in arabic)
    assert {r["outlet"] for r in stored if "/partner/" in r["url"]} == {"Levant Wire"}

    # Syndicated copies (other furniture, small edits) share a story; distinct stories do not.
    stories: dict[str, set[str]] = {}
    for r in stored:
        stories.setdefault(r["title"], set()).add(r["story_id"])
    assert all(len(ids) == 1 for ids in stories.values()), stories
    assert len({next(iter(ids)) for ids in stories.values()}) == 4
    assert sum(s["duplicates"] for s in report["sources"].values()) == len(stored) - 4
    assert sum(s["new"] for s in report["sources"].values()) == len(stored)

    runs = rows(tmp_path, crawl_runs)
    assert {r["source"]: r["result"] for r in runs} == dict.fromkeys(KINDS, "ok")
    assert all(r["last_success_at"] is not None and r["last_error"] is None for r in rows(tmp_path, sources))


def test_recrawl_downloads_no_article_and_picks_up_updates_and_new_articles(tmp_path):
    site = make_site()
    with site:
        config = write_config(
            tmp_path,
            source("rss", "feed", site.link("/feed/rss.xml"))
            + source("sitemap", "sitemap", site.link("/news-sitemap.xml")),
        )
        first = crawl_in_subprocess(config)
        assert sum(s["new"] for s in first["sources"].values()) == 5
        assert len(rows(tmp_path, http_cache)) == 2
        before = {r["url"]: r for r in rows(tmp_path, articles)}

        site.reset_requests()
        second = crawl_in_subprocess(config)
        assert site.article_requests() == []
        assert {r.path: r.status for r in site.requests if r.path != "/robots.txt"} == {
            "/feed/rss.xml": 304,
            "/news-sitemap.xml": 304,
        }
        assert all(s["not_modified"] == 1 and s["fetched"] == 0 for s in second["sources"].values())

        edited = site.update(
            SYNDICATED_FROM,
            paragraphs=[
                *site.get(SYNDICATED_FROM).paragraphs,
                "Update: rebels said on Thursday they had retaken Kafrah.",
            ],
        )
        fresh = site.publish(
            SiteArticle(
                slug="marea-shelling",
                title="Shelling hits Marea as Islamic State presses north",
                paragraphs=[
                    "Islamic State fighters shelled the rebel-held town of Marea on Thursday, "
                    "residents said, as the group pressed its advance toward Azaz near the border.",
                    "Aid workers said two clinics had closed and hundreds of families fled north "
                    "toward the camps along the Turkish frontier, where conditions are already dire.",
                ],
                published=site.get(SYNDICATED_FROM).published,
            )
        )
        site.reset_requests()
        third = crawl_in_subprocess(config)
        assert sorted(set(site.article_requests())) == sorted([edited.path, fresh.path])
        assert sum(s["updated"] for s in third["sources"].values()) == 1
        assert sum(s["new"] for s in third["sources"].values()) == 1
        edited_url, fresh_url = site.link(edited.path), site.link(fresh.path)

    after = {r["url"]: r for r in rows(tmp_path, articles)}
    edited_row = after[edited_url]
    assert "retaken Kafrah" in edited_row["text"]
    assert edited_row["story_id"] == before[edited_url]["story_id"]  # an update keeps its story
    assert edited_row["first_seen"] == before[edited_url]["first_seen"]
    assert after[fresh_url]["alertable"] is True  # published now: within max_age


def test_every_fault_is_recorded_and_the_crawl_goes_on(tmp_path):
    site = NewsSite.from_seeds()
    with site:
        # The slow page answers after 4 s: a 1 s download timeout (the least there is) fails it
        # twice (one retry) in 2 s. The gzip bomb is made now (0.3 s), not on its first request,
        # so that request answers well within the timeout.
        site.render("/fault/gzip-bomb", {})
        config = write_config(
            tmp_path,
            source("faults", "feed", site.link("/feed/faults.xml")),
            download_timeout="1s",
            max_body_bytes="1000000",
            max_redirects="3",
        )
        report = crawl_in_subprocess(config)
        good = site.articles[0]
    got = report["sources"]["faults"]
    assert got["new"] == 1 and got["result"] == "partial"
    recorded = {r["url"].removeprefix(site.link("")): r["reason"] for r in rows(tmp_path, crawl_failures)}
    assert recorded == FAULTS
    assert [r["title"] for r in rows(tmp_path, articles)] == [good.title]
    source_row = rows(tmp_path, sources)[0]
    assert source_row["last_result"] == "partial" and "timeout" in source_row["last_error"]


def test_scrapy_crawl_from_the_project_root(tmp_path, gazetteer_dir):
    site = make_site()
    with site:
        config = write_config(
            tmp_path, source("atom-site", "feed", site.link("/feed/atom.xml")), gazetteer=gazetteer_dir, max_age="null"
        )
        proc = subprocess.run(
            [sys.executable, "-m", "scrapy", "crawl", "feed", "-a", "source=atom-site"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,  # the return code is asserted below, with stderr
            env={**os.environ, "LOOKOUT_CONFIG": str(config)},
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    stored = rows(tmp_path, articles)
    assert len(stored) == 5 and all(r["alertable"] for r in stored)


def test_lookout_crawl_and_sources_commands(tmp_path, gazetteer_dir, capsys):
    site = make_site()
    with site:
        config = write_config(
            tmp_path,
            source("rss", "feed", site.link("/feed/rss.xml"))
            + source("listing", "listing", site.link("/"), "h2.entry-title a"),
            gazetteer=gazetteer_dir,
        )
        proc = subprocess.run(
            [sys.executable, "-m", "lookout.cli", "--config", str(config), "crawl", "rss"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,  # the return code is asserted below, with stderr
        )
        paths = {r.path for r in site.requests}
        agents = {r.user_agent for r in site.requests}
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert_quiet(proc.stderr, site)
    lines = proc.stdout.splitlines()
    # Every URL the feed listed accounted for: seen = skipped + new + updated + unchanged + failed.
    assert lines[0].startswith(
        "rss: ok - seen 5, skipped 0, fetched 5, new 5, updated 0, unchanged 0, duplicates 1, failed 0")
    assert lines[1].split() == [
        "source",
        "result",
        "seen",
        "skipped",
        "fetched",
        "new",
        "updated",
        "unchanged",
        "duplicates",
        "failed",
        "seconds",
    ]
    assert lines[3].split()[:10] == ["rss", "ok", "5", "0", "5", "5", "0", "0", "1", "-"]
    assert "/feed/rss.xml" in paths and "/" not in paths  # only the named source ran
    assert agents == {"Lookout/0.1.0 (+https://github.com/lookout-osint/lookout)"}

    # `sources list` needs no crawl: in this process.
    capsys.readouterr()
    assert main(["--config", str(config), "sources", "list"]) == 0
    out = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
    assert " 5 " in out["rss"] and "UTC" in out["rss"]
    assert out["listing"].rstrip().endswith("never crawled")


def assert_quiet(stderr: str, site: NewsSite) -> None:
    """No library chatter, no item repr, no article text on stderr: lookout's own lines only."""
    for noise in ("DEBUG", "Scraped from", "Crawled (200)", "Overridden settings", "Deprecat", "Enabled"):
        assert noise not in stderr, (noise, stderr[-2000:])
    for article in site.articles:
        assert article.paragraphs[1][:50] not in stderr, article.path
    ours = ("lookout", "crawler", "rules", "alerts")
    records = [line.split() for line in stderr.splitlines() if line[:2] == "20"]  # not continuations
    assert all(r[2] in ("INFO", "WARNING", "ERROR") and r[3].startswith(ours) for r in records), stderr[-2000:]


def test_verbose_crawl_logs_debug_but_never_article_text(tmp_path, gazetteer_dir):
    site = make_site()
    with site:
        config = write_config(tmp_path, source("atom", "feed", site.link("/feed/atom.xml")), gazetteer=gazetteer_dir)
        proc = subprocess.run(
            [sys.executable, "-m", "lookout.cli", "-v", "--config", str(config), "crawl"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,  # the return code is asserted below, with stderr
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert " DEBUG scrapy" in proc.stderr  # -v does show the library's details
    assert "Scraped from" not in proc.stderr and "scraped http://127.0.0.1" in proc.stderr
    for article in site.articles:
        assert article.paragraphs[1][:50] not in proc.stderr, article.path


def test_sources_over_one_site_download_each_article_once(tmp_path):
    """The demo's case: feed, Atom, sitemap and listing of one site in one run share the claim
    on each article URL, so each page is downloaded once, not once per source."""
    site = make_site()
    with site:
        config = write_config(
            tmp_path,
            source("rss", "feed", site.link("/feed/rss.xml"))
            + source("atom", "feed", site.link("/feed/atom.xml"))
            + source("sitemap", "sitemap", site.link("/news-sitemap.xml"))
            + source("listing", "listing", site.link("/"), "h2.entry-title a"),
        )
        report = crawl_in_subprocess(config)
        downloads = site.article_requests()
    paths = sorted(a.path for a in site.articles)
    assert sorted(downloads) == paths  # every article once, none twice
    got = report["sources"]
    assert sum(s["fetched"] for s in got.values()) == len(paths)
    assert sum(s["new"] for s in got.values()) == len(paths)
    assert sum(s["skipped"] for s in got.values()) == 3 * len(paths)  # "already seen" by another
    assert all(s["result"] == "ok" for s in got.values()), got
    assert len(rows(tmp_path, articles)) == len(paths)


def test_article_whose_canonical_differs_from_its_feed_link_is_not_fetched_again(tmp_path):
    site = NewsSite.from_seeds()
    with site:
        moved = site.articles[0]
        # The page names an https canonical URL while the feed links the http one.
        canonical = site.link(moved.path).replace("http://", "https://")
        site.update(moved.path, canonical=canonical)
        config = write_config(tmp_path, source("rss", "feed", site.link("/feed/rss.xml")))
        crawl_in_subprocess(config)
        stored = {r["url"] for r in rows(tmp_path, articles)}
        assert canonical in stored  # stored under the page's canonical URL

        # A new article changes the feed, so the feed is parsed again: only the new page is fetched.
        fresh = site.publish(SiteArticle(
            slug="azaz-market", title="Azaz market reopens",
            paragraphs=["Traders in Azaz reopened the covered market on Monday after weeks of closure, "
                        "council officials said, as shelling on the town's outskirts eased."] * 3,
            published=moved.published,
        ))
        site.reset_requests()
        again = crawl_in_subprocess(config)
        assert site.article_requests() == [fresh.path]
        assert again["sources"]["rss"]["new"] == 1


class _SlowSite:
    """A feed of 8 articles whose pages take 0.2 s each; counts requests in flight at once."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        site = self
        self.lock = threading.Lock()
        self.in_flight = self.peak = 0

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                import time

                with site.lock:
                    site.in_flight += 1
                    site.peak = max(site.peak, site.in_flight)
                try:
                    if self.path == "/feed.xml":
                        items = "".join(
                            f"<item><title>Report {i}</title><link>{site.url}/a/{i}.html</link></item>"
                            for i in range(8)
                        )
                        body = (f'<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>{items}'
                                "</channel></rss>")
                        ctype = "application/rss+xml"
                    elif self.path.startswith("/a/"):
                        time.sleep(0.2)  # long enough for every request the limit allows to overlap
                        text = " ".join(["Shelling was reported near the market on Tuesday morning."] * 12)
                        body = (f"<html><head><title>Report</title></head><body><article><p>{text}</p>"
                                "</article></body></html>")
                        ctype = "text/html; charset=utf-8"
                    else:
                        self.send_error(404)
                        return
                    data = body.encode()
                    self.send_response(200)
                    self.send_header("Content-Type", ctype)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                finally:
                    with site.lock:
                        site.in_flight -= 1

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True  # a quick shutdown()
        )

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_per_site_concurrency_limit_is_kept(tmp_path):
    with _SlowSite() as site:
        config = write_config(tmp_path, source("slow", "feed", f"{site.url}/feed.xml"),
                              concurrency_per_domain="2", autothrottle="false")
        report = crawl_in_subprocess(config)
    assert report["sources"]["slow"]["fetched"] == 8
    assert site.peak == 2  # never more than crawl.concurrency_per_domain requests at once
