"""Story clustering: syndicated copies of one story (same text in other furniture, or lightly
edited) share a story id, found with MinHash + LSH (datasketch) over word shingles.

Threshold: 3-word shingles, 128 permutations, LSH Jaccard threshold 0.5. Editing one word in
twenty changes about 15 % of the 3-shingles (Jaccard ~0.74, well above); two different reports
on the same towns share well under 10 % of their 3-shingles. The best candidate must also reach
``MIN_JACCARD`` by MinHash estimate, since LSH returns candidates, not verdicts.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from typing import Protocol

import numpy as np
from datasketch import MinHash, MinHashLSH
from sqlalchemy import select
from sqlalchemy.engine import Connection

from lookout.store import articles

NUM_PERM = 128
SHINGLE = 3
THRESHOLD = 0.5
MIN_JACCARD = 0.5
SCHEME = "affine32"  # datasketch 2 asks which hashing scheme stored hash values came from
MIN_SHINGLES = 8  # shorter texts never cluster: a few shared words prove nothing
_WORD = re.compile(r"\w+", re.UNICODE)


class HasText(Protocol):
    url: str
    text: str
    signature: bytes | None


def shingles(text: str, size: int = SHINGLE) -> set[bytes]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[i : i + size]).encode("utf-8") for i in range(max(0, len(words) - size + 1))}


_PERMUTATIONS = None  # generated once per process: MinHash() draws them from a seeded RNG each time


def _permutations():
    global _PERMUTATIONS  # noqa: PLW0603 - a cache of constants
    if _PERMUTATIONS is None:
        _PERMUTATIONS = MinHash(num_perm=NUM_PERM, scheme=SCHEME).permutations
    return _PERMUTATIONS


def signature_of(text: str) -> bytes | None:
    """The MinHash of ``text`` as bytes (stored in articles.signature), or None if too short."""
    grams = shingles(text)
    if len(grams) < MIN_SHINGLES:
        return None
    m = MinHash(num_perm=NUM_PERM, permutations=_permutations(), scheme=SCHEME)
    m.update_batch(list(grams))
    return m.hashvalues.astype(np.uint64).tobytes()


def _minhash(signature: bytes) -> MinHash:
    return MinHash(
        hashvalues=np.frombuffer(signature, dtype=np.uint64), permutations=_permutations(), scheme=SCHEME
    )


def new_story_id(url: str) -> str:
    return hashlib.sha1(url.encode("utf-8")).hexdigest()  # 40 chars, stable for a URL


class StoryClusterer:
    """The LSH index of stored signatures, keyed by article URL, each mapped to its story id."""

    def __init__(self) -> None:
        self._lsh = MinHashLSH(threshold=THRESHOLD, num_perm=NUM_PERM)
        self._story: dict[str, str] = {}
        self._sig: dict[str, MinHash] = {}

    @classmethod
    def load(cls, conn: Connection, since: datetime | None = None) -> StoryClusterer:
        """Index stored articles (those first seen since ``since``, when given)."""
        self = cls()
        stmt = select(articles.c.url, articles.c.story_id, articles.c.signature).where(
            articles.c.signature.is_not(None)
        )
        if since is not None:
            stmt = stmt.where(articles.c.first_seen >= since)
        for url, story_id, sig in conn.execute(stmt):
            self.add(url, story_id, bytes(sig))
        return self

    def __len__(self) -> int:
        return len(self._story)

    def story_of(self, url: str) -> str | None:
        return self._story.get(url)

    def find(self, signature: bytes | None, *, exclude: str | None = None) -> str | None:
        """The story of the most similar indexed article, if similar enough."""
        if signature is None:
            return None
        m = _minhash(signature)
        best, best_j = None, MIN_JACCARD
        for key in self._lsh.query(m):
            if key == exclude:
                continue
            j = m.jaccard(self._sig[key])
            if j >= best_j:
                best, best_j = key, j
        return self._story[best] if best is not None else None

    def assign(self, article: HasText) -> str:
        """The story id for an article: its own if already indexed, a similar article's, else new.
        The article is indexed under that story."""
        if article.signature is None:
            article.signature = signature_of(article.text)
        known = self._story.get(article.url)
        story = known or self.find(article.signature) or new_story_id(article.url)
        self.add(article.url, story, article.signature)
        return story

    def add(self, url: str, story_id: str, signature: bytes | None) -> None:
        """Index (or re-index, after an update) the article at ``url`` under ``story_id``."""
        self.remove(url)
        self._story[url] = story_id
        if signature is not None:
            m = _minhash(signature)
            self._sig[url] = m
            self._lsh.insert(url, m)

    def remove(self, url: str) -> None:
        if url in self._sig:
            self._lsh.remove(url)
            del self._sig[url]
        self._story.pop(url, None)
