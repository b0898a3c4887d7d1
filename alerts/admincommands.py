"""The bot's admin side: ``/status``, ``/sources``, ``/crawl`` and ``/reload``, answered only in the
chats listed in ``telegram.admins``.

The alerts package knows nothing of crawls or the status of a running service: whoever composes
the service hands those in. ``AdminReports`` renders ``/status`` and ``/sources`` (``lookout``
implements it over ``lookout.status``); the ``on_crawl`` and ``on_reload`` callbacks queue a crawl
and reload the rules. Without them the bot says the command is not available outside the
service.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol, TypeAlias

from alerts.botbase import BotCommands
from alerts.format import esc

if TYPE_CHECKING:
    from telegram import Update
    from telegram.ext import ContextTypes

    from alerts.botbase import Handler
    from alerts.config import TelegramConfig
    from core.store import Store
    from rules.model import Ruleset

Answer: TypeAlias = Awaitable[str | None] | str | None
"""What a service callback returns (sync or async): the reply's text, or None for the default."""
CrawlCallback: TypeAlias = Callable[[str], Answer]
ReloadCallback: TypeAlias = Callable[[], Answer]

CRAWL_USAGE = "Usage: /crawl <source> (see /sources)"


class AdminReports(Protocol):
    """What ``/status`` and ``/sources`` show, as Telegram HTML within ``alerts.format.REPLY_BUDGET``.
    Called in a worker thread (``asyncio.to_thread``): it may block on the store."""

    def status_html(self) -> str: ...

    def sources_html(self) -> str: ...


class AdminCommands(BotCommands):
    """What the admin chats can ask the bot, through the reports and callbacks of the service."""

    def __init__(
        self, config: TelegramConfig, store: Store, ruleset_provider: Callable[[], Ruleset], *,
        reports: AdminReports | None = None, on_crawl: CrawlCallback | None = None,
        on_reload: ReloadCallback | None = None,
    ) -> None:
        super().__init__(config, store, ruleset_provider)
        self.reports = reports
        self.on_crawl = on_crawl
        self.on_reload = on_reload
        self.admins = {str(a) for a in config.admins}

    def handlers(self) -> dict[str, Handler]:
        """Command name -> handler, for every admin command (none is listed in the menu)."""
        return {"status": self.status, "sources": self.sources, "crawl": self.crawl, "reload": self.reload}

    def is_admin(self, update: Update) -> bool:
        return update.effective_chat is not None and str(update.effective_chat.id) in self.admins

    async def deny(self, update: Update) -> bool:
        """Answer "Not allowed." outside the admin chats; True if it did."""
        if self.is_admin(update):
            return False
        await self.reply(update, "Not allowed.")
        return True

    async def status(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._report(update, "The status report", lambda reports: reports.status_html())

    async def sources(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        await self._report(update, "The sources report", lambda reports: reports.sources_html())

    async def _report(self, update: Update, what: str, render: Callable[[AdminReports], str]) -> None:
        """An admin's report, rendered off the event loop (it reads the store)."""
        if await self.deny(update):
            return
        reports = self.reports
        if reports is None:
            await self.reply(update, _not_here(what))
            return
        await self.reply(update, await asyncio.to_thread(render, reports))

    async def crawl(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if await self.deny(update):
            return
        args = context.args or []
        if len(args) != 1:
            await self.reply(update, esc(CRAWL_USAGE))
            return
        source = args[0]
        if self.on_crawl is None:
            await self.reply(
                update,
                f"Crawling on demand is not available outside the service; run "
                f"<code>lookout crawl {esc(source)}</code> on the server.",
            )
            return
        on_crawl = self.on_crawl
        answer = await _call(lambda: on_crawl(source), default=f"Crawl of {source} queued.")
        await self.reply(update, esc(answer))

    async def reload(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        if await self.deny(update):
            return
        if self.on_reload is None:
            await self.reply(update, "Reloading is not available outside the service; restart it instead.")
            return
        await self.reply(update, esc(await _call(self.on_reload, default="Rules reloaded.")))


def _not_here(what: str) -> str:
    return f"{what} is not available outside the service; run <code>lookout status</code> on the server."


async def _call(callback: ReloadCallback, *, default: str) -> str:
    """Call a service callback (sync or async); an exception becomes the reply, not a crash."""
    try:
        result = callback()
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return f"Failed: {exc}"
    return str(result) if result else default
