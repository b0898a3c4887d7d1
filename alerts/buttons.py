"""The buttons under an alert: "Mute <place, group or rule> 24 h" and "Unwatch".

``alerts.telegram.alert_buttons`` puts them on each alert; a press comes back as a callback query
whose data names the action and the alert key (or its hash, for keys over Telegram's 64 bytes).
In groups and channels only the chat's administrators are obeyed: ``alerts.bot`` wraps ``button``
in ``alerts.chatadmins``' gate.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from alerts import subscriptions
from alerts.botbase import BotCommands
from alerts.keys import SubscriptionKind, parse_alert_key
from alerts.telegram import callback_answer, callback_key
from core.store import utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection
    from telegram import Update
    from telegram.ext import ContextTypes

BUTTON_MUTE = timedelta(hours=24)


class AlertButtons(BotCommands):
    """Presses of the buttons under alerts."""

    async def button(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        action, _, key = (query.data or "").partition(":")
        if update.effective_chat is None or not key or action not in ("mute", "unwatch"):
            await query.answer("This button no longer works.")
            return
        chat_id = str(update.effective_chat.id)
        if key.startswith("#"):  # a key too long for callback_data travels as a hash
            found = await self.db(self._key_for_hash, chat_id, key[1:])
            if found is None:
                await query.answer("This button no longer works.")
                return
            key = found
        if action == "mute":
            until = utcnow() + BUTTON_MUTE
            await self.db(subscriptions.mute_rule, chat_id, key, until)
            await query.answer(callback_answer(f"Muted {self.key_name(key)} in this chat for 24 h."))
            return
        removed = await self.db(subscriptions.remove_key, chat_id, key)
        done = f"Unwatched {key}." if removed else f"This chat no longer watches {key}."
        await query.answer(callback_answer(done))

    def key_name(self, key: str) -> str:
        """What an alert key is about, in words, for a button's (plain text) answer: the place or
        group name, "matches near" a place, a rule's id and title; the key itself once the rules
        no longer define it."""
        kind, target = parse_alert_key(key)
        ruleset = self.ruleset_provider()
        if kind is SubscriptionKind.RULE:
            rule = ruleset.rules.get(target)
            # The id first: it is what /watch and /list show for a rule.
            return f"{key} ({rule.title})" if rule is not None and rule.title else key
        named = ruleset.groups if kind is SubscriptionKind.GROUP else ruleset.places
        item = named.get(target)
        if item is None or not item.name:
            return key
        return f"matches near {item.name}" if kind is SubscriptionKind.NEAR else item.name

    def _key_for_hash(self, conn: Connection, chat_id: str, digest: str) -> str | None:
        """The alert key whose ``alerts.telegram.callback_key`` is ``digest``: one of this chat's
        subscriptions, or a rule (notify chats have no subscription row)."""
        keys = [s.alert_key for s in subscriptions.list_for_chat(conn, chat_id)]
        keys.extend(self.ruleset_provider().rules)
        return next((k for k in keys if callback_key(k) == digest), None)
