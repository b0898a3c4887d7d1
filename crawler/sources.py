"""The sources file: which feeds, sitemaps and listing pages to crawl, validated with located
errors (``file:line:col: message``, all at once) like every other YAML file Lookout reads; and
the source kinds (``SourceKind``), one spider each."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from ruamel.yaml.comments import CommentedMap

from core.durations import Duration, parse_duration
from core.located import ErrorCollector, load_yaml, node_location, pydantic_errors

if TYPE_CHECKING:
    from pathlib import Path

_NAME = re.compile(r"^[a-z0-9-]+$")
# What a source's index is, named by the key that gives its URL; one spider each (crawler.spiders).
SourceKind = Literal["feed", "sitemap", "listing"]
SOURCE_KINDS: tuple[SourceKind, ...] = get_args(SourceKind)


class Source(BaseModel):
    """One entry of the sources file: a name, exactly one index URL (its key is the kind) and
    how often to crawl it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    feed: str | None = None  # RSS 0.9x/1.0/2.0 or Atom
    sitemap: str | None = None  # news sitemap or sitemap index
    listing: str | None = None  # an HTML page linking articles
    follow: str | None = None  # CSS selector for article links (listing only)
    every: Duration
    lang: str | None = None  # a hint when pages do not declare their language

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use lower-case letters, digits and '-' only")
        return value

    @field_validator(*SOURCE_KINDS)
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        problems = structure_problems(self.model_dump())
        if problems:
            raise ValueError(problems[0][1])
        return self

    @property
    def kind(self) -> SourceKind:
        return "feed" if self.feed else "sitemap" if self.sitemap else "listing"

    @property
    def url(self) -> str:
        return self.feed or self.sitemap or self.listing or ""


def structure_problems(item: dict[str, Any]) -> list[tuple[str | None, str]]:
    """Rules across fields, as (key to point at, message). Checked on the raw mapping too, so they
    are reported even when a field of the same source is also wrong (all errors at once)."""
    problems: list[tuple[str | None, str]] = []
    given = [k for k in SOURCE_KINDS if item.get(k)]
    if len(given) != 1:
        problems.append((
            given[1] if len(given) > 1 else None,
            "give exactly one of feed, sitemap, listing" + (f" (found {', '.join(given)})" if given else ""),
        ))
    if item.get("listing") and not item.get("follow"):
        problems.append(("listing", "a listing source needs 'follow': the CSS selector of its article links"))
    if item.get("follow") and not item.get("listing"):
        problems.append(("follow", "'follow' only applies to a listing source"))
    every = item.get("every")
    try:  # raw YAML holds text ("0m"); a bad spelling is reported by the field's own check
        every = parse_duration(every) if every is not None else None
    except (ValueError, TypeError, AttributeError):
        every = None
    if isinstance(every, timedelta) and every.total_seconds() <= 0:
        problems.append(("every", "'every' must be a positive duration"))
    return problems


def parse_sources(data: Any, origin: str) -> list[Source]:
    """Validate a list of source mappings (from a file, or ``sources:`` inline in the config)."""
    errors = ErrorCollector()
    if isinstance(data, CommentedMap) and "sources" in data:
        extra = [k for k in data if k != "sources"]
        for k in extra:
            errors.add(node_location(origin, data, k), f"unknown key '{k}'")
        data = data["sources"]
    if not isinstance(data, list):
        errors.add(node_location(origin, data), "expected a list of sources (sources: [...])")
        errors.raise_if_any()
    out: list[Source] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(data):
        if not isinstance(item, dict):
            errors.add(
                node_location(origin, data, i),
                "each source must be a mapping (name, feed|sitemap|listing, every)",
            )
            continue
        name = item.get("name")
        if isinstance(name, str) and name in seen:
            errors.add(
                node_location(origin, item, "name"),
                f"duplicate source name '{name}' (first used by source {seen[name] + 1})",
            )
        elif isinstance(name, str):
            seen[name] = i
        problems = structure_problems(item)
        for key, message in problems:
            errors.add(node_location(origin, item, key), f"source {i + 1}: {message}")
        try:
            source = Source.model_validate(dict(item))
        except ValidationError as exc:
            located = pydantic_errors(origin, item, exc)
            for raw, e in zip(exc.errors(), located, strict=True):
                if not raw.get("loc") and problems:
                    continue  # the cross-field problem, already reported at its key above
                errors.add(e.location, f"source {i + 1}: {e.message}")
            continue
        if not problems:
            out.append(source)
    errors.raise_if_any()
    return out


def load_sources(path: str | Path) -> list[Source]:
    data = load_yaml(path)
    if data is None:
        return []
    return parse_sources(data, str(path))


def select_sources(all_sources: list[Source], names: list[str]) -> list[Source]:
    """The named sources (all when none); an unknown name is an error listing the known ones."""
    if not names:
        return all_sources
    by_name = {s.name: s for s in all_sources}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"unknown source(s): {', '.join(unknown)}; known: {', '.join(by_name) or 'none'}")
    return [by_name[n] for n in names]
