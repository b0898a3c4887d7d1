"""Middlewares of our own: a meta-refresh check that does not decode every page on the reactor
thread (Scrapy's decodes the whole body to read its first 4096 characters; article pages are
decoded once, in the extraction pool); the address guard that keeps a source's links from aiming
the crawler at loopback, private or link-local addresses; and one log line, not a traceback,
for a robots.txt that cannot be fetched or a callback that raises."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from scrapy import Request
from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware
from scrapy.downloadermiddlewares.robotstxt import RobotsTxtMiddleware
from scrapy.exceptions import CloseSpider, IgnoreRequest
from scrapy.http.request import NO_CALLBACK
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet.defer import Deferred

if TYPE_CHECKING:
    from scrapy import Spider
    from scrapy.crawler import Crawler
    from scrapy.http import Response
    from scrapy.robotstxt import RobotParser

log = logging.getLogger(__name__)

# Scrapy reads the first 4096 characters; in any ASCII-compatible encoding they lie within
# 4 bytes a character. Bodies with NUL bytes there (UTF-16/32) are handed to Scrapy as is.
_WINDOW = 4 * 4096


class CheapMetaRefreshMiddleware(MetaRefreshMiddleware):
    """Scrapy's MetaRefreshMiddleware, consulted only when the head can hold a refresh tag."""

    def process_response(
        self,
        request: Request,
        response: Response,
        spider: Spider | None = None,  # noqa: ARG002 - Scrapy's signature; deprecated, never passed
    ) -> Request | Response:
        head = response.body[:_WINDOW]
        if b"\x00" not in head and b"refresh" not in head.lower():
            return response
        return super().process_response(request, response)


# -- refusing article links aimed inward ------------------------------------------------------

# A spider's request carries its source's own URL under this key: the address guard checks
# those requests, all but the one for that URL itself (the operator's choice), against it.
SOURCE_URL_META = "lookout_source_url"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class PrivateAddress(IgnoreRequest):
    """An article link aimed at a loopback, private or link-local address: refused (failure
    reason ``private-address``)."""


def is_private_address(ip: IPAddress) -> bool:
    """Loopback, private, link-local or otherwise not a public internet address (IPv4-mapped
    IPv6 addresses are judged as the IPv4 address they carry)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_unspecified or ip.is_multicast
        or ip.is_reserved or not ip.is_global
    )


async def resolve(host: str, port: int) -> list[IPAddress]:
    """The addresses ``host`` stands for: an IP literal as is, a name through getaddrinfo on the
    event loop's executor (never blocking the reactor); none when it does not resolve."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):  # the download itself fails and says why (dns)
        return []
    found: list[IPAddress] = []
    for *_, sockaddr in infos:
        with contextlib.suppress(ValueError):
            found.append(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))  # no IPv6 scope id
    return found


class AddressGuard:
    """Downloader middleware, before all others (a refused URL is never requested, not even its
    robots.txt): a request for what a source links (an article, a sitemap index's sitemap, a
    redirect's target) whose host is, or resolves to, a private address is refused, unless the
    source's own URL is on such an address too (local and intranet sources keep working) or
    ``crawl.allow_private`` is set. Redirects pass here again; the address the response actually
    came from is checked as well (a name re-pointed between check and connect)."""

    def __init__(self, allow_private: bool):
        self.allow_private = allow_private
        self._hosts: dict[tuple[str, int], IPAddress | None] = {}  # (host, port) -> a private address it has

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> AddressGuard:
        return cls(crawler.settings.getbool("LOOKOUT_ALLOW_PRIVATE"))

    async def process_request(self, request: Request) -> None:
        source_url = request.meta.get(SOURCE_URL_META)
        if self.allow_private or not source_url or request.url == source_url:
            return
        if await self._private_address(source_url) is not None:
            return  # a local or intranet source: where its links point is its own business
        found = await self._private_address(request.url)
        if found is not None:
            host = urlparse_cached(request).hostname or ""
            via = "" if host == str(found) else f"{host} resolves to "
            raise PrivateAddress(f"{via}{found}, a private address, linked by the public source {source_url}")

    def process_response(self, request: Request, response: Response) -> Response:
        source_url = request.meta.get(SOURCE_URL_META)
        ip = response.ip_address
        if self.allow_private or not source_url or request.url == source_url or ip is None or "proxy" in request.meta:
            return response
        if is_private_address(ip) and self._hosts.get(_host_port(source_url)) is None:
            raise PrivateAddress(f"{response.url} was served from {ip}, a private address")
        return response

    async def _private_address(self, url: str) -> IPAddress | None:
        """A private address ``url``'s host has (of those it resolves to), or None."""
        key = _host_port(url)
        if key not in self._hosts:
            host, port = key
            addresses = await resolve(host, port) if host else []
            self._hosts[key] = next((ip for ip in addresses if is_private_address(ip)), None)
        return self._hosts[key]


def _host_port(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    return parts.hostname or "", port or (443 if parts.scheme == "https" else 80)


# -- one line per problem --------------------------------------------------------------------


class QuietRobotsTxtMiddleware(RobotsTxtMiddleware):
    """Scrapy's robots.txt middleware, saying at DEBUG (with the traceback) that a site's
    robots.txt could not be downloaded, instead of an ERROR traceback: the page asked for fails
    the same way and is recorded with its reason in one line."""

    async def robot_parser(self, request: Request) -> RobotParser | None:
        netloc = urlparse_cached(request).netloc
        if netloc not in self._parsers:
            self._parsers[netloc] = Deferred()
            url = urlparse_cached(request)
            robotsreq = Request(
                f"{url.scheme}://{netloc}/robots.txt",
                priority=self.DOWNLOAD_PRIORITY,
                meta={"dont_obey_robotstxt": True},
                callback=NO_CALLBACK,
            )
            try:
                resp = await self.crawler.engine.download_async(robotsreq)
                await self._parse_robots(resp, netloc, request)
            except Exception as e:
                if not isinstance(e, IgnoreRequest):
                    log.debug("robots.txt of %s not downloaded: %s", netloc, e, exc_info=True)
                self._robots_error(e, netloc)
            self._stats.inc_value("robotstxt/request_count")
        parser = self._parsers[netloc]
        if isinstance(parser, Deferred):
            return await maybe_deferred_to_future(parser)
        return parser


class OneLineErrors:
    """Spider middleware: an exception raised by a Lookout spider's callback is recorded as that
    page's failure (reason ``error``) and logged in one line with its reason by the spider; the
    traceback only at DEBUG (``lookout -v``). Scrapy would log it at ERROR, traceback and all."""

    def __init__(self, crawler: Crawler):
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OneLineErrors:
        return cls(crawler)

    def process_spider_exception(self, response: Response, exception: Exception) -> list[object] | None:
        record = getattr(self.crawler.spider, "callback_failed", None)  # LookoutSpider's
        if record is None or isinstance(exception, HttpError | CloseSpider | IgnoreRequest):
            return None
        log.debug("the callback for %s raised", response.url, exc_info=exception)
        record(response, exception)
        return []
