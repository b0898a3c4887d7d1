"""Snippets never repeat the headline: extracted text often opens with a copy of the page's
<h1>; that copy is not part of an alert's snippet, which is the sentence(s) with the matched
terms after it. Hits in the copy stay hits, at their offsets into the text."""

from __future__ import annotations

import html
from pathlib import Path

import pytest
from support.newssite import load_seed_articles

from crawler.extract import extract_page
from rules import load_ruleset, match
from rules.snippets import title_copy_end
from rules.types import Match, Text

EXAMPLES = Path(__file__).resolve().parent.parent / "rules" / "examples"


@pytest.fixture(scope="module")
def ruleset():
    return load_ruleset([EXAMPLES])


def check_evidence(doc: Text, m: Match) -> None:
    """Every hit's offsets point at its text; every mark in the snippet at a hit."""
    for h in m.hits:
        if h.field in ("title", "text"):
            assert getattr(doc, h.field)[h.start : h.end] == h.found
    found = {h.found for h in m.hits}
    assert m.marks or not any(h.field == "text" and h.start >= title_copy_end(doc.title, doc.text) for h in m.hits)
    for a, b in m.marks:
        assert m.snippet[a:b] in found


def seed_page(title: str, paragraphs: list[str]) -> str:
    """A seed as many sites serve it: the <h1> inside the <article>, so trafilatura keeps it and
    the extracted text opens with the headline."""
    t = html.escape(title)
    body = "".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    return (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{t}</title></head>'
        f"<body><main><article><h1>{t}</h1>{body}</article></main></body></html>"
    )


def test_no_seed_alert_snippet_starts_with_its_title(ruleset):
    seen = 0
    for seed in load_seed_articles():
        found = extract_page(seed_page(seed.title, seed.paragraphs), f"https://example.org/{seed.slug}")
        assert found.text.startswith(seed.title)  # the case at hand: the body opens with the headline
        doc = Text(found.title, found.text, found.language, "seed")
        for m in match(doc, ruleset):
            seen += 1
            assert m.snippet, m.rule_id
            assert not m.snippet.startswith(seed.title), (seed.slug, m.rule_id, m.snippet[:120])
            assert seed.title not in m.snippet
            check_evidence(doc, m)
    assert seen >= 10  # the example rules fire on every seed


TITLE = "ISIS advances on Azaz"


def test_a_hit_in_the_title_copy_stays_a_hit_but_not_the_snippet(ruleset):
    text = f"{TITLE}\nMarkets were quiet on Monday. Later, ISIS fighters shelled Azaz from the east. Rain fell."
    doc = Text(title=TITLE, text=text)
    m = next(m for m in match(doc, ruleset) if m.rule_id == "is-near-azaz")
    assert m.snippet == "Later, ISIS fighters shelled Azaz from the east."
    assert [m.snippet[a:b] for a, b in m.marks] == ["ISIS", "Azaz"]
    # The copy's hits are evidence still, at their offsets into the text.
    in_copy = {(h.found, h.start) for h in m.hits if h.field == "text" and h.start < len(TITLE)}
    assert in_copy == {("ISIS", 0), ("Azaz", 17)}
    check_evidence(doc, m)
    assert Match.from_json(m.to_json()) == m


def test_terms_only_in_the_headline_give_the_first_body_sentence_unmarked(ruleset):
    lede = "Fighters seized three villages north of the town on Friday, a monitor said."
    for text in (f"{TITLE}\n{lede} More follows.", f"{lede} More follows."):  # with and without a copy
        m = next(m for m in match(Text(title=TITLE, text=text), ruleset) if m.rule_id == "is-near-azaz")
        assert m.snippet == lede and m.marks == (), text
        assert {h.field for h in m.hits} >= {"title"}


def test_a_headline_run_into_the_body_is_not_in_the_snippet(ruleset):
    # trafilatura's fallback flattens a short page into one line: headline, date, body.
    title = "Clashes near Azaz"
    text = f"{title} 01 June 2016 Islamic State fighters attacked rebel positions near Azaz on Friday. Six died."
    doc = Text(title=title, text=text)
    m = next(m for m in match(doc, ruleset) if m.rule_id == "is-near-azaz")
    assert m.snippet == "01 June 2016 Islamic State fighters attacked rebel positions near Azaz on Friday."
    assert [m.snippet[a:b] for a, b in m.marks] == ["Islamic State", "Azaz"]
    check_evidence(doc, m)
    # A body that merely starts with the title's words keeps its whole sentence.
    doc = Text(title="Azaz", text="Azaz council said ISIS fighters withdrew on Friday. Markets reopened.")
    m = next(m for m in match(doc, ruleset) if m.rule_id == "is-near-azaz")
    assert m.snippet == "Azaz council said ISIS fighters withdrew on Friday."
    assert [m.snippet[a:b] for a, b in m.marks] == ["Azaz", "ISIS"]


# (title, text, the body after the copy; None: the text does not open with a copy of the title)
COPIES = [
    ("ISIS advances on Azaz", "ISIS advances on Azaz\n\nBody.", "Body."),
    ("ISIS advances on Azaz", "  isis  ADVANCES on\tAzaz:\nBody.", "Body."),
    ("Who holds Azaz?", "Who holds Azaz?\nBody.", "Body."),
    ("Azaz", "Azaz\nBody.", "Body."),
    ("Clashes near Azaz", "Clashes near Azaz – 01 June", "01 June"),
    ("ISIS advances on Azaz", "ISIS advances on Azazi villages", None),
    ("ISIS advances on Azaz", "ISIS advances on Azaz and Marea.", None),
    ("Azaz", "Azaz Council Reopens", None),
    ("", "Body.", None),
]


def test_title_copy_end_finds_where_the_body_starts():
    for title, text, body in COPIES:
        end = title_copy_end(title, text)
        assert (text[end:] if end else None) == body, (title, text)


def test_a_mention_alert_does_not_repeat_the_headline():
    """A place subscription's card (no rule snippet) quotes the body, not the headline copy that
    opens the extracted text."""
    from alerts.format import AlertView, render_alert

    title = "Shelling in Azaz kills five"
    text = f"{title}\nHeavy shelling hit Azaz on Monday, residents said. Five people died."
    card = render_alert(AlertView(title=title, url="https://x.example/1", label="Azaz", text=text))
    lines = card.split("\n")
    assert lines[1] == f"<b>{title}</b>"
    assert lines[2].startswith("Heavy shelling hit <b>Azaz</b> on Monday")
    assert card.count("Shelling in Azaz") == 1
