"""The store: every table Lookout keeps, on SQLite by default or PostgreSQL by URL, through
SQLAlchemy Core only (no ORM, no dialect-specific SQL outside ``insert_ignore`` and the story
index's one-off backfill).

Tables are created on first use, and columns renamed since (``RENAMED_COLUMNS``) are renamed
in an existing database then; the story index (``story_bands``), when new, is filled from the
stored articles' signatures then. Domain modules (crawler state, outbox, subscriptions) keep
their own queries next to their logic and use the tables and helpers defined here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.schema import AddConstraint, CreateSchema, CreateTable, DropSchema
from sqlalchemy.types import TypeDecorator
from typing_extensions import override

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from sqlalchemy.engine import Connection, Dialect, Engine
    from sqlalchemy.engine.interfaces import DBAPIConnection
    from sqlalchemy.pool import ConnectionPoolEntry
    from sqlalchemy.sql import Select

T = TypeVar("T")
metadata = MetaData()


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    @override
    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        return value.astimezone(UTC)

    @override
    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


sources = Table(
    "sources",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("kind", String(20), nullable=False),  # feed | sitemap | listing
    Column("url", Text, nullable=False),
    Column("last_crawl_at", UTCDateTime),
    Column("last_success_at", UTCDateTime),
    Column("last_result", String(20)),  # crawler.state.CrawlResult: ok | partial | empty | failed | timeout
    Column("last_error", Text),
    Column("next_run_at", UTCDateTime),  # when the scheduler polls it next (kept across restarts)
    Column("failures_in_row", Integer),  # crawls failed since the last success: the poll backs off
)

# Conditional GET state for feeds, sitemaps and listing pages.
http_cache = Table(
    "http_cache",
    metadata,
    Column("url", Text, primary_key=True),
    Column("etag", Text),
    Column("last_modified", Text),
    Column("checked_at", UTCDateTime),
)

crawl_runs = Table(
    "crawl_runs",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False, index=True),
    Column("started_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime),
    Column("result", String(20)),  # crawler.state.CrawlResult: ok | partial | empty | failed | timeout
    Column("fetched", Integer, default=0),
    Column("new", Integer, default=0),
    Column("updated", Integer, default=0),
    Column("duplicates", Integer, default=0),
    Column("failed", Integer, default=0),
    Column("skipped", Integer, default=0),  # entries not downloaded: stored already, backing off, claimed
    Column("unchanged", Integer, default=0),  # downloaded again, same text
    Column("error", Text),
)

crawl_failures = Table(
    "crawl_failures",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("source", String(100), nullable=False, index=True),
    Column("url", Text, nullable=False),
    Column("reason", String(40), nullable=False),  # http-404, timeout, too-large, robots, ...
    Column("detail", Text),
    Column("at", UTCDateTime, nullable=False),
)

# Article URLs that failed, and when to try each again (``crawler.state``: 404 and 410 are given
# up after three tries spread over hours; 5xx, timeouts and network errors retried with growing
# delays). Discovery does not request a URL before its ``next_try_at``, nor ever once given up.
failing_urls = Table(
    "failing_urls",
    metadata,
    Column("url_hash", String(64), primary_key=True),  # of the URL as the index listed it (canonical)
    Column("url", Text, nullable=False),
    Column("source", String(100), nullable=False, index=True),  # the last source to try it
    Column("reason", String(40), nullable=False),  # the last failure's, as crawl_failures.reason
    Column("detail", Text),
    Column("tries", Integer, nullable=False, default=1),
    Column("first_failed_at", UTCDateTime, nullable=False),
    Column("last_failed_at", UTCDateTime, nullable=False),
    Column("next_try_at", UTCDateTime),  # None: given up
)

articles = Table(
    "articles",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False, unique=True),  # canonical
    Column("url_hash", String(64), nullable=False, unique=True),
    Column("source", String(100), nullable=False, index=True),
    Column("outlet", Text),
    Column("title", Text, nullable=False, default=""),
    Column("author", Text),
    Column("published", UTCDateTime),
    Column("fetched", UTCDateTime, nullable=False),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("language", String(12)),
    Column("text", Text, nullable=False, default=""),
    Column("content_hash", String(64), nullable=False),
    Column("entry_marker", Text),
    Column("story_id", String(40), nullable=False, index=True),
    Column("signature", LargeBinary),
    Column("alertable", Boolean, nullable=False, default=True),  # false when older than crawl.max_age
)

# Other URLs an article is known under (the feed's link when the page's rel=canonical differs, a
# redirect's start): new-only discovery recognises the stored article by any of them.
article_urls = Table(
    "article_urls",
    metadata,
    Column("url_hash", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), nullable=False, index=True),
)

# The story index (crawler.stories): one row per article and LSH band of its MinHash signature
# (articles.signature: STORY_SIGNATURE_BYTES of uint32 values, the first STORY_BANDS x
# STORY_ROWS of them banded). Articles sharing a band's key are candidate copies of one story;
# the Jaccard estimate from their signatures decides. Rows go with their article (cascade).
STORY_BANDS, STORY_ROWS = 25, 5
STORY_SIGNATURE_BYTES = 128 * 4  # signatures of another size (an earlier scheme) are not indexed

story_bands = Table(
    "story_bands",
    metadata,
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True),
    Column("band", SmallInteger, primary_key=True),
    # A 64-bit hash of the band's number and its values, not their 20 bytes: 8 bytes a key in
    # the index (25 keys an article), a collision (2**-64 a pair) only adds a candidate the
    # Jaccard check drops, and the same integer names the band's PostgreSQL advisory lock.
    Column("key", BigInteger, nullable=False),
    # article_id in the index (PostgreSQL INCLUDE; on SQLite every index of a WITHOUT ROWID
    # table holds the primary key): a candidate lookup reads the index only.
    Index("ix_story_bands_band_key", "band", "key", postgresql_include=["article_id"]),
    sqlite_with_rowid=False,  # the primary key is the table: no rowid B-tree beside it
)


def story_band_keys(signature: bytes) -> list[int]:
    """The ``story_bands.key`` of each band of ``signature``, in band order (none for a signature
    of another size). Signed, to fit BIGINT."""
    if len(signature) != STORY_SIGNATURE_BYTES:
        return []
    width = STORY_ROWS * 4
    return [
        int.from_bytes(
            hashlib.blake2b(bytes((band,)) + signature[band * width : (band + 1) * width], digest_size=8).digest(),
            "little",
            signed=True,
        )
        for band in range(STORY_BANDS)
    ]

matches = Table(
    "matches",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
    Column("rule_id", String(200), nullable=False, index=True),
    Column("evidence", JSON, nullable=False),  # rules.types.Match as JSON
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("article_id", "rule_id", name="uq_match_article_rule"),
)

chats = Table(
    "chats",
    metadata,
    Column("chat_id", String(64), primary_key=True),  # numeric id, or "@channelname"
    Column("kind", String(20), nullable=False, default="private"),  # private | group | channel
    Column("title", Text),
    Column("muted_until", UTCDateTime),
    Column("quiet_start", String(5)),  # "23:00"
    Column("quiet_end", String(5)),
    Column("digest", String(20), nullable=False, default="off"),  # off | hourly | daily
    Column("digest_at", String(5)),  # "08:00" for daily
    Column("pins", Boolean, nullable=False, default=False),
    Column("tz", String(64)),  # IANA time zone for quiet hours, digests and times shown; None: UTC
    Column("paused", Boolean, nullable=False, default=False),  # blocked us / chat gone
    Column("paused_reason", Text),
    Column("created_at", UTCDateTime, nullable=False),
)

subscriptions = Table(
    "subscriptions",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chat_id", String(64), nullable=False, index=True),
    Column("kind", String(10), nullable=False),  # place | group | rule | near
    Column("target", String(200), nullable=False),  # place/group/rule id
    Column("km", Float),  # for kind == near
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("chat_id", "kind", "target", name="uq_subscription"),
)

rule_mutes = Table(
    "rule_mutes",
    metadata,
    Column("chat_id", String(64), primary_key=True),
    Column("alert_key", String(200), primary_key=True),  # see alerts.keys: a rule id, or "place:<id>", ...
    Column("until", UTCDateTime, nullable=False),
)

# One row per chat x story x alert key. The row in state "sending" is the delivery ledger: it is
# committed before the Bot API call, so a crash mid-send is retried (at most one duplicate).
outbox = Table(
    "outbox",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("chat_id", String(64), nullable=False),
    Column("story_id", String(40), nullable=False),
    Column("alert_key", String(200), nullable=False),  # alerts.keys: a rule id, or "place:<id>", "near:<id>", ...
    Column("article_id", Integer, ForeignKey("articles.id", ondelete="CASCADE"), nullable=False),
    Column("match_id", Integer, ForeignKey("matches.id", ondelete="SET NULL")),
    Column("state", String(12), nullable=False, default="pending"),  # alerts.outbox.OutboxState
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("next_attempt_at", UTCDateTime),
    Column("sent_at", UTCDateTime),
    Column("first_seen_at", UTCDateTime),  # when the crawler first saw the article (latency)
    Column("message_id", BigInteger),
    Column("also", JSON),  # other outlets that ran the same story, shown as "Also: ..."
    Column("needs_edit", Boolean, nullable=False, default=False),  # sent, then "also" grew: edit it
    Column("held", Boolean, nullable=False, default=False),  # waited on mute/quiet/digest: goes in a digest
    Column("label", Text),  # place/group subscription label shown in the heading ("Azaz")
    Column("evidence", JSON),  # rules.types.Match JSON when no matches row holds it (subscriptions)
    # The claim of a row in "sending": which dispatcher (alerts.claims.ClaimOwner), since when, and
    # until when it is theirs; only a claim whose owner is gone is ever taken back.
    Column("claimed_by", String(160)),
    Column("claimed_at", UTCDateTime),
    Column("lease_until", UTCDateTime),
    UniqueConstraint("chat_id", "story_id", "alert_key", name="uq_outbox_chat_story_rule"),
)
Index("ix_outbox_state_next", outbox.c.state, outbox.c.next_attempt_at)

# Columns renamed since they were first shipped: (table, old name, new name). ``Store.create``
# renames them in an existing database (SQLite >= 3.25 and PostgreSQL both have RENAME COLUMN;
# the column's constraints and indexes follow it).
RENAMED_COLUMNS: tuple[tuple[Table, str, str], ...] = (
    (outbox, "rule_id", "alert_key"),
    (rule_mutes, "rule_id", "alert_key"),
)


# Columns added since their table was first shipped: ``Store.create`` adds them (nullable, no
# default) to an existing database.
ADDED_COLUMNS: tuple[tuple[Table, str], ...] = (
    (outbox, "claimed_by"),
    (outbox, "claimed_at"),
    (outbox, "lease_until"),
    (chats, "tz"),
    (sources, "failures_in_row"),
    (crawl_runs, "skipped"),
    (crawl_runs, "unchanged"),
)


def url_hash(url: str) -> str:
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def _sqlite_pragmas(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")  # the bot reads while a crawl writes
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def redact_url(url: str) -> str:
    """The database URL with any password hidden, for logs and status output."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return "<invalid database url>"


class Store:
    """Owns the engine. ``schema`` puts every table in one PostgreSQL schema (tests use that)."""

    def __init__(self, url: str, *, schema: str | None = None, create: bool = True) -> None:
        self.url = url
        self.schema = schema
        if url.startswith("sqlite:///") and not url.startswith("sqlite:///:memory:"):
            Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, future=True, pool_pre_ping=True)
        if engine.dialect.name == "sqlite":
            event.listen(engine, "connect", _sqlite_pragmas)
        if schema:
            engine = engine.execution_options(schema_translate_map={None: schema})
        self.engine: Engine = engine
        if create:
            self.create()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create(self) -> None:
        """Create the schema and any missing table; rename the ``RENAMED_COLUMNS`` still there and
        add the ``ADDED_COLUMNS`` missing."""
        with self.engine.begin() as conn:
            if self.schema:
                conn.execute(CreateSchema(self.schema, if_not_exists=True))
            inspector = inspect(conn)
            tables = set(inspector.get_table_names(schema=self.schema))
            for table, old, new in RENAMED_COLUMNS:
                if table.name not in tables:
                    continue
                columns = {c["name"] for c in inspector.get_columns(table.name, schema=self.schema)}
                if old in columns and new not in columns:
                    rename_column(conn, table, old, new, schema=self.schema)
            for table, name in ADDED_COLUMNS:
                if table.name not in tables:
                    continue  # create_all makes it whole
                columns = {c["name"] for c in inspector.get_columns(table.name, schema=self.schema)}
                if name not in columns:
                    add_column(conn, table, name, schema=self.schema)
            if articles.name in tables and story_bands.name not in tables:
                # A savepoint: SQLite's driver runs DDL outside any transaction, so without one a
                # backfill cut short would leave the table, and it is backfilled only when new.
                with conn.begin_nested():
                    create_story_bands(conn)
            metadata.create_all(conn)

    def drop(self) -> None:
        with self.engine.begin() as conn:
            metadata.drop_all(conn)
            if self.schema:
                conn.execute(DropSchema(self.schema, cascade=True, if_exists=True))

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """One transaction: committed on success, rolled back on any exception."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    def __repr__(self) -> str:
        return f"Store({redact_url(self.url)!r})"


def rename_column(conn: Connection, table: Table, old: str, new: str, *, schema: str | None = None) -> None:
    """``ALTER TABLE ... RENAME COLUMN``, the same statement on SQLite and PostgreSQL."""
    quote = conn.dialect.identifier_preparer.quote
    name = f"{quote(schema)}.{quote(table.name)}" if schema else quote(table.name)
    conn.execute(text(f"ALTER TABLE {name} RENAME COLUMN {quote(old)} TO {quote(new)}"))


def create_story_bands(conn: Connection) -> None:
    """Create ``story_bands`` in a database whose articles predate it, indexing them. Its index is
    built once the rows are in (one sort, not a random insert a row), and so is its foreign key
    on PostgreSQL, which checks one with a trigger a row (most of a backfill's time there) but
    checks an added one in one join. SQLite cannot add one later, and checks each row cheaply."""
    key_later = conn.dialect.name == "postgresql"
    conn.execute(CreateTable(story_bands, include_foreign_key_constraints=[] if key_later else None))
    backfill_story_bands(conn)
    for index in story_bands.indexes:
        index.create(conn)
    if key_later:
        for constraint in story_bands.foreign_key_constraints:
            conn.execute(AddConstraint(constraint))


def backfill_story_bands(conn: Connection, chunk: int = 2000) -> int:
    """Index every stored article with a signature (``story_bands`` is new in this database), a
    chunk of articles at a time; returns how many were indexed."""
    last, indexed = 0, 0
    while True:
        rows = conn.execute(
            select(articles.c.id, articles.c.signature)
            .where(articles.c.id > last, articles.c.signature.is_not(None))
            .order_by(articles.c.id)
            .limit(chunk)
        ).all()
        if not rows:
            return indexed
        batch = [
            (article_id, band, key)
            for article_id, signature in rows
            for band, key in enumerate(story_band_keys(bytes(signature)))
        ]
        if batch:
            _bulk_insert_bands(conn, batch)
            indexed += len(batch) // STORY_BANDS
        last = rows[-1].id


def _bulk_insert_bands(conn: Connection, rows: list[tuple[int, int, int]]) -> None:
    """``story_bands`` rows through the driver: COPY on PostgreSQL, an executemany of tuples on
    SQLite. 25 rows an article, and SQLAlchemy's executemany costs 10 (SQLite) to 40 (psycopg's
    statement a row) microseconds a row against the driver's 1 to 3: a backfill of a million
    articles takes minutes, not a quarter of an hour."""
    quote = conn.dialect.identifier_preparer.quote
    schema = (conn.get_execution_options().get("schema_translate_map") or {}).get(None)
    table = f"{quote(schema)}.{quote(story_bands.name)}" if schema else quote(story_bands.name)
    columns = ", ".join(quote(c.name) for c in (story_bands.c.article_id, story_bands.c.band, story_bands.c.key))
    dbapi: Any = conn.connection.dbapi_connection
    if conn.dialect.name == "postgresql":
        with dbapi.cursor() as cursor, cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
    elif conn.dialect.name == "sqlite":
        cursor = dbapi.cursor()
        try:
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES (?, ?, ?)", rows)
        finally:
            cursor.close()
    else:
        conn.execute(story_bands.insert(), [dict(zip(("article_id", "band", "key"), r, strict=True)) for r in rows])


def add_column(conn: Connection, table: Table, name: str, *, schema: str | None = None) -> None:
    """``ALTER TABLE ... ADD COLUMN`` for a nullable column of ``table`` as the model defines it."""
    quote = conn.dialect.identifier_preparer.quote
    target = f"{quote(schema)}.{quote(table.name)}" if schema else quote(table.name)
    column_type = table.c[name].type.compile(dialect=conn.dialect)
    conn.execute(text(f"ALTER TABLE {target} ADD COLUMN {quote(name)} {column_type}"))


def insert_ignore(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> int:
    """Insert, skipping rows that hit a unique constraint; returns how many were inserted."""
    batch = [rows] if isinstance(rows, Mapping) else list(rows)
    on_postgresql = conn.dialect.name == "postgresql"
    inserted = 0
    key = next(iter(table.primary_key.columns))
    # Count RETURNING rows: rowcount is -1 for these statements on psycopg 3. Chunks keep
    # SQLite under its bound-parameter limit.
    for start in range(0, len(batch), 200):
        chunk = batch[start : start + 200]
        stmt = (postgresql.insert(table).values(chunk).on_conflict_do_nothing() if on_postgresql
                else sqlite.insert(table).values(chunk).on_conflict_do_nothing())
        inserted += len(conn.execute(stmt.returning(key)).all())
    return inserted


def scalar(conn: Connection, stmt: Select[T]) -> T | None:
    return conn.execute(stmt).scalar()


__all__ = [
    "RENAMED_COLUMNS", "STORY_BANDS", "STORY_ROWS", "STORY_SIGNATURE_BYTES",
    "Store", "article_urls", "articles", "chats", "crawl_failures", "crawl_runs", "failing_urls",
    "http_cache",
    "insert_ignore", "matches", "metadata", "outbox", "rename_column", "rule_mutes", "scalar", "select", "sources",
    "story_band_keys", "story_bands", "subscriptions", "url_hash", "utcnow",
]
