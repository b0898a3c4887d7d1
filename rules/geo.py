"""Positions in words for alerts: "9 km SE of Azaz", relative to the nearest other watched place."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from rules.model import haversine_km

if TYPE_CHECKING:
    from rules.model import Place, Ruleset
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
    """ "9 km E of Azaz": the place's position from a landmark a reader knows.

    Landmarks are the places areas are drawn ``around`` (Azaz for the Azaz corridor): the one
    whose area the place satisfied, else the nearest landmark, else the nearest other watched
    place. None when the place is itself the landmark (or nothing lies within ``max_km``)."""
    landmarks = {a.around for a in ruleset.areas.values() if a.around in ruleset.places}
    if place.id in landmarks:
        return None
    area = ruleset.areas.get(place.area) if place.area else None
    if area is not None and area.around in ruleset.places:
        return _relative(place, ruleset.places[area.around], max_km)
    for pool in (landmarks, ruleset.places):
        best = None
        for other_id in pool:
            other = ruleset.places[other_id]
            if other.id == place.id:
                continue
            d = haversine_km(other.lat, other.lon, place.lat, place.lon)
            if d < 0.5:  # the same place (a gazetteer spelling of a watched town)
                return None
            if d <= max_km and (best is None or d < best[0]):
                best = (d, other)
        if best is not None:
            return _relative(place, best[1], max_km)
    return None


def _relative(place: PlaceRef, other: Place, max_km: float) -> str | None:
    d = haversine_km(other.lat, other.lon, place.lat, place.lon)
    if d < 0.5:
        return None
    if d > max_km:
        return None
    direction = compass(bearing_deg(other.lat, other.lon, place.lat, place.lon))
    return f"{d:.0f} km {direction} of {other.name}"
