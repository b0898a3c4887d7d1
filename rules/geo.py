"""Positions in words for alerts: "9 km SE of Azaz", relative to the nearest other watched place."""

from __future__ import annotations

import math

from rules.model import Ruleset, haversine_km
from rules.types import PlaceRef

_COMPASS = ("N", "NE", "E", "SE", "S", "SW", "W", "NW")


def bearing_deg(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Initial bearing from point 1 to point 2, degrees clockwise from north."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dl = math.radians(lon2 - lon1)
    x = math.sin(dl) * math.cos(p2)
    y = math.cos(p1) * math.sin(p2) - math.sin(p1) * math.cos(p2) * math.cos(dl)
    return (math.degrees(math.atan2(x, y)) + 360) % 360


def compass(bearing: float) -> str:
    return _COMPASS[int((bearing + 22.5) // 45) % 8]


def describe_position(place: PlaceRef, ruleset: Ruleset, *, max_km: float = 150.0) -> str | None:
    """ "9 km SE of Azaz" from the nearest other watched place; None for a watched place's own
    position (or nothing within ``max_km``)."""
    best = None
    for other in ruleset.places.values():
        if other.id == place.id:
            continue
        d = haversine_km(other.lat, other.lon, place.lat, place.lon)
        if d < 0.5:  # the same place (a gazetteer spelling of a watched town)
            return None
        if best is None or d < best[0]:
            best = (d, other)
    if best is None or best[0] > max_km:
        return None
    d, other = best
    direction = compass(bearing_deg(other.lat, other.lon, place.lat, place.lon))
    return f"{d:.0f} km {direction} of {other.name}"
