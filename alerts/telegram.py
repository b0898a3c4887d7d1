"""Senders: the one seam between the dispatcher and Telegram.

``Sender`` is what the dispatcher calls; ``PTBSender`` implements it with python-telegram-bot
(HTML parse mode, link previews off, the alert's inline buttons) and turns every Bot API error into
one of a few ``DeliveryError`` outcomes the dispatcher acts on. ``ConsoleSender`` prints what a
Telegram user would see (the demo and dry runs).

The bot token never leaves this module in clear: error texts are redacted before they are raised
(PTB puts the token in ``InvalidToken``'s message, httpx errors may carry the request URL).
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import logging
import re
import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Protocol, TextIO

from telegram import Bot, InlineKeyboardButton, InlineKeyboardMarkup, LinkPreviewOptions
from telegram import error as tg
from telegram.request import HTTPXRequest
from typing_extensions import override

from alerts.format import to_terminal
from core.logs import RedactingFilter

if TYPE_CHECKING:
    from collections.abc import Sequence

_BOT_URL_TOKEN = re.compile(r"bot\d+:[A-Za-z0-9_-]+")
_TOKEN_SHAPE = re.compile(r"\b\d{3,}:[A-Za-z0-9_-]{20,}\b")
CALLBACK_LIMIT = 64  # bytes Telegram allows in callback_data
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)  # alerts and replies never unfurl links


@dataclass(frozen=True)
class Button:
    text: str
    data: str  # callback_data, ≤ 64 bytes


# -- outcomes -------------------------------------------------------------------------------------

class DeliveryError(Exception):
    """A send did not go through; the subclass says what to do about it."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class RetryLater(DeliveryError):
    """429: this chat must wait ``retry_after`` seconds; retry this message only."""

    def __init__(self, reason: str, retry_after: float):
        super().__init__(reason)
        self.retry_after = retry_after


class ChatGone(DeliveryError):
    """403 blocked/kicked, 400 chat not found: pause the chat, cancel its pending alerts."""


class ChatMoved(DeliveryError):
    """400 with migrate_to_chat_id: the group became a supergroup; follow it to its new id."""

    def __init__(self, reason: str, new_chat_id: str):
        super().__init__(reason)
        self.new_chat_id = new_chat_id


class BadMarkup(DeliveryError):
    """400 can't parse entities: resend as plain text."""


class Transient(DeliveryError):
    """5xx, timeouts, network errors: back off and retry up to max_attempts."""


class Permanent(DeliveryError):
    """Any other refusal: retrying the same request will not help."""


class Fatal(DeliveryError):
    """The token is rejected: stop sending altogether, leave the queue as it is. ``status`` is
    Telegram's answer: 401 for a wrong or revoked token, 404 for one of the wrong form (or an
    ``api_url`` that is not a Bot API)."""

    def __init__(self, reason: str, status: int = 401):
        super().__init__(reason)
        self.status = status


class NotModified(DeliveryError):
    """An edit that changes nothing: already done."""


class Sender(Protocol):
    """Where the dispatcher sends alerts; each call returns Telegram's message id or raises a
    ``DeliveryError``."""

    async def send_message(self, chat_id: str, html: str, buttons: Sequence[Button] = ()) -> int: ...

    async def edit_message(self, chat_id: str, message_id: int, html: str,
                           buttons: Sequence[Button] = ()) -> None: ...

    async def send_location(self, chat_id: str, lat: float, lon: float) -> int: ...

    async def send_plain(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int: ...


# -- buttons --------------------------------------------------------------------------------------

def callback_data(action: str, alert_key: str) -> str:
    """``mute:<alert key>`` / ``unwatch:<alert key>``; keys too long for Telegram's 64 bytes become
    ``<action>:#<sha1 prefix>`` (``callback_key`` recomputes it to resolve the key)."""
    data = f"{action}:{alert_key}"
    if len(data.encode("utf-8")) <= CALLBACK_LIMIT:
        return data
    return f"{action}:#{callback_key(alert_key)}"


def callback_key(alert_key: str) -> str:
    return hashlib.sha1(alert_key.encode("utf-8")).hexdigest()[:20]


MAX_BUTTON_NAME = 32  # characters of a name on a button: the keyboard stays one row on a phone
CALLBACK_ANSWER_LIMIT = 200  # characters Telegram shows in a button's answer


def button_name(name: str) -> str:
    """A name as a button shows it: on one line, at most ``MAX_BUTTON_NAME`` characters."""
    clean = " ".join(name.split())
    return clean if len(clean) <= MAX_BUTTON_NAME else clean[: MAX_BUTTON_NAME - 1].rstrip() + "…"


def callback_answer(text: str) -> str:
    """``text`` within what Telegram shows of a button's answer."""
    limit = CALLBACK_ANSWER_LIMIT
    return text if len(text) <= limit else text[: limit - 1] + "…"


def alert_buttons(alert_key: str, name: str | None = None) -> tuple[Button, ...]:
    """The buttons under an alert; the mute button names what it mutes (the place, group or
    rule the alert is for), "this rule" when nothing names it."""
    return (
        Button(f"🔕 Mute {button_name(name or '') or 'this rule'} 24 h", callback_data("mute", alert_key)),
        Button("Unwatch", callback_data("unwatch", alert_key)),
    )


# -- redaction ------------------------------------------------------------------------------------

def redact(text: str, token: str | None = None) -> str:
    if token:
        text = text.replace(token, "[REDACTED]")
    text = _BOT_URL_TOKEN.sub("bot[REDACTED]", text)
    return _TOKEN_SHAPE.sub("[REDACTED]", text)


def _error_text(exc: BaseException, token: str | None) -> str:
    message = (exc.message if isinstance(exc, tg.TelegramError) else "") or str(exc) or type(exc).__name__
    return redact(f"{type(exc).__name__}: {message}", token)


def error_text(exc: BaseException, token: str | None = None) -> str:
    """``Type: message`` of any exception on one line, the token redacted: for log lines."""
    return " ".join(_error_text(exc, token).split())


def _rejection_status(exc: BaseException) -> int:
    """401 or 404: PTB raises ``InvalidToken`` for both and re-raises getMe's with the token in
    its text; Telegram's own description is on the exception or its cause."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, tg.TelegramError) and "not found" in seen.message.lower():
            return 404
        seen = seen.__cause__
    return 401


def classify(exc: BaseException, token: str | None = None) -> DeliveryError:
    """A python-telegram-bot exception as a delivery outcome (texts matched case-insensitively:
    PTB rewrites Telegram's descriptions, and BadRequest is a subclass of NetworkError)."""
    reason = _error_text(exc, token)
    text = reason.lower()
    if isinstance(exc, tg.RetryAfter):
        with warnings.catch_warnings():  # PTB 22 warns that int will become timedelta: both handled
            warnings.simplefilter("ignore")
            retry_after = exc.retry_after
        return RetryLater(reason, _seconds(retry_after))
    if isinstance(exc, tg.InvalidToken):
        return Fatal(reason, _rejection_status(exc))
    if isinstance(exc, tg.Forbidden):
        return ChatGone(reason)
    if isinstance(exc, tg.ChatMigrated):
        return ChatMoved(reason, str(exc.new_chat_id))
    if isinstance(exc, tg.BadRequest):
        if "not modified" in text:
            return NotModified(reason)
        if "can't parse entities" in text or "can not parse entities" in text or "unsupported start tag" in text:
            return BadMarkup(reason)
        if any(s in text for s in ("chat not found", "user not found", "bot was kicked", "chat_write_forbidden",
                                   "not enough rights", "have no rights", "user is deactivated",
                                   "peer_id_invalid", "bot is not a member")):
            return ChatGone(reason)
        return Permanent(reason)
    if isinstance(exc, tg.TimedOut | tg.NetworkError):
        return Transient(reason)  # includes 5xx answers (NetworkError "... (502)")
    if isinstance(exc, tg.TelegramError):
        return Permanent(reason)
    return Transient(reason)


def _seconds(value: int | float | timedelta) -> float:
    return value.total_seconds() if isinstance(value, timedelta) else float(value)


# -- python-telegram-bot -------------------------------------------------------------------------

class PTBSender(Sender):
    """Sends through ``telegram.Bot`` at ``api_url`` (the real Bot API, or the fake in tests)."""

    def __init__(self, token: str, api_url: str = "https://api.telegram.org", *, pool_size: int = 64,
                 read_timeout: float = 15.0) -> None:
        self._token = token
        _guard_logs(token)
        self.api_url = api_url.rstrip("/")
        request = HTTPXRequest(connection_pool_size=pool_size, read_timeout=read_timeout,
                               write_timeout=read_timeout, connect_timeout=10.0, pool_timeout=60.0)
        self._bot = Bot(token, base_url=f"{self.api_url}/bot", request=request)
        self._started = False

    def __repr__(self) -> str:
        return f"PTBSender(api_url={self.api_url!r})"

    async def start(self) -> None:
        """Check the token (getMe) and open the connection pool."""
        if not self._started:
            try:
                await self._bot.initialize()
            except BaseException as exc:  # also a cancellation mid-getMe
                with contextlib.suppress(Exception):  # getMe failed: close the pool it opened
                    await self._bot.shutdown()
                if isinstance(exc, Exception):
                    raise classify(exc, self._token) from None
                raise
            self._started = True

    async def close(self) -> None:
        if self._started:
            await self._bot.shutdown()
            self._started = False

    async def __aenter__(self) -> PTBSender:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @staticmethod
    def _markup(buttons: Sequence[Button]) -> InlineKeyboardMarkup | None:
        if not buttons:
            return None
        return InlineKeyboardMarkup([[InlineKeyboardButton(b.text, callback_data=b.data) for b in buttons]])

    @override
    async def send_message(self, chat_id: str, html: str, buttons: Sequence[Button] = ()) -> int:
        try:
            message = await self._bot.send_message(
                chat_id=chat_id, text=html, parse_mode="HTML", link_preview_options=NO_PREVIEW,
                reply_markup=self._markup(buttons),
            )
        except Exception as exc:
            raise classify(exc, self._token) from None
        return message.message_id

    @override
    async def send_plain(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        try:
            message = await self._bot.send_message(
                chat_id=chat_id, text=text, link_preview_options=NO_PREVIEW, reply_markup=self._markup(buttons),
            )
        except Exception as exc:
            raise classify(exc, self._token) from None
        return message.message_id

    @override
    async def edit_message(self, chat_id: str, message_id: int, html: str, buttons: Sequence[Button] = ()) -> None:
        try:
            await self._bot.edit_message_text(
                text=html, chat_id=chat_id, message_id=message_id, parse_mode="HTML",
                link_preview_options=NO_PREVIEW, reply_markup=self._markup(buttons),
            )
        except Exception as exc:
            raise classify(exc, self._token) from None

    @override
    async def send_location(self, chat_id: str, lat: float, lon: float) -> int:
        try:
            message = await self._bot.send_location(chat_id=chat_id, latitude=lat, longitude=lon)
        except Exception as exc:
            raise classify(exc, self._token) from None
        return message.message_id


def _guard_logs(token: str) -> None:
    """httpx logs each request URL, token included: redact on its logger whatever the handlers."""
    for name in ("httpx", "httpcore", "telegram.Bot", "telegram.ext.Updater", "telegram.ext.Application"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactingFilter) and token in f.secrets for f in logger.filters):
            logger.addFilter(RedactingFilter([token]))


class ConsoleSender(Sender):
    """Prints each alert as a Telegram user would read it (buttons under new alerts only)."""

    def __init__(self, stream: TextIO | None = None, *, ansi: bool | None = None) -> None:
        self.stream = stream or sys.stdout
        self.ansi = self.stream.isatty() if ansi is None else ansi
        self._ids = itertools.count(1)

    def __repr__(self) -> str:
        return "ConsoleSender()"

    @override
    async def send_message(self, chat_id: str, html: str, buttons: Sequence[Button] = ()) -> int:
        message_id = next(self._ids)
        keys = "   ".join(f"[{b.text}]" for b in buttons)
        self._print(f"── to {chat_id} · message {message_id} ──", to_terminal(html, ansi=self.ansi), keys)
        return message_id

    @override
    async def send_plain(self, chat_id: str, text: str, buttons: Sequence[Button] = ()) -> int:
        message_id = next(self._ids)
        self._print(f"── to {chat_id} · message {message_id} (plain) ──", text, "")
        return message_id

    @override
    async def edit_message(self, chat_id: str, message_id: int, html: str, buttons: Sequence[Button] = ()) -> None:
        self._print(f"── to {chat_id} · message {message_id} (edited) ──", to_terminal(html, ansi=self.ansi), "")

    @override
    async def send_location(self, chat_id: str, lat: float, lon: float) -> int:
        message_id = next(self._ids)
        self._print(f"── to {chat_id} · message {message_id} ──", f"📍 map pin {lat:.4f}, {lon:.4f}", "")
        return message_id

    def _print(self, header: str, body: str, keys: str) -> None:
        print(header, file=self.stream)
        print(body, file=self.stream)
        if keys:
            print(keys, file=self.stream)
        print(file=self.stream)
