"""The story index in the database (``core.store.story_bands``, ``crawler.stories``): copies
cluster through it, any new process sees it, updates re-index, retention and the backfill of an
older database keep it whole, and concurrent ingests agree on stories (SQLite and PostgreSQL)."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, event, func, insert, select

import crawler.stories
from core.store import Store, articles, backfill_story_bands, story_bands, url_hash
from crawler.items import Article
from crawler.storage import SavedArticle, save_article
from crawler.stories import BANDS, StoryClusterer, band_keys, new_story_id, signature_of
from lookout.maintenance import run_maintenance

NOW = datetime(2016, 6, 9, 12, 0, tzinfo=UTC)
VOCABULARY = [f"{a}{b}" for a in ("ka", "mi", "to", "re", "su", "ne", "ha", "lo", "zi", "bu")
              for b in ("ran", "mel", "dus", "ko", "tir", "vap", "ell", "sho", "quin", "az")]


def story_text(seed: int, words: int = 400) -> str:
    """A text of its own: two seeds share almost no 3-word shingles."""
    rng = random.Random(seed)
    return " ".join(rng.choice(VOCABULARY) for _ in range(words))


def edited(text: str, every: int = 25) -> str:
    """A syndicated copy: one word in ``every`` changed (true 3-shingle Jaccard about 0.78)."""
    words = text.split()
    return " ".join("EDITED" if i % every == 0 else w for i, w in enumerate(words))


def article(url: str, text: str, signature: bytes | None = None) -> Article:
    return Article(url=url, source="test", title="T", text=text, published=NOW, signature=signature)


def save(store: Store, *items: Article, now: datetime = NOW) -> list[SavedArticle]:
    with store.begin() as conn:
        clusterer = StoryClusterer.load(conn)
        return [save_article(conn, a, clusterer, max_age=None, now=now) for a in items]


def band_rows(store: Store, article_id: int | None = None) -> list[tuple[int, int]]:
    stmt = select(story_bands.c.band, story_bands.c.key).order_by(story_bands.c.band)
    if article_id is not None:
        stmt = stmt.where(story_bands.c.article_id == article_id)
    with store.connect() as conn:
        return [(band, key) for band, key in conn.execute(stmt)]


def count(store: Store, table) -> int:
    with store.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def same_database(store: Store) -> Store:
    """Another process's view: a store of its own (engine, connections) on the same database."""
    return Store(store.url, schema=store.schema, create=False)


def test_copies_cluster_through_the_database_index_and_other_stories_do_not(store):
    base = story_text(1)
    first, copy, other, short, old_scheme = save(
        store,
        article("https://a.example/1", base),
        article("https://wire.example/x", edited(base)),
        article("https://a.example/2", story_text(2)),
        article("https://a.example/short", "too short to cluster"),
        article("https://a.example/old", base, signature=b"\0" * 1024),  # an earlier scheme's size
    )
    assert (copy.status, copy.new_story, copy.story_id) == ("new", False, first.story_id)
    assert other.new_story and other.story_id != first.story_id
    # Indexed: every band of each clustering article, under the keys of its stored signature.
    assert [k for _, k in band_rows(store, first.article_id)] == list(band_keys(signature_of(base)))
    assert len(band_rows(store, other.article_id)) == BANDS
    # Short texts and signatures of another size are stored, never indexed, never joined.
    assert short.new_story and old_scheme.new_story and old_scheme.story_id != first.story_id
    assert band_rows(store, short.article_id) == [] and band_rows(store, old_scheme.article_id) == []
    assert count(store, story_bands) == 3 * BANDS


def test_a_tie_goes_to_the_first_url_in_order(store):
    base = story_text(3)
    (late,) = save(store, article("https://z.example/1", base))
    # Another story holding the very same text, at a URL sorting first (stored by hand: a copy
    # saved normally would join the first story).
    signature = signature_of(base)
    with store.begin() as conn:
        row = {"url": "https://a.example/1", "url_hash": url_hash("https://a.example/1"), "source": "test",
               "fetched": NOW, "first_seen": NOW, "content_hash": "x", "story_id": "story-a", "signature": signature}
        article_id = conn.execute(insert(articles).values(row).returning(articles.c.id)).scalar_one()
        StoryClusterer().add(conn, article_id, signature)
        assert StoryClusterer().find(conn, signature) == "story-a"
        assert StoryClusterer().find(conn, signature, exclude=article_id) == late.story_id
    (copy,) = save(store, article("https://m.example/1", edited(base)))
    assert copy.story_id == "story-a"


def test_the_index_outlives_its_process_and_is_not_loaded_at_start(store):
    base = story_text(4)
    (first,) = save(store, article("https://a.example/1", base))
    store.dispose()
    later = same_database(store)
    statements: list[str] = []
    event.listen(later.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        with later.connect() as conn:
            StoryClusterer.load(conn)
        assert statements == []  # nothing read at start, however many articles are stored
        (copy,) = save(later, article("https://wire.example/x", edited(base)))
    finally:
        later.dispose()
    assert (copy.new_story, copy.story_id) == (False, first.story_id)


def test_an_update_keeps_its_story_and_replaces_its_band_rows(store):
    old_text, new_text = story_text(5), story_text(6)
    (first,) = save(store, article("https://a.example/1", old_text))
    before = band_rows(store, first.article_id)
    (updated,) = save(store, article("https://a.example/1", new_text))
    after = band_rows(store, first.article_id)
    assert (updated.status, updated.article_id, updated.story_id) == ("updated", first.article_id, first.story_id)
    assert [k for _, k in after] == list(band_keys(signature_of(new_text))) and after != before
    # A copy of the new text joins the updated article's story; a copy of the old one no longer does.
    new_copy, old_copy = save(store, article("https://wire.example/new", edited(new_text)),
                              article("https://wire.example/old", edited(old_text)))
    assert new_copy.story_id == first.story_id
    assert old_copy.new_story and old_copy.story_id != first.story_id
    # An update too short to cluster leaves no band rows behind.
    save(store, article("https://a.example/1", "now too short"))
    assert band_rows(store, first.article_id) == []


def test_retention_removes_the_band_rows_of_the_articles_it_removes(store):
    (old,) = save(store, article("https://a.example/old", story_text(7)), now=NOW - timedelta(days=30))
    (recent,) = save(store, article("https://a.example/new", story_text(8)))
    assert count(store, story_bands) == 2 * BANDS
    report = run_maintenance(store, timedelta(days=7), now=NOW, vacuum=False)
    assert report.articles == 1
    assert band_rows(store, old.article_id) == [] and len(band_rows(store, recent.article_id)) == BANDS
    assert count(store, story_bands) == BANDS
    # A copy of the removed story starts a new one.
    (copy,) = save(store, article("https://wire.example/x", edited(story_text(7))))
    assert copy.new_story


def _store_articles_without_index(store: Store, texts: dict[str, str]) -> None:
    """Articles as a database from before the story index holds them: signatures, no band rows."""
    with store.begin() as conn:
        story_bands.drop(conn)
        conn.execute(insert(articles), [
            {"url": url, "url_hash": url_hash(url), "source": "test", "fetched": NOW, "first_seen": NOW,
             "text": text, "content_hash": url, "story_id": new_story_id(url), "signature": signature_of(text)}
            for url, text in texts.items()
        ])


def test_an_older_database_is_backfilled_once_and_its_stories_still_cluster(store):
    texts = {"https://a.example/1": story_text(9), "https://a.example/2": story_text(10),
             "https://a.example/short": "too short"}
    _store_articles_without_index(store, texts)
    store.create()
    assert count(store, story_bands) == 2 * BANDS
    again = same_database(store)
    try:
        again.create()  # the table exists now: no second backfill (it would break the primary key)
        assert count(again, story_bands) == 2 * BANDS
        copy, other = save(again, article("https://wire.example/x", edited(texts["https://a.example/2"])),
                           article("https://wire.example/y", story_text(11)))
        # The backfilled table's rows still go with their article.
        with again.begin() as conn:
            conn.execute(delete(articles).where(articles.c.url == "https://a.example/1"))
        assert count(again, story_bands) == 3 * BANDS
    finally:
        again.dispose()
    assert copy.story_id == new_story_id("https://a.example/2") and other.new_story


def test_a_backfill_cut_short_leaves_no_table_and_runs_again(store, monkeypatch):
    texts = {f"https://a.example/{i}": story_text(20 + i) for i in range(5)}
    _store_articles_without_index(store, texts)

    def interrupted(conn, chunk=2000):
        backfill_story_bands(conn, chunk=2)  # some rows in
        raise KeyboardInterrupt

    monkeypatch.setattr("core.store.backfill_story_bands", interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.create()
    monkeypatch.undo()
    store.create()
    assert count(store, story_bands) == 5 * BANDS


def _slow_find(monkeypatch) -> None:
    """Widen the race: each ingest waits a little after reading its candidates, before it stores,
    so two ingests that read without the lock would both miss each other."""
    real = crawler.stories.StoryClusterer.find

    def find(self, conn, signature, **kwargs):
        found = real(self, conn, signature, **kwargs)
        time.sleep(0.05)
        return found

    monkeypatch.setattr(crawler.stories.StoryClusterer, "find", find)


def _at_once(store: Store, items: list[Article]) -> list[SavedArticle]:
    """Each article saved by its own thread, with its own store (engine, connection), started
    together; any exception is raised here."""
    barrier = threading.Barrier(len(items))
    results: list[SavedArticle | BaseException | None] = [None] * len(items)

    def run(i: int) -> None:
        own = same_database(store)
        try:
            with own.connect():
                pass  # connected before the barrier: the threads race on the ingest only
            barrier.wait(timeout=10)
            results[i] = save(own, items[i])[0]
        except BaseException as exc:
            results[i] = exc
        finally:
            own.dispose()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(items))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return [r for r in results if isinstance(r, SavedArticle)]


def test_copies_stored_at_once_by_two_processes_make_one_story(store, monkeypatch):
    _slow_find(monkeypatch)
    for round_ in range(4):
        base = story_text(100 + round_)
        one, two = _at_once(store, [article(f"https://a.example/{round_}", base),
                                    article(f"https://wire.example/{round_}", edited(base))])
        assert one.story_id == two.story_id, f"round {round_}: two stories"
        assert sorted([one.new_story, two.new_story]) == [False, True]


@pytest.mark.parametrize("text", [story_text(200), "short, so no bands to lock"], ids=["story", "short"])
def test_one_new_url_stored_at_once_by_two_processes_is_one_row(store, monkeypatch, text):
    _slow_find(monkeypatch)
    for round_ in range(3):
        url = f"https://a.example/{round_}"
        results = _at_once(store, [article(url, text), article(url, text)])
        assert sorted(r.status for r in results) == ["new", "unchanged"]
        assert len({r.article_id for r in results}) == 1 and len({r.story_id for r in results}) == 1
    assert count(store, articles) == 3


def test_the_insert_alone_is_conflict_safe(store, monkeypatch):
    # Without the story lock both ingests miss the row and insert: the second insert must
    # become the row's re-sighting, not an error.
    monkeypatch.setattr(crawler.stories.StoryClusterer, "lock", lambda self, conn, signatures: None)
    _slow_find(monkeypatch)
    text = story_text(300)
    results = _at_once(store, [article("https://a.example/1", text), article("https://a.example/1", text + " more")])
    assert sorted(r.status for r in results) in (["new", "unchanged"], ["new", "updated"])
    assert count(store, articles) == 1


def test_a_band_shared_by_many_articles_does_not_make_every_ingest_read_them_all(store):
    """Boilerplate: hundreds of stored articles share one band with a new article, a true copy
    shares most of them. The copy is found, and the candidates read are at most MAX_CANDIDATES."""
    rng = random.Random(5)

    def sig(values) -> bytes:
        return bytes(b"".join(int(v).to_bytes(4, "little") for v in values))

    probe = [rng.randrange(2**32) for _ in range(128)]
    copy = probe[:90] + [rng.randrange(2**32) for _ in range(38)]  # Jaccard about 0.7
    crowd = [probe[:5] + [rng.randrange(2**32) for _ in range(123)] for _ in range(300)]  # band 0 only
    items = [article(f"http://127.0.0.1/crowd/{i}", story_text(100 + i), sig(v)) for i, v in enumerate(crowd)]
    copy_saved = save(store, *items, article("http://127.0.0.1/copy", story_text(7), sig(copy)))[-1]
    with store.connect() as conn:
        keys = {f"k{b}": k for b, k in enumerate(band_keys(sig(probe)))}
        rows = conn.execute(crawler.stories._CANDIDATES, keys).all()
        found = StoryClusterer.load(conn).find(conn, sig(probe))
    assert found == copy_saved.story_id
    assert len(rows) == crawler.stories.MAX_CANDIDATES
    assert copy_saved.article_id in {r.id for r in rows}  # the one sharing the most bands is kept
