"""What every bot command shares: the store, the ``telegram:`` configuration and the current
ruleset; store work in a worker thread (``asyncio.to_thread``) so the event loop never blocks;
and replies as Telegram HTML clipped to ``alerts.format.REPLY_BUDGET``, with every user- or
rule-supplied piece escaped (``alerts.format.esc``).

``alerts.subscribercommands`` and ``alerts.admincommands`` build on ``BotCommands``;
``alerts.bot`` wires them into python-telegram-bot.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeAlias, TypeVar

from telegram import Update
from telegram.ext import ContextTypes

from alerts import subscriptions
from alerts.format import clip_reply, esc

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from alerts.config import TelegramConfig
    from core.store import Store
    from rules.model import Ruleset

T = TypeVar("T")
P = ParamSpec("P")

Handler: TypeAlias = Callable[[Update, ContextTypes.DEFAULT_TYPE], Coroutine[Any, Any, None]]
"""A command or button handler as python-telegram-bot calls it."""

_CHAT_KINDS = {"supergroup": "group", "group": "group", "channel": "channel"}  # Telegram's chat types


def echo(user_text: str, limit: int = 80) -> str:
    """User input quoted back in a reply: on one line, shortened, escaped."""
    text = " ".join(user_text.split())
    return esc(text if len(text) <= limit else text[: limit - 1] + "…")


class BotCommands:
    """The store, configuration and current ruleset that command handlers share."""

    def __init__(self, config: TelegramConfig, store: Store, ruleset_provider: Callable[[], Ruleset]) -> None:
        self.config = config
        self.store = store
        self.ruleset_provider = ruleset_provider

    async def db(self, fn: Callable[Concatenate[Connection, P], T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(conn, ...)`` in one transaction, off the event loop."""
        def work() -> T:
            with self.store.begin() as conn:
                return fn(conn, *args, **kwargs)

        return await asyncio.to_thread(work)

    @staticmethod
    async def reply(update: Update, text: str) -> None:
        if update.effective_message is not None:
            await update.effective_message.reply_text(clip_reply(text))

    @staticmethod
    def chat_id(update: Update) -> str:
        assert update.effective_chat is not None
        return str(update.effective_chat.id)

    async def touch_chat(self, update: Update) -> str:
        """Record the chat (kind, title); a chat that writes to us is no longer paused."""
        chat = update.effective_chat
        assert chat is not None
        title = chat.title or chat.username or chat.full_name
        kind = _CHAT_KINDS.get(chat.type or "", "private")
        await self.db(subscriptions.ensure_chat, str(chat.id), kind=kind, title=title, unpause=True)
        return str(chat.id)
