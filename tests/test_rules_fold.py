"""Folding: whole-string folding equals folding each character, and the offset map points every
folded character at the original character it came from, whatever shifts lengths (combining
marks dropped, ligatures and "…" expanded) and whatever does not (curly quotes, dashes, Arabic)."""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path

import pytest

from rules import load_ruleset, match, scan
from rules.fold import fold, fold_many, fold_with_map
from rules.types import Text

EXAMPLES = Path(__file__).resolve().parent.parent / "rules" / "examples"

# Characters that fold to one, none or several characters, in every script the rules meet.
POOL = [
    *"abcXYZ '`‘’ʿʾ´—–.…ﬁßİΣς\u0640\u200c\u00adإعزازأىٱ",
    "e\u0301",
    "\u064e",
    "\u0651",
    "ﷺ",
    "½",
    "ﬀ",
    "\u0301",
    "\x00",
]


def by_character(text: str, casefold: bool = True) -> str:
    return "".join(fold(ch, casefold=casefold) for ch in text)


def check_map(text: str, casefold: bool = True) -> None:
    folded, index = fold_with_map(text, casefold=casefold)
    assert len(index) == len(folded) + 1 and index[-1] == len(text)
    assert list(index) == sorted(index)
    # The folded characters attributed to each original character are exactly its own fold.
    for j, ch in enumerate(text):
        assert "".join(folded[i] for i in range(len(folded)) if index[i] == j) == fold(ch, casefold=casefold)


@pytest.mark.parametrize(
    "text",
    [
        "Fighters’ “advance” — near Azaz (إعزاز) … said the council.",
        "I\u0301‘za\u0304z and Mare’ … ﬁghters of Straße — ISIS",
        "ٱلـمـارع ﷺ إعزاز",
        "´quoted´ and İstanbul",
        "plain ASCII with a `backtick`",
        "",
    ],
)
def test_offset_map_on_real_looking_text(text):
    check_map(text)
    check_map(text, casefold=False)
    assert fold(text) == by_character(text)
    assert fold(text, casefold=False) == by_character(text, casefold=False)


def test_folding_whole_strings_equals_folding_each_character():
    rng = random.Random(4)
    for _ in range(3000):
        text = "".join(rng.choice(POOL) for _ in range(rng.randint(0, 25)))
        for casefold in (True, False):
            assert fold(text, casefold=casefold) == by_character(text, casefold=casefold), ascii(text)
            check_map(text, casefold)


def test_fold_many_equals_fold_each_even_with_the_separator_in_a_name():
    names = ["Azaz", "I‘zāz", "إعزاز", "", "Straße", "a\x00B", "ISIS"]
    assert fold_many(names) == [fold(n) for n in names]
    assert fold_many(n for n in names if "\x00" not in n) == [fold(n) for n in names if "\x00" not in n]
    assert fold_many([]) == []


def test_fold_drops_marks_and_unifies_apostrophes():
    assert fold("I‘zāz") == fold("I'zaz") == "i'zaz"
    assert fold("إعزاز") == "اعزاز"
    assert unicodedata.normalize("NFC", "e\u0301") == "é" and fold("e\u0301") == fold("é") == "e"


@pytest.fixture(scope="module")
def ruleset():
    return load_ruleset([EXAMPLES])


def test_hits_point_into_text_with_marks_quotes_and_ellipsis(ruleset):
    # Shifts before the names (a dropped mark, an expanded "…" and "ﬁ") and 1:1 characters
    # (curly quotes, a dash, Arabic) between them: every offset must land on the original name.
    text = "Re\u0301port… ﬁghters “said” — ISIS advanced on I\u0301‘za\u0304z, then أعزاز and Mare’."
    doc = Text(title="“Daesh” … near Mare’", text=text)
    m = next(m for m in match(doc, ruleset) if m.rule_id == "is-near-azaz")
    for h in m.hits:
        assert getattr(doc, h.field)[h.start : h.end] == h.found
    found = {(h.field, h.found) for h in m.hits}
    assert {("text", "ISIS"), ("text", "I\u0301‘za\u0304z"), ("text", "أعزاز")} <= found
    assert all(m.snippet[a:b] in {h.found for h in m.hits} for a, b in m.marks)
    mentions = scan(doc, ruleset)
    assert {(h.field, h.found) for h in mentions.hits} >= {("title", "Daesh"), ("title", "Mare’"), ("text", "Mare’")}
    for h in mentions.hits:
        assert getattr(doc, h.field)[h.start : h.end] == h.found
