"""Areas in rule files, read into ``Area``s with located errors: a circle (``around`` a place
id or a [lat, lon] point, with ``radius_km``), a polygon of [lat, lon] points, or a GeoJSON
file next to the rule file ((Multi)Polygon, Feature or FeatureCollection). A circle drawn around
a place id gets its centre once every file's places are known (``finish_areas``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from shapely import MultiPolygon, Polygon, union_all
from shapely.geometry import shape
from shapely.validation import explain_validity

from core.located import node_location, value_location
from rules.model import Area
from rules.yaml_reader import is_number, short

if TYPE_CHECKING:
    from core.located import Location
    from rules.model import Place
    from rules.yaml_reader import YamlMapping, YamlReader

SHAPES = ("around", "polygon", "geojson")
AREA_KEYS = ("around", "radius_km", "polygon", "geojson")


@dataclass
class PendingArea:
    """An area as read; a circle around a place id still needs that place's position."""

    area: Area
    around_ref: tuple[str, Location] | None = None  # the place id and where it is written


def read_area(reader: YamlReader, path: str, areas: YamlMapping, aid: object) -> PendingArea | None:
    """The area ``areas[aid]``, or None (its problems recorded)."""
    if reader.new_id("area", aid, path, areas, aid) is None:
        return None
    node = areas[aid]
    what = f"area '{aid}'"
    where = node_location(path, areas, aid)
    if not isinstance(node, dict):
        reader.err(
            value_location(path, areas, aid),
            f"{what}: expected a mapping with around+radius_km, polygon or geojson",
        )
        return None
    reader.check_keys(path, node, AREA_KEYS, what)
    shapes = [k for k in SHAPES if k in node]
    if len(shapes) != 1:
        reader.err(where, f"{what}: give exactly one of around (+ radius_km), polygon, geojson")
        return None
    if shapes[0] == "around":
        return _read_circle(reader, path, node, str(aid), what, where)
    if "radius_km" in node:
        reader.err(node_location(path, node, "radius_km"), f"{what}: radius_km goes with around only")
    geometry = _polygon(reader, path, node, what) if shapes[0] == "polygon" else _geojson(reader, path, node, what)
    if geometry is None:
        return None
    centre = geometry.centroid
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    area = Area(
        str(aid), centre.y, centre.x, polygon=geometry, bounds=(min_lat, min_lon, max_lat, max_lon), location=where
    )
    return PendingArea(area)


def _read_circle(
    reader: YamlReader, path: str, node: YamlMapping, aid: str, what: str, where: Location
) -> PendingArea | None:
    radius = node.get("radius_km")
    around = node["around"]
    if not is_number(radius) or float(radius) <= 0:
        at_radius = value_location(path, node, "radius_km") if "radius_km" in node else where
        reader.err(at_radius, f"{what}: radius_km: expected a positive number of kilometres, got {short(radius)}")
        # Still check the centre: every error at once, not one per run.
        if isinstance(around, str):
            reader.refer("place", str(around), value_location(path, node, "around"))
        else:
            reader.latlon(path, node, "around", f"{what}: around")
        return None
    if isinstance(around, str):
        return PendingArea(
            Area(aid, 0.0, 0.0, radius_km=float(radius), around=str(around), location=where),
            (str(around), value_location(path, node, "around")),
        )
    centre = reader.latlon(path, node, "around", f"{what}: around")
    if centre is None:
        return None
    return PendingArea(Area(aid, centre[0], centre[1], radius_km=float(radius), location=where))


def _polygon(reader: YamlReader, path: str, node: YamlMapping, what: str) -> Polygon | None:
    points = node["polygon"]
    where = value_location(path, node, "polygon")
    if not isinstance(points, list) or len(points) < 3:
        reader.err(where, f"{what}: polygon: expected at least 3 [latitude, longitude] points")
        return None
    coords = []
    for i in range(len(points)):
        at = reader.latlon(path, points, i, f"{what}: polygon[{i}]")
        if at is None:
            return None
        coords.append((at[1], at[0]))
    poly = Polygon(coords)
    if not poly.is_valid or poly.area == 0:
        reader.err(where, f"{what}: invalid polygon: {explain_validity(poly)}")
        return None
    return poly


def _geojson(reader: YamlReader, path: str, node: YamlMapping, what: str) -> Polygon | MultiPolygon | None:
    ref = reader.string(path, node, "geojson", f"{what}: geojson")
    if ref is None:
        return None
    where = value_location(path, node, "geojson")
    file = Path(path).parent / ref
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except FileNotFoundError:
        reader.err(where, f"{what}: geojson file not found: {file}")
        return None
    except (OSError, ValueError) as exc:
        reader.err(where, f"{what}: cannot read GeoJSON {file}: {exc}")
        return None
    try:
        if data.get("type") == "FeatureCollection":
            geometry = union_all([shape(f["geometry"]) for f in data["features"]])
        elif data.get("type") == "Feature":
            geometry = shape(data["geometry"])
        else:
            geometry = shape(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        reader.err(where, f"{what}: not a GeoJSON geometry: {exc}")
        return None
    if geometry.geom_type not in ("Polygon", "MultiPolygon") or not geometry.is_valid:
        reader.err(where, f"{what}: {file.name} must hold a valid (Multi)Polygon: {explain_validity(geometry)}")
        return None
    return geometry


def finish_areas(reader: YamlReader, pending: list[PendingArea], places: dict[str, Place]) -> dict[str, Area]:
    """Every area read, circles around a place id centred on that place (an unknown id is an error)."""
    areas: dict[str, Area] = {}
    for item in pending:
        area = item.area
        if item.around_ref is not None:
            ref, where = item.around_ref
            place = places.get(ref)
            if place is None:
                reader.unknown("place", ref, where, reader.defined("place"), "around")
                continue
            area = Area(area.id, place.lat, place.lon, radius_km=area.radius_km, around=ref, location=area.location)
        areas[area.id] = area
    return areas
