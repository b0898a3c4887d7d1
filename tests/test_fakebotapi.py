"""The fake Bot API answers python-telegram-bot the way Telegram does (limits, errors, updates)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from fakebotapi import DEFAULT_TOKEN, FakeBotAPI, HTMLParseError, parse_telegram_html
from support.clock import FakeClock
from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram.error import BadRequest, Forbidden, InvalidToken, NetworkError, RetryAfter
from telegram.request import HTTPXRequest


@pytest.fixture
def fake():
    with FakeBotAPI() as server:
        yield server


def run(coro):
    return asyncio.run(coro)


def make_bot(fake: FakeBotAPI, token: str = DEFAULT_TOKEN) -> Bot:
    return Bot(token, base_url=f"{fake.url}/bot", request=HTTPXRequest(connection_pool_size=8))


def test_send_message_is_recorded_with_markup_and_preview_options(fake):
    async def go():
        async with make_bot(fake) as bot:
            me = await bot.get_me()
            msg = await bot.send_message(
                42, "<b>Hi</b> &amp; bye", parse_mode="HTML",
                link_preview_options=LinkPreviewOptions(is_disabled=True),
                reply_markup=InlineKeyboardMarkup([[InlineKeyboardButton("Mute", callback_data="mute:r1")]]),
            )
            return me, msg

    me, msg = run(go())
    assert me.username == "lookout_test_bot"
    [sent] = fake.messages(42)
    assert sent.message_id == msg.message_id
    assert sent.visible == "Hi & bye"
    assert sent.parse_mode == "HTML"
    assert sent.link_preview_options == {"is_disabled": True}
    assert sent.reply_markup["inline_keyboard"][0][0]["callback_data"] == "mute:r1"


def test_errors_like_telegram(fake):
    fake.block(7)
    fake.forget_chat(8)

    async def go():
        errors = {}
        async with make_bot(fake) as bot:
            for chat, text, mode in [(7, "x", None), (8, "x", None), (9, "<script>x</script>", "HTML"),
                                     (10, "a & b", "HTML"), (11, "é" * 4097, None), (12, "<b>x", "HTML")]:
                try:
                    await bot.send_message(chat, text, parse_mode=mode)
                except Exception as exc:
                    errors[chat] = exc
        return errors

    errors = run(go())
    assert isinstance(errors[7], Forbidden) and "blocked" in errors[7].message.lower()
    assert isinstance(errors[8], BadRequest) and "chat not found" in errors[8].message.lower()
    for chat in (9, 10, 12):
        assert isinstance(errors[chat], BadRequest)
        assert "can't parse entities" in errors[chat].message.lower()
    assert isinstance(errors[11], BadRequest) and "too long" in errors[11].message.lower()
    assert fake.messages() == []


def test_length_counts_utf16_after_entities(fake):
    emoji = "🔴"  # two UTF-16 code units
    async def go():
        async with make_bot(fake) as bot:
            await bot.send_message(1, "&lt;" * 4096, parse_mode="HTML")  # 4096 visible characters
            with pytest.raises(BadRequest, match=r"(?i)too long"):
                await bot.send_message(2, emoji * 2049)

    run(go())
    assert len(fake.messages(1)) == 1


def test_wrong_token_is_401(fake):
    async def go():
        async with make_bot(fake, token="999:wrong") as bot:
            await bot.get_me()

    with pytest.raises(InvalidToken):
        run(go())


def test_private_chat_second_message_within_a_second_is_429_with_retry_after(fake):
    async def go():
        async with make_bot(fake) as bot:
            await bot.send_message(5, "x")
            with pytest.raises(RetryAfter) as info:
                await bot.send_message(5, "x")
            await bot.send_message(6, "other chats flow")
            return info.value.retry_after

    retry_after = run(go())
    seconds = retry_after.total_seconds() if isinstance(retry_after, timedelta) else retry_after
    assert seconds >= 1
    assert fake.count_429 == 1
    assert len(fake.messages(6)) == 1


def test_group_limit_20_per_minute(fake):
    async def go():
        async with make_bot(fake) as bot:
            for _ in range(20):
                await bot.send_message(-100, "x")
            with pytest.raises(RetryAfter):
                await bot.send_message(-100, "x")

    run(go())
    assert len(fake.messages(-100)) == 20


def test_global_limit_30_per_second():
    with FakeBotAPI(private_burst=100) as fake:
        async def go():
            async with make_bot(fake) as bot:
                results = await asyncio.gather(
                    *(bot.send_message(1000 + i, "x") for i in range(35)), return_exceptions=True)
                return results

        results = run(go())
    assert sum(isinstance(r, RetryAfter) for r in results) == 5
    assert len(fake.messages()) == 30


def test_limits_go_by_the_clock_given():
    # Tests that pace sends in virtual time hand the fake their clock: it judges and stamps on it.
    clock = FakeClock()
    with FakeBotAPI(clock=clock) as fake:
        async def go():
            async with make_bot(fake) as bot:
                await bot.send_message(5, "x")
                with pytest.raises(RetryAfter):  # one a second, and no virtual time passed
                    await bot.send_message(5, "x")
                clock.advance(1.0)  # one token back
                await bot.send_message(5, "x")
                with pytest.raises(RetryAfter):
                    await bot.send_message(5, "x")

        run(go())
    assert [m.at for m in fake.messages(5)] == [clock.start, clock.start + 1.0]
    assert fake.count_429 == 2


def test_injected_faults_5xx_and_forced_429(fake):
    fake.fail_next(2, status=502, description="Bad Gateway")
    fake.force_429(chat_id=3, retry_after=2)

    async def go():
        async with make_bot(fake) as bot:
            for _ in range(2):
                with pytest.raises(NetworkError):
                    await bot.send_message(3, "x")
            with pytest.raises(RetryAfter):
                await bot.send_message(3, "x")
            with pytest.raises(RetryAfter):  # still flood-waiting
                await bot.send_message(3, "x")
            await bot.send_message(4, "fine")

    run(go())
    assert fake.count_5xx == 2 and fake.count_429 == 2
    assert [m.chat_id for m in fake.messages()] == ["4"]


def test_edit_and_location_and_updates():
    with FakeBotAPI(enforce_limits=False) as fake:  # three requests in a second to one chat
        _edit_location_updates(fake)


def _edit_location_updates(fake):
    fake.inject_message(55, "/watch Azaz")
    fake.inject_callback(55, "mute:r1", message_id=1)

    async def go():
        async with make_bot(fake) as bot:
            msg = await bot.send_message(55, "<b>a</b>", parse_mode="HTML")
            await bot.edit_message_text("<b>a</b>\nAlso: X", chat_id=55, message_id=msg.message_id,
                                        parse_mode="HTML")
            with pytest.raises(BadRequest, match=r"(?i)not modified"):
                await bot.edit_message_text("<b>a</b>\nAlso: X", chat_id=55, message_id=msg.message_id,
                                            parse_mode="HTML")
            await bot.send_location(55, latitude=36.58, longitude=37.04)
            updates = await bot.get_updates(timeout=0)
            await bot.answer_callback_query(updates[1].callback_query.id, text="Muted")
            later = await bot.get_updates(offset=updates[-1].update_id + 1, timeout=0)
            return updates, later

    updates, later = run(go())
    assert updates[0].message.text == "/watch Azaz"
    assert updates[0].message.entities[0].type == "bot_command"
    assert updates[1].callback_query.data == "mute:r1"
    assert later == ()
    [message] = fake.messages(55)
    assert message.edits == ["<b>a</b>\nAlso: X"]
    [pin] = fake.locations(55)
    assert (pin.latitude, pin.longitude) == (36.58, 37.04)
    assert fake.callback_answers[0]["text"] == "Muted"


@pytest.mark.parametrize("text", ["<b>ok</b>", '<a href="https://x/?a=1&amp;b=2">Read</a>',
                                  '<span class="tg-spoiler">s</span>', "<pre><code>x</code></pre>"])
def test_valid_html(text):
    parse_telegram_html(text)


@pytest.mark.parametrize("text", ["<b>x</i>", "<div>x</div>", "&nbsp;", "<span>x</span>", "a > b", "<b>"])
def test_invalid_html(text):
    with pytest.raises(HTMLParseError):
        parse_telegram_html(text)


def test_edits_count_against_the_chat_limit(fake):
    async def go():
        async with make_bot(fake) as bot:
            sent = await bot.send_message(-300, "first")
            for i in range(19):
                await bot.edit_message_text(f"edit {i}", chat_id=-300, message_id=sent.message_id)
            with pytest.raises(RetryAfter):  # 20 a minute in a group, messages and edits together
                await bot.edit_message_text("one too many", chat_id=-300, message_id=sent.message_id)

    run(go())
    assert len(fake.edit_times) == 19
    assert fake.count_429 == 1
