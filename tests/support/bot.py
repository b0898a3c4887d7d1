"""The bot driven end to end for tests: python-telegram-bot long-polls the fake Bot API server
(tests/fakebotapi.py), a ``Harness`` "types" commands and presses buttons there as a user would
and reads what the bot answered and stored. Test modules make their ``fake`` fixture with
``generous_fake()``."""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

from fakebotapi import DEFAULT_TOKEN, FakeBotAPI, SentMessage
from pydantic import SecretStr
from test_subscriptions import make_ruleset

from alerts import subscriptions as subs
from alerts.bot import build_application, start_bot, stop_bot
from lookout.botreports import StatusReports
from lookout.config import Config, TelegramConfig

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

USER = 4242
GROUP = -100777
ADMIN = 999


class Harness:
    """A running bot plus ways to talk to it as a user would; ``/status`` and ``/sources`` are
    the service's reports (``lookout.botreports``) unless ``reports`` says otherwise."""

    def __init__(
        self, fake: FakeBotAPI, store: Any, telegram: dict[str, Any] | None = None, **callbacks: Any
    ):
        self.fake = fake
        self.store = store
        self.ruleset = make_ruleset()
        config = Config(
            database=store.url,
            telegram=TelegramConfig(
                token=SecretStr(DEFAULT_TOKEN), api_url=fake.url, admins=[ADMIN], **(telegram or {})
            ),
        )
        self.config = config
        callbacks.setdefault("reports", StatusReports(config, store))
        self.app = build_application(config.telegram, store, lambda: self.ruleset, **callbacks)

    async def __aenter__(self) -> Harness:
        await start_bot(self.app, self.config.telegram)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await stop_bot(self.app)

    async def wait(self, predicate: Callable[[], bool], within: float = 10.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the bot did not answer in time")
            await asyncio.sleep(0.002)  # a reply takes a few ms: a coarser poll would dominate

    async def say(self, text: str, chat_id: int = USER, **kw: Any) -> SentMessage:
        """Type ``text`` in the chat; the bot's reply."""
        before = len(self.fake.messages(chat_id))
        self.fake.inject_message(chat_id, text, **kw)
        await self.wait(lambda: len(self.fake.messages(chat_id)) > before)
        reply = self.fake.messages(chat_id)[before]
        assert reply.parse_mode == "HTML"  # every reply is HTML the fake managed to parse
        return reply

    async def press(self, data: str, chat_id: int = USER) -> dict[str, Any]:
        before = len(self.fake.callback_answers)
        self.fake.inject_callback(chat_id, data)
        await self.wait(lambda: len(self.fake.callback_answers) > before)
        return self.fake.callback_answers[before]

    def subs(self, chat_id: int = USER) -> list[tuple[str, str, float | None]]:
        with self.store.connect() as conn:
            return [(s.kind, s.target, s.km) for s in subs.list_for_chat(conn, str(chat_id))]

    def chat(self, chat_id: int = USER) -> Any:
        with self.store.connect() as conn:
            return subs.get_chat(conn, str(chat_id))


def drive(fake: FakeBotAPI, store: Any, scenario: Callable[[Harness], Awaitable[None]], **callbacks: Any):
    async def main() -> None:
        async with Harness(fake, store, **callbacks) as bot:
            await scenario(bot)

    asyncio.run(main())


def generous_fake() -> FakeBotAPI:
    """The fake Bot API for bot tests (enter it with ``with``): test users type faster than people
    do, so a generous per-chat burst keeps the scenarios quick (test_bot's
    test_reply_waits_out_a_flood_wait checks Telegram's own pacing)."""
    return FakeBotAPI(private_burst=1000)
