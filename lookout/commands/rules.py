"""`lookout rules check|test|backtest`: tools for rule authors. Check validates rule files
(all errors at once, ``path:line:col: message``) and runs their examples; test runs the rules
on article files or a URL; backtest runs them over stored articles. None of them sends anything."""

from __future__ import annotations

import json
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
from sqlalchemy import select
from w3lib.encoding import html_to_unicode

from core.durations import parse_duration
from core.located import LocatedErrors
from core.store import articles, utcnow
from crawler.extract import extract_page
from lookout.commands import add_command, usage_handler
from lookout.loaders import gazetteer_for
from rules import load_ruleset, match
from rules.check import run_examples
from rules.geo import describe_position

if TYPE_CHECKING:
    import argparse
    from datetime import timedelta

    from lookout.commands import Subparsers
    from lookout.context import AppContext
    from rules.gazetteer import Gazetteer
    from rules.index import CompiledRuleset


def register(sub: Subparsers) -> None:
    p = add_command(sub, "rules")
    rsub = p.add_subparsers(dest="rules_command", metavar="ACTION")
    p.set_defaults(func=usage_handler(p))

    check = rsub.add_parser("check", help="validate rule files and run their examples")
    check.add_argument(
        "paths", nargs="*", metavar="PATH", help="rule files or folders (default: config rules)"
    )
    check.add_argument(
        "--gazetteer", action="store_true", help="load the gazetteer for area terms in examples"
    )
    check.set_defaults(func=cmd_check)

    test = rsub.add_parser("test", help="run the rules on article files (.txt, .html) or URLs")
    test.add_argument(
        "articles", nargs="+", metavar="ARTICLE", help="a .txt or .html file, or an http(s) URL"
    )
    test.add_argument("--rules", action="append", metavar="PATH", help="rule file or folder (repeatable)")
    test.add_argument("--json", action="store_true", help="one JSON object per article per line")
    test.add_argument("--no-gazetteer", action="store_true", help="area terms see watched places only")
    test.set_defaults(func=cmd_test)

    back = rsub.add_parser("backtest", help="run the current rules over stored articles (sends nothing)")
    back.add_argument("--since", default="7d", help="how far back, e.g. 24h, 7d (default 7d)")
    back.add_argument("--rules", action="append", metavar="PATH", help="rule file or folder (repeatable)")
    back.add_argument("--first", type=int, default=3, metavar="N", help="first matches shown per rule")
    back.add_argument("--no-gazetteer", action="store_true", help="area terms see watched places only")
    back.set_defaults(func=cmd_backtest)


def _gazetteer(ctx: AppContext, wanted: bool) -> Gazetteer | None:
    return gazetteer_for(ctx.config) if wanted else None


def _load(paths: list[Path] | None, ctx: AppContext, *, gazetteer: bool) -> CompiledRuleset:
    return load_ruleset(paths or ctx.config.rule_paths(), gazetteer=_gazetteer(ctx, gazetteer))


# -- check --------------------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace, ctx: AppContext) -> int:
    paths = [Path(p) for p in args.paths] or ctx.config.rule_paths()
    try:
        ruleset = _load(paths, ctx, gazetteer=args.gazetteer)
    except LocatedErrors as exc:
        for err in exc.errors:
            print(err)
        print(f"{len(exc.errors)} error(s)", file=sys.stderr)
        return 1
    count, failures = run_examples(ruleset)
    for err in sorted(failures, key=lambda e: e.location):
        print(err)
    if failures:
        print(f"{len(failures)} of {count} example(s) failed", file=sys.stderr)
        return 1
    print(f"ok: {ruleset.summary()}, {count} examples pass")
    return 0


# -- test ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedArticle:
    name: str
    title: str
    text: str
    language: str | None = None
    source: str | None = None


def read_article(ref: str) -> LoadedArticle:
    """A .txt file (first line the title), an .html file or a URL cleaned by trafilatura."""
    if ref.startswith(("http://", "https://")):
        response = httpx.get(
            ref, follow_redirects=True, timeout=30.0, headers={"User-Agent": "Lookout rules test"}
        )
        if response.is_error:
            raise OSError(f"HTTP {response.status_code} {response.reason_phrase}")
        html = decode_html(response.content, response.headers.get("content-type"))
        return clean_html(html, ref, url=str(response.url))
    path = Path(ref)
    if path.suffix.lower() in (".html", ".htm"):
        return clean_html(decode_html(path.read_bytes()), ref)
    raw = path.read_text(encoding="utf-8-sig", errors="replace")
    lines = raw.strip().split("\n", 1)
    return LoadedArticle(ref, lines[0].strip(), lines[1] if len(lines) > 1 else "", source="file")


def decode_html(body: bytes, content_type: str | None = None) -> str:
    """Bytes to text as the crawler decodes them: the HTTP charset, else the page's BOM or
    meta charset, else UTF-8 (a windows-1256 page declared only in its meta comes out right)."""
    return html_to_unicode(content_type, body)[1]


def clean_html(html: str, name: str, url: str | None = None) -> LoadedArticle:
    """Title and body text only, as the crawler keeps them (the same extraction and language
    detection): no navigation, related links, comments or footer."""
    found = extract_page(html, url or "")
    return LoadedArticle(name, found.title, found.text, found.language, "file" if url is None else url)


def cmd_test(args: argparse.Namespace, ctx: AppContext) -> int:
    ruleset = _load(
        [Path(p) for p in args.rules] if args.rules else None, ctx, gazetteer=not args.no_gazetteer
    )
    colour = sys.stdout.isatty() and not args.json
    status = 0
    for ref in args.articles:
        try:
            article = read_article(ref)
        except Exception as exc:  # one bad file or URL must not hide the others' results
            print(f"{ref}: cannot read: {exc}", file=sys.stderr)
            status = 1
            continue
        matches = match(article, ruleset)
        if args.json:
            print(
                json.dumps(
                    {
                        "article": ref,
                        "title": article.title,
                        "matches": [
                            {
                                "rule": m.rule_id,
                                "severity": m.severity,
                                "terms": [
                                    {
                                        "kind": h.kind,
                                        "ref": h.ref,
                                        "found": h.found,
                                        "field": h.field,
                                        "start": h.start,
                                        "end": h.end,
                                    }
                                    for h in m.hits
                                ],
                                "places": [
                                    {
                                        "id": p.id,
                                        "name": p.name,
                                        "lat": p.lat,
                                        "lon": p.lon,
                                        "watched": p.watched,
                                        "area": p.area,
                                        "distance_km": p.distance_km,
                                    }
                                    for p in m.places
                                ],
                                "groups": list(m.groups),
                                "snippet": m.snippet,
                                "marks": [list(x) for x in m.marks],
                            }
                            for m in matches
                        ],
                    },
                    ensure_ascii=False,
                )
            )
            continue
        print(f"{_bold(ref, colour)}: {article.title or '(no title)'}")
        if not matches:
            print("  no rule matches")
        for m in matches:
            print(f"  [{m.severity}] {_bold(m.rule_id, colour)} — {m.title}")
            terms = ", ".join(f"{h.kind} {h.ref} “{h.found}” ({h.field} {h.start}-{h.end})" for h in m.hits)
            print(f"    terms: {terms}")
            for p in m.places:
                where = describe_position(p, ruleset)
                extra = f" in area {p.area}, {p.distance_km} km from its centre" if p.area else ""
                print(
                    f"    place: {p.name} ({p.lat:.4f}, {p.lon:.4f}){extra}{' — ' + where if where else ''}"
                )
            print(f"    {highlight(m.snippet, m.marks, colour)}")
    return status


def highlight(snippet: str, marks: tuple[tuple[int, int], ...], colour: bool) -> str:
    out, pos = [], 0
    for start, end in sorted(marks):
        if start < pos:
            continue
        out.append(snippet[pos:start])
        term = snippet[start:end]
        out.append(f"\x1b[1;33m{term}\x1b[0m" if colour else f"[{term}]")
        pos = end
    out.append(snippet[pos:])
    return "".join(out)


def _bold(text: str, colour: bool) -> str:
    return f"\x1b[1m{text}\x1b[0m" if colour else text


# -- backtest -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredArticle:
    title: str
    text: str
    language: str | None
    source: str | None


def cmd_backtest(args: argparse.Namespace, ctx: AppContext) -> int:
    try:
        since: timedelta = parse_duration(args.since)
    except ValueError as exc:
        print(f"lookout rules backtest: --since: {exc}", file=sys.stderr)
        return 2
    ruleset = _load(
        [Path(p) for p in args.rules] if args.rules else None, ctx, gazetteer=not args.no_gazetteer
    )
    cutoff = utcnow() - since
    counts: Counter[str] = Counter()
    first: dict[str, list[str]] = {}
    total = 0
    query = (
        select(
            articles.c.url,
            articles.c.title,
            articles.c.text,
            articles.c.language,
            articles.c.source,
            articles.c.first_seen,
        )
        .where(articles.c.first_seen >= cutoff)
        .order_by(articles.c.first_seen, articles.c.id)
    )
    with ctx.store.connect() as conn:
        for row in conn.execution_options(stream_results=True, yield_per=200).execute(query):
            total += 1
            for m in match(StoredArticle(row.title or "", row.text or "", row.language, row.source), ruleset):
                counts[m.rule_id] += 1
                shown = first.setdefault(m.rule_id, [])
                if len(shown) < args.first:
                    shown.append(f"{row.first_seen:%Y-%m-%d %H:%M} {row.url} — {m.snippet[:140]}")
    print(f"backtest: {total} article(s) since {cutoff:%Y-%m-%d %H:%M} UTC, rules version {ruleset.version}")
    width = max((len(r) for r in ruleset.rules), default=4)
    for rule_id in ruleset.rules:
        print(f"{rule_id:<{width}}  {counts[rule_id]:>6}")
        for line in first.get(rule_id, ()):
            print(f"{'':<{width}}    {line}")
    print(f"{sum(counts.values())} match(es) in total; nothing sent")
    return 0
