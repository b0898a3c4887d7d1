"""Ingest: store, match and enqueue in one transaction; only a first sighting alerts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from tests_support import EXAMPLE_CHANNEL, example_rules_notifying

from alerts import subscriptions as subs
from core.store import articles, matches, outbox
from crawler.items import Article
from lookout.pipeline import PipelineIngestor
from rules import load_ruleset

NOW = datetime(2016, 6, 8, 12, 0, tzinfo=UTC)
TEXT = (
    "Islamic State fighters advanced on Azaz on Friday, residents said, as the group pressed "
    "toward the Turkish border crossing. Rebels said they had repelled the first assault on the "
    "town's eastern outskirts, and that families were fleeing north toward the camps."
)


@pytest.fixture(scope="module")
def ruleset(tmp_path_factory):
    """The example rules with their notify channel switched on: every hit of is-near-azaz also
    goes to that channel."""
    return load_ruleset([example_rules_notifying(tmp_path_factory.mktemp("rules"))])


def article(url: str, text: str = TEXT, outlet: str = "Aleppo Monitor", published=NOW) -> Article:
    return Article(url=url, source="test", title="Islamic State advances on Azaz", text=text,
                   outlet=outlet, published=published, fetched=NOW)


def count(store, table, *where) -> int:
    with store.connect() as conn:
        return conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one()


def make_ingestor(store, ruleset, max_age=timedelta(days=3)) -> PipelineIngestor:
    with store.begin() as conn:
        subs.add(conn, "42", "rule", "is-near-azaz", now=NOW)
    return PipelineIngestor(store, lambda: ruleset, max_age=max_age, now=lambda: NOW)


def test_new_article_is_stored_matched_and_enqueued(store, ruleset):
    ingestor = make_ingestor(store, ruleset)
    outcome = ingestor.ingest(article("https://a.example/1"))
    assert outcome.status == "new" and outcome.new_story and outcome.alertable
    assert "is-near-azaz" in {m.rule_id for m in outcome.matches}
    # The subscriber, and the channel the rule notifies on every hit.
    assert outcome.enqueued == 2
    assert count(store, matches) == len(outcome.matches)
    assert count(store, outbox, outbox.c.chat_id == "42", outbox.c.state == "pending") == 1
    assert count(store, outbox, outbox.c.chat_id == EXAMPLE_CHANNEL) == 1


def test_an_update_at_the_same_url_keeps_its_story_and_never_alerts_again(store, ruleset):
    ingestor = make_ingestor(store, ruleset)
    first = ingestor.ingest(article("https://a.example/1"))
    second = ingestor.ingest(article("https://a.example/1", TEXT + " Update: the assault resumed at dawn."))
    assert second.status == "updated"
    assert second.story_id == first.story_id and second.article_id == first.article_id
    assert second.enqueued == 0 and second.matches == ()
    assert count(store, outbox) == first.enqueued == 2


def test_a_syndicated_copy_joins_the_story_and_adds_its_outlet(store, ruleset):
    ingestor = make_ingestor(store, ruleset)
    first = ingestor.ingest(article("https://a.example/1"))
    copy = ingestor.ingest(article("https://wire.example/story", TEXT, outlet="Levant Wire"))
    assert copy.status == "new" and not copy.new_story
    assert copy.story_id == first.story_id
    assert copy.enqueued == 0 and copy.also == first.enqueued == 2  # each chat's alert gains it
    with store.connect() as conn:
        also = conn.execute(select(outbox.c.also).where(outbox.c.chat_id == "42")).scalar_one()
    assert also == ["Levant Wire"]


def test_an_article_older_than_max_age_is_stored_but_never_alerted(store, ruleset):
    ingestor = make_ingestor(store, ruleset)
    old = ingestor.ingest(article("https://a.example/old", published=NOW - timedelta(days=10)))
    assert old.status == "new" and not old.alertable
    assert old.matches  # still matched and kept as evidence for backtests
    assert count(store, outbox) == 0


def test_a_failure_while_enqueueing_leaves_nothing_half_written(store, ruleset, monkeypatch):
    import lookout.pipeline

    ingestor = make_ingestor(store, ruleset)

    def broken(*args, **kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(lookout.pipeline, "enqueue", broken)
    with pytest.raises(RuntimeError):
        ingestor.ingest(article("https://a.example/1"))
    assert count(store, articles) == 0 and count(store, matches) == 0 and count(store, outbox) == 0


def test_only_articles_that_queue_alerts_are_logged_at_info(store, ruleset, caplog):
    ingestor = make_ingestor(store, ruleset)
    quiet = "The football league resumed on Friday after the winter break, with three matches played."
    with caplog.at_level("DEBUG", logger="lookout.pipeline"):
        ingestor.ingest(article("https://a.example/alerting"))
        ingestor.ingest(article("https://a.example/quiet", quiet))
    levels = {r.getMessage().rsplit("url=", 1)[1]: r.levelname for r in caplog.records if "ingested" in r.msg}
    assert levels == {"https://a.example/alerting": "INFO", "https://a.example/quiet": "DEBUG"}
