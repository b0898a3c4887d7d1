"""The bot's preference commands: how a chat's alerts arrive (``/mute``, ``/unmute``,
``/quiet``, ``/digest``, ``/pins``).

Each handler parses its arguments with ``alerts.chatprefs`` (a usage answer on bad input), stores
the chat's preference through ``alerts.subscriptions`` in a worker thread and says what changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from alerts import chatprefs, subscriptions
from alerts.botbase import BotCommands
from alerts.chatprefs import PrefError
from alerts.format import esc
from core.store import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from telegram import Update
    from telegram.ext import ContextTypes

    from alerts.botbase import Handler

PINS_USAGE = "Usage: /pins on | off"


class PrefCommands(BotCommands):
    """How a chat's alerts arrive: mutes, quiet hours, digests, map pins."""

    def handlers(self) -> dict[str, Handler]:
        return {"mute": self.mute, "unmute": self.unmute, "quiet": self.quiet, "digest": self.digest,
                "pins": self.pins}

    async def mute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        now = utcnow()
        try:
            if len(args) != 1:
                raise PrefError(chatprefs.MUTE_USAGE)
            until = chatprefs.parse_mute(args[0], now)
        except PrefError as exc:
            await self.reply(update, esc(str(exc)))
            return
        chat_id = await self.touch_chat(update)
        await self.db(subscriptions.set_chat_prefs, chat_id, muted_until=until)
        await self.reply(
            update,
            f"Muted until {until:%Y-%m-%d %H:%M} UTC. Alerts meanwhile arrive as one digest then; "
            "/unmute to resume.",
        )

    async def unmute(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = await self.touch_chat(update)

        def work(conn: Connection) -> int:
            subscriptions.set_chat_prefs(conn, chat_id, muted_until=None)
            return subscriptions.unmute_rules(conn, chat_id)

        rules = await self.db(work)
        extra = f" and {rules} muted rule(s) resumed" if rules else ""
        await self.reply(update, f"Unmuted{extra}: alerts arrive again as they come (held ones follow).")

    async def quiet(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        arg = " ".join(context.args or [])
        try:
            if not arg:
                raise PrefError(chatprefs.QUIET_USAGE)
            span = chatprefs.parse_quiet(arg)
        except PrefError as exc:
            await self.reply(update, esc(str(exc)))
            return
        chat_id = await self.touch_chat(update)
        start, end = span if span else (None, None)
        await self.db(subscriptions.set_chat_prefs, chat_id, quiet_start=start, quiet_end=end)
        if span is None:
            await self.reply(update, "Quiet hours off.")
        else:
            await self.reply(
                update, f"Quiet hours {start}-{end} UTC: alerts in that time arrive as one digest at {end}."
            )

    async def digest(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            mode, at = chatprefs.parse_digest(list(context.args or []))
        except PrefError as exc:
            await self.reply(update, esc(str(exc)))
            return
        chat_id = await self.touch_chat(update)
        await self.db(subscriptions.set_chat_prefs, chat_id, digest=mode, digest_at=at)
        text = {
            "off": "Digest off: alerts arrive one by one as they come.",
            "hourly": "Hourly digest: alerts are collected into one message at the top of each hour.",
            "daily": f"Daily digest: alerts are collected into one message at {at} UTC.",
        }[mode]
        await self.reply(update, text)

    async def pins(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = [a.lower() for a in context.args or []]
        if args not in (["on"], ["off"]):
            await self.reply(update, esc(PINS_USAGE))
            return
        chat_id = await self.touch_chat(update)
        await self.db(subscriptions.set_chat_prefs, chat_id, pins=args == ["on"])
        await self.reply(update, "Map pins on." if args == ["on"] else "Map pins off.")
