"""The downloader: Scrapy's, with its per-site concurrency limit actually kept.

Under the asyncio reactor, Scrapy 2.19 hands a queued request to a new task and counts it against
the site's slot only when that task starts running; the loop that hands requests out has already
emptied the queue by then. A site with ``CONCURRENT_REQUESTS_PER_DOMAIN = 4`` got up to
``CONCURRENT_REQUESTS`` (16) requests at once. Here a request counts as transferring from the
moment it leaves the queue (``_download`` adds it again, harmlessly, and removes it when done).
"""

from __future__ import annotations

from collections import deque

from scrapy.core.downloader import Downloader, Slot


class _ClaimingQueue(deque):
    def __init__(self, slot: Slot, items=()):
        super().__init__(items)
        self.slot = slot

    def popleft(self):
        request, deferred = super().popleft()
        self.slot.transferring.add(request)
        return request, deferred


class PoliteDownloader(Downloader):
    def _get_slot(self, request, *args, **kwargs):
        key, slot = super()._get_slot(request, *args, **kwargs)
        if not isinstance(slot.queue, _ClaimingQueue):
            slot.queue = _ClaimingQueue(slot, slot.queue)
        return key, slot
