"""A small site for the trust tests (test_trust_backoff.py, test_trust_crawl.py): fixed routes on
the loopback address given (127.0.0.x stands for another host), each request logged. Feeds and
article pages are written by hand so that a feed can link anywhere, other hosts included."""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RSS = "application/rss+xml; charset=utf-8"
HTML = "text/html; charset=utf-8"


def article_page(title: str) -> str:
    text = " ".join([f"{title}: shelling was reported near the market of the town on Tuesday morning."] * 12)
    return (f"<html lang='en'><head><title>{html.escape(title)}</title></head><body><article>"
            f"<h1>{html.escape(title)}</h1><p>{html.escape(text)}</p><p>{html.escape(text)}</p></article></body></html>")


def rss(links: list[str], title: str = "Trust Wire") -> str:
    items = "".join(f"<item><title>Report {i}</title><link>{html.escape(link)}</link></item>"
                    for i, link in enumerate(links))
    return (f'<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>http://example.org/</link><description>d</description>{items}</channel></rss>")


class Site:
    """``routes``: path -> (status, content type, body); anything else is a 404. ``requests``
    lists every path asked for, in order (robots.txt included)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.routes: dict[str, tuple[int, str, str | bytes]] = {"/robots.txt": (200, "text/plain", "")}
        self.requests: list[str] = []
        site = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True  # no ~40 ms wait for the client's delayed ACK

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                site.requests.append(self.path)
                status, ctype, body = site.routes.get(self.path, (404, HTML, "<html><body>Not found</body></html>"))
                data = body.encode() if isinstance(body, str) else body
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def link(self, path: str) -> str:
        return self.url + path

    def add_article(self, path: str, title: str) -> str:
        self.routes[path] = (200, HTML, article_page(title))
        return self.link(path)

    def count(self, path: str) -> int:
        return self.requests.count(path)

    def __enter__(self) -> Site:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
