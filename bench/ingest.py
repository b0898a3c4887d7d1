"""Benchmark: does storing a new article cost the same with 10,000 and 1,000,000 articles stored?

For each size (ascending, one database grown from one size to the next) the database is filled
in bulk with synthetic articles and their story index (random signatures and band keys; a fifth
of the articles are copies of an earlier one and share about 60 % of its band keys, as
syndicated copies do; empty texts, which no ingest query reads), through the driver's
executemany (SQLite) or COPY (PostgreSQL), and written out to disk before anything is timed.
Then new articles with realistic 400-word texts (every fourth an edited copy of an earlier
one, so candidates are found and compared) go through ``save_article`` in transactions of
``--batch``, in a fresh process opening the store as a crawl process does. Prints the median
per-article CPU and wall ms at each size and their ratio (target: at most 1.5x), with anchors
measured in the same run: the text's signature alone (pure CPU, the same work at any size: its
ratio is the machine's own drift between the two measurements) and a read of every stored
signature, the scan each crawl's start paid when the index was rebuilt in memory (read only: a
lower bound). ``load ms`` is what ``StoryClusterer.load`` costs now.

    .venv/bin/python bench/ingest.py [--sizes 10000,1000000] [--database-url URL] [--articles 1000] [--batch 5]

SQLite in a temporary directory by default; ``--database-url postgresql+psycopg://...`` runs on
PostgreSQL in a schema of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import func, select, text

from core.store import STORY_BANDS, STORY_SIGNATURE_BYTES, Store, articles, story_bands
from crawler.items import Article
from crawler.storage import save_article
from crawler.stories import StoryClusterer, signature_of

if TYPE_CHECKING:
    from collections.abc import Iterator

    from sqlalchemy.engine import Connection

NOW = datetime(2016, 6, 9, 12, 0, tzinfo=UTC)
CHUNK = 50_000  # synthetic articles per bulk insert
COPIES, SHARED = 0.2, 0.6  # synthetic copies, and the fraction of bands a copy shares
WARM_UP = 50  # articles stored before timing, at each size: caches, prepared statements


# -- filling --------------------------------------------------------------------------------


def _chunk_rows(start: int, count: int, rng: np.random.Generator) -> tuple[list[tuple[Any, ...]], np.ndarray]:
    """``count`` synthetic articles from id ``start`` (as tuples in ``_ARTICLE_COLUMNS`` order)
    and their band keys, one row of ``STORY_BANDS`` per article."""
    ids = np.arange(start, start + count)
    keys = rng.integers(-(2**63), 2**63 - 1, size=(count, STORY_BANDS), dtype=np.int64)
    story = ids.copy()
    copies = np.flatnonzero(rng.random(count) < COPIES)
    copies = copies[copies > 0]
    originals = (rng.random(len(copies)) * copies).astype(np.int64)  # an earlier article of the chunk
    shared = rng.random((len(copies), STORY_BANDS)) < SHARED
    keys[copies] = np.where(shared, keys[originals], keys[copies])
    story[copies] = story[originals]
    signatures = rng.bytes(count * STORY_SIGNATURE_BYTES)
    rows = []
    for i, article_id in enumerate(ids.tolist()):
        url = f"https://bench.example/{article_id}"
        rows.append((
            article_id, url, hashlib.sha256(url.encode()).hexdigest(), "bench", "", NOW, NOW, "",
            f"{article_id:064x}", f"bench-{int(story[i])}",
            signatures[i * STORY_SIGNATURE_BYTES : (i + 1) * STORY_SIGNATURE_BYTES], True,
        ))
    return rows, keys


_ARTICLE_COLUMNS = ("id", "url", "url_hash", "source", "title", "fetched", "first_seen", "text",
                    "content_hash", "story_id", "signature", "alertable")


def _insert_sqlite(conn: Connection, rows: list[tuple[Any, ...]], keys: np.ndarray) -> None:
    cursor = conn.connection.dbapi_connection.cursor()
    stamp = NOW.strftime("%Y-%m-%d %H:%M:%S.%f")  # as the store's UTCDateTime writes it on SQLite
    cursor.executemany(
        f"INSERT INTO articles ({', '.join(_ARTICLE_COLUMNS)}) VALUES ({', '.join('?' * len(_ARTICLE_COLUMNS))})",
        [(*r[:5], stamp, stamp, *r[7:]) for r in rows],
    )
    ids = np.repeat(np.array([r[0] for r in rows]), STORY_BANDS)
    bands = np.tile(np.arange(STORY_BANDS), len(rows))
    cursor.executemany("INSERT INTO story_bands (article_id, band, key) VALUES (?, ?, ?)",
                       zip(ids.tolist(), bands.tolist(), keys.ravel().tolist(), strict=True))


def _insert_postgresql(conn: Connection, schema: str, rows: list[tuple[Any, ...]], keys: np.ndarray) -> None:
    cursor = conn.connection.dbapi_connection.cursor()
    with cursor.copy(f'COPY "{schema}".articles ({", ".join(_ARTICLE_COLUMNS)}) FROM STDIN') as copy:
        for row in rows:
            copy.write_row(row)
    lines = [
        f"{article_id}\t{band}\t{key}\n"
        for article_id, band_keys in zip((r[0] for r in rows), keys.tolist(), strict=True)
        for band, key in enumerate(band_keys)
    ]
    with cursor.copy(f'COPY "{schema}".story_bands (article_id, band, key) FROM STDIN') as copy:
        copy.write("".join(lines))


def fill(store: Store, target: int, rng: np.random.Generator) -> float:
    """Grow the store to ``target`` articles; returns the seconds it took."""
    started = time.perf_counter()
    with store.begin() as conn:
        have = conn.execute(select(func.max(articles.c.id))).scalar() or 0
        if have >= target:
            return 0.0
        if store.dialect == "sqlite":
            _fill_sqlite(conn, have, target, rng)
        else:
            _fill_postgresql(conn, str(store.schema), have, target, rng)
    if store.dialect == "postgresql":  # fresh statistics and visibility map, as autovacuum keeps them
        with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text(f'VACUUM ANALYZE "{store.schema}".articles, "{store.schema}".story_bands'))
    took = time.perf_counter() - started
    settle(store)
    return took


def _chunks(have: int, target: int, rng: np.random.Generator) -> Iterator[tuple[list[tuple[Any, ...]], np.ndarray]]:
    for start in range(have + 1, target + 1, CHUNK):
        yield _chunk_rows(start, min(CHUNK, target + 1 - start), rng)


def _fill_sqlite(conn: Connection, have: int, target: int, rng: np.random.Generator) -> None:
    """With the indexes in place: SQLite builds an index packing every page full, so each insert
    timed next would split a page, as no index grown by inserts does (seen: 1.5x the CPU)."""
    conn.exec_driver_sql("PRAGMA cache_size=-2000000")  # 2 GB, for the load's connection only
    for rows, keys in _chunks(have, target, rng):
        _insert_sqlite(conn, rows, keys)


def _fill_postgresql(conn: Connection, schema: str, have: int, target: int, rng: np.random.Generator) -> None:
    """Secondary indexes dropped for the load and built after it: one sort, not 25 million random
    inserts; PostgreSQL's B-tree builds leave a tenth of each page free, room for the ingests."""
    if _superuser(conn):
        # The load's rows are consistent by construction: skip the foreign-key trigger each
        # band row fires (two thirds of the load's time), and sort the index builds in memory.
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        conn.execute(text("SET LOCAL maintenance_work_mem = '1GB'"))
    indexes = [*story_bands.indexes, *articles.indexes]
    for index in indexes:
        index.drop(conn)
    for rows, keys in _chunks(have, target, rng):
        _insert_postgresql(conn, schema, rows, keys)
    for index in indexes:
        index.create(conn)
    conn.execute(text("SELECT setval(pg_get_serial_sequence(:t, 'id'), :n)"),
                 {"t": f'"{schema}".articles', "n": target})


def _superuser(conn: Connection) -> bool:
    return bool(conn.execute(text("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")).scalar())


def settle(store: Store) -> None:
    """Write the load out before timing: otherwise the kernel writes back gigabytes of it while
    the ingests run, and their commits' fsyncs wait behind it (seen: 2.5x the wall time)."""
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        elif _superuser(conn):
            conn.execute(text("CHECKPOINT"))
    os.sync()


# -- measuring ------------------------------------------------------------------------------

VOCABULARY_SIZE = 4_000
FUNCTION_WORDS = ["the", "of", "and", "to", "in", "a", "is", "that", "for", "on", "with", "as", "was", "by", "at",
                  "from", "said", "it", "an", "be"]


def vocabulary(rng: random.Random) -> list[str]:
    syllables = ["ka", "mi", "to", "re", "su", "ne", "ha", "lo", "zi", "bu", "dar", "sel", "vin", "qu"]
    words: set[str] = set()
    while len(words) < VOCABULARY_SIZE:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    ranked = sorted(words)  # sorted, then shuffled: the same ranks on every run (sets have no order)
    rng.shuffle(ranked)
    return ranked


def news_text(rng: random.Random, words: list[str], weights: list[float], length: int = 400) -> str:
    """Words by Zipf's law with function words between, in sentences of 14-26 words."""
    out: list[str] = []
    while len(out) < length:
        sentence = rng.choices(words, cum_weights=weights, k=rng.randint(14, 26))
        for _ in range(len(sentence) // 3):
            sentence.insert(rng.randrange(len(sentence)), rng.choice(FUNCTION_WORDS))
        sentence[0] = sentence[0].capitalize()
        sentence[-1] += "."
        out.extend(sentence)
    return " ".join(out[:length])


def copy_of(text_: str, rng: random.Random) -> str:
    """A syndicated copy: one word in twenty replaced."""
    return " ".join("wire" if rng.random() < 0.05 else w for w in text_.split())


def new_articles(size: int, count: int, rng: random.Random, words: list[str]) -> list[Article]:
    weights = list(itertools.accumulate(1 / (rank + 1) for rank in range(len(words))))
    texts: list[str] = []
    for i in range(count):
        texts.append(copy_of(texts[i - 1], rng) if i % 4 == 3 else news_text(rng, words, weights))
    return [Article(url=f"https://measure.example/{size}/{i}", source="bench", title=f"Report {i}", text=t,
                    published=NOW, fetched=NOW) for i, t in enumerate(texts)]


def measure(store: Store, batch: list[list[Article]]) -> tuple[float, float, int]:
    """Median per-article CPU and wall ms over transactions of a few articles each, and how many
    articles joined an earlier story."""
    cpu, wall, joined = [], [], 0
    for i, group in enumerate(batch):
        c0, w0 = time.process_time(), time.perf_counter()
        with store.begin() as conn:
            clusterer = StoryClusterer.load(conn)
            saved = [save_article(conn, a, clusterer, max_age=None, now=NOW) for a in group]
        c1, w1 = time.process_time(), time.perf_counter()
        if i * len(group) >= WARM_UP:
            cpu.append((c1 - c0) / len(group) * 1e3)
            wall.append((w1 - w0) / len(group) * 1e3)
        joined += sum(not s.new_story for s in saved)
    return statistics.median(cpu), statistics.median(wall), joined


def signature_ms(items: list[Article]) -> float:
    c0 = time.process_time()
    for a in items:
        signature_of(a.text)
    return (time.process_time() - c0) / len(items) * 1e3


def full_read_s(store: Store) -> float:
    """What rebuilding the index in memory read at each crawl's start: every signature."""
    started = time.perf_counter()
    with store.connect() as conn:
        for _ in conn.execute(select(articles.c.url, articles.c.story_id, articles.c.signature)
                              .where(articles.c.signature.is_not(None))):
            pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,1000000", help="stored articles, comma-separated")
    parser.add_argument("--database-url", help="default: SQLite in a temporary directory")
    parser.add_argument("--articles", type=int, default=1000, help="new articles stored at each size")
    parser.add_argument("--batch", type=int, default=5, help="articles per transaction")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    with tempfile.TemporaryDirectory(prefix="lookout-bench-") as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        schema = f"bench_{uuid.uuid4().hex[:8]}" if url.startswith("postgresql") else None
        filler = Store(url, schema=schema)
        try:
            run(filler, sizes, args)
        finally:
            if schema:
                filler.drop()
            filler.dispose()


@dataclass(frozen=True)
class Figures:
    load_ms: float
    cpu_ms: float
    wall_ms: float
    joined: int
    signature_ms: float
    full_read_s: float


def measure_size(url: str, schema: str | None, size: int, count: int, batch: int) -> Figures:
    """Run in a process of its own, as a crawl process opens the store: the filling process's
    heap and page cache stay out of the figures."""
    rng, words = random.Random(size), vocabulary(random.Random(8))
    items = new_articles(size, count, rng, words)
    store = Store(url, schema=schema, create=False)
    try:
        with store.connect() as conn:
            started = time.perf_counter()
            StoryClusterer.load(conn)
            load_ms = (time.perf_counter() - started) * 1e3
        cpu, wall, joined = measure(store, [items[i : i + batch] for i in range(0, len(items), batch)])
        return Figures(load_ms, cpu, wall, joined, signature_ms(items), full_read_s(store))
    finally:
        store.dispose()


def run(filler: Store, sizes: list[int], args: argparse.Namespace) -> None:
    fill_rng = np.random.default_rng(9)
    print(f"{filler.dialect}; {args.articles} new articles at each size, {args.batch} per transaction")
    print(f"{'stored':>9} {'fill s':>7} {'load ms':>8} {'CPU ms':>7} {'wall ms':>8} {'joined':>7} "
          f"{'signature ms':>13} {'full read s':>12}")
    figures = []
    spawn = multiprocessing.get_context("spawn")
    for size in sizes:
        filled = fill(filler, size, fill_rng)
        filler.dispose()  # its connection's page cache too
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            f = pool.submit(measure_size, filler.url, filler.schema, size, args.articles, args.batch).result()
        figures.append(f)
        print(f"{size:>9} {filled:>7.1f} {f.load_ms:>8.3f} {f.cpu_ms:>7.2f} {f.wall_ms:>8.2f} {f.joined:>7} "
              f"{f.signature_ms:>13.2f} {f.full_read_s:>12.2f}")
    first, last = figures[0], figures[-1]
    print(f"per article at {sizes[-1]:,} / at {sizes[0]:,}: CPU {last.cpu_ms / first.cpu_ms:.2f}x, "
          f"wall {last.wall_ms / first.wall_ms:.2f}x (target ≤ 1.5x); "
          f"the signature alone {last.signature_ms / first.signature_ms:.2f}x (the machine's drift)")


if __name__ == "__main__":
    main()
