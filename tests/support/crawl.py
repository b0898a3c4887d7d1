"""Run one crawl in a fresh process (Twisted's reactor cannot restart), for tests and benches.

``python -m support.crawl CONFIG [SOURCE...]`` crawls with a store-only ingestor (no rules
needed) and prints the report as JSON on its last output line; ``crawl_in_subprocess`` runs that
same ``main`` and returns the report.

Each crawl still gets a process of its own, with a reactor never run before: it is forked from
a crawl server (``python -m support.crawl --serve``, one per test process, started on first use)
that has imported Scrapy, trafilatura, numpy and the crawler once but never crawled. So a crawl
does not pay the second of imports a fresh interpreter does, and nothing of one crawl is left
in the next.
"""

from __future__ import annotations

import atexit
import contextlib
import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import NoReturn

_TESTS_DIR = str(Path(__file__).resolve().parent.parent)

# What a crawl imports, loaded in the server before it forks any crawl. None of these may install
# a reactor (each crawl installs its own) or start a thread (fork would not copy it): the server
# checks both.
_PRELOAD = (
    "core.store",
    "crawler.runner",
    "crawler.runtime",
    "crawler.sources",
    "crawler.spiders",
    "crawler.pipelines",
    "crawler.downloader",
    "crawler.middlewares",
    "lookout.config",
    "lookout.loaders",
    "trafilatura",
    "trafilatura.settings",
    "scrapy.core.engine",
    "scrapy.core.scraper",
    "scrapy.core.downloader.handlers.http11",
    "scrapy.downloadermiddlewares.robotstxt",
    "scrapy.extensions.throttle",
)


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
    """``python -m support.crawl CONFIG NAME...`` in a fresh (forked) process: its report."""
    argv = [str(config_path), *names]
    rc, stdout, stderr = _server().run(argv, timeout=timeout)
    if rc != 0 or not stdout.strip():
        raise RuntimeError(f"crawl failed ({rc}):\n{stdout[-3000:]}\n{stderr[-5000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def shared_gazetteer_cache(folder: Path) -> Path:
    """``folder``, holding the cache of the default gazetteer (``gazetteer:`` left at its
    countries), built there once. Configs of ``lookout crawl`` and ``scrapy crawl`` children name
    it as ``gazetteer.cache_dir``, so each child loads the gazetteer (0.05 s) rather than
    building it in a fresh folder (1.8 s). Several test processes may ask at once: one builds,
    under a lock, the others then load."""
    from lookout.config import GazetteerConfig
    from rules.gazetteer import load_gazetteer
    from support.perrun import locked

    with locked(folder.parent / f"{folder.name}.lock"):
        load_gazetteer(GazetteerConfig().countries, folder)
    return folder


def _python_path() -> str:
    """This folder first, so ``-m support.crawl`` resolves in the child as it does here."""
    return os.pathsep.join(filter(None, [_TESTS_DIR, os.environ.get("PYTHONPATH")]))


# -- the client: one crawl server per test process --------------------------------------------
class _CrawlServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lookout-crawls-"))
        self.log = self.dir / "server.err"
        self.runs = 0
        with self.log.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "support.crawl", "--serve"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=err,
                text=True,
                env=self._env(),
            )

    @staticmethod
    def _env() -> dict[str, str]:
        return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": _python_path()}

    def alive(self) -> bool:
        return self.proc.poll() is None

    def run(self, argv: list[str], *, timeout: float) -> tuple[int, str, str]:
        """Run ``main(argv)`` in a process forked from the server: (exit status, stdout, stderr)."""
        self.runs += 1
        out, err = self.dir / f"{self.runs}.out", self.dir / f"{self.runs}.err"
        job = {
            "argv": argv,
            "env": self._env(),
            "cwd": str(Path.cwd()),
            "stdout": str(out),
            "stderr": str(err),
            "timeout": timeout,
        }
        assert self.proc.stdin is not None and self.proc.stdout is not None
        try:
            self.proc.stdin.write(json.dumps(job) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        except OSError:  # the server is gone: say why below
            line = ""
        if not line:
            log = self.log.read_text(errors="replace")[-5000:] if self.log.exists() else ""
            self.close()
            raise RuntimeError(f"the crawl server died:\n{log}")
        reply = json.loads(line)
        stdout, stderr = (p.read_text(encoding="utf-8", errors="replace") if p.exists() else "" for p in (out, err))
        for p in (out, err):
            p.unlink(missing_ok=True)
        if reply["timed_out"]:
            raise subprocess.TimeoutExpired([sys.executable, "-m", "support.crawl", *argv], timeout, stdout, stderr)
        return reply["rc"], stdout, stderr

    def close(self) -> None:
        with contextlib.suppress(OSError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        shutil.rmtree(self.dir, ignore_errors=True)


_lock = threading.Lock()
_servers: dict[int, _CrawlServer] = {}  # by the pid of the test process that started it


def _server() -> _CrawlServer:
    with _lock:
        server = _servers.get(os.getpid())
        if server is None or not server.alive():
            if server is not None:
                server.close()
            server = _servers[os.getpid()] = _CrawlServer()
            atexit.register(server.close)
        return server


# -- the server ---------------------------------------------------------------------------------
def serve() -> int:
    """Read one job (JSON) a line; fork a process that runs ``main`` for it, wait for it (killing
    it at its timeout) and answer ``{"rc": ..., "timed_out": ...}``. Returns at end of input."""
    for name in _PRELOAD:
        with contextlib.suppress(ImportError):  # gone or broken: the crawl imports it, and says why
            importlib.import_module(name)
    if "twisted.internet.reactor" in sys.modules or threading.active_count() != 1:
        print("support.crawl: the preloads installed a reactor or started a thread", file=sys.stderr)
        return 1
    for line in sys.stdin:
        job = json.loads(line)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _forked(job)  # never returns
        rc, timed_out = _wait(pid, float(job["timeout"]))
        print(json.dumps({"rc": rc, "timed_out": timed_out}), flush=True)
    return 0


def _forked(job: dict) -> NoReturn:
    """In the crawl's process: its own process group (a timeout kills its extraction workers
    too), its own stdin, stdout and stderr, the caller's environment and folder; then ``main``,
    and an exit as the interpreter's (non-daemon threads joined, atexit handlers run, streams
    flushed) without tearing down every module, which would add half a second to each crawl."""
    os.setpgid(0, 0)
    fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(fd, 0)
    os.close(fd)
    for target, path in ((1, job["stdout"]), (2, job["stderr"])):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(fd, target)
        os.close(fd)
    os.environ.clear()
    os.environ.update(job["env"])
    os.chdir(job["cwd"])
    try:
        status = main(job["argv"])
    except SystemExit as exc:
        status = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    except BaseException:
        traceback.print_exc()
        status = 1
    try:
        threading._shutdown()  # type: ignore[attr-defined] - what the interpreter does at exit
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(status)


def _wait(pid: int, timeout: float) -> tuple[int, bool]:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status), False
        if time.monotonic() > deadline:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            _, status = os.waitpid(pid, 0)
            return os.waitstatus_to_exitcode(status), True
        time.sleep(0.01)


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
    if sys.argv[1:] == ["--serve"]:
        status = serve()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)  # nothing to tear down: the test process need not wait on it
    sys.exit(main(sys.argv[1:]))
