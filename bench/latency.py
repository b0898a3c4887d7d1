"""Publish → Telegram latency of the running service (``lookout run``), end to end.

A local news site publishes a matching article every few seconds for two minutes; the service
polls its feed every 15 s and delivers to the fake Bot API server, where a subscriber typed
``/watch Azaz``. Prints latency p50 / p95 / max (site publish to Telegram's acceptance of the
message) and alerts lost or repeated. Targets: p95 ≤ the interval + 5 s (20 s), 0 lost, 0 repeated.

    .venv/bin/python bench/latency.py [--minutes 2] [--every 15] [--gap 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from fakebotapi import FakeBotAPI
from service_harness import ServiceProcess, free_port, matching_article, write_config
from support.newssite import NewsSite

from lookout.status import percentile

CHAT = 7001


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--every", type=int, default=15, help="feed poll interval, seconds")
    parser.add_argument("--gap", type=float, default=4.0, help="seconds between publications")
    args = parser.parse_args()

    tmpdir = tempfile.TemporaryDirectory(prefix="lookout-latency-")
    with tmpdir as tmp, NewsSite() as site, FakeBotAPI() as fake:
        feed = {"name": "monitor", "feed": f"{site.url}/feed/rss.xml", "every": f"{args.every}s"}
        config = write_config(Path(tmp), sources=[feed], token=fake.token, api_url=fake.url)
        svc = ServiceProcess(config, free_port()).start()
        try:
            svc.wait_healthy(60)
            fake.inject_message(CHAT, "/watch Azaz")
            if not fake.wait_for(lambda: bool(fake.messages(CHAT)), timeout=20):
                print("the bot did not answer /watch", file=sys.stderr)
                return 1
            published: dict[str, float] = {}
            end = time.monotonic() + args.minutes * 60
            n = 0
            while time.monotonic() < end:
                n += 1
                title = f"Bench report {n:03d} from the Azaz front"
                site.publish(matching_article(f"bench-{n:03d}", title, n))
                published[title] = time.monotonic()
                time.sleep(args.gap)
            # Let the last article be crawled and delivered.
            fake.wait_for(lambda: all(_count(fake, t) for t in published), timeout=args.every + 30)
            time.sleep(3)
            latencies, lost, repeated = [], 0, 0
            for title, at in published.items():
                hits = [m for m in fake.messages(CHAT) if title in m.visible]
                if not hits:
                    lost += 1
                    continue
                repeated += len(hits) - 1
                latencies.append(hits[0].at - at)
            code = svc.terminate()
        finally:
            svc.kill_if_running()
    print(f"published {len(published)} articles over {args.minutes:g} min, feed polled every {args.every}s")
    if latencies:
        print(f"publish → Telegram latency: p50 {statistics.median(latencies):.1f}s  "
              f"p95 {percentile(latencies, 95):.1f}s  max {max(latencies):.1f}s  "
              f"(target p95 ≤ {args.every + 5}s)")
    print(f"lost {lost}  repeated {repeated}  (targets 0, 0); service exit code on SIGTERM: {code}")
    return 0 if lost == 0 and repeated == 0 else 1


def _count(fake: FakeBotAPI, title: str) -> int:
    return sum(title in m.visible for m in fake.messages(CHAT))


if __name__ == "__main__":
    sys.exit(main())
