"""The store behaves the same on SQLite and PostgreSQL (the `store` fixture runs both)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, inspect, select
from sqlalchemy.exc import IntegrityError, StatementError

from core.store import (
    RENAMED_COLUMNS,
    Store,
    articles,
    insert_ignore,
    matches,
    metadata,
    outbox,
    redact_url,
    rename_column,
    rule_mutes,
    subscriptions,
    url_hash,
)

T0 = datetime(2016, 6, 8, 9, 30, tzinfo=UTC)


def add_article(conn, url="https://example.org/a", story="s1", **extra):
    row = {
        "url": url, "url_hash": url_hash(url), "source": "demo", "title": "Title",
        "fetched": T0, "first_seen": T0, "text": "Body", "content_hash": "h", "story_id": story,
        **extra,
    }
    return conn.execute(articles.insert().values(**row)).inserted_primary_key[0]


def test_tables_are_created_on_first_use(store):
    names = set(inspect(store.engine).get_table_names(schema=store.schema))
    assert {t.name for t in metadata.sorted_tables} <= names


def test_article_round_trip_keeps_utc_and_unicode(store):
    with store.begin() as conn:
        aid = add_article(conn, title="إعزاز — Azaz", published=T0 - timedelta(days=1))
    with store.connect() as conn:
        row = conn.execute(select(articles).where(articles.c.id == aid)).one()
    assert row.title == "إعزاز — Azaz"
    assert row.published == T0 - timedelta(days=1)
    assert row.published.tzinfo is not None
    assert row.alertable is True


def test_naive_datetimes_are_refused(store):
    with pytest.raises(StatementError), store.begin() as conn:
        add_article(conn, published=datetime(2016, 6, 8))


def test_canonical_url_is_unique(store):
    with store.begin() as conn:
        add_article(conn)
    with pytest.raises(IntegrityError), store.begin() as conn:
        add_article(conn)


def test_a_failed_transaction_leaves_nothing(store):
    with pytest.raises(RuntimeError), store.begin() as conn:
        add_article(conn)
        raise RuntimeError("crash between article and alert")
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(articles)).scalar() == 0


def test_outbox_is_unique_per_chat_story_rule(store):
    with store.begin() as conn:
        aid = add_article(conn)
        mid = conn.execute(
            matches.insert().values(article_id=aid, rule_id="r", evidence={"rule_id": "r"}, created_at=T0)
        ).inserted_primary_key[0]
        row = {"chat_id": "42", "story_id": "s1", "alert_key": "r", "article_id": aid, "match_id": mid,
               "state": "pending", "created_at": T0, "updated_at": T0}
        assert insert_ignore(conn, outbox, [row, {**row, "chat_id": "@channel"}]) == 2
        assert insert_ignore(conn, outbox, row) == 0  # the same chat x story x rule again
    with store.connect() as conn:
        states = conn.execute(select(outbox.c.chat_id, outbox.c.state).order_by(outbox.c.chat_id)).all()
        evidence = conn.execute(select(matches.c.evidence)).scalar_one()
    assert [tuple(s) for s in states] == [("42", "pending"), ("@channel", "pending")]
    assert evidence == {"rule_id": "r"}


def columns(store, table) -> set[str]:
    return {c["name"] for c in inspect(store.engine).get_columns(table.name, schema=store.schema)}


def test_create_renames_the_old_rule_id_columns_and_keeps_their_rows(store):
    # A database from before the rename: outbox and rule_mutes held alert keys as "rule_id".
    with store.begin() as conn:
        aid = add_article(conn)
        insert_ignore(conn, outbox, {"chat_id": "42", "story_id": "s1", "alert_key": "place:azaz", "article_id": aid,
                                     "state": "pending", "created_at": T0, "updated_at": T0})
        insert_ignore(conn, rule_mutes, {"chat_id": "42", "alert_key": "is-near-azaz", "until": T0})
        for table, old, new in RENAMED_COLUMNS:
            rename_column(conn, table, new, old, schema=store.schema)
    assert "rule_id" in columns(store, outbox) and "alert_key" not in columns(store, rule_mutes)

    store.create()  # what opening the old database with this version does
    store.create()  # and again: nothing left to rename
    for table in (outbox, rule_mutes):
        assert "alert_key" in columns(store, table) and "rule_id" not in columns(store, table)
    with store.begin() as conn:
        assert conn.execute(select(outbox.c.alert_key)).scalars().all() == ["place:azaz"]
        assert conn.execute(select(rule_mutes.c.alert_key)).scalars().all() == ["is-near-azaz"]
        # The unique constraints came along with the renamed columns.
        again = {"chat_id": "42", "story_id": "s1", "alert_key": "place:azaz", "article_id": aid,
                 "state": "pending", "created_at": T0, "updated_at": T0}
        assert insert_ignore(conn, outbox, again) == 0
        assert insert_ignore(conn, rule_mutes, {"chat_id": "42", "alert_key": "is-near-azaz", "until": T0}) == 0


def test_subscription_is_unique_per_chat_kind_target(store):
    row = {"chat_id": "1", "kind": "place", "target": "azaz", "created_at": T0}
    with store.begin() as conn:
        assert insert_ignore(conn, subscriptions, row) == 1
        assert insert_ignore(conn, subscriptions, row) == 0


def test_deleting_an_article_cascades_to_matches(store):
    with store.begin() as conn:
        aid = add_article(conn)
        conn.execute(matches.insert().values(article_id=aid, rule_id="r", evidence={}, created_at=T0))
        conn.execute(articles.delete().where(articles.c.id == aid))
    with store.connect() as conn:
        assert conn.execute(select(func.count()).select_from(matches)).scalar() == 0


def test_sqlite_file_and_parent_folder_are_created(tmp_path):
    store = Store(f"sqlite:///{tmp_path}/deep/er/lookout.db")
    assert (tmp_path / "deep/er/lookout.db").exists()
    store.dispose()


def test_redact_url_hides_password():
    assert "hunter2" not in redact_url("postgresql+psycopg://bob:hunter2@db/lookout")
