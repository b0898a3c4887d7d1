"""The sources file: which feeds, sitemaps and listing pages to crawl, validated with located
errors (``file:line:col: message``, all at once) like every other YAML file Lookout reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator
from ruamel.yaml.comments import CommentedMap

from lookout.durations import Duration
from lookout.located import ErrorCollector, LocatedErrors, load_yaml, node_location, pydantic_errors

_NAME = re.compile(r"^[a-z0-9-]+$")
SourceKind = Literal["feed", "sitemap", "listing"]


class Source(BaseModel):
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

    @field_validator("feed", "sitemap", "listing")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Source:
        given = [k for k in ("feed", "sitemap", "listing") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of feed, sitemap, listing"
                + (f" (found {', '.join(given)})" if given else "")
            )
        if self.listing and not self.follow:
            raise ValueError("a listing source needs 'follow': the CSS selector of its article links")
        if self.follow and not self.listing:
            raise ValueError("'follow' only applies to a listing source")
        if self.every.total_seconds() <= 0:
            raise ValueError("'every' must be a positive duration")
        return self

    @property
    def kind(self) -> SourceKind:
        return "feed" if self.feed else "sitemap" if self.sitemap else "listing"

    @property
    def url(self) -> str:
        return self.feed or self.sitemap or self.listing or ""


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
        try:
            source = Source.model_validate(dict(item))
        except ValidationError as exc:
            for e in pydantic_errors(origin, item, exc):
                errors.add(e.location, f"source {i + 1}: {e.message}")
            continue
        if source.name in seen:
            errors.add(
                node_location(origin, item, "name"),
                f"duplicate source name '{source.name}' (first used by source {seen[source.name] + 1})",
            )
            continue
        seen[source.name] = i
        out.append(source)
    errors.raise_if_any()
    return out


def load_sources(path: str | Path) -> list[Source]:
    data = load_yaml(path)
    if data is None:
        return []
    return parse_sources(data, str(path))


def sources_from_config(config: Any) -> list[Source]:
    """``config.sources``: a path (relative to the config file) or an inline list."""
    if isinstance(config.sources, str):
        path = config.resolve(config.sources)
        if not path.exists():
            raise LocatedErrors([_error(str(path), "sources file not found")])
        return load_sources(path)
    return parse_sources(config.sources, config.origin or "<config>")


def select_sources(all_sources: list[Source], names: list[str]) -> list[Source]:
    """The named sources (all when none); an unknown name is an error listing the known ones."""
    if not names:
        return all_sources
    by_name = {s.name: s for s in all_sources}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise KeyError(f"unknown source(s): {', '.join(unknown)}; known: {', '.join(by_name) or 'none'}")
    return [by_name[n] for n in names]


def _error(path: str, message: str):
    from lookout.located import LocatedError, Location

    return LocatedError(Location(path, 1, 1), message)
