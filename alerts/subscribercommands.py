"""The bot's subscriber side: what a chat watches (``/watch``, ``/near``, ``/unwatch``,
``/list``, ``/stop``), the greeting, and a group's move to a supergroup. Its delivery preferences
are ``alerts.prefcommands``; the buttons under alerts ``alerts.buttons``.

Each handler resolves what the user typed against the current ruleset, does its store work
through ``alerts.subscriptions`` in a worker thread, and answers in Telegram HTML.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from alerts import chatprefs, subscriptions
from alerts.botbase import BotCommands, echo
from alerts.format import esc
from alerts.keys import SubscriptionKind, alert_key
from core.store import utcnow

if TYPE_CHECKING:
    from telegram import Update
    from telegram.ext import ContextTypes

    from alerts.botbase import Handler
    from alerts.subscriptions import Subscription

log = logging.getLogger(__name__)

SUBSCRIBER_COMMANDS: list[tuple[str, str]] = [
    ("start", "What this bot does and what this chat watches"),
    ("help", "Commands and what this chat watches"),
    ("watch", "Watch a place, group or rule: /watch Azaz"),
    ("near", "Matches near a place: /near Azaz 15"),
    ("unwatch", "Stop watching: /unwatch Azaz"),
    ("list", "What this chat watches"),
    ("mute", "Hold alerts for a while: /mute 2h"),
    ("unmute", "Resume alerts now"),
    ("quiet", "Quiet hours (UTC): /quiet 23:00-07:00 or off"),
    ("digest", "Digest: /digest off | hourly | daily 08:00"),
    ("pins", "Map pins under alerts: /pins on | off"),
    ("stop", "Remove all of this chat's subscriptions"),
]

WATCH_USAGE = "Usage: /watch <place | group | rule>, e.g. /watch Azaz, /watch ISIS, /watch is-near-azaz"
NEAR_USAGE = "Usage: /near <place> <km>, e.g. /near Azaz 15"
UNWATCH_USAGE = "Usage: /unwatch <place | group | rule> or /unwatch near <place> (see /list)"
MAX_NEAR_KM = 500.0
WATCH_SCOPE = {
    SubscriptionKind.PLACE: "every new article that mentions it",
    SubscriptionKind.GROUP: "every new article that mentions it",
    SubscriptionKind.RULE: "every match of this rule",
}


class SubscriberCommands(BotCommands):
    """What any chat can ask the bot, and the buttons under its alerts."""

    def handlers(self) -> dict[str, Handler]:
        """Command name -> handler, for every subscriber command (SUBSCRIBER_COMMANDS)."""
        return {
            "start": self.start, "help": self.start, "watch": self.watch, "near": self.near,
            "unwatch": self.unwatch, "list": self.show_list, "stop": self.stop,
        }

    # --- what a chat watches --------------------------------------------------------------------

    def describe_target(self, kind: SubscriptionKind, target: str, km: float | None = None) -> str:
        ruleset = self.ruleset_provider()
        if kind is SubscriptionKind.RULE:
            rule = ruleset.rules.get(target)
            defined, name = rule is not None, rule.title if rule is not None else None
        else:
            named = ruleset.groups if kind is SubscriptionKind.GROUP else ruleset.places
            item = named.get(target)
            defined, name = item is not None, item.name if item is not None else None
        gone = "" if defined else " (no longer defined in the rules)"
        label = f"{esc(name)} " if name else ""
        key = alert_key(kind, target)
        if kind is SubscriptionKind.NEAR:
            return f"near {label}within {km:g} km <code>{esc(key)}</code>{gone}"
        return f"{kind} {label}<code>{esc(key)}</code>{gone}"

    async def watching_lines(self, chat_id: str) -> list[str]:
        subs = await self.db(subscriptions.list_for_chat, chat_id)
        return [f"• {self.describe_target(s.kind, s.target, s.km)}" for s in subs]

    def unknown_reply(self, query: str, what: str = "place, group or rule") -> str:
        suggestions = self.ruleset_provider().suggest(query, n=3)
        text = f"Unknown {what} “{echo(query)}”."
        if suggestions:
            text += " Did you mean: " + ", ".join(f"<code>{esc(s)}</code>" for s in suggestions) + "?"
        return text + "\nUse a place, group or rule id, name or alias from the rule files."

    # --- commands -------------------------------------------------------------------------------

    async def start(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = await self.touch_chat(update)
        lines = [
            "<b>Lookout</b> watches news sources for reports about places and armed groups, "
            "and alerts this chat when an article matches.",
            "",
            "/watch &lt;place | group | rule&gt; — every new article about it",
            "/near &lt;place&gt; &lt;km&gt; — rule matches within km of a place",
            "/unwatch &lt;…&gt; — stop watching; /list — what this chat watches",
            "/mute &lt;duration&gt;, /unmute — hold alerts for a while",
            "/quiet 23:00-07:00 (UTC), /quiet off — quiet hours",
            "/digest off | hourly | daily 08:00 — one message per period",
            "/pins on | off — a map pin under alerts; /stop — remove all subscriptions",
            "Held alerts are never dropped: they arrive together as one digest.",
            "",
        ]
        watching = await self.watching_lines(chat_id)
        lines.append("<b>This chat watches:</b>" if watching else "This chat watches nothing yet.")
        lines.extend(watching)
        chat = await self.db(subscriptions.get_chat, chat_id)
        lines.extend(esc(line) for line in chatprefs.describe(chat.prefs if chat else None, utcnow()))
        await self.reply(update, "\n".join(lines))

    async def watch(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = " ".join(context.args or []).strip()
        if not query:
            await self.reply(update, esc(WATCH_USAGE))
            return
        resolved = self.ruleset_provider().resolve(query)
        if resolved is None:
            await self.reply(update, self.unknown_reply(query))
            return
        kind = SubscriptionKind(resolved.kind)
        chat_id = await self.touch_chat(update)
        added = await self.db(subscriptions.add, chat_id, kind, resolved.id)
        what = f"{kind} <b>{esc(resolved.name)}</b> (<code>{esc(resolved.id)}</code>)"
        if not added:
            await self.reply(update, f"This chat already watches {what}.")
            return
        await self.reply(update, f"Watching {what}: you will get {WATCH_SCOPE[kind]}.")

    async def near(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        km = _parse_km(args[-1]) if len(args) >= 2 else None
        if km is None:
            await self.reply(update, esc(NEAR_USAGE))
            return
        if not 0 < km <= MAX_NEAR_KM:
            limit = f"The distance must be between 0 and {MAX_NEAR_KM:g} km."
            await self.reply(update, f"{limit} {esc(NEAR_USAGE)}")
            return
        query = " ".join(args[:-1])
        resolved = self.ruleset_provider().resolve(query)
        if resolved is None:
            await self.reply(update, self.unknown_reply(query, "place"))
            return
        if SubscriptionKind(resolved.kind) is not SubscriptionKind.PLACE:
            not_place = f"“{echo(query)}” is a {resolved.kind}, not a place."
            await self.reply(update, f"{not_place} {esc(NEAR_USAGE)}")
            return
        chat_id = await self.touch_chat(update)
        await self.db(subscriptions.add, chat_id, SubscriptionKind.NEAR, resolved.id, km)
        await self.reply(
            update,
            f"Watching rule matches within {km:g} km of <b>{esc(resolved.name)}</b> "
            f"(<code>{esc(alert_key(SubscriptionKind.NEAR, resolved.id))}</code>).",
        )

    async def unwatch(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = " ".join(context.args or []).strip()
        if not query:
            await self.reply(update, esc(UNWATCH_USAGE))
            return
        chat_id = self.chat_id(update)
        subs = await self.db(subscriptions.list_for_chat, chat_id)
        by_key = {s.alert_key: s for s in subs}
        target = self._unwatch_target(query, by_key)
        if target is None:
            if not subs:
                await self.reply(update, "This chat watches nothing.")
            else:
                missing = f"This chat does not watch “{echo(query)}”. See /list."
                await self.reply(update, f"{missing} {esc(UNWATCH_USAGE)}")
            return
        sub = by_key[target]
        await self.db(subscriptions.remove, chat_id, sub.kind, sub.target)
        await self.reply(update, f"Stopped watching {self.describe_target(sub.kind, sub.target, sub.km)}.")

    def _unwatch_target(self, query: str, by_key: dict[str, Subscription]) -> str | None:
        """The alert key of this chat's subscription that ``query`` names, if any."""
        if query in by_key:
            return query  # a key from /list: "near:azaz", "place:azaz", a rule id
        near = query.lower().startswith("near ")
        resolved = self.ruleset_provider().resolve(query[5:].strip() if near else query)
        if resolved is None:
            return None
        candidates = [alert_key(SubscriptionKind(resolved.kind), resolved.id)] if not near else []
        if SubscriptionKind(resolved.kind) is SubscriptionKind.PLACE:
            candidates.append(alert_key(SubscriptionKind.NEAR, resolved.id))  # "/unwatch Azaz" with only near
        return next((key for key in candidates if key in by_key), None)

    async def show_list(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = self.chat_id(update)
        watching = await self.watching_lines(chat_id)
        now = utcnow()
        chat = await self.db(subscriptions.get_chat, chat_id)
        mutes = await self.db(subscriptions.active_mutes, chat_id, now)
        lines = ["<b>This chat watches:</b>", *watching] if watching else [
            "This chat watches nothing. " + esc(WATCH_USAGE)
        ]
        prefs = chat.prefs if chat else None
        lines.extend(esc(line) for line in chatprefs.describe(prefs, now))
        lines.extend(esc(line) for line in chatprefs.describe_mutes(prefs, mutes))
        await self.reply(update, "\n".join(lines))

    async def stop(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = self.chat_id(update)
        removed = await self.db(subscriptions.remove_all, chat_id)
        await self.reply(
            update, f"Removed {removed} subscription(s). This chat gets no new alerts; /watch to start again."
        )

    async def migrated(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """The group became a supergroup (a new chat id): its subscriptions follow it."""
        message = update.effective_message
        if message is None or not message.migrate_to_chat_id or update.effective_chat is None:
            return
        moved = await self.db(subscriptions.move_chat, str(update.effective_chat.id),
                              str(message.migrate_to_chat_id), utcnow())
        log.info("chat %s became supergroup %s; %d pending alert(s) moved",
                 update.effective_chat.id, message.migrate_to_chat_id, moved)

    def button_handlers(self) -> dict[str, Handler]:
        """Callback-data pattern -> handler, for the buttons this side puts under its replies."""
        return {}

    async def plain_text(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """Text that is no command, in a private chat: a one-line hint."""
        await self.reply(update, "Commands start with /: try /watch Azaz, or /help.")

    async def unknown(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_chat is not None and update.effective_chat.type == "private":
            await self.reply(update, "Unknown command. See /help.")

def _parse_km(text: str) -> float | None:
    try:
        return float(text.lower().removesuffix("km").replace(",", "."))
    except ValueError:
        return None
