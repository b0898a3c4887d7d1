"""Story clustering: syndicated copies of one story (same text in other furniture, or lightly
edited) share a story id, found with MinHash + LSH over word shingles.

Threshold: 3-word shingles, 128 permutations, LSH Jaccard threshold 0.5. Editing one word in
twenty changes about 15 % of the 3-shingles (Jaccard ~0.74, well above); two different reports
on the same towns share well under 10 % of their 3-shingles. The best candidate must also reach
``MIN_JACCARD`` by MinHash estimate, since LSH returns candidates, not verdicts.

The MinHash and its LSH index are a few lines of numpy here rather than datasketch: importing
datasketch pulls scipy in (0.3 s of every crawl process's start-up) to tune LSH parameters this
module fixes, and it hashes each shingle with SHA-1 in a Python loop (most of the signature's
cost). The method is the same: each permutation is a multiply-shift hash of the shingle's
32-bit hash, the signature keeps each permutation's minimum, and LSH buckets signatures by
bands of ``ROWS`` values (25 x 5: datasketch's optimum for 0.5 and 128 permutations).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from typing import TYPE_CHECKING, Protocol

import numpy as np
from sqlalchemy import select

from core.store import articles

if TYPE_CHECKING:
    from datetime import datetime

    from sqlalchemy.engine import Connection

NUM_PERM = 128
SHINGLE = 3
BANDS, ROWS = 25, 5
MIN_JACCARD = 0.5
MIN_SHINGLES = 8  # shorter texts never cluster: a few shared words prove nothing
SIGNATURE_BYTES = NUM_PERM * 4  # uint32 values; stored signatures of another size are ignored
_WORD = re.compile(r"\w+", re.UNICODE)

# Fixed seeds: signatures are stored, so every process must draw the same permutations.
_RNG = np.random.default_rng(20161101)
_MUL = _RNG.integers(0, 2**64, NUM_PERM, dtype=np.uint64) | np.uint64(1)  # odd multipliers
_ADD = _RNG.integers(0, 2**64, NUM_PERM, dtype=np.uint64)
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))
_SHIFT = np.uint64(32)


class HasText(Protocol):
    url: str
    text: str
    signature: bytes | None


def shingle_hashes(text: str, size: int = SHINGLE) -> np.ndarray:
    """The 32-bit hashes of ``text``'s ``size``-word shingles (lower-cased words), repeats kept
    (a minimum does not care).

    Each word is hashed once (CRC-32, in C); a shingle's hash mixes its words' hashes by
    position, so "a b c" and "c b a" differ."""
    words = _WORD.findall(text.lower())
    count = len(words) - size + 1
    if count <= 0:
        return np.empty(0, dtype=np.uint64)
    word_hash = np.array(list(map(zlib.crc32, map(str.encode, words))), dtype=np.uint64)
    mixed = word_hash[:count] * _MIX[0]
    for i in range(1, size):  # uint64 products wrap: that is the mixing
        mixed ^= word_hash[i : i + count] * _MIX[i % len(_MIX)]
    mixed *= _MIX[2]
    return mixed >> _SHIFT


def signature_of(text: str) -> bytes | None:
    """The MinHash of ``text`` as bytes (stored in articles.signature), or None if too short."""
    hashes = shingle_hashes(text)
    if len(hashes) < MIN_SHINGLES or len(set(hashes.tolist())) < MIN_SHINGLES:
        return None
    permuted = np.multiply.outer(hashes, _MUL)  # multiply-shift hashing, one column per permutation
    permuted += _ADD
    permuted >>= _SHIFT
    return permuted.min(axis=0).astype(np.uint32).tobytes()


def _values(signature: bytes) -> np.ndarray | None:
    if len(signature) != SIGNATURE_BYTES:
        return None  # from an earlier signature scheme: such an article no longer clusters
    return np.frombuffer(signature, dtype=np.uint32)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """The Jaccard similarity of two texts, estimated from their signatures."""
    return float(np.count_nonzero(a == b)) / NUM_PERM


def new_story_id(url: str) -> str:
    return hashlib.sha1(url.encode("utf-8")).hexdigest()  # 40 chars, stable for a URL


class StoryClusterer:
    """The LSH index of stored signatures, keyed by article URL, each mapped to its story id."""

    def __init__(self) -> None:
        self._bands: list[dict[bytes, set[str]]] = [{} for _ in range(BANDS)]
        self._story: dict[str, str] = {}
        self._sig: dict[str, np.ndarray] = {}

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

    @staticmethod
    def _band_keys(values: np.ndarray) -> list[bytes]:
        return [values[i * ROWS : (i + 1) * ROWS].tobytes() for i in range(BANDS)]

    def find(self, signature: bytes | None, *, exclude: str | None = None) -> str | None:
        """The story of the most similar indexed article, if similar enough."""
        values = _values(signature) if signature is not None else None
        if values is None:
            return None
        candidates: set[str] = set()
        for band, key in zip(self._bands, self._band_keys(values), strict=True):
            candidates.update(band.get(key, ()))
        candidates.discard(exclude)
        best, best_j = None, MIN_JACCARD
        for url in sorted(candidates):  # sorted: ties go the same way on every run
            j = jaccard(values, self._sig[url])
            if j > best_j or (j == best_j and best is None):
                best, best_j = url, j
        return self._story[best] if best is not None else None

    def assign(self, article: HasText) -> tuple[str, str | None]:
        """The story id for an article: its own if already indexed, a similar article's, else new;
        and the similar other article's story, if any (None: the article starts a story). The
        article is indexed under that story."""
        if article.signature is None:
            article.signature = signature_of(article.text)
        similar = self.find(article.signature, exclude=article.url)
        story = self._story.get(article.url) or similar or new_story_id(article.url)
        self.add(article.url, story, article.signature)
        return story, similar

    def add(self, url: str, story_id: str, signature: bytes | None) -> None:
        """Index (or re-index, after an update) the article at ``url`` under ``story_id``."""
        self.remove(url)
        self._story[url] = story_id
        values = _values(signature) if signature is not None else None
        if values is not None:
            self._sig[url] = values
            for band, key in zip(self._bands, self._band_keys(values), strict=True):
                band.setdefault(key, set()).add(url)

    def remove(self, url: str) -> None:
        values = self._sig.pop(url, None)
        if values is not None:
            for band, key in zip(self._bands, self._band_keys(values), strict=True):
                members = band.get(key)
                if members is not None:
                    members.discard(url)
                    if not members:
                        del band[key]
        self._story.pop(url, None)
