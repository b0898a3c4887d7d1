"""Telegram for the service: python-telegram-bot's Application (the bot) and the dispatcher that
sends the outbox, started and stopped on the service's loop, and notices to the admin chats.

Without a token nothing starts: crawling and matching go on and alerts wait in the outbox until
the service runs with one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from alerts.bot import build_application, start_bot, stop_bot
from alerts.dispatcher import Dispatcher
from alerts.format import clip_reply
from alerts.telegram import PTBSender

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from telegram.ext import Application

    from alerts.admincommands import AdminReports
    from alerts.config import TelegramConfig
    from alerts.dispatcher import DispatchSummary
    from core.store import Store
    from rules.model import Ruleset

log = logging.getLogger(__name__)

DISPATCHER_STOP_TIMEOUT = 30.0  # seconds the dispatcher gets to finish the message in flight


class TelegramDelivery:
    """The bot and the dispatcher, once ``start`` has run with ``telegram.token`` set."""

    def __init__(self, config: TelegramConfig, *, dispatch_idle: float):
        self.config = config
        self.dispatch_idle = dispatch_idle  # the dispatcher re-checks the outbox at least this often
        self.app: Application | None = None
        self.sender: PTBSender | None = None
        self.dispatcher: Dispatcher | None = None
        self.dispatch_task: asyncio.Task[None] | None = None
        self._dispatch_stop: asyncio.Event | None = None

    @property
    def started(self) -> bool:
        return self.app is not None

    async def start(
        self,
        store: Store,
        *,
        rules: Callable[[], Ruleset],
        on_crawl: Callable[[str], Awaitable[str]],
        on_reload: Callable[[], Awaitable[str]],
        after_pass: Callable[[DispatchSummary], Awaitable[None]],
        reports: AdminReports | None = None,
    ) -> None:
        """Start the bot (``rules``: the rules in force; ``on_crawl`` and ``on_reload`` answer an
        admin's /crawl and /reload, ``reports`` their /status and /sources) and the dispatcher
        (``after_pass`` runs after each pass)."""
        token = self.config.token
        if token is None:
            log.warning(
                "telegram delivery disabled: no telegram.token (set TELEGRAM_BOT_TOKEN); crawling and "
                "matching go on and alerts wait in the outbox until the service runs with a token")
            return
        self.app = build_application(self.config, store, rules, on_crawl=on_crawl, on_reload=on_reload,
                                     reports=reports)
        await start_bot(self.app, self.config)
        self.sender = PTBSender(token.get_secret_value(), self.config.api_url)
        self.dispatcher = Dispatcher(store, self.sender, self.config)
        self._dispatch_stop = asyncio.Event()
        # Woken at once by a finished crawl (wake), else when the next held or retried row is
        # due, else every dispatch_idle seconds.
        self.dispatch_task = asyncio.create_task(
            self.dispatcher.run_forever(self._dispatch_stop, poll=self.dispatch_idle, on_pass=after_pass),
            name="dispatcher",
        )

    async def stop(self) -> None:
        """The dispatcher finishes the message in flight, then the bot stops."""
        if self.dispatch_task is not None:
            if self._dispatch_stop is not None:
                self._dispatch_stop.set()
            try:
                await asyncio.wait_for(self.dispatch_task, timeout=DISPATCHER_STOP_TIMEOUT)
            except (TimeoutError, asyncio.CancelledError):
                # In-flight rows stay in "sending": the next start resends them (at most one duplicate).
                log.warning("dispatcher did not stop in %.0fs; cancelled", DISPATCHER_STOP_TIMEOUT)
            except Exception:
                log.exception("dispatcher failed while stopping")
        if self.sender is not None:
            with contextlib.suppress(Exception):
                await self.sender.close()
        if self.app is not None:
            try:
                await stop_bot(self.app)
            except Exception:
                log.exception("bot did not stop cleanly")

    def wake(self) -> None:
        """Dispatch now (a crawl just queued alerts) rather than at the next poll."""
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def dispatcher_state(self) -> tuple[str, bool]:
        """What the dispatcher is doing, for ``/healthz``, and whether that is healthy."""
        if not self.started:
            return "disabled (no telegram token)", True
        alive = self.dispatch_task is not None and not self.dispatch_task.done()
        return ("running" if alive else "stopped"), alive

    async def tell_admins(self, text: str) -> None:
        """``text`` (Telegram HTML, one whole element per line) to every admin chat; a text over
        the limit is cut at a line end, so no tag or entity is split and Telegram takes it."""
        if self.app is None or not self.config.admins:
            return
        body = clip_reply(text)
        for admin in self.config.admins:
            try:
                await self.app.bot.send_message(chat_id=admin, text=body)
            except Exception as exc:
                log.warning("could not tell admin chat=%s: %s", admin, exc)
