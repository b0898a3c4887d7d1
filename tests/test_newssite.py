"""The local news sites: the demo's (lookout/demo/site.py: pages, its feeds and sitemap, conditional
GET) and the tests' extension of it (tests/support/newssite.py: more feeds, run-time edits, faults,
bench pages)."""

from __future__ import annotations

import gzip
import urllib.error
import urllib.request

import feedparser
from lxml import etree
from support.newssite import NAV_PHRASE, NewsSite, generate_articles

from lookout.demo import site as demo_site


def fetch(url: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def test_pages_feeds_and_sitemaps():
    with NewsSite.from_seeds() as site:
        paths = [a.path for a in site.articles]
        assert len(paths) == 3
        status, _, body = fetch(site.link(paths[0]))
        page = body.decode()
        assert status == 200 and 'rel="canonical"' in page and "article:published_time" in page
        assert NAV_PHRASE in page and 'class="comment-list"' in page and "site-footer" in page
        for feed in ("/feed/rss.xml", "/feed/rss091.xml", "/feed/rss1.rdf", "/feed/atom.xml"):
            parsed = feedparser.parse(
                fetch(site.link(feed))[2], response_headers={"content-location": site.url}
            )
            assert sorted(e.link.split("?")[0].removeprefix(site.url) for e in parsed.entries) == sorted(
                paths
            ), feed
        root = etree.fromstring(fetch(site.link("/news-sitemap.xml"))[2])
        ns = {"n": "http://www.google.com/schemas/sitemap-news/0.9"}
        assert len(root.findall(".//n:publication_date", ns)) == 3 and root.find(".//n:title", ns) is not None
        index = etree.fromstring(fetch(site.link("/sitemap-index.xml"))[2])
        assert len(index) == 2
        assert b"Disallow: /private/" in fetch(site.link("/robots.txt"))[2]


def test_conditional_get_and_runtime_edits():
    with NewsSite.from_seeds() as site:
        url = site.link("/feed/rss.xml")
        _, headers, _ = fetch(url)
        assert fetch(url, {"If-None-Match": headers["ETag"]})[0] == 304
        assert fetch(url, {"If-Modified-Since": headers["Last-Modified"]})[0] == 304
        slug = site.articles[0].slug
        site.update(slug, paragraphs=["Edited."])
        assert fetch(url, {"If-None-Match": headers["ETag"]})[0] == 200
        copy = site.syndicate(slug, outlet="Levant Wire")
        assert "Levant Wire" in fetch(site.link(copy.path))[2].decode()
        site.remove(slug)
        assert fetch(site.link(f"/news/{slug}.html"))[0] == 404
        assert ("/feed/rss.xml", 304) in [(r.path, r.status) for r in site.requests]


def test_faults():
    with NewsSite() as site:
        assert fetch(site.link("/fault/500"))[0] == 500
        _, headers, body = fetch(site.link("/fault/gzip-bomb?bytes=100000"))
        assert headers["Content-Encoding"] == "gzip" and len(gzip.decompress(body)) > 100000 > len(body)
        assert fetch(site.link("/fault/binary"))[1]["Content-Type"] == "application/pdf"


def test_generated_pages_weigh_50_to_120_kb():
    arts = generate_articles(6, seed=3)
    with NewsSite(arts) as site:
        sizes = [len(fetch(site.link(a.path))[2]) / 1024 for a in arts]
    assert all(45 <= s <= 125 for s in sizes), sizes
    assert len({a.title for a in arts}) == 6


def test_the_shipped_demo_site_serves_what_the_demo_crawls_and_no_test_routes():
    with demo_site.NewsSite.from_seeds() as site:
        paths = [a.path for a in site.articles]
        assert len(paths) == 3 and all(p.startswith("/news/") for p in paths)
        for path in ("/", "/robots.txt", "/feed/rss.xml", "/feed/atom.xml", "/news-sitemap.xml", *paths):
            assert fetch(site.link(path))[0] == 200, path
        parsed = feedparser.parse(fetch(site.link("/feed/atom.xml"))[2])
        assert sorted(e.link.removeprefix(site.url) for e in parsed.entries) == sorted(paths)
        page = fetch(site.link(paths[0]))
        assert page[1]["Content-Type"] == "text/html; charset=utf-8" and NAV_PHRASE in page[2].decode()
        # Test and bench scaffolding is not part of the shipped site.
        for path in ("/fault/500", "/private/secret.html", "/feed/rss091.xml", "/sitemap-index.xml"):
            assert fetch(site.link(path))[0] == 404, path
