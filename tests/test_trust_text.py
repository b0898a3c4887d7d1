"""No text, no article: a page whose extracted body is empty, or holds only link text (menus,
link lists, tag clouds) and the headline, is a ``no-text`` page failure, never stored, matched
or alerted; a short wire brief of two real sentences is an article. Saved pages extracted
offline, then one crawl of the local news site through ``lookout crawl``."""

from __future__ import annotations

import html
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from support.newssite import NewsSite, SiteArticle

from alerts import subscriptions as subs
from core.store import Store, articles, crawl_failures, matches, outbox
from crawler.config import CrawlConfig
from crawler.extract import Hints, _install, article_chars, extract_body, extract_page
from rules import load_ruleset

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_RULES = ROOT / "rules" / "examples"
MIN_CHARS = CrawlConfig().min_text_chars


def page(title: str, article: str, *, furniture: bool = True) -> str:
    """A news page around ``article`` (the inside of its <article>): head metadata, and with
    ``furniture`` a linked menu that names watched places, related links and a footer."""
    t = html.escape(title)
    menu = (
        '<header><a href="/">Aleppo Monitor</a><nav><ul><li><a href="/">Home</a></li>'
        '<li><a href="/syria">Syria</a></li><li><a href="/azaz">Azaz</a></li>'
        '<li><a href="/live/kafrah">Kafrah clashes live</a></li></ul></nav></header>'
        if furniture
        else ""
    )
    related = (
        '<aside class="related"><h3>Related</h3><ul>'
        '<li><a href="/a1">ISIS fighters close in on Azaz border crossing</a></li>'
        '<li><a href="/a2">SDF ready to enter Manbij, commanders say</a></li></ul></aside>'
        '<footer><p><a href="/about">About</a> <a href="/contact">Contact</a></p></footer>'
        if furniture
        else ""
    )
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{t}</title>'
        f'<meta property="og:title" content="{t}"><meta property="og:type" content="article"></head>'
        f"<body>{menu}<main><article>{article}</article></main>{related}</body></html>"
    )


# A live page rendered by JavaScript: the shell has the headline and an empty container.
EMPTY_ARTICLE = page(
    "Kafrah clashes live",
    '<h1>Kafrah clashes live</h1><time datetime="2016-06-01">1 June 2016</time>'
    '<div id="live-app" class="entry-content"></div><script>window.loadLive()</script>',
)
# The page: its only words are its menu.
MENU_ONLY = (
    '<html><head><title>Kafrah clashes live</title></head><body><ul class="menu">'
    '<li><a href="/live">Kafrah clashes live</a></li><li><a href="/isis">ISIS</a></li>'
    '<li><a href="/manbij">Manbij</a></li><li><a href="/sdf">SDF news</a></li></ul></body></html>'
)
NAV_ONLY = "<html><body><nav>Home</nav></body></html>"
TAG_CLOUD = page(
    "Tags",
    '<h1>Tags</h1><div class="tag-cloud">'
    + " ".join(
        f'<a href="/tag/{i}" class="tag">{name}</a>'
        for i, name in enumerate(
            ["ISIS", "Manbij", "SDF", "Kafrah", "Azaz", "Marea clashes", "Aleppo offensive",
             "Turkish border", "Islamic State of Iraq and the Levant", "Kafr Kalbin airstrikes"]
        )
    )
    + "</div>",
)
# A live-blog shell: a long list of linked updates, hundreds of characters, none of them article.
LINK_LIST = page(
    "Kafrah clashes: live updates",
    "<h1>Kafrah clashes: live updates</h1><ul>"
    + "".join(
        f'<li><a href="/live/kafrah/{i}">Update {i}: fierce clashes reported around Kafrah and Azaz, '
        f"Islamic State fighters said to advance</a></li>"
        for i in range(12)
    )
    + "</ul>",
)
BRIEF_SENTENCES = (
    "Fierce clashes broke out around the village of Kafrah on Friday, a monitoring group said. "
    "Six fighters were killed."
)
BRIEF = page("Clashes at Kafrah", f"<h1>Clashes at Kafrah</h1><p>{BRIEF_SENTENCES}</p>")


@pytest.fixture(scope="module")
def ruleset():
    return load_ruleset([EXAMPLE_RULES])


@pytest.fixture
def worker(ruleset):
    """The extraction worker's state with the example rules installed, as ExtractionPool does."""
    _install(ruleset)
    yield
    _install(None)


def extract(doc: str, min_chars: int = MIN_CHARS):
    return extract_body(doc.encode(), "utf-8", "https://example.org/live", Hints("test", min_text_chars=min_chars))


@pytest.mark.parametrize(
    "doc", [EMPTY_ARTICLE, MENU_ONLY, NAV_ONLY, TAG_CLOUD, LINK_LIST], ids=["empty", "menu", "nav", "tags", "links"]
)
def test_pages_without_article_text_are_no_text_and_never_matched(doc, worker):
    found = extract(doc)
    assert found.text_chars < MIN_CHARS, (found.text_chars, found.text)
    assert found.analysis is None  # not matched: nothing for a rule to fire on


def test_the_menu_page_is_not_matched_though_its_words_fire_two_high_rules(worker):
    assert extract(MENU_ONLY).analysis is None
    # Taken for an article (no minimum), the menu's words alone fire the example HIGH rules.
    taken = extract(MENU_ONLY, min_chars=0)
    assert taken.analysis is not None
    fired = {m.rule_id for m in taken.analysis.matches if m.severity == "high"}
    assert {"fighting-around-kafrah", "is-near-azaz"} <= fired


def test_link_text_is_measured_not_the_raw_length():
    # Long enough by raw length: only leaving the link text out tells these from an article.
    for doc in (LINK_LIST, TAG_CLOUD):
        found = extract_page(doc, "https://example.org/live")
        assert len(found.text) >= MIN_CHARS and found.text_chars < MIN_CHARS, found.text


def test_a_two_sentence_brief_is_an_article(worker):
    found = extract(BRIEF)
    assert BRIEF_SENTENCES in found.text
    assert found.text_chars >= MIN_CHARS
    assert found.analysis is not None
    assert "fighting-around-kafrah" in {m.rule_id for m in found.analysis.matches}


def test_inline_links_and_the_headline_do_not_count():
    body = (
        'Fierce clashes broke out around <a href="/kafrah">Kafrah</a> on Friday, the <a href="/sohr">Syrian '
        "Observatory</a> said. Six fighters were killed, among them two commanders."
    )
    found = extract_page(page("Clashes at Kafrah", f"<h1>Clashes at Kafrah</h1><p>{body}</p>", furniture=False), "")
    sentences = re.sub(r"<[^>]+>", "", body)
    assert found.text == f"Clashes at Kafrah\n{sentences}"
    # The headline line goes; each link's words go, with the spaces around them.
    assert found.text_chars == len(sentences) - (len("Kafrah") + 2) - (len("Syrian Observatory") + 2)
    assert found.text_chars >= MIN_CHARS


def test_article_chars_leaves_out_links_and_headline_copies():
    links = Counter({"Home": 1, "Azaz": 1, "Share on Facebook": 1})
    text = "Home\nKafrah clashes live\nAzaz | Share on Facebook\nSix fighters were killed near Azaz."
    # The menu lines, the headline line and the separator go; the sentence stays whole (the
    # one "Azaz" link is spent on the menu line).
    assert article_chars(text, "Kafrah clashes live", links) == len("Six fighters were killed near Azaz.")


# -- through one crawl -------------------------------------------------------------------------

EMPTY_SLUG = "kafrah-clashes-live"


@pytest.mark.e2e
def test_crawl_records_a_page_without_text_as_no_text_and_stores_the_brief(tmp_path):
    site = NewsSite()
    when = datetime(2016, 6, 1, 9, 0, tzinfo=UTC)
    # The site's page furniture around an empty body: a menu naming Azaz, related links, a footer.
    site.add(SiteArticle(slug=EMPTY_SLUG, title="Kafrah clashes live", paragraphs=[], published=when))
    brief = site.add(
        SiteArticle(
            slug="clashes-at-kafrah",
            title="Clashes at Kafrah",
            paragraphs=[
                "Fierce clashes broke out around the village of Kafrah on Friday, a monitoring group said.",
                "Six fighters were killed.",
            ],
            published=when,
        )
    )
    db = tmp_path / "lookout.db"
    store = Store(f"sqlite:///{db}")
    with store.begin() as conn:
        subs.add(conn, "42", "place", "kafrah", now=when)  # both pages name Kafrah
    store.dispose()
    with site:
        config = tmp_path / "lookout.yaml"
        config.write_text(
            f"database: sqlite:///{db}\nrules: [{EXAMPLE_RULES}]\n"
            f"gazetteer:\n  countries: []\n  cache_dir: {tmp_path / 'gazetteer'}\n"
            "crawl:\n  max_age: null\n"
            f"sources:\n  - name: rss\n    feed: {site.link('/feed/rss.xml')}\n    every: 10m\n",
            encoding="utf-8",
        )
        proc = subprocess.run(
            [sys.executable, "-m", "lookout.cli", "--config", str(config), "crawl"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,  # asserted below, with stderr
        )
        empty_url = site.link(f"/news/{EMPTY_SLUG}.html")
        brief_url = site.link(brief.path)
    assert proc.returncode == 0, proc.stderr[-3000:]

    store = Store(f"sqlite:///{db}")
    try:
        with store.connect() as conn:
            stored = conn.execute(select(articles.c.id, articles.c.url)).all()
            failures = conn.execute(select(crawl_failures.c["url", "reason", "detail"])).all()
            matched = conn.execute(select(matches.c.article_id, matches.c.rule_id)).all()
            queued = conn.execute(select(outbox.c.article_id, outbox.c.chat_id)).all()
    finally:
        store.dispose()
    assert [url for _, url in stored] == [brief_url]  # the brief is stored, the empty page is not
    brief_id = stored[0][0]
    assert [(url, reason) for url, reason, _ in failures] == [(empty_url, "no-text")]
    assert "crawl.min_text_chars" in failures[0][2]
    assert matched and {a for a, _ in matched} == {brief_id}  # no match but the brief's
    assert "fighting-around-kafrah" in {r for _, r in matched}
    assert queued and {a for a, _ in queued} == {brief_id}  # never alerted: only the brief queued
    # Both pages seen and fetched; the brief stored, the empty page failed after its download.
    assert proc.stdout.startswith("rss: partial - seen 2, skipped 0, fetched 2, new 1"), proc.stdout
    assert "no-text 1" in proc.stdout  # the report's failures by reason
