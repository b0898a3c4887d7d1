"""The bot's preference commands: how a chat's alerts arrive (``/mute``, ``/unmute``,
``/quiet``, ``/digest``, ``/pins``) and in which time zone (``/tz``).

Each handler parses its arguments with ``alerts.chatprefs`` (a usage answer on bad input), stores
the chat's preference through ``alerts.subscriptions`` in a worker thread and says what changed.
Quiet hours and digest times are the chat's local time (``/tz``, UTC until set), and every time
a reply shows is local with the zone's name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from alerts import chatprefs, subscriptions
from alerts.botbase import BotCommands
from alerts.chatprefs import ChatPrefs, PrefError
from alerts.format import esc
from core.store import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from telegram import Update
    from telegram.ext import ContextTypes

    from alerts.botbase import Handler

PINS_USAGE = "Usage: /pins on | off"

PREF_COMMANDS: list[tuple[str, str]] = [
    ("mute", "Hold alerts for a while: /mute 2h"),
    ("unmute", "Resume alerts now"),
    ("quiet", "Quiet hours, local time: /quiet 23:00-07:00 or off"),
    ("digest", "Digest: /digest off | hourly | daily 08:00 (local time)"),
    ("tz", "This chat's time zone: /tz Europe/Istanbul"),
    ("pins", "Map pins under alerts: /pins on | off"),
]
"""The menu entries of these commands, for the registered command list (``setMyCommands``)."""


def _prefs_after(conn: Connection, chat_id: str, **values: Any) -> ChatPrefs:
    """Store ``values`` as the chat's preferences; its preferences now."""
    subscriptions.set_chat_prefs(conn, chat_id, **values)
    chat = subscriptions.get_chat(conn, chat_id)
    return chat.prefs if chat is not None else ChatPrefs()


def _zone_values(zone: str | None) -> dict[str, Any]:
    """The ``tz`` to store for a zone given inline (``parse_*_command``), or none to store."""
    return {} if zone is None else {"tz": chatprefs.stored_tz(zone)}


class PrefCommands(BotCommands):
    """How a chat's alerts arrive: mutes, quiet hours, digests, time zone, map pins."""

    def handlers(self) -> dict[str, Handler]:
        return {"mute": self.mute, "unmute": self.unmute, "quiet": self.quiet, "digest": self.digest,
                "tz": self.tz, "pins": self.pins}

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
        prefs = await self.db(_prefs_after, chat_id, muted_until=until)
        await self.reply(
            update,
            f"Muted until {esc(chatprefs.format_local(until, prefs))}. Alerts meanwhile arrive as one "
            "digest then; /unmute to resume.",
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
            span, zone = chatprefs.parse_quiet_command(arg)
        except PrefError as exc:
            await self.reply(update, esc(str(exc)))
            return
        chat_id = await self.touch_chat(update)
        start, end = span if span else (None, None)
        prefs = await self.db(_prefs_after, chat_id, quiet_start=start, quiet_end=end, **_zone_values(zone))
        moved = f" This chat's time zone is now {prefs.zone_name}." if zone is not None else ""
        if span is None:
            await self.reply(update, esc(f"Quiet hours off.{moved}"))
        else:
            await self.reply(update, esc(
                f"Quiet hours {start}-{end} {prefs.zone_name}: alerts in that time arrive as one digest "
                f"at {end}.{moved}" + ("" if zone is not None or prefs.tz else " /tz sets the chat's time zone.")
            ))

    async def digest(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        try:
            mode, at, zone = chatprefs.parse_digest_command(list(context.args or []))
        except PrefError as exc:
            await self.reply(update, esc(str(exc)))
            return
        chat_id = await self.touch_chat(update)
        prefs = await self.db(_prefs_after, chat_id, digest=mode, digest_at=at, **_zone_values(zone))
        text = {
            "off": "Digest off: alerts arrive one by one as they come.",
            "hourly": "Hourly digest: alerts are collected into one message at the top of each hour.",
            "daily": f"Daily digest: alerts are collected into one message at {at} {prefs.zone_name}.",
        }[mode]
        if zone is not None:
            text += f" This chat's time zone is now {prefs.zone_name}."
        await self.reply(update, esc(text))

    async def tz(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        arg = " ".join(context.args or [])
        now = utcnow()
        if not arg:
            chat = await self.db(subscriptions.get_chat, self.chat_id(update))
            prefs = chat.prefs if chat is not None else ChatPrefs()
            await self.reply(update, esc(
                f"Time zone: {chatprefs.describe_zone(prefs, now)}. Quiet hours and digest times are in "
                f"this zone. {chatprefs.TZ_USAGE}"
            ))
            return
        try:
            zone = chatprefs.parse_tz(arg)
        except PrefError as exc:
            await self.reply(update, esc(str(exc)))
            return
        chat_id = await self.touch_chat(update)
        prefs = await self.db(_prefs_after, chat_id, tz=chatprefs.stored_tz(zone))
        lines = [f"Time zone set to {chatprefs.describe_zone(prefs, now)}."]
        follows = [line for line in chatprefs.describe(prefs, now) if not line.startswith("Time zone:")]
        if follows:
            lines.append("Now in this zone: " + "; ".join(follows) + ".")
        await self.reply(update, esc(" ".join(lines)))

    async def pins(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = [a.lower() for a in context.args or []]
        if args not in (["on"], ["off"]):
            await self.reply(update, esc(PINS_USAGE))
            return
        chat_id = await self.touch_chat(update)
        await self.db(subscriptions.set_chat_prefs, chat_id, pins=args == ["on"])
        await self.reply(update, "Map pins on." if args == ["on"] else "Map pins off.")
