"""Who may change what a group or channel gets: its administrators, nobody else.

In a private chat the one user owns the chat. In a group, supergroup or channel, a subscription,
mute or digest set by the command of any member would change what everyone there receives, so the
commands and buttons that change a chat are kept for the chat's administrators, as Telegram
reports them (``getChatMember``). This module owns that check, the cache in front of it, and the
gate that ``alerts.bot`` wraps around those handlers (``ChatAdmins.command`` and
``ChatAdmins.button``). Lookout's own operators (``telegram.admins``, ``alerts.admincommands``)
are a different thing and are not looked at here.

Who counts as an administrator:

* a user whose ``getChatMember`` status is ``creator`` or ``administrator``;
* the chat itself as the sender: a channel's own posts (only its administrators can post) and a
  supergroup message sent "as the group" (an anonymous administrator): ``sender_chat`` is the chat.

A message sent as some other chat (a linked channel's forward, a user's personal channel) says
nothing about who sent it, so it is refused. When Telegram cannot be asked (a network error) the
gate refuses too, with a "try again": allowing would let any member through whenever the Bot API
hiccups.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING

from telegram import Chat, User
from telegram.constants import ChatMemberStatus
from telegram.error import TelegramError

from alerts.botbase import BotCommands
from alerts.format import esc
from alerts.telegram import callback_answer

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from telegram import Bot, Update
    from telegram.ext import ContextTypes

    from alerts.botbase import Handler

log = logging.getLogger(__name__)

ADMIN_TTL = 300.0  # seconds a getChatMember answer is trusted: a demoted admin loses rights within it
MAX_NAMED = 3  # administrators named in a refusal
MAX_CACHED = 4096  # entries kept before expired ones are swept out
PAGING_PREFIX = "page:"  # callback data of buttons that only turn a page of the bot's own reply

CHANGING_COMMANDS = frozenset({"watch", "near", "unwatch", "stop", "mute", "unmute", "quiet", "digest",
                               "pins", "tz"})
"""The commands that change a chat, gated in groups and channels (documentation: see below)."""
READ_ONLY_COMMANDS = frozenset({"start", "help", "list", "places", "groups", "rules"})
"""Commands anyone in a chat may use. Every other command is gated: a command added later is kept
for administrators until someone decides it is harmless (failing closed), so ``CHANGING_COMMANDS``
names the known ones, not the only ones."""

SHOW_WITHOUT_ARGUMENTS = frozenset({"tz"})
"""Commands that only show something when given no argument (and change it with one)."""

_ADMIN_STATUSES = frozenset({ChatMemberStatus.OWNER, ChatMemberStatus.ADMINISTRATOR})
_SHARED_CHATS = frozenset({Chat.GROUP, Chat.SUPERGROUP, Chat.CHANNEL})


class Verdict(Enum):
    """What the gate decided for one update."""

    ALLOWED = "allowed"
    REFUSED = "refused"  # a member, not an administrator
    UNCHECKED = "unchecked"  # Telegram could not be asked


@dataclass(frozen=True)
class AdminNames:
    names: tuple[str, ...]  # the first MAX_NAMED human administrators, as shown to users
    others: int  # human administrators beyond those
    expires: float


class ChatAdmins:
    """The administrator check with its cache, and the gate built on it.

    ``clock`` (``time.monotonic`` unless given) is what the cache's ``ttl`` goes by; tests hand
    it a fake one so that expiry needs no sleeping.
    """

    def __init__(self, *, ttl: float = ADMIN_TTL, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._members: dict[tuple[int, int], tuple[bool, float]] = {}  # (chat, user) -> (admin?, expires)
        self._names: dict[int, AdminNames] = {}

    # --- the check ------------------------------------------------------------------------------

    async def is_admin(self, bot: Bot, chat_id: int, user_id: int) -> bool:
        """Whether the user administers the chat; raises ``TelegramError`` when Telegram cannot say
        (such failures are not cached: the next command asks again)."""
        now = self.clock()
        cached = self._members.get((chat_id, user_id))
        if cached is not None and now < cached[1]:
            return cached[0]
        member = await bot.get_chat_member(chat_id, user_id)
        admin = member.status in _ADMIN_STATUSES
        self._remember(chat_id, user_id, admin, now)
        return admin

    def _remember(self, chat_id: int, user_id: int, admin: bool, now: float) -> None:
        if len(self._members) >= MAX_CACHED:  # busy groups: keep the cache bounded
            self._members = {k: v for k, v in self._members.items() if now < v[1]}
            if len(self._members) >= MAX_CACHED:
                self._members.clear()
        self._members[(chat_id, user_id)] = (admin, now + self.ttl)

    async def verdict(self, update: Update, bot: Bot) -> Verdict:
        """Whether the sender of ``update`` may change its chat."""
        chat = update.effective_chat
        if chat is None or chat.type not in _SHARED_CHATS:
            return Verdict.ALLOWED  # a private chat is its user's own; no chat: nothing to change
        # effective_sender is a message's sender_chat when it has one (a channel post, a message
        # "as the group"), else the user; for a button press it is always the user who pressed,
        # never the channel that the pressed alert was posted as.
        sender = update.effective_sender
        if isinstance(sender, Chat):
            return Verdict.ALLOWED if sender.id == chat.id else Verdict.REFUSED
        if not isinstance(sender, User):
            return Verdict.REFUSED
        try:
            admin = await self.is_admin(bot, chat.id, sender.id)
        except TelegramError as exc:
            log.warning("could not check whether user %s administers chat %s: %s", sender.id, chat.id, exc)
            return Verdict.UNCHECKED
        return Verdict.ALLOWED if admin else Verdict.REFUSED

    # --- what a refused member is told ----------------------------------------------------------

    async def admin_names(self, bot: Bot, chat_id: int) -> AdminNames:
        """The chat's human administrators to name in a refusal (none if Telegram cannot say)."""
        now = self.clock()
        cached = self._names.get(chat_id)
        if cached is not None and now < cached.expires:
            return cached
        try:
            members = await bot.get_chat_administrators(chat_id)
        except TelegramError as exc:  # the refusal stands without names
            log.warning("could not list the administrators of chat %s: %s", chat_id, exc)
            return AdminNames((), 0, now)
        humans = [_display_name(m.user) for m in members if not m.user.is_bot]
        found = AdminNames(tuple(humans[:MAX_NAMED]), max(0, len(humans) - MAX_NAMED), now + self.ttl)
        self._names[chat_id] = found
        return found

    async def refusal(self, update: Update, bot: Bot, verdict: Verdict) -> str:
        """Plain text for a member (or a failed check): who can change this chat's alerts."""
        chat = update.effective_chat
        assert chat is not None
        kind = "channel" if chat.type == Chat.CHANNEL else "group"
        if verdict is Verdict.UNCHECKED:
            return f"Could not check your rights in this {kind}; please try again."
        text = f"Only this {kind}'s administrators can change its alerts."
        admins = await self.admin_names(bot, chat.id)
        if admins.names:
            more = f" (or one of {admins.others} more)" if admins.others else ""
            text += f" Ask {_joined(admins.names)}{more}."
        return text

    # --- the gate -------------------------------------------------------------------------------

    def command(self, name: str, handler: Handler) -> Handler:
        """``handler`` for command ``name``, kept for administrators unless the command only reads."""
        if name in READ_ONLY_COMMANDS:
            return handler

        shows_without_arguments = name in SHOW_WITHOUT_ARGUMENTS

        @functools.wraps(handler)
        async def gated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            if shows_without_arguments and not context.args:  # "/tz" alone only shows the zone
                await handler(update, context)
                return

            async def tell(text: str) -> None:
                await BotCommands.reply(update, esc(text))  # replies are HTML; names are user-supplied

            await self._obey_or_refuse(update, context, handler, tell)

        return gated

    def button(self, handler: Handler) -> Handler:
        """``handler`` for inline buttons: a member's press is answered, not obeyed. Paging buttons
        (``page:...``) only turn the bot's own reply and pass for everyone."""

        @functools.wraps(handler)
        async def gated(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            query = update.callback_query
            if query is None or (query.data or "").startswith(PAGING_PREFIX):
                await handler(update, context)
                return

            async def tell(text: str) -> None:
                await query.answer(callback_answer(text))  # a button's answer is plain text

            await self._obey_or_refuse(update, context, handler, tell)

        return gated

    async def _obey_or_refuse(self, update: Update, context: ContextTypes.DEFAULT_TYPE, handler: Handler,
                              tell: Callable[[str], Awaitable[None]]) -> None:
        """Run ``handler`` for an administrator; tell anyone else who can."""
        verdict = await self.verdict(update, context.bot)
        if verdict is Verdict.ALLOWED:
            await handler(update, context)
            return
        await tell(await self.refusal(update, context.bot, verdict))


def _display_name(user: User) -> str:
    return f"@{user.username}" if user.username else user.full_name


def _joined(names: tuple[str, ...]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]
