"""Groups and channels: only a chat's administrators change what it gets (alerts.chatadmins).

The bot runs end to end against the fake Bot API, which answers ``getChatMember`` and
``getChatAdministrators`` from the administrators a test sets (``fake.set_admins``). The check's
cache runs on a clock the test moves, so expiry takes no sleeping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import select
from support.bot import USER, Harness, drive, generous_fake
from telegram.ext import CallbackQueryHandler, CommandHandler

from alerts import subscriptions as subs
from alerts.chatadmins import CHANGING_COMMANDS, READ_ONLY_COMMANDS, ChatAdmins
from alerts.subscribercommands import SubscriberCommands
from core.store import rule_mutes

if TYPE_CHECKING:
    from telegram import Update
    from telegram.ext import ContextTypes

SUPERGROUP = -1005550
CHANNEL = -1006660
OWNER, ADMIN2, MEMBER = 501, 502, 777
REFUSED = "Only this group's administrators can change its alerts."


@pytest.fixture
def fake():
    with generous_fake() as server:
        server.set_admins(SUPERGROUP, [OWNER, ADMIN2], names={OWNER: "Alice <ops>"}, usernames={ADMIN2: "bob"},
                          bots=[8001])
        server.set_admins(CHANNEL, [OWNER])
        yield server


class Clock:
    """What ChatAdmins' cache goes by: moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def member_checks(fake: Any) -> list[tuple[str, str]]:
    return [(str(p["chat_id"]), str(p["user_id"])) for m, p in fake.calls if m == "getChatMember"]


async def say(bot: Harness, text: str, user_id: int, chat_id: int = SUPERGROUP, **kw: Any) -> str:
    """``text`` typed in the supergroup by ``user_id``; what the bot answered, as seen."""
    return (await bot.say(text, chat_id=chat_id, user_id=user_id, chat_type="supergroup", **kw)).visible


async def press(bot: Harness, data: str, user_id: int, chat_id: int = SUPERGROUP,
                chat_type: str = "supergroup") -> str:
    """A button under an alert pressed by ``user_id`` (Harness.press has no user); its answer."""
    before = len(bot.fake.callback_answers)
    bot.fake.inject_callback(chat_id, data, user_id=user_id, chat_type=chat_type)
    await bot.wait(lambda: len(bot.fake.callback_answers) > before)
    return str(bot.fake.callback_answers[before].get("text", ""))


async def post(bot: Harness, text: str, chat_id: int = CHANNEL) -> str:
    """A channel post; the bot's reply in the channel."""
    before = len(bot.fake.messages(chat_id))
    bot.fake.inject_channel_post(chat_id, text)
    await bot.wait(lambda: len(bot.fake.messages(chat_id)) > before)
    return bot.fake.messages(chat_id)[before].visible


def test_members_are_refused_and_administrators_obeyed_in_a_supergroup(fake, store):
    async def scenario(bot: Harness) -> None:
        refusal = await say(bot, "/watch Azaz", MEMBER)
        assert refusal.startswith(REFUSED)
        # Named as the chat's humans: a first name (escaped in the HTML, shown as given), an
        # @username; the administrator bot is left out.
        assert "Ask Alice <ops> or @bob." in refusal and "bot8001" not in refusal
        assert bot.subs(SUPERGROUP) == [] and bot.chat(SUPERGROUP) is None  # not even recorded

        assert "Watching place Azaz" in await say(bot, "/watch Azaz", ADMIN2)
        assert "Watching place Manbij" in await say(bot, "/watch Manbij", OWNER)  # the creator too
        prefs = bot.chat(SUPERGROUP)
        for command in ("/stop", "/unwatch Azaz", "/near Kafrah 10", "/mute 2h", "/digest hourly", "/pins on",
                        "/quiet 23:00-07:00", "/unmute"):
            assert (await say(bot, command, MEMBER)).startswith(REFUSED), command
        assert bot.subs(SUPERGROUP) == [("place", "azaz", None), ("place", "manbij", None)]
        assert bot.chat(SUPERGROUP) == prefs  # no preference changed either

        # Reading is for everyone.
        assert "place:azaz" in await say(bot, "/list", MEMBER)
        assert "place Manbij" in await say(bot, "/help", MEMBER)

        assert "Removed 2 subscription(s)" in await say(bot, "/stop", OWNER)
        assert bot.subs(SUPERGROUP) == []

    drive(fake, store, scenario)


def test_a_plain_group_is_gated_and_a_private_chat_is_not(fake, sqlite_store):
    group = -4242
    fake.set_admins(group, [OWNER])

    async def scenario(bot: Harness) -> None:
        reply = await bot.say("/watch Azaz", chat_id=group, user_id=MEMBER)  # chat type "group"
        assert reply.visible == REFUSED + " Ask Admin 501."
        assert bot.subs(group) == []
        assert "Watching place Azaz" in (await bot.say("/watch Azaz", chat_id=group, user_id=OWNER)).visible

        calls = len(member_checks(fake))
        assert "Watching place Azaz" in (await bot.say("/watch Azaz")).visible  # USER, privately
        assert "Removed 1 subscription(s)" in (await bot.say("/stop")).visible
        assert "Muted" in await press(bot, "mute:place:azaz", USER, chat_id=USER, chat_type="private")
        assert len(member_checks(fake)) == calls  # Telegram was not asked about a private chat

    drive(fake, sqlite_store, scenario)


def test_a_member_s_button_press_is_answered_not_obeyed(fake, sqlite_store):
    with sqlite_store.begin() as conn:
        subs.add(conn, str(SUPERGROUP), "place", "kafrah")
        subs.add(conn, str(SUPERGROUP), "group", "isis")

    def mutes() -> list[tuple[str, str]]:
        with sqlite_store.connect() as conn:
            return [(m.chat_id, m.alert_key) for m in conn.execute(select(rule_mutes))]

    async def scenario(bot: Harness) -> None:
        answer = await press(bot, "mute:place:kafrah", MEMBER)
        assert answer == REFUSED + " Ask Alice <ops> or @bob."  # plain text: no escaping
        assert "administrators" in await press(bot, "unwatch:group:isis", MEMBER)
        assert mutes() == []
        assert bot.subs(SUPERGROUP) == [("group", "isis", None), ("place", "kafrah", None)]

        # An administrator's press is obeyed, and the answer names what it mutes.
        assert await press(bot, "mute:place:kafrah", ADMIN2) == "Muted Kafrah in this chat for 24 h."
        assert mutes() == [(str(SUPERGROUP), "place:kafrah")]
        assert await press(bot, "mute:group:isis", ADMIN2) == "Muted Islamic State in this chat for 24 h."
        assert await press(bot, "mute:near:azaz", ADMIN2) == "Muted matches near Azaz in this chat for 24 h."
        assert await press(bot, "mute:is-near-azaz", ADMIN2) == (
            "Muted is-near-azaz (Islamic State near the Azaz corridor) in this chat for 24 h.")
        assert await press(bot, "mute:place:atlantis", ADMIN2) == "Muted place:atlantis in this chat for 24 h."
        assert await press(bot, "unwatch:group:isis", OWNER) == "Unwatched group:isis."
        assert bot.subs(SUPERGROUP) == [("place", "kafrah", None)]

    drive(fake, sqlite_store, scenario)


def test_other_button_handlers_are_gated_except_paging(fake, sqlite_store, monkeypatch):
    # The buttons another side adds (SubscriberCommands.button_handlers): a "Watch" button changes
    # the chat, a page turn does not.
    pressed: list[str] = []

    async def handler(update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.callback_query is not None
        pressed.append(update.callback_query.data or "")
        await update.callback_query.answer("done")

    monkeypatch.setattr(SubscriberCommands, "button_handlers",
                        lambda self: {r"^watch:": handler, r"^page:": handler})

    async def scenario(bot: Harness) -> None:
        assert (await press(bot, "watch:place:azaz", MEMBER)).startswith(REFUSED)
        assert pressed == []
        calls = len(member_checks(fake))
        assert await press(bot, "page:2", MEMBER) == "done"
        assert pressed == ["page:2"] and len(member_checks(fake)) == calls  # no check for paging
        assert await press(bot, "watch:place:azaz", OWNER) == "done"
        assert pressed == ["page:2", "watch:place:azaz"]

    drive(fake, sqlite_store, scenario)


def test_channel_posts_count_as_its_administrators(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        assert "Watching place Azaz" in await post(bot, "/watch Azaz")
        assert bot.subs(CHANNEL) == [("place", "azaz", None)]
        assert bot.chat(CHANNEL).kind == "channel"
        assert "Map pins on" in await post(bot, "/pins on")
        assert member_checks(fake) == []  # the channel itself posted: nobody to ask about

        # A button under an alert the bot posted in the channel: the message is the channel's,
        # the press is a user's, and a user who is no administrator is refused.
        answer = await press(bot, "unwatch:place:azaz", MEMBER, chat_id=CHANNEL, chat_type="channel")
        assert answer.startswith("Only this channel's administrators can change its alerts.")
        assert bot.subs(CHANNEL) == [("place", "azaz", None)]
        assert await press(bot, "unwatch:place:azaz", OWNER, chat_id=CHANNEL, chat_type="channel") == (
            "Unwatched place:azaz.")

        assert "Removed 0 subscription(s)" in await post(bot, "/stop")

    drive(fake, sqlite_store, scenario)


def test_sent_as_the_group_is_an_administrator_sent_as_another_chat_is_not(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        # An anonymous administrator: sender_chat is the supergroup itself.
        assert "Watching place Azaz" in await say(bot, "/watch Azaz", MEMBER, as_chat=True)
        assert member_checks(fake) == []
        # On behalf of a personal channel: who sent it is unknown, so it is refused.
        elsewhere = {"id": -100999, "type": "channel", "title": "Someone's channel"}
        assert (await say(bot, "/stop", OWNER, sender_chat=elsewhere)).startswith(REFUSED)
        assert bot.subs(SUPERGROUP) == [("place", "azaz", None)]

    drive(fake, sqlite_store, scenario)


def test_the_check_is_cached_per_chat_and_user_for_five_minutes(fake, sqlite_store):
    clock = Clock()

    async def scenario(bot: Harness) -> None:
        assert "Watching" in await say(bot, "/watch Azaz", ADMIN2)
        assert "Watching" in await say(bot, "/watch Manbij", ADMIN2)
        clock.now += 150
        assert "Stopped watching" in await say(bot, "/unwatch Azaz", ADMIN2)
        assert "Watching" in await say(bot, "/watch Azaz", ADMIN2)
        assert member_checks(fake) == [(str(SUPERGROUP), str(ADMIN2))]  # asked once

        assert (await say(bot, "/stop", MEMBER)).startswith(REFUSED)
        assert (await say(bot, "/stop", MEMBER)).startswith(REFUSED)
        assert member_checks(fake).count((str(SUPERGROUP), str(MEMBER))) == 1  # per user, refusals too

        # Demoted: within the cache time the old answer stands, after it Telegram is asked again.
        fake.set_admins(SUPERGROUP, [OWNER])
        clock.now += 149  # 299 s after the first check
        assert "Stopped watching" in await say(bot, "/unwatch Manbij", ADMIN2)
        clock.now += 2
        assert (await say(bot, "/stop", ADMIN2)).startswith(REFUSED)
        assert member_checks(fake).count((str(SUPERGROUP), str(ADMIN2))) == 2
        assert bot.subs(SUPERGROUP) == [("place", "azaz", None)]

    drive(fake, sqlite_store, scenario, chat_admins=ChatAdmins(clock=clock))


def test_a_failed_check_refuses_and_is_not_cached(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        fake.fail_calls("getChatMember", 2, status=502, description="Bad Gateway")
        reply = await say(bot, "/watch Azaz", OWNER)
        assert reply == "Could not check your rights in this group; please try again."
        assert bot.subs(SUPERGROUP) == []
        answer = await press(bot, "mute:place:azaz", OWNER)
        assert answer == "Could not check your rights in this group; please try again."
        assert "Watching place Azaz" in await say(bot, "/watch Azaz", OWNER)  # asked again: allowed
        # getChatAdministrators failing leaves the refusal without names.
        fake.fail_calls("getChatAdministrators", 1)
        assert await say(bot, "/stop", MEMBER) == REFUSED
        assert bot.subs(SUPERGROUP) == [("place", "azaz", None)]

    drive(fake, sqlite_store, scenario)


def test_every_changing_command_is_gated_where_it_is_registered(fake, sqlite_store):
    async def handler(_update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        return None

    gate = ChatAdmins()
    assert gate.command("tz", handler) is not handler  # gated by name before it exists
    assert gate.command("someday", handler) is not handler  # a command nobody called harmless
    for name in READ_ONLY_COMMANDS:
        assert gate.command(name, handler) is handler

    async def scenario(bot: Harness) -> None:
        handlers = [h for group in bot.app.handlers.values() for h in group]
        commands = {name: h for h in handlers if isinstance(h, CommandHandler) for name in h.commands}
        registered = CHANGING_COMMANDS & commands.keys()
        assert registered >= CHANGING_COMMANDS - {"tz"}
        for name in registered:
            assert hasattr(commands[name].callback, "__wrapped__"), name
        for name in READ_ONLY_COMMANDS & commands.keys():
            assert not hasattr(commands[name].callback, "__wrapped__"), name
        mute = next(h for h in handlers if isinstance(h, CallbackQueryHandler) and h.pattern is not None
                    and h.pattern.match("mute:x"))
        assert hasattr(mute.callback, "__wrapped__")

    drive(fake, sqlite_store, scenario)


def test_tz_alone_shows_the_zone_to_anyone_and_only_administrators_set_it(fake, sqlite_store):
    async def scenario(bot: Harness) -> None:
        calls = len(member_checks(fake))
        shown = await say(bot, "/tz", MEMBER)
        assert "UTC" in shown and not shown.startswith(REFUSED)
        assert len(member_checks(fake)) == calls  # showing asks Telegram nothing
        assert (await say(bot, "/tz Europe/Istanbul", MEMBER)).startswith(REFUSED)
        assert bot.chat(SUPERGROUP) is None or bot.chat(SUPERGROUP).tz is None
        assert "Europe/Istanbul" in await say(bot, "/tz Europe/Istanbul", OWNER)
        assert bot.chat(SUPERGROUP).tz == "Europe/Istanbul"

    drive(fake, sqlite_store, scenario)
