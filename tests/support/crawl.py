"""Run one crawl in a fresh process (Twisted's reactor cannot restart), for tests and benches.

``python -m support.crawl CONFIG [SOURCE...]`` crawls with a store-only ingestor (no rules
needed) and prints the report as JSON on its last output line; ``crawl_in_subprocess`` wraps it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

_TESTS_DIR = str(Path(__file__).resolve().parent.parent)


def report_json(report) -> dict:
    return {
        "seconds": report.seconds,
        "sources": {
            s.source: {
                "result": s.result,
                "fetched": s.fetched,
                "new": s.new,
                "updated": s.updated,
                "unchanged": s.unchanged,
                "duplicates": s.duplicates,
                "skipped": s.skipped,
                "not_modified": s.not_modified,
                "failed": dict(s.failed),
                "index_error": s.index_error,
            }
            for s in report.sources
        },
    }


def crawl_in_subprocess(config_path: str | Path, *names: str, timeout: float = 120) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "support.crawl", str(config_path), *names],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _python_path()},
    )
    if proc.returncode != 0 or not proc.stdout.strip():
        raise RuntimeError(f"crawl failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _python_path() -> str:
    """This folder first, so ``-m support.crawl`` resolves in the child as it does here."""
    return os.pathsep.join(filter(None, [_TESTS_DIR, os.environ.get("PYTHONPATH")]))


def main(argv: list[str]) -> int:
    from core.store import Store
    from crawler.runner import run_crawl
    from crawler.runtime import StoreOnlyIngestor
    from crawler.sources import select_sources
    from lookout.config import load_config
    from lookout.loaders import sources_from_config

    config = load_config(argv[0])
    store = Store(config.database_url())
    chosen = select_sources(sources_from_config(config), argv[1:])
    report = run_crawl(
        chosen, crawl=config.crawl, store=store, ingestor=StoreOnlyIngestor(store, config.crawl), version="test"
    )
    store.dispose()
    print(json.dumps(report_json(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
