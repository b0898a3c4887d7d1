"""Human durations ("90s", "10m", "3d", "1h30m") for config, sources and bot commands."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BeforeValidator, PlainSerializer

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([smhdw])")


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``1h30m``-style text; a bare number is seconds. Raises ValueError with a usage hint."""
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise ValueError("expected a duration such as 90s, 10m, 3d")
    if isinstance(text, int | float):
        return timedelta(seconds=text)
    cleaned = text.strip().lower().replace(" ", "")
    if cleaned.isdigit():
        return timedelta(seconds=int(cleaned))
    pos, seconds = 0, 0.0
    for m in _PART.finditer(cleaned):
        if m.start() != pos:
            break
        seconds += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(cleaned) or not cleaned:
        raise ValueError(f"'{text}' is not a duration (use e.g. 90s, 10m, 2h, 3d, 1h30m)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


Duration = Annotated[timedelta, BeforeValidator(parse_duration), PlainSerializer(format_duration)]
