"""`lookout gazetteer import|build|lookup`: the place names ``area`` terms see beyond the rule
files. GeoNames data (CC BY 4.0, https://www.geonames.org)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lookout.commands import add_command, usage_handler
from lookout.loaders import gazetteer_for
from rules.gazetteer import import_dump

if TYPE_CHECKING:
    import argparse

    from lookout.commands import Subparsers
    from lookout.context import AppContext


def register(sub: Subparsers) -> None:
    p = add_command(sub, "gazetteer")
    gsub = p.add_subparsers(dest="gazetteer_command", metavar="ACTION")
    p.set_defaults(func=usage_handler(p))
    imp = gsub.add_parser("import", help="load a GeoNames country dump (e.g. SY.txt) for village coverage")
    imp.add_argument(
        "file", metavar="FILE", help="GeoNames dump: tab-separated, 19 columns (.txt or .txt.gz)"
    )
    imp.set_defaults(func=cmd_import)
    build = gsub.add_parser("build", help="build (or refresh) the gazetteer cache now")
    build.set_defaults(func=cmd_build)
    look = gsub.add_parser("lookup", help="the gazetteer's places for a name")
    look.add_argument("name")
    look.set_defaults(func=cmd_lookup)


def cmd_import(args: argparse.Namespace, ctx: AppContext) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"lookout gazetteer import: {path}: no such file", file=sys.stderr)
        return 1
    cache_dir = ctx.config.resolve(ctx.config.gazetteer.cache_dir)
    try:
        count = import_dump(path, cache_dir)
    except (ValueError, OSError, UnicodeDecodeError) as exc:
        print(f"lookout gazetteer import: {exc}", file=sys.stderr)
        return 1
    gazetteer = gazetteer_for(ctx.config)
    print(f"imported {count} populated places from {path}; gazetteer now holds {len(gazetteer)} places")
    return 0


def cmd_build(_args: argparse.Namespace, ctx: AppContext) -> int:
    gazetteer = gazetteer_for(ctx.config)
    countries = ", ".join(ctx.config.gazetteer.countries)
    print(f"gazetteer: {len(gazetteer)} places ({countries} + imported dumps)")
    return 0


def cmd_lookup(args: argparse.Namespace, ctx: AppContext) -> int:
    found = gazetteer_for(ctx.config).find(args.name)
    for p in found:
        print(f"geonames:{p.geonameid}\t{p.name}\t{p.country}\t{p.lat:.5f},{p.lon:.5f}\tpop {p.population}")
    if not found:
        print(f"no place named {args.name!r}", file=sys.stderr)
    return 0 if found else 1
