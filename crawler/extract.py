"""Extraction: trafilatura turns a page into body text and metadata, in a process pool sized to
the cores, never on Scrapy's reactor thread (it is CPU work, ~10 ms a page and more). The workers
also compute each page's story signature and, given a ruleset, its rule matches; and the page
checks (language, undecodable text, how much article text there is) live here.

A page's article text is what is left of the extracted body once link text (menus, link lists,
tag clouds: the words of the page's ``<a>`` elements where they stand in the body) and lines that
copy the headline are left out (``article_chars``). A JavaScript-rendered page, a live-blog shell
or a soft 404 has next to none: below ``Hints.min_text_chars`` (``crawl.min_text_chars``) it is
not matched, and the spider records it as ``no-text``."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from w3lib.encoding import html_to_unicode

from core.lifetime import die_with_parent
from crawler.storage import content_hash
from crawler.stories import signature_of
from rules.engine import match_and_scan
from rules.snippets import title_copy_end
from rules.types import Analysis

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from rules.index import CompiledRuleset

MAX_REPLACEMENT_SHARE = 0.02  # more U+FFFD than this: the body was not in the declared encoding

_LANG_ATTR = re.compile(r"<html[^>]*?\blang\s*=\s*[\"']?([A-Za-z]{2,3})", re.I)
_CONTENT_LANG = re.compile(
    r"<meta[^>]+http-equiv\s*=\s*[\"']?content-language[\"']?[^>]*content\s*=\s*[\"']?([A-Za-z]{2,3})", re.I
)
_OG_LOCALE = re.compile(
    r"<meta[^>]+property\s*=\s*[\"']og:locale[\"'][^>]*content\s*=\s*[\"']([A-Za-z]{2,3})", re.I
)

# Script ranges decide non-Latin languages outright; stop words split the Latin ones.
_SCRIPTS = (
    ("ar", re.compile(r"[\u0600-\u06FF\u0750-\u077F\uFB50-\uFDFF\uFE70-\uFEFF]")),
    ("ru", re.compile(r"[\u0400-\u04FF]")),
    ("he", re.compile(r"[\u0590-\u05FF]")),
)
_STOPWORDS = {
    "en": {"the", "and", "of", "to", "in", "that", "is", "was", "for", "on", "with", "said"},
    "fr": {"le", "la", "les", "et", "des", "du", "une", "est", "dans", "pour", "que", "qui"},
    "de": {"der", "die", "das", "und", "ist", "nicht", "mit", "den", "von", "sich", "auf", "ein"},
    "es": {"el", "los", "las", "del", "y", "que", "en", "una", "por", "con", "para", "se"},
    "tr": {"ve", "bir", "bu", "ile", "için", "olarak", "da", "de", "gibi", "daha", "çok", "olan"},
}


@dataclass(frozen=True)
class Extracted:
    """What trafilatura found on one page (picklable: it crosses the process boundary)."""

    title: str
    text: str
    author: str | None
    published: datetime | None
    language: str | None
    canonical: str | None
    sitename: str | None
    signature: bytes | None = None  # MinHash for story clustering, computed here, off the reactor
    content_hash: str = ""
    problem: str | None = None  # why the page is unusable (undecodable), found after decoding
    analysis: Analysis | None = None  # rule matches and mentions, when the pool has a ruleset
    text_chars: int = 0  # article text: ``text`` without link text and headline copies (article_chars)


@dataclass(frozen=True)
class Hints:
    """What the index and the source say about a page, for matching in the worker."""

    source: str
    title: str | None = None  # the index's title, used when the page has none
    language: str | None = None  # the source's ``lang``, used when the page declares none
    min_text_chars: int = 0  # less article text than this (crawl.min_text_chars): not matched


@dataclass(frozen=True)
class _Doc:
    """The rules' Document, built in the worker from what it extracted."""

    title: str
    text: str
    language: str | None
    source: str


@dataclass
class _WorkerState:
    """What ExtractionPool installs in each of its worker processes (rules are pure)."""

    ruleset: CompiledRuleset | None = None


_WORKER = _WorkerState()  # in the parent (no pool): no ruleset, nothing matched


def _install(ruleset: CompiledRuleset | None, parent: int | None = None) -> None:
    if parent is not None:  # a pool process: it dies with the crawl process that forked it, even a SIGKILLed one
        die_with_parent(parent)
    _WORKER.ruleset = ruleset


def extract_body(body: bytes, encoding: str, url: str, hints: Hints) -> Extracted:
    """A downloaded page (bytes, decoded here as Scrapy's ``response.text`` would) to its
    text, metadata, story signature and, with a ruleset installed, its rule matches."""
    html = html_to_unicode(f"charset={encoding}", body)[1]
    problem = text_problem(html)
    if problem:
        return Extracted("", "", None, None, None, None, None, problem=problem)
    found = extract_page(html, url)
    ruleset = _WORKER.ruleset
    if ruleset is None or not found.text or found.text_chars < hints.min_text_chars:
        return found  # no article text, no match: the spider records the page as no-text
    doc = _Doc(found.title or hints.title or "", found.text, found.language or hints.language, hints.source)
    found_matches, mentions = match_and_scan(doc, ruleset)  # one pass over the text
    return replace(found, analysis=Analysis(tuple(found_matches), mentions))


def text_problem(text: str) -> str | None:
    """More U+FFFD than this share: the body was not in the declared encoding."""
    if text and text.count("\ufffd") / len(text) > MAX_REPLACEMENT_SHARE:
        return "undecodable"
    return None


def extract_page(html: str, url: str) -> Extracted:
    """Body text only (comments, navigation, related links and footers left out) plus metadata."""
    # Heavy (~0.1 s of imports): loaded where pages are extracted, not by every ExtractionPool user.
    import trafilatura  # noqa: PLC0415 - heavy, needed only where pages are extracted
    from trafilatura.settings import Document  # noqa: PLC0415 - as above
    from trafilatura.utils import load_html  # noqa: PLC0415 - as above

    tree = load_html(html)  # parsed once: trafilatura extracts from a copy, the links are read here
    if tree is None:
        return Extracted("", "", None, None, declared_language(html), None, None)
    links = link_texts(tree.iter("a"))
    doc = trafilatura.bare_extraction(
        tree,
        url=url,
        with_metadata=True,
        include_comments=False,
        include_tables=True,
        favor_precision=False,
        deduplicate=False,
    )
    if not isinstance(doc, Document):  # None: nothing found (a dict only with as_dict=True)
        return Extracted("", "", None, None, declared_language(html), None, None)
    text = (doc.text or "").strip()
    published = _parse_date(doc.date)
    language = declared_language(html) or detect_language(f"{doc.title or ''}\n{text}")
    title = (doc.title or "").strip()
    return Extracted(
        title=title,
        text=text,
        author=doc.author or None,
        published=published,
        language=language,
        canonical=doc.url or None,
        sitename=doc.sitename or None,
        signature=signature_of(text),
        content_hash=content_hash(title, text),
        text_chars=article_chars(text, title, links),
    )


class _Anchor(Protocol):
    """An ``<a>`` element of the page's lxml tree."""

    def itertext(self) -> Iterator[str]: ...


def link_texts(anchors: Iterable[_Anchor]) -> Counter[str]:
    """The words of every link on the page (each text piece of each ``<a>``, spacing collapsed),
    counted: a piece can stand in the extracted body at most as often as the page links it."""
    counts: Counter[str] = Counter()
    for a in anchors:
        for piece in a.itertext():
            words = " ".join(piece.split())
            if words:
                counts[words] += 1
    return counts


_NOT_COVERED = re.compile(rb"[^\x01]+")


def article_chars(text: str, title: str, links: Counter[str]) -> int:
    """How much of the extracted ``text`` is article: its characters (spacing collapsed) once
    copies of the ``title`` opening a line are left out, then link text (``links``: each piece
    where it stands as a whole line first, else within a line at word bounds, as many times as
    the page links it; longest first), and what is left of a line without a letter or digit."""
    covered = bytearray(len(text))  # 1: headline copy or link text
    if title:
        start = 0
        for line in text.split("\n"):
            if end := title_copy_end(title, line):
                covered[start : start + end] = b"\x01" * end
            start += len(line) + 1
    for link in sorted((k for k in links if k in text), key=len, reverse=True):
        left = _cover(text, link, links[link], covered, whole_line=True)
        _cover(text, link, left, covered, whole_line=False)
    total = 0
    for run in _NOT_COVERED.finditer(covered):
        for line in text[run.start() : run.end()].split("\n"):
            words = " ".join(line.split())
            if any(ch.isalnum() for ch in words):
                total += len(words)
    return total


def _cover(text: str, link: str, times: int, covered: bytearray, *, whole_line: bool) -> int:
    """Mark up to ``times`` uncovered occurrences of ``link`` in ``text`` (whole lines, or at word
    bounds); how many are left to mark."""
    pos = 0
    while times and (at := text.find(link, pos)) != -1:
        end = at + len(link)
        pos = at + 1
        if whole_line:
            line_start, line_end = text.rfind("\n", 0, at) + 1, text.find("\n", end)
            before, after = text[line_start:at], text[end:] if line_end == -1 else text[end:line_end]
            fits = not before.strip() and not after.strip()
        else:
            fits = not (at > 0 and text[at - 1].isalnum()) and not (end < len(text) and text[end].isalnum())
        if fits and covered.find(1, at, end) == -1:
            covered[at:end] = b"\x01" * (end - at)
            times -= 1
            pos = end
    return times


def declared_language(html: str) -> str | None:
    head = html[:20000]
    for pattern in (_LANG_ATTR, _CONTENT_LANG, _OG_LOCALE):
        m = pattern.search(head)
        if m:
            return m.group(1).lower()[:2]
    return None


def detect_language(text: str) -> str | None:
    """A small heuristic: script share for Arabic (and Cyrillic, Hebrew), stop words for Latin."""
    sample = text[:5000]
    letters = sum(ch.isalpha() for ch in sample)
    if letters < 20:
        return None
    for lang, script in _SCRIPTS:
        if len(script.findall(sample)) / letters > 0.3:
            return lang
    words = re.findall(r"[^\W\d_]+", sample.lower())
    scores = {lang: sum(w in stop for w in words) for lang, stop in _STOPWORDS.items()}
    best = max(scores, key=scores.__getitem__)
    return best if scores[best] >= 3 else None


def _parse_date(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _warm() -> bool:
    return True


class ExtractionPool:
    """A process pool for ``extract_body``. Start it before the reactor runs (fork is then safe
    and cheap, and the workers share the loaded ruleset); ``await pool.extract(...)`` from a
    spider callback. Pages go in as bytes (no decoding on the reactor thread), compact results
    come back."""

    def __init__(self, workers: int | None = None, *, ruleset: CompiledRuleset | None = None):
        self.workers = workers or max(1, os.cpu_count() or 1)
        self.ruleset = ruleset  # matched in the workers when given
        self._executor: ProcessPoolExecutor | None = None

    def start(self) -> ExtractionPool:
        self._started()
        return self

    def _started(self) -> ProcessPoolExecutor:
        """The pool's executor, its workers started (and warm) first if need be."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                self.workers,
                mp_context=multiprocessing.get_context("fork"),
                initializer=_install,
                initargs=(self.ruleset, os.getpid()),
            )
            for f in [self._executor.submit(_warm) for _ in range(self.workers)]:
                f.result()
        return self._executor

    async def extract(self, body: bytes, encoding: str, url: str, hints: Hints) -> Extracted:
        executor = self._started()
        return await asyncio.wrap_future(executor.submit(extract_body, body, encoding, url, hints))

    def shutdown(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None

    def retire(self) -> None:
        """Shut down once the pages handed in are extracted (a pool replaced by one with newer
        rules: blocking, run it in a thread)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=False)
            self._executor = None
