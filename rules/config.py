"""The ``gazetteer:`` section of the configuration: which countries' towns ``area`` terms see."""

from __future__ import annotations

from pydantic import Field

from core.strict import StrictModel


class GazetteerConfig(StrictModel):
    countries: list[str] = Field(default_factory=lambda: ["SY", "TR", "IQ", "LB"])
    cache_dir: str = "var/gazetteer"
