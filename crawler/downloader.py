"""The downloader: Scrapy's, with its per-site concurrency limit actually kept.

Under the asyncio reactor, Scrapy 2.19 hands a queued request to a new task and counts it against
the site's slot only when that task starts running; the loop that hands requests out has already
emptied the queue by then. A site with ``CONCURRENT_REQUESTS_PER_DOMAIN = 4`` got up to
``CONCURRENT_REQUESTS`` (16) requests at once. Here a request counts as transferring from the
moment it leaves the queue (``_download`` adds it again, harmlessly, and removes it when done).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING

from scrapy.core.downloader import Downloader, Slot

if TYPE_CHECKING:
    from collections.abc import Iterable

    from scrapy import Request, Spider
    from scrapy.http import Response
    from twisted.internet.defer import Deferred

    _Queued = tuple[Request, Deferred[Response]]  # what a slot's queue holds


class _ClaimingQueue(deque["_Queued"]):
    """A slot's queue that counts a request as transferring as soon as it is handed out."""

    def __init__(self, slot: Slot, items: Iterable[_Queued] = ()):
        super().__init__(items)
        self.slot = slot

    def popleft(self) -> _Queued:
        request, deferred = super().popleft()
        self.slot.transferring.add(request)
        return request, deferred


class PoliteDownloader(Downloader):
    """Scrapy's downloader, its slots' queues replaced by ``_ClaimingQueue``s."""

    def _get_slot(self, request: Request, spider: Spider | None = None) -> tuple[str, Slot]:
        # Scrapy warns when given the deprecated ``spider``: pass it on only when given.
        key, slot = super()._get_slot(request) if spider is None else super()._get_slot(request, spider)
        if not isinstance(slot.queue, _ClaimingQueue):
            slot.queue = _ClaimingQueue(slot, slot.queue)
        return key, slot
