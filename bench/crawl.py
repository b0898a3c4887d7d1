"""Crawl benchmark: ``lookout crawl`` end to end against a local site of generated article pages
(50-120 KB each) behind a news sitemap, compared with bare trafilatura in a process pool of the
same size; then an immediate re-crawl. Prints figures; asserts nothing.

The crawl is the real command in a fresh process (start-up, fetch, extract with metadata, match
the example rules, store), timed from outside. The site serves pages rendered once beforehand, so
the server costs little CPU; the bare side extracts the very same pages in a warmed pool.
Bench config: AutoThrottle off and 8 requests per domain (a local site; the defaults stay polite),
the gazetteer cache built beforehand (once per install in real use). The crawl's CPU seconds are
printed by part (reactor thread, other threads: writer and pool I/O, each worker, the site's
server) next to the core-seconds the wall time offered, so readers see where the time goes.

It also runs Scrapy alone (bench/scrapy_floor.py: the same settings and pages, responses thrown
away) and prints the ratio no crawl could beat on this machine: the bare pool's core-seconds
plus Scrapy's and the site's, spread perfectly over the cores, with start-up, matching and
storing free.

    .venv/bin/python bench/crawl.py [--pages 2000]
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]  # tests/ for support.newssite, the bench site


def _warm(_: int) -> bool:
    """Start a pool worker and import trafilatura in it, so the timed part pays for neither."""
    importlib.import_module("trafilatura")
    return True


def _bare(args: tuple[str, str]) -> int:
    import trafilatura

    doc = trafilatura.bare_extraction(args[0], url=args[1], with_metadata=True, include_comments=False)
    return len(doc.text) if doc is not None and doc.text else 0


_TICK = os.sysconf("SC_CLK_TCK")


def _cpu_of(stat_path: Path) -> float | None:
    """utime + stime in seconds from a /proc stat file (None once the task is gone)."""
    try:
        with stat_path.open("rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK


def _peak_rss_mb(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MB. Not getrusage(RUSAGE_CHILDREN): Linux
    carries a child's pre-exec high-water mark across exec, so it would report this bench
    process's own size (it holds every page in memory) as the crawl's."""
    try:
        with Path(f"/proc/{pid}/status").open("rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


class CpuSampler:
    """Samples /proc every 0.1 s for the CPU seconds of the crawl process (split into its main
    thread, the reactor, and its other threads: the writer and the pool's feeder/result threads)
    and of each extraction worker. A task's last sample is kept, so a worker's final 0.1 s may
    be missing; the crawl's total comes exactly from getrusage."""

    def __init__(self, pid: int):
        self.pid = pid
        self.threads: dict[int, float] = {}
        self.workers: dict[int, float] = {}
        self.rss: dict[int, float] = {}  # peak RSS (VmHWM, MB) by process, last sample
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            self.sample()

    def sample(self) -> None:
        base = Path(f"/proc/{self.pid}/task")
        try:
            tids = [int(t.name) for t in base.iterdir()]
            kids = [int(k) for k in (base / str(self.pid) / "children").read_text().split()]
        except (FileNotFoundError, ProcessLookupError):
            return
        for tid in tids:
            cpu = _cpu_of(base / str(tid) / "stat")
            if cpu is not None:
                self.threads[tid] = cpu
        for kid in kids:
            cpu = _cpu_of(Path(f"/proc/{kid}/stat"))
            if cpu is not None:
                self.workers[kid] = cpu
        for pid in (self.pid, *kids):
            peak = _peak_rss_mb(pid)
            if peak is not None:
                self.rss[pid] = max(self.rss.get(pid, 0.0), peak)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def summary(self) -> str:
        main = self.threads.get(self.pid, 0.0)
        others = sum(v for k, v in self.threads.items() if k != self.pid)
        workers = " + ".join(f"{v:.1f}" for v in sorted(self.workers.values(), reverse=True)) or "-"
        rss = " + ".join(f"{self.rss[k]:.0f}" for k in [self.pid, *self.workers] if k in self.rss)
        return f"reactor thread {main:.1f} s, other threads {others:.1f} s, workers {workers} s; peak RSS MB {rss}"


def _times() -> tuple[float, float]:
    """CPU seconds of this process (the site's server threads) and of reaped children."""
    t = os.times()
    return t.user + t.system, t.children_user + t.children_system


def crawl(config: Path) -> tuple[float, str, dict]:
    """Run ``lookout crawl`` in a fresh process; wall seconds, stdout and CPU seconds by part."""
    own0, kids0 = _times()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lookout.cli", "--config", str(config), "crawl"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    sampler = CpuSampler(proc.pid)
    out, err = proc.communicate()
    elapsed = time.perf_counter() - started
    sampler.stop()
    own1, kids1 = _times()
    if proc.returncode != 0 or "DEBUG" in err:
        print(out, err[-4000:], file=sys.stderr)
        raise SystemExit("crawl failed")
    cpu = {
        "server": own1 - own0,
        "crawl": kids1 - kids0,
        "detail": sampler.summary(),
        "peak_mb": max(sampler.rss.values(), default=0.0),
    }
    return elapsed, out, cpu


def scrapy_alone(config: Path, urls: list[str], tmp: Path) -> tuple[float, float, float, float]:
    """Wall seconds (process start included), seconds to its first request, Scrapy's CPU
    seconds from then on, and the site's CPU seconds, for downloading ``urls``."""
    listing = tmp / "urls.txt"
    listing.write_text("\n".join(urls), encoding="utf-8")
    own0 = _times()[0]
    launched = time.time()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scrapy_floor.py"), str(config), str(listing)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    elapsed = time.perf_counter() - started
    own1 = _times()[0]
    if done.returncode != 0:
        print(done.stdout, done.stderr[-4000:], file=sys.stderr)
        raise SystemExit("scrapy alone failed")
    _, first_request, cpu = done.stdout.split()[-3:]
    return elapsed, float(first_request) - launched, float(cpu), own1 - own0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pages", type=int, default=2000)
    args = parser.parse_args()
    from support.newssite import NewsSite, generate_articles

    workers = os.cpu_count() or 1
    arts = generate_articles(args.pages)
    tmp = Path(tempfile.mkdtemp(prefix="lookout-bench-"))
    with NewsSite(arts) as site:
        pages = [(urllib.request.urlopen(site.link(a.path)).read().decode(), site.link(a.path)) for a in arts]
        sizes = sorted(len(p[0]) for p in pages)
        print(
            f"site: {len(pages)} pages, {sizes[0] // 1024}-{sizes[-1] // 1024} KB, "
            f"{sum(sizes) / 2**20:.0f} MB in all; {workers} workers"
        )

        rules = ROOT / "rules" / "examples"
        config = tmp / "lookout.yaml"
        config.write_text(
            f"database: sqlite:///{tmp / 'bench.db'}\nrules: [{rules}]\n"
            "crawl:\n  max_age: null\n  autothrottle: false\n  concurrency_per_domain: 8\n"
            f"sources:\n  - name: bench\n    sitemap: {site.link('/news-sitemap.xml')}\n    every: 10m\n",
            encoding="utf-8",
        )
        # The gazetteer cache (var/gazetteer next to the config) is built once per install, by
        # the first run ever or `lookout gazetteer`: build it here, untimed, as any earlier run would.
        from lookout.config import load_config
        from lookout.loaders import gazetteer_for

        gazetteer_for(load_config(config))
        print(f"load average before the crawl: {os.getloadavg()[0]:.2f}")
        site.reset_requests()
        seconds, out, cpu = crawl(config)
        downloads = len(site.article_requests())
        peak_mb = cpu["peak_mb"]
        crawl_rate = downloads / seconds

        with ProcessPoolExecutor(workers) as pool:
            list(pool.map(_warm, range(workers)))  # workers up and trafilatura imported: not timed
            started = time.perf_counter()
            extracted = sum(1 for n in pool.map(_bare, pages, chunksize=8) if n)
            bare_seconds = time.perf_counter() - started
        bare_rate = len(pages) / bare_seconds

        site.reset_requests()
        re_seconds, _, _ = crawl(config)
        re_downloads = len(site.article_requests())

        floor_seconds, floor_startup, floor_cpu, floor_server = scrapy_alone(config, [url for _, url in pages], tmp)

    total = out.strip().splitlines()[-1]
    inner = float(total.split()[-1])
    print(total)
    print(
        f"lookout crawl:      {downloads} articles in {seconds:.1f} s = {crawl_rate:.1f} articles/s "
        "(process start, fetch, extract, match, store)"
    )
    print(f"  of which crawling {inner:.1f} s = {downloads / inner:.1f} articles/s (after start-up)")
    print(
        f"bare trafilatura:   {extracted} pages in {bare_seconds:.1f} s = {bare_rate:.1f} articles/s "
        f"(warmed pool of {workers})"
    )
    print(f"ratio:              {crawl_rate / bare_rate:.2f} (target >= 0.8)")
    print(
        f"CPU during crawl:   {cpu['crawl']:.1f} s crawl processes ({cpu['detail']}), "
        f"{cpu['server']:.1f} s site server; {(os.cpu_count() or 1) * seconds:.1f} core-s available"
    )
    best = (bare_seconds * workers + floor_cpu + floor_server) / workers
    print(
        f"Scrapy alone:       {len(pages)} pages downloaded and dropped in {floor_seconds:.1f} s: first request "
        f"after {floor_startup:.1f} s, then {floor_cpu:.1f} CPU s + {floor_server:.1f} s site server"
    )
    print(
        f"best possible ratio: {bare_seconds / (floor_startup + best):.2f} for a crawl that starts a Scrapy process, "
        f"{bare_seconds / best:.2f} with start-up free (the bare pool's {bare_seconds * workers:.1f} core-s plus "
        f"Scrapy's and the site's, perfectly spread over {workers} cores; matching and storing free)"
    )
    print(f"peak RSS of crawl:  {peak_mb:.0f} MB (largest crawl process, VmHWM; target < 500 MB)")
    print(f"re-crawl:           {re_seconds:.1f} s, {re_downloads} article downloads (target 0 in < 5 s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
