"""Dead sources are named and feeds cannot aim the crawler inward, end to end: one ``lookout
crawl`` of sources that are empty, not feeds, refused, raising, public and local, then what
``sources list``, ``status`` and ``/metrics`` say of them; plain ``scrapy crawl`` recording its
run; and the address guard's decisions.

Every test site is on loopback, so a "public" source is simulated: its site listens on
127.0.0.2, and the crawl runs with one change, ``crawler.middlewares.is_private_address`` saying
127.0.0.2 is not private. Only that decision is patched; the refusal itself (resolution, the
source's exemption, the failure and its reason) runs as shipped, on links to 127.0.0.1 and
``localhost``."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from scrapy import Request
from sqlalchemy import select
from support.newssite import NewsSite
from support.routedsite import HTML, RSS, Site, rss

from core.store import Store, crawl_failures, crawl_runs, sources
from crawler import middlewares
from crawler.middlewares import SOURCE_URL_META, AddressGuard, PrivateAddress, is_private_address
from lookout.cli import main
from lookout.config import load_config
from lookout.metrics import Metrics
from lookout.status import gather_status, render_text

ROOT = Path(__file__).resolve().parent.parent
PUBLIC_HOST = "127.0.0.2"  # stands for a host on the internet

# `lookout crawl` with 127.0.0.2 counted as a public address; nothing else differs.
DRIVER = """
import ipaddress, sys
import crawler.middlewares as guard
shipped = guard.is_private_address
public = ipaddress.ip_address("127.0.0.2")
guard.is_private_address = lambda ip: ip != public and shipped(ip)
from lookout.cli import main
sys.exit(main(sys.argv[1:]))
"""


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_config(tmp_path: Path, entries: list[str], **crawl: str) -> Path:
    crawl_lines = "".join(f"  {k}: {v}\n" for k, v in crawl.items())
    path = tmp_path / "lookout.yaml"
    path.write_text(
        f"database: sqlite:///{tmp_path / 'lookout.db'}\nrules: []\n"
        f"gazetteer:\n  countries: []\n  cache_dir: {tmp_path / 'gazetteer'}\n"
        + (f"crawl:\n{crawl_lines}" if crawl_lines else "")
        + "sources:\n" + "".join(f"  - {{{e}, every: 10m}}\n" for e in entries),
        encoding="utf-8",
    )
    return path


@pytest.mark.e2e
def test_dead_sources_are_named_and_public_feeds_cannot_point_inward(tmp_path, capsys):
    refused_port = closed_port()
    with Site(PUBLIC_HOST) as public, Site() as local:
        inside = local.add_article("/inside.html", "Inside")
        named_inside = local.link("/admin.html").replace("127.0.0.1", "localhost")
        public.routes["/feed.xml"] = (200, RSS, rss([public.add_article("/a.html", "Azaz"), inside, named_inside]))
        local.routes["/feed.xml"] = (200, RSS, rss([local.add_article("/local.html", "Marea")]))
        local.routes["/index.html"] = (200, HTML, "<html><body><h2><a href='/local.html'>Marea</a></h2></body></html>")
        local.routes["/empty.xml"] = (200, RSS, rss([]))
        local.routes["/listing.pdf"] = (200, "application/pdf", b"%PDF-1.4\n" + bytes(range(256)) * 8)
        config = write_config(tmp_path, [
            f"name: public, feed: '{public.link('/feed.xml')}'",
            f"name: local, feed: '{local.link('/feed.xml')}'",
            f"name: nomatch, listing: '{local.link('/index.html')}', follow: 'h3.nothing a'",
            f"name: htmlfeed, feed: '{local.link('/index.html')}'",
            f"name: nofeed, feed: '{local.link('/empty.xml')}'",
            f"name: refused, feed: 'http://127.0.0.1:{refused_port}/feed.xml'",
            f"name: binary, listing: '{local.link('/listing.pdf')}', follow: 'a'",
        ])
        proc = subprocess.run(
            [sys.executable, "-c", DRIVER, "--config", str(config), "crawl"],
            capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
        )
        local_paths = set(local.requests)
        public_paths = set(public.requests)

    assert proc.returncode == 1, proc.stderr[-3000:]  # some sources failed
    progress = {line.split(":")[0]: line for line in proc.stdout.splitlines() if " - seen " in line}
    # Public's feed lists 3 links: its own article and 2 refused (to the local site), failed unrequested.
    assert progress["public"].startswith("public: partial - seen 3, skipped 0, fetched 1, new 1,")
    assert progress["local"].startswith("local: ok - seen 1, skipped 0, fetched 1, new 1,")
    assert progress["nomatch"].startswith("nomatch: empty: selector matched nothing - seen 0, skipped 0, fetched 0,")
    assert progress["htmlfeed"].startswith("htmlfeed: failed: not-a-feed (HTML page) - seen 0, skipped 0, fetched 0,")
    assert progress["nofeed"].startswith("nofeed: empty: the feed has no entries - seen 0, skipped 0, fetched 0,")
    assert progress["refused"].startswith("refused: failed: connection-refused - seen 0, skipped 0, fetched 0,")
    assert progress["binary"].startswith("binary: failed: error - seen 0, skipped 0, fetched 0,")
    table = proc.stdout.split("\nsource ", 1)[1].splitlines()
    assert any(row.startswith("nomatch   empty: selector matched nothing ") for row in table), table

    # Refused links were never requested, not even the robots.txt of their host.
    assert "/a.html" in public_paths and "/local.html" in local_paths
    assert "/inside.html" not in local_paths and "/admin.html" not in local_paths
    # One line per problem, no traceback: the refused connection, the PDF listing's exception.
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if str(refused_port) in line] == [
        next(line for line in proc.stderr.splitlines() if "refused: http://127.0.0.1" in line)]
    assert sum("listing.pdf" in line for line in proc.stderr.splitlines()) == 1
    records = [line.split() for line in proc.stderr.splitlines() if line[:2] == "20"]
    assert all(r[2] in ("INFO", "WARNING") and r[3].startswith(("lookout", "crawler")) for r in records), proc.stderr

    store = Store(f"sqlite:///{tmp_path / 'lookout.db'}")
    try:
        with store.connect() as conn:
            refusals = {r.url: r.detail for r in conn.execute(
                select(crawl_failures).where(crawl_failures.c.reason == "private-address"))}
            runs = {r.source: r for r in conn.execute(select(crawl_runs))}
            rows = {r.name: r for r in conn.execute(select(sources))}
        assert set(refusals) == {inside, named_inside}
        assert refusals[named_inside].startswith("PrivateAddress: localhost resolves to 127.0.0.1")
        assert {name: run.result for name, run in runs.items()} == {
            "public": "partial", "local": "ok", "nomatch": "empty", "htmlfeed": "failed", "nofeed": "empty",
            "refused": "failed", "binary": "failed"}
        assert rows["nomatch"].last_error == "selector matched nothing"
        assert rows["nomatch"].last_success_at is None  # an empty index is no success
        assert rows["htmlfeed"].last_error.startswith("not-a-feed (HTML page): content-type text/html")
        assert rows["refused"].last_error.startswith("connection-refused: ")

        # `sources list`, `status` and /metrics show the result.
        capsys.readouterr()
        assert main(["--config", str(config), "sources", "list"]) == 0
        listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[2:]}
        assert " empty " in listed["nomatch"] and listed["nomatch"].rstrip().endswith("selector matched nothing")
        assert " failed " in listed["htmlfeed"] and "not-a-feed (HTML page)" in listed["htmlfeed"]

        cfg = load_config(config)
        soon = gather_status(cfg, store, now=datetime.now(UTC) + timedelta(hours=1), load_rules=False)
        later = gather_status(cfg, store, now=datetime.now(UTC) + timedelta(days=3, hours=1), load_rules=False)
        by_name = {s.name: s for s in soon.sources}
        assert (by_name["nomatch"].last_result, by_name["nomatch"].stale) == ("empty", False)
        assert by_name["htmlfeed"].stale  # failed: stale after two intervals and a timeout, as before
        stale = {s.name: s for s in later.sources}["nomatch"]
        assert stale.stale and stale.empty_since == runs["nomatch"].started_at
        assert "STALE (empty for 3d" in render_text(later)

        metrics = Metrics()
        metrics.refresh(store, list(runs))
        exposition = metrics.exposition().decode()
        assert 'lookout_source_result{result="empty",source="nomatch"} 1.0' in exposition
        assert 'lookout_source_result{result="ok",source="nomatch"} 0.0' in exposition
        assert 'lookout_source_result{result="failed",source="refused"} 1.0' in exposition
    finally:
        store.dispose()


@pytest.mark.e2e
def test_scrapy_crawl_records_its_run_and_prints_scrapy_stats(tmp_path):
    with NewsSite.from_seeds() as site:
        config = write_config(tmp_path, [f"name: atom, feed: '{site.link('/feed/atom.xml')}'"])
        proc = subprocess.run(
            [sys.executable, "-m", "scrapy", "crawl", "feed", "-a", "source=atom"],
            cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
            env={**os.environ, "LOOKOUT_CONFIG": str(config)},
        )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Dumping Scrapy stats" in proc.stderr
    assert "atom: ok - seen 3, skipped 0, fetched 3, new 3," in proc.stderr  # the line `lookout crawl` prints, logged
    store = Store(f"sqlite:///{tmp_path / 'lookout.db'}")
    try:
        with store.connect() as conn:
            (run,) = conn.execute(select(crawl_runs)).all()
            (row,) = conn.execute(select(sources)).all()
    finally:
        store.dispose()
    assert (run.source, run.result, run.fetched, run.new, run.failed) == ("atom", "ok", 3, 3, 0)
    assert run.finished_at is not None and run.finished_at >= run.started_at
    assert (row.name, row.kind, row.last_result) == ("atom", "feed", "ok")
    assert row.last_crawl_at is not None and row.last_success_at is not None


def test_what_counts_as_a_private_address():
    private = ["127.0.0.1", "10.1.2.3", "172.16.0.9", "192.168.1.1", "169.254.169.254", "0.0.0.0", "100.64.0.1",
               "::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1"]
    public = ["93.184.215.14", "8.8.8.8", "2606:4700:4700::1111"]
    assert [a for a in private if not is_private_address(ipaddress.ip_address(a))] == []
    assert [a for a in public if is_private_address(ipaddress.ip_address(a))] == []


def _verdict(guard: AddressGuard, url: str, source: str | None) -> str:
    meta = {SOURCE_URL_META: source} if source else {}
    try:
        asyncio.run(guard.process_request(Request(url, meta=meta)))
    except PrivateAddress as exc:
        return f"refused: {exc}"
    return "allowed"


def test_the_guard_refuses_inward_links_of_public_sources_only(monkeypatch):
    shipped = is_private_address
    monkeypatch.setattr(middlewares, "is_private_address", lambda ip: ip != ipaddress.ip_address(PUBLIC_HOST)
                        and shipped(ip))
    public_feed, local_feed = f"http://{PUBLIC_HOST}:8080/feed.xml", "http://127.0.0.1:8080/feed.xml"
    guard = AddressGuard(allow_private=False)
    assert _verdict(guard, "http://127.0.0.1:8080/admin", public_feed).startswith(
        f"refused: 127.0.0.1, a private address, linked by the public source {public_feed}")
    assert _verdict(guard, "http://localhost/admin", public_feed).startswith("refused: localhost resolves to 127.0.0.1")
    assert _verdict(guard, "http://[::1]/", public_feed).startswith("refused: ::1")
    assert _verdict(guard, "http://169.254.169.254/latest/meta-data/", public_feed).startswith("refused:")
    assert _verdict(guard, f"http://{PUBLIC_HOST}:8080/news/a.html", public_feed) == "allowed"
    assert _verdict(guard, "http://127.0.0.1:8080/news/a.html", local_feed) == "allowed"  # a local source's own
    assert _verdict(guard, public_feed, public_feed) == "allowed"  # the source's own URL: the operator's choice
    assert _verdict(guard, "http://127.0.0.1:8080/feed.xml", None) == "allowed"  # not a spider's request
    # What a public source links other than articles (a sitemap index's sitemaps, a redirect) too.
    assert _verdict(guard, "http://10.0.0.7/sitemap-2.xml", public_feed).startswith("refused: 10.0.0.7")
    assert _verdict(AddressGuard(allow_private=True), "http://127.0.0.1/admin", public_feed) == "allowed"
