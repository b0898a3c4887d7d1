"""Downloader middlewares of our own: a meta-refresh check that does not decode every page on
the reactor thread (Scrapy's decodes the whole body to read its first 4096 characters; article
pages are decoded once, in the extraction pool)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from scrapy.downloadermiddlewares.redirect import MetaRefreshMiddleware

if TYPE_CHECKING:
    from scrapy import Request, Spider
    from scrapy.http import Response

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
