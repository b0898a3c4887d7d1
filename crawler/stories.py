"""Story clustering: syndicated copies of one story (same text in other furniture, or lightly
edited) share a story id, found with MinHash + LSH over word shingles.

Threshold: 3-word shingles, 128 permutations, LSH Jaccard threshold 0.5. Editing one word in
twenty changes about 15 % of the 3-shingles (Jaccard ~0.74, well above); two different reports
on the same towns share well under 10 % of their 3-shingles. The best candidate must also reach
``MIN_JACCARD`` by MinHash estimate, since LSH returns candidates, not verdicts.

The MinHash is a few lines of numpy here rather than datasketch: importing datasketch pulls
scipy in (0.3 s of every crawl process's start-up) to tune LSH parameters this module fixes, and
it hashes each shingle with SHA-1 in a Python loop (most of the signature's cost). The method is
the same: each permutation is a multiply-shift hash of the shingle's 32-bit hash, the signature
keeps each permutation's minimum, and LSH buckets signatures by bands of ``ROWS`` values (25 x 5:
datasketch's optimum for 0.5 and 128 permutations).

The LSH index lives in the database (``core.store.story_bands``: one row per article and band,
keyed by a hash of the band's values), so nothing is loaded per crawl and every process and
connection sees the same stories. An article's candidates are one indexed query; the Jaccard
check runs here. Two copies of one story stored at once by two transactions end in one story:
the ingest takes a lock covering the article's bands before it reads candidates (``lock``), held
until commit, so the second reads after the first committed its band rows.
"""

from __future__ import annotations

import functools
import hashlib
import re
import zlib
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import and_, bindparam, delete, false, func, or_, select, text, update

from core.store import STORY_BANDS, STORY_ROWS, STORY_SIGNATURE_BYTES, articles, story_band_keys, story_bands

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy.engine import Connection

SIGNATURE_BYTES = STORY_SIGNATURE_BYTES  # uint32 values; stored signatures of another size are ignored
NUM_PERM = SIGNATURE_BYTES // 4
SHINGLE = 3
BANDS, ROWS = STORY_BANDS, STORY_ROWS
MIN_JACCARD = 0.5
MIN_SHINGLES = 8  # shorter texts never cluster: a few shared words prove nothing
_WORD = re.compile(r"\w+", re.UNICODE)

# Fixed seeds: signatures are stored, so every process must draw the same permutations.
_RNG = np.random.default_rng(20161101)
_MUL = _RNG.integers(0, 2**64, NUM_PERM, dtype=np.uint64) | np.uint64(1)  # odd multipliers
_ADD = _RNG.integers(0, 2**64, NUM_PERM, dtype=np.uint64)
_MIX = (np.uint64(0x9E3779B97F4A7C15), np.uint64(0xC2B2AE3D27D4EB4F), np.uint64(0x165667B19E3779F9))
_SHIFT = np.uint64(32)


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


@functools.lru_cache(maxsize=256)
def band_keys(signature: bytes | None) -> tuple[int, ...]:
    """The ``story_bands`` key of each band of ``signature`` (none when it is None or of another
    size). Cached: one ingest asks for the same signature's keys to lock, look up and index."""
    return tuple(story_band_keys(signature)) if signature is not None else ()


# Built once, as crawler.storage's statements: one per article ingested.
# At most this many candidates, those sharing the most bands first (the most similar: a copy at
# Jaccard 0.74 shares ~6 of 25 bands, a chance collision one): a band key that thousands of
# articles share (boilerplate, a template site) must not make every ingest read them all.
MAX_CANDIDATES = 64
_CANDIDATES = select(articles.c.id, articles.c.url, articles.c.story_id, articles.c.signature).where(
    articles.c.id.in_(
        # An OR of band equalities, not a (band, key) IN list: SQLite searches the index once
        # per term for the OR ("MULTI-INDEX OR") but scans the whole index for the row values.
        select(story_bands.c.article_id).where(
            or_(*(and_(story_bands.c.band == b, story_bands.c.key == bindparam(f"k{b}")) for b in range(BANDS)))
        )
        .group_by(story_bands.c.article_id)
        .order_by(func.count().desc(), story_bands.c.article_id.desc())
        .limit(MAX_CANDIDATES)
    )
)
_INSERT_BANDS = story_bands.insert()
_DELETE_BANDS = delete(story_bands).where(story_bands.c.article_id == bindparam("of_article"))
# A write that changes nothing, for its lock (see ``StoryClusterer.lock``).
_TAKE_WRITE_LOCK = update(story_bands).where(false()).values(band=story_bands.c.band)
_ADVISORY_LOCKS = text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS BIGINT[])) AS k")


def _lock_namespace(conn: Connection) -> int:
    """A 64-bit mask from the schema the connection's tables are in: advisory locks are per
    database, and two installs (or test runs) in two schemas of one database share nothing."""
    schemas = conn.get_execution_options().get("schema_translate_map") or {}
    return _namespace_of(str(schemas.get(None) or "public"))


@functools.cache
def _namespace_of(schema: str) -> int:
    return int.from_bytes(hashlib.blake2b(schema.encode(), digest_size=8).digest(), "little", signed=True)


class StoryClusterer:
    """The story index in the database: every method works in the caller's transaction on
    ``conn``. It holds no state, so any number of processes agree on stories."""

    @classmethod
    def load(cls, conn: Connection | None = None) -> StoryClusterer:  # noqa: ARG003 - callers pass it
        """A clusterer. Reads nothing: the index is in the database (this once loaded it all)."""
        return cls()

    def lock(self, conn: Connection, signatures: Iterable[bytes | None]) -> None:
        """Hold, until ``conn``'s transaction ends, the lock that orders ingests of articles with
        any of these signatures' bands: take it before ``find``, and the articles another
        transaction indexes under it are either committed and found, or wait for this one.

        PostgreSQL: a transaction-scoped advisory lock per band key, taken in key order, so two
        one-article transactions never wait for each other in a cycle. It works because under
        PostgreSQL's default READ COMMITTED the candidate query, a statement after the lock, sees
        what the transaction it waited for committed. A transaction of several articles holds the
        earlier ones' locks while it takes the next: two such batches storing copies of two
        stories in opposite orders can deadlock. PostgreSQL then aborts one (after
        ``deadlock_timeout``), and ``crawler.runtime.IngestWriter`` stores a failed batch again one
        article at a time; passing all of a batch's signatures here first avoids even that.

        SQLite: its write lock serialises every writer, so take it now with a write that changes
        nothing. The driver starts a transaction at the first write only (reads before it run
        outside one, on the latest data); from this write on, the transaction holds the database's
        only write lock (or waits ``busy_timeout`` for it) and reads what the last writer committed.
        Less invasive than ``BEGIN IMMEDIATE`` for the ingest transaction, which would need the
        store's transaction handling changed; a few microseconds when the lock is held already."""
        if conn.dialect.name == "postgresql":
            namespace = _lock_namespace(conn)
            keys = sorted({k ^ namespace for s in signatures for k in band_keys(s)})
            if keys:
                conn.execute(_ADVISORY_LOCKS, {"keys": keys})
        elif conn.dialect.name == "sqlite":
            conn.execute(_TAKE_WRITE_LOCK)

    def find(self, conn: Connection, signature: bytes | None, *, exclude: int | None = None) -> str | None:
        """The story of the most similar stored article (other than the article ``exclude``), if
        similar enough: one indexed query for the articles sharing a band, then the Jaccard
        estimate of each."""
        values = _values(signature) if signature is not None else None
        keys = band_keys(signature)
        if values is None or not keys:
            return None
        params = {f"k{b}": key for b, key in enumerate(keys)}
        best, best_j = None, MIN_JACCARD
        # Sorted by URL: ties go the same way on every run.
        for row in sorted(conn.execute(_CANDIDATES, params), key=lambda r: r.url):
            other = _values(bytes(row.signature)) if row.signature is not None else None
            if row.id == exclude or other is None:
                continue
            j = jaccard(values, other)
            if j > best_j or (j == best_j and best is None):
                best, best_j = row.story_id, j
        return best

    def add(self, conn: Connection, article_id: int, signature: bytes | None) -> None:
        """Index the stored article ``article_id`` (new: no band rows yet) under its row's story."""
        keys = band_keys(signature)
        if keys:
            conn.execute(_INSERT_BANDS, [
                {"article_id": article_id, "band": band, "key": key} for band, key in enumerate(keys)
            ])

    def reindex(self, conn: Connection, article_id: int, signature: bytes | None) -> None:
        """Replace the band rows of ``article_id`` after an update: its story (its row's
        ``story_id``) stays."""
        self.remove(conn, article_id)
        self.add(conn, article_id, signature)

    def remove(self, conn: Connection, article_id: int) -> None:
        conn.execute(_DELETE_BANDS, {"of_article": article_id})
