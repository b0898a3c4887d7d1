"""Scrapy alone: download a list of URLs with Lookout's Scrapy settings and throw the responses
away. bench/crawl.py runs it to measure what fetching costs before any of Lookout's own work
(extraction, matching, storing), which bounds the crawl/bare-trafilatura ratio from above.
Prints the pages downloaded, the clock time of the first request (so the caller knows how long
start-up took) and the CPU seconds spent from the first request to the end.

    .venv/bin/python bench/scrapy_floor.py CONFIG URLS_FILE
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    import scrapy
    from scrapy.crawler import CrawlerProcess
    from scrapy.settings import Settings

    from crawler.settings import apply_config
    from lookout import __version__
    from lookout.config import load_config

    config, urls_file = Path(sys.argv[1]), Path(sys.argv[2])
    urls = urls_file.read_text(encoding="utf-8").split()
    downloaded = []
    began: list[float] = []  # clock and CPU seconds when the first request goes out

    class Discard(scrapy.Spider):
        name = "discard"

        async def start(self):
            began.extend((time.time(), time.process_time()))
            for url in urls:
                yield scrapy.Request(url, callback=self.parse, dont_filter=True)

        def parse(self, response):
            downloaded.append(len(response.body))

    settings = Settings()
    settings.setmodule("crawler.settings", priority="project")
    apply_config(settings, load_config(config).crawl, version=__version__)  # as `lookout crawl` does
    settings.set("ITEM_PIPELINES", {}, priority="cmdline")
    process = CrawlerProcess(settings)
    process.crawl(Discard)
    process.start()
    print(f"{len(downloaded)} {began[0]:.3f} {time.process_time() - began[1]:.3f}")
    return 0 if len(downloaded) == len(urls) else 1


if __name__ == "__main__":
    sys.exit(main())
