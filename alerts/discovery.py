"""What the store says a subscription would have brought: the last few stored stories that match
a rule, or that mention a place or group. ``/watch`` answers with them, so a new subscriber sees
what to expect before the next story arrives.

Reads only, through SQLAlchemy Core over ``core.store``'s ``articles`` and ``matches``, with
typed results (``RecentStory``). "Would have matched" follows ``alerts.subscriptions``' routing:
a rule subscription gets the rule's matches; a place or group subscription every article that
mentions it, which the store keeps no row for (mentions are routed, not stored), so it is read
back from the matches whose evidence names the place or group, else from the article text
holding one of its names. Each search looks at a bounded window of recent rows: this is a
preview, not an archive search.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Text, cast, or_, select

from alerts.keys import SubscriptionKind
from core.store import articles, matches
from rules.fold import fold

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence
    from datetime import datetime

    from sqlalchemy.engine import Connection, Row
    from sqlalchemy.sql import Select

RECENT = 3  # stories /watch shows
MATCH_WINDOW = 300  # newest match rows looked at per query
TEXT_WINDOW = 2000  # newest articles whose text is searched for a place's or group's names
TEXT_CANDIDATES = 60  # articles holding a name (as SQL sees it) checked word by word
SHORT_NAME = 3  # names this short ("IS") are matched as written: folded, "is" is in every text


@dataclass(frozen=True)
class RecentStory:
    """One stored story a subscription would have brought, as its newest matching article."""

    article_id: int
    story_id: str
    title: str
    outlet: str | None
    url: str
    published: datetime | None
    first_seen: datetime  # when Lookout stored it: the order stories are listed in

    @property
    def date(self) -> datetime:
        """The date to show: the article's own, else when it was stored."""
        return self.published or self.first_seen

    @classmethod
    def from_row(cls, row: Row) -> RecentStory:
        return cls(
            article_id=row.id, story_id=row.story_id, title=row.title or "", outlet=row.outlet,
            url=row.url, published=row.published, first_seen=row.first_seen,
        )


_STORY_COLUMNS = (
    articles.c.id, articles.c.story_id, articles.c.title, articles.c.outlet, articles.c.url,
    articles.c.published, articles.c.first_seen,
)
_NEWEST_FIRST = (articles.c.first_seen.desc(), articles.c.id.desc())


def recent_stories(
    conn: Connection, kind: SubscriptionKind, target: str, names: Sequence[str] = (), limit: int = RECENT,
) -> list[RecentStory]:
    """The last ``limit`` stored stories (newest first, one article each) a subscription of
    ``kind`` to ``target`` would have brought; ``names`` are a place's or group's names."""
    if kind is SubscriptionKind.RULE:
        return recent_for_rule(conn, target, limit)
    if kind in (SubscriptionKind.PLACE, SubscriptionKind.GROUP):
        return recent_mentioning(conn, kind, target, names, limit)
    raise ValueError(f"no recent stories for a {kind} subscription")


def recent_for_rule(conn: Connection, rule_id: str, limit: int = RECENT) -> list[RecentStory]:
    rows = conn.execute(
        select(*_STORY_COLUMNS)
        .select_from(matches.join(articles, articles.c.id == matches.c.article_id))
        .where(matches.c.rule_id == rule_id)
        .order_by(*_NEWEST_FIRST)
        .limit(MATCH_WINDOW)
    )
    return _newest_stories((RecentStory.from_row(r) for r in rows), limit)


def recent_mentioning(
    conn: Connection, kind: SubscriptionKind, target: str, names: Sequence[str], limit: int = RECENT,
) -> list[RecentStory]:
    """Stories whose rule matches name the place or group in their evidence, topped up with
    articles whose title or text holds one of ``names``."""
    # Both, always: a newer article may hold the name with no rule match to say so.
    found = _by_evidence(conn, kind, target) + _by_text(conn, names)
    found.sort(key=lambda s: (s.first_seen, s.article_id), reverse=True)
    return _newest_stories(found, limit)


def _by_evidence(conn: Connection, kind: SubscriptionKind, target: str) -> list[RecentStory]:
    # Ids are letters, digits, "-", "_" and "." (rules.yaml_reader), so in the evidence JSON an
    # id stands exactly as '"<id>"': a cheap LIKE first, the evidence itself decides.
    rows = conn.execute(
        select(*_STORY_COLUMNS, matches.c.evidence)
        .select_from(matches.join(articles, articles.c.id == matches.c.article_id))
        .where(cast(matches.c.evidence, Text).contains(f'"{target}"', autoescape=True))
        .order_by(*_NEWEST_FIRST)
        .limit(MATCH_WINDOW)
    )
    return [RecentStory.from_row(r) for r in rows if _names_in_evidence(r.evidence, kind, target)]


def _names_in_evidence(evidence: Any, kind: SubscriptionKind, target: str) -> bool:
    """Whether a stored ``rules.types.Match`` (as JSON data) found the place or group."""
    if not isinstance(evidence, dict):
        return False
    hits = evidence.get("hits") or ()
    if any(isinstance(h, dict) and h.get("kind") == kind and h.get("ref") == target for h in hits):
        return True
    if kind is SubscriptionKind.PLACE:
        return any(isinstance(p, dict) and p.get("id") == target for p in evidence.get("places") or ())
    return target in (evidence.get("groups") or ())


def _by_text(conn: Connection, names: Sequence[str]) -> list[RecentStory]:
    """Recent articles whose title or text holds one of ``names`` as a word: LIKE finds the
    candidates, then each is checked as the engine would see it (folded, on word boundaries)."""
    names = [n for n in dict.fromkeys(n.strip() for n in names) if n]
    if not names:
        return []
    oldest = conn.execute(
        select(articles.c.id).order_by(articles.c.id.desc()).offset(TEXT_WINDOW - 1).limit(1)
    ).scalar()
    holds_a_name = or_(*(
        column.icontains(name, autoescape=True) for name in names for column in (articles.c.title, articles.c.text)
    ))
    query: Select[Any] = select(*_STORY_COLUMNS, articles.c.text).where(holds_a_name)
    if oldest is not None:
        query = query.where(articles.c.id >= oldest)
    rows = conn.execute(query.order_by(*_NEWEST_FIRST).limit(TEXT_CANDIDATES))
    patterns = [_name_pattern(n) for n in names]
    out = []
    for row in rows:
        original = f"{row.title or ''}\n{row.text or ''}"
        folded = fold(original)
        if any(p.search(original if short else folded) for p, short in patterns):
            out.append(RecentStory.from_row(row))
    return out


def _name_pattern(name: str) -> tuple[re.Pattern[str], bool]:
    """A name as a whole word, and whether it is matched as written (a short one) or folded."""
    short = len(name) <= SHORT_NAME
    return re.compile(rf"(?<!\w){re.escape(name if short else fold(name))}(?!\w)"), short


def _newest_stories(found: Iterable[RecentStory], limit: int) -> list[RecentStory]:
    """The first article of each story in ``found`` (newest first), up to ``limit`` stories."""
    seen: set[str] = set()
    out: list[RecentStory] = []
    for story in found:
        if story.story_id in seen:
            continue
        seen.add(story.story_id)
        out.append(story)
        if len(out) == limit:
            break
    return out
