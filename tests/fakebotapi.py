"""A fake Telegram Bot API server for tests and benches: stdlib only, on 127.0.0.1 port 0.

python-telegram-bot talks to it through ``Bot(token, base_url=f"{fake.url}/bot")``. It answers
like Telegram does where Lookout cares: flood limits (429 with ``retry_after``), blocked users
(403), unknown chats, invalid HTML and over-long texts (400), a wrong token (401). Faults are
injectable (5xx, slow answers, forced 429) and every accepted message is recorded for assertions.
Group administrators are set per chat (``set_admins``) and answered by ``getChatMember`` and
``getChatAdministrators``.

The limits are judged on ``clock`` (``time.monotonic`` unless given): tests that pace sends in
virtual time (tests/support/clock.py) hand it the same fake clock, and the fake then judges, and
stamps, each send at the virtual moment it was made. tests/test_fakebotapi.py checks the limits
themselves in real time.

Its HTML checker and length count are written independently of ``alerts.format`` on purpose: the
fake judges the formatter, it must not share its mistakes.
"""

from __future__ import annotations

import collections
import html
import itertools
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from collections.abc import Callable

DEFAULT_TOKEN = "123456:TEST-fake-token_abcdefghijklmnop"
DEFAULT_GROUP_USER = 1001
"""Who types and presses in a group unless told: its creator, unless ``set_admins`` says who is."""
GROUP_ANONYMOUS_BOT = {"id": 1087968824, "is_bot": True, "first_name": "Group", "username": "GroupAnonymousBot"}
"""The ``from`` Telegram puts on a message an anonymous administrator sends "as the group"."""

SEND_METHODS = frozenset({"sendMessage", "editMessageText", "sendLocation"})
# Methods that only need a harmless success answer.
_TRUE_METHODS = frozenset({
    "setMyCommands", "deleteMyCommands", "deleteWebhook", "setWebhook", "close", "logOut",
    "sendChatAction", "deleteMessage", "setChatMenuButton", "setMyDescription",
    "setMyShortDescription", "leaveChat",
})

# Telegram's HTML parse mode: allowed tags and the attributes each may carry.
_ALLOWED_TAGS = {
    "b": set(), "strong": set(), "i": set(), "em": set(), "u": set(), "ins": set(),
    "s": set(), "strike": set(), "del": set(), "a": {"href"}, "code": {"class"}, "pre": set(),
    "span": {"class"}, "tg-spoiler": set(), "blockquote": {"expandable"}, "tg-emoji": {"emoji-id"},
}
_TAG = re.compile(
    r"<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[A-Za-z-]+(?:\s*=\s*(?:\"[^\"]*\"|'[^']*'|[^\s\"'>]+))?)*)\s*>"
)
_ATTR = re.compile(r"([A-Za-z-]+)(?:\s*=\s*(?:\"([^\"]*)\"|'([^']*)'|([^\s\"'>]+)))?")
_ENTITY = re.compile(r"&(?:(lt|gt|amp|quot)|#([0-9]{1,7})|#[xX]([0-9a-fA-F]{1,6}));")


class HTMLParseError(ValueError):
    pass


def parse_telegram_html(text: str) -> str:
    """The text a user sees, or ``HTMLParseError`` with Telegram's kind of description."""
    out: list[str] = []
    stack: list[str] = []
    i = 0
    n = len(text)
    while i < n:
        ch = text[i]
        if ch == "<":
            m = _TAG.match(text, i)
            offset = len(text[:i].encode("utf-8"))
            if not m:
                raise HTMLParseError(f"Unclosed start tag at byte offset {offset}")
            closing, name, attrs = m.group(1), m.group(2).lower(), m.group(3)
            if name not in _ALLOWED_TAGS:
                kind = "end" if closing else "start"
                raise HTMLParseError(f'Unsupported {kind} tag "{name}" at byte offset {offset}')
            if closing:
                if not stack or stack[-1] != name:
                    raise HTMLParseError(
                        f'Unmatched end tag at byte offset {offset}, expected "</{stack[-1] if stack else ""}>", '
                        f'found "</{name}>"'
                    )
                stack.pop()
            else:
                found = {a.group(1).lower(): a.group(2) or a.group(3) or a.group(4) or ""
                         for a in _ATTR.finditer(attrs)}
                extra = set(found) - _ALLOWED_TAGS[name]
                if extra:
                    raise HTMLParseError(f'Unsupported attribute "{sorted(extra)[0]}" at byte offset {offset}')
                if name == "span" and found.get("class") != "tg-spoiler":
                    raise HTMLParseError(f'Tag "span" must have class "tg-spoiler" at byte offset {offset}')
                if name == "a" and "href" in found and not found["href"]:
                    raise HTMLParseError(f"Empty href at byte offset {offset}")
                stack.append(name)
            i = m.end()
        elif ch == "&":
            m = _ENTITY.match(text, i)
            if not m:
                offset = len(text[:i].encode("utf-8"))
                raise HTMLParseError(f"Unsupported HTML entity or unescaped \"&\" at byte offset {offset}")
            out.append(html.unescape(m.group(0)))
            i = m.end()
        elif ch == ">":
            offset = len(text[:i].encode("utf-8"))
            raise HTMLParseError(f'Unexpected ">" at byte offset {offset}')
        else:
            j = i
            while j < n and text[j] not in "<&>":
                j += 1
            out.append(text[i:j])
            i = j
    if stack:
        raise HTMLParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1]}"')
    return "".join(out)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass
class SentMessage:
    method: str  # sendMessage | sendLocation
    chat_id: str
    message_id: int
    text: str  # as sent (HTML when parse_mode is HTML)
    visible: str  # what the user sees
    parse_mode: str | None
    reply_markup: dict[str, Any] | None
    link_preview_options: dict[str, Any] | None
    disable_web_page_preview: bool | None
    at: float  # the fake's clock (time.monotonic() unless given) when accepted
    latitude: float | None = None
    longitude: float | None = None
    edits: list[str] = field(default_factory=list)  # later texts set by editMessageText


class _ApiError(Exception):
    def __init__(self, code: int, description: str, parameters: dict[str, Any] | None = None):
        super().__init__(description)
        self.code = code
        self.description = description
        self.parameters = parameters


class FakeBotAPI:
    """Start with ``with FakeBotAPI() as fake:`` (or ``start()``/``stop()``)."""

    def __init__(
        self,
        token: str = DEFAULT_TOKEN,
        *,
        enforce_limits: bool = True,
        global_per_second: int = 30,
        private_per_second: float = 1.0,
        private_burst: int = 1,  # Telegram: no more than one message a second in a chat
        group_per_minute: int = 20,
        slack: float = 0.05,  # timing tolerance in seconds (network jitter), like Telegram's own
        clock: Callable[[], float] = time.monotonic,  # what the limits and ``SentMessage.at`` go by
    ):
        self.token = token
        self.enforce_limits = enforce_limits
        self.global_per_second = global_per_second
        self.private_per_second = private_per_second
        self.private_burst = private_burst
        self.group_per_minute = group_per_minute
        self.slack = slack
        self.clock = clock

        self.lock = threading.RLock()
        self.updates_ready = threading.Condition(self.lock)
        self.sent: list[SentMessage] = []
        self.edit_times: list[tuple[str, float]] = []  # (chat, when) of each accepted edit
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.callback_answers: list[dict[str, Any]] = []
        self.commands: list[dict[str, Any]] = []
        self.webhook: dict[str, Any] = {"url": ""}
        self.unknown_methods: list[str] = []
        self.count_429 = 0
        self.count_5xx = 0
        self.blocked: set[str] = set()
        self.unknown_chats: set[str] = set()
        self.migrated: dict[str, str] = {}  # group id -> the supergroup it was upgraded to
        self.delay = 0.0  # seconds before answering each send method
        self.peak_concurrent_sends = 0  # most send requests open at once
        self._sends_open = 0
        self._slow_next: collections.deque[float] = collections.deque()
        self._fail_next: collections.deque[tuple[int, str]] = collections.deque()
        self._fail_calls: dict[str, collections.deque[tuple[int, str]]] = {}  # method -> failures
        self.admins: dict[str, list[dict[str, Any]]] = {}  # chat -> its administrators' users, owner first
        self._force_429: list[tuple[str | None, int]] = []  # (chat or None: any chat, retry_after)
        self._flood_until: dict[str, float] = {}
        self._global_times: collections.deque[float] = collections.deque()
        self._group_times: dict[str, collections.deque[float]] = {}
        self._private_tokens: dict[str, tuple[float, float]] = {}
        self._message_ids = itertools.count(1)
        self._update_ids = itertools.count(1)
        self._updates: list[dict[str, Any]] = []
        self._closing = False
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeBotAPI:
        handler = _make_handler(self)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval: ``stop()`` waits for serve_forever to notice (0.5 s by default).
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fakebotapi", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        with self.lock:
            self._closing = True
            self.updates_ready.notify_all()
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeBotAPI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        assert self._server is not None, "start() the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        """What python-telegram-bot's ``base_url`` wants."""
        return f"{self.url}/bot"

    @property
    def bot_id(self) -> int:
        return int(self.token.split(":", 1)[0])

    # -- fault injection ---------------------------------------------------------------------
    def fail_next(self, n: int, status: int = 500, description: str = "Internal Server Error") -> None:
        with self.lock:
            self._fail_next.extend([(status, description)] * n)

    def slow_next(self, n: int, seconds: float) -> None:
        """The next ``n`` sends are accepted (and recorded) but answered only after ``seconds``."""
        with self.lock:
            self._slow_next.extend([seconds] * n)

    def force_429(self, chat_id: int | str | None = None, retry_after: int = 1, times: int = 1) -> None:
        """The next ``times`` sends (to that chat, or any chat) answer 429 and flood-wait the chat."""
        with self.lock:
            self._force_429.extend([(None if chat_id is None else str(chat_id), retry_after)] * times)

    def fail_calls(self, method: str, n: int = 1, status: int = 500,
                   description: str = "Internal Server Error") -> None:
        """The next ``n`` calls of ``method`` (not a send: see ``fail_next``) fail with ``status``."""
        with self.lock:
            self._fail_calls.setdefault(method, collections.deque()).extend([(status, description)] * n)

    def set_admins(
        self, chat_id: int | str, user_ids: list[int], *, names: dict[int, str] | None = None,
        usernames: dict[int, str] | None = None, bots: list[int] | None = None,
    ) -> None:
        """The chat's administrators: the first of ``user_ids`` is its creator. ``names`` (first
        names, "Admin <id>" by default) and ``usernames`` describe them; ``bots`` are administrators
        too, but bots. Everyone else is a plain member. In a chat nobody set, the default user
        (``DEFAULT_GROUP_USER``) is its creator, so tests that do not care about rights pass."""
        names, usernames = names or {}, usernames or {}
        users: list[dict[str, Any]] = []
        for user_id in user_ids:
            name = names.get(user_id, f"Admin {user_id}")
            user: dict[str, Any] = {"id": user_id, "is_bot": False, "first_name": name}
            if user_id in usernames:
                user["username"] = usernames[user_id]
            users.append(user)
        users.extend({"id": b, "is_bot": True, "first_name": f"Bot {b}", "username": f"bot{b}_bot"}
                     for b in bots or [])
        with self.lock:
            self.admins[str(chat_id)] = users

    def block(self, *chat_ids: int | str) -> None:
        with self.lock:
            self.blocked.update(str(c) for c in chat_ids)

    def migrate(self, group: int | str, supergroup: int | str) -> None:
        """The group was upgraded to a supergroup: sends to the old id answer 400 with its new id."""
        with self.lock:
            self.migrated[str(group)] = str(supergroup)

    def forget_chat(self, *chat_ids: int | str) -> None:
        with self.lock:
            self.unknown_chats.update(str(c) for c in chat_ids)

    # -- updates (what users do) -------------------------------------------------------------
    def inject_update(self, update: dict[str, Any]) -> int:
        with self.lock:
            update = dict(update)
            update.setdefault("update_id", next(self._update_ids))
            self._updates.append(update)
            self.updates_ready.notify_all()
            return update["update_id"]

    def inject_message(
        self, chat_id: int, text: str, *, user_id: int | None = None, chat_type: str | None = None,
        username: str = "tester", chat_title: str | None = None, as_chat: bool = False,
        sender_chat: dict[str, Any] | None = None,
    ) -> int:
        """A user typing ``text`` in a chat; commands get their ``bot_command`` entity.

        ``as_chat``: an anonymous administrator sending "as the group" (``sender_chat`` is the
        chat, ``from`` Telegram's GroupAnonymousBot); ``sender_chat``: sent on behalf of some
        other chat (a user's channel, a linked channel)."""
        user_id = user_id if user_id is not None else (chat_id if chat_id > 0 else DEFAULT_GROUP_USER)
        chat = self._chat_json(chat_id, chat_type, chat_title, username)
        message: dict[str, Any] = {
            "message_id": next(self._message_ids), "date": int(time.time()), "chat": chat,
            "from": {"id": user_id, "is_bot": False, "first_name": username, "username": username},
            "text": text,
        }
        if as_chat:
            message["from"], message["sender_chat"] = dict(GROUP_ANONYMOUS_BOT), dict(chat)
        elif sender_chat is not None:
            message["sender_chat"] = sender_chat
        message.update(_command_entities(text))
        return self.inject_update({"message": message})

    def inject_channel_post(self, chat_id: int, text: str, *, chat_title: str | None = None) -> int:
        """A post in a channel: it has no ``from``, its sender is the channel itself."""
        chat = self._chat_json(chat_id, "channel", chat_title or f"Channel {chat_id}", "")
        post: dict[str, Any] = {"message_id": next(self._message_ids), "date": int(time.time()),
                                "chat": chat, "sender_chat": dict(chat), "text": text}
        post.update(_command_entities(text))
        return self.inject_update({"channel_post": post})

    @staticmethod
    def _chat_json(chat_id: int, chat_type: str | None, title: str | None, username: str) -> dict[str, Any]:
        chat_type = chat_type or ("private" if chat_id > 0 else "group")
        chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
        if chat_type == "private":
            chat["first_name"] = username
        else:
            chat["title"] = title or f"Group {chat_id}"
        return chat

    def inject_callback(
        self, chat_id: int, data: str, *, message_id: int | None = None, user_id: int | None = None,
        message_text: str = "alert", chat_type: str | None = None,
    ) -> int:
        """A user pressing an inline button under one of the bot's messages (in a channel the
        message was posted as the channel, so it carries ``sender_chat``; the presser is a user)."""
        user_id = user_id if user_id is not None else (chat_id if chat_id > 0 else DEFAULT_GROUP_USER)
        chat_type = chat_type or ("private" if chat_id > 0 else "group")
        query: dict[str, Any] = {
            "id": str(next(self._update_ids) * 1000 + 7),
            "from": {"id": user_id, "is_bot": False, "first_name": "tester"},
            "chat_instance": str(chat_id),
            "data": data,
            "message": {
                "message_id": message_id or next(self._message_ids), "date": int(time.time()),
                "chat": {"id": chat_id, "type": chat_type},
                "from": {"id": self.bot_id, "is_bot": True, "first_name": "Lookout"},
                "text": message_text,
            },
        }
        if chat_type == "channel":
            query["message"]["sender_chat"] = {"id": chat_id, "type": "channel", "title": f"Channel {chat_id}"}
        return self.inject_update({"callback_query": query})

    # -- assertions helpers ------------------------------------------------------------------
    def messages(self, chat_id: int | str | None = None) -> list[SentMessage]:
        with self.lock:
            return [m for m in self.sent if m.method == "sendMessage" and
                    (chat_id is None or m.chat_id == str(chat_id))]

    def locations(self, chat_id: int | str | None = None) -> list[SentMessage]:
        with self.lock:
            return [m for m in self.sent if m.method == "sendLocation" and
                    (chat_id is None or m.chat_id == str(chat_id))]

    def wait_for(self, predicate, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate():
                    return True
            time.sleep(0.01)
        return False

    # -- request handling --------------------------------------------------------------------
    def handle(self, token: str, method: str, params: dict[str, Any]) -> Any:
        if token != self.token:
            raise _ApiError(401, "Unauthorized")
        if method == "getUpdates":
            return self._get_updates(params)
        with self.lock:
            self.calls.append((method, params))
        if method in SEND_METHODS:
            with self.lock:
                late = self._slow_next.popleft() if self._slow_next else 0.0
                self._sends_open += 1
                self.peak_concurrent_sends = max(self.peak_concurrent_sends, self._sends_open)
            try:
                if self.delay:
                    time.sleep(self.delay)
                result = self._send(method, params)
                if late:
                    time.sleep(late)  # done, but the answer comes too late for the client
                return result
            finally:
                with self.lock:
                    self._sends_open -= 1
        return self._other(method, params)

    def _other(self, method: str, params: dict[str, Any]) -> Any:
        """Every method but getUpdates and the sends."""
        with self.lock:
            failures = self._fail_calls.get(method)
            if failures:
                status, description = failures.popleft()
                if status >= 500:
                    self.count_5xx += 1
                raise _ApiError(status, description)
            if method in ("getChatMember", "getChatAdministrators"):
                return self._members(method, params)
            if method == "getMe":
                return {"id": self.bot_id, "is_bot": True, "first_name": "Lookout",
                        "username": "lookout_test_bot", "can_join_groups": True,
                        "can_read_all_group_messages": False, "supports_inline_queries": False}
            if method == "answerCallbackQuery":
                self.callback_answers.append(params)
                return True
            if method == "setMyCommands":
                self.commands = _json_param(params, "commands") or []
                return True
            if method == "getMyCommands":
                return self.commands
            if method == "setWebhook":
                self.webhook = {"url": params.get("url", "")}
                return True
            if method == "deleteWebhook":
                self.webhook = {"url": ""}
                return True
            if method == "getWebhookInfo":
                return {**self.webhook, "has_custom_certificate": False, "pending_update_count": 0}
            if method in _TRUE_METHODS:
                return True
            self.unknown_methods.append(method)
        raise _ApiError(404, "Not Found: method not found")

    def _members(self, method: str, params: dict[str, Any]) -> Any:
        """getChatMember and getChatAdministrators, from ``set_admins`` (the default user its
        creator in a chat nobody set)."""
        chat = str(params.get("chat_id", ""))
        if chat in self.unknown_chats or not chat:
            raise _ApiError(400, "Bad Request: chat not found")
        admins = self.admins.get(chat)
        if admins is None:
            admins = [{"id": DEFAULT_GROUP_USER, "is_bot": False, "first_name": "tester", "username": "tester"}]
        members = [_member_json(u, "creator" if i == 0 else "administrator") for i, u in enumerate(admins)]
        if method == "getChatAdministrators":
            if not _is_group(chat):
                raise _ApiError(400, "Bad Request: there are no administrators in the private chat")
            return members
        user_id = int(params.get("user_id") or 0)
        found = next((m for m in members if m["user"]["id"] == user_id), None)
        return found or _member_json({"id": user_id, "is_bot": False, "first_name": f"User {user_id}"}, "member")

    def _get_updates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        offset = int(params.get("offset") or 0)
        limit = int(params.get("limit") or 100)
        timeout = min(float(params.get("timeout") or 0), 2.0)  # keep test shutdowns quick
        deadline = time.monotonic() + timeout
        with self.updates_ready:
            # Confirmed updates (id < offset) are gone for good, like on Telegram.
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            while not self._updates and not self._closing:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.updates_ready.wait(remaining)
            return list(self._updates[:limit])

    def _send(self, method: str, params: dict[str, Any]) -> Any:
        chat = str(params.get("chat_id", ""))
        now = self.clock()
        with self.lock:
            if self._fail_next:
                status, description = self._fail_next.popleft()
                self.count_5xx += 1
                raise _ApiError(status, description)
            if not chat:
                raise _ApiError(400, "Bad Request: chat_id is empty")
            if chat in self.unknown_chats:
                raise _ApiError(400, "Bad Request: chat not found")
            if chat in self.migrated:
                raise _ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                                {"migrate_to_chat_id": int(self.migrated[chat])})
            if chat in self.blocked:
                raise _ApiError(403, "Forbidden: bot was blocked by the user")
            for i, (target, retry_after) in enumerate(self._force_429):
                if target is None or target == chat:
                    del self._force_429[i]
                    self._flood_until[chat] = now + retry_after
                    self._too_many(retry_after)
            until = self._flood_until.get(chat)
            if until is not None and now < until - self.slack:
                self._too_many(max(1, round(until - now + 0.49)))
            if method == "editMessageText":
                self._check_edit(chat, params)
                if self.enforce_limits:  # an edit counts against the chat's limits like a message
                    self._check_limits(chat, now)
                return self._edit(chat, params)
            visible = ""
            text = ""
            parse_mode = params.get("parse_mode")
            if method == "sendMessage":
                text = str(params.get("text", ""))
                visible = self._visible(text, parse_mode)
            if self.enforce_limits:
                self._check_limits(chat, now)
            message_id = next(self._message_ids)
            record = SentMessage(
                method=method, chat_id=chat, message_id=message_id, text=text, visible=visible,
                parse_mode=parse_mode, reply_markup=_json_param(params, "reply_markup"),
                link_preview_options=_json_param(params, "link_preview_options"),
                disable_web_page_preview=_bool_param(params, "disable_web_page_preview"),
                at=now,
                latitude=float(params["latitude"]) if "latitude" in params else None,
                longitude=float(params["longitude"]) if "longitude" in params else None,
            )
            self.sent.append(record)
            result = self._message_json(chat, message_id, visible)
            if method == "sendLocation":
                result["location"] = {"latitude": record.latitude, "longitude": record.longitude}
            return result

    def _edit_target(self, chat: str, params: dict[str, Any]) -> SentMessage:
        message_id = int(params.get("message_id") or 0)
        target = next((m for m in self.sent if m.chat_id == chat and m.message_id == message_id
                       and m.method == "sendMessage"), None)
        if target is None:
            raise _ApiError(400, "Bad Request: message to edit not found")
        return target

    def _check_edit(self, chat: str, params: dict[str, Any]) -> None:
        """The refusals that come before the limits: no such message, bad HTML, no change."""
        target = self._edit_target(chat, params)
        text = str(params.get("text", ""))
        self._visible(text, params.get("parse_mode"))
        current = target.edits[-1] if target.edits else target.text
        if text == current:
            raise _ApiError(400, "Bad Request: message is not modified: specified new message content "
                                 "and reply markup are exactly the same as a current content and reply "
                                 "markup of the message")

    def _edit(self, chat: str, params: dict[str, Any]) -> Any:
        target = self._edit_target(chat, params)
        text = str(params.get("text", ""))
        target.edits.append(text)
        self.edit_times.append((chat, self.clock()))
        return self._message_json(chat, target.message_id, self._visible(text, params.get("parse_mode")))

    def _visible(self, text: str, parse_mode: Any) -> str:
        if parse_mode == "HTML":
            try:
                visible = parse_telegram_html(text)
            except HTMLParseError as exc:
                raise _ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        else:
            visible = text
        if not visible.strip():
            raise _ApiError(400, "Bad Request: message text is empty")
        if utf16_len(visible) > 4096:
            raise _ApiError(400, "Bad Request: message is too long")
        return visible

    def _check_limits(self, chat: str, now: float) -> None:
        window = self._global_times
        while window and window[0] <= now - (1.0 - self.slack):
            window.popleft()
        if len(window) >= self.global_per_second:
            self._too_many(1)
        if _is_group(chat):
            times = self._group_times.setdefault(chat, collections.deque())
            while times and times[0] <= now - (60.0 - self.slack):
                times.popleft()
            if len(times) >= self.group_per_minute:
                self._too_many(max(1, int(times[0] + 60.0 - now + 0.999)))
            times.append(now)
        else:
            tokens, last = self._private_tokens.get(chat, (float(self.private_burst), now))
            tokens = min(float(self.private_burst), tokens + (now - last) * self.private_per_second)
            if tokens < 1.0 - self.slack * self.private_per_second:
                self._private_tokens[chat] = (tokens, now)
                self._too_many(max(1, int((1.0 - tokens) / self.private_per_second + 0.999)))
            self._private_tokens[chat] = (tokens - 1.0, now)
        window.append(now)

    def _too_many(self, retry_after: int) -> None:
        self.count_429 += 1
        raise _ApiError(429, f"Too Many Requests: retry after {retry_after}", {"retry_after": retry_after})

    def _message_json(self, chat: str, message_id: int, text: str) -> dict[str, Any]:
        if chat.startswith("@"):
            chat_json: dict[str, Any] = {"id": -1000000000000 - (abs(hash(chat)) % 10**9), "type": "channel",
                                         "title": chat, "username": chat[1:]}
        elif int(chat) < 0:
            chat_json = {"id": int(chat), "type": "supergroup", "title": f"Group {chat}"}
        else:
            chat_json = {"id": int(chat), "type": "private", "first_name": "tester"}
        return {
            "message_id": message_id, "date": int(time.time()), "chat": chat_json,
            "from": {"id": self.bot_id, "is_bot": True, "first_name": "Lookout", "username": "lookout_test_bot"},
            "text": text,
        }


_ADMIN_RIGHTS = ("can_be_edited", "can_manage_chat", "can_delete_messages", "can_manage_video_chats",
                 "can_restrict_members", "can_promote_members", "can_change_info", "can_invite_users",
                 "can_post_stories", "can_edit_stories", "can_delete_stories")


def _member_json(user: dict[str, Any], status: str) -> dict[str, Any]:
    """A ChatMember as Telegram sends it: the fields each status requires."""
    member: dict[str, Any] = {"user": dict(user), "status": status}
    if status in ("creator", "administrator"):
        member["is_anonymous"] = False
    if status == "administrator":
        member.update(dict.fromkeys(_ADMIN_RIGHTS, True), can_be_edited=False)
    return member


def _command_entities(text: str) -> dict[str, Any]:
    if not text.startswith("/"):
        return {}
    return {"entities": [{"type": "bot_command", "offset": 0, "length": utf16_len(text.split()[0])}]}


def _is_group(chat: str) -> bool:
    return chat.startswith(("@", "-"))


def _json_param(params: dict[str, Any], name: str) -> Any:
    value = params.get(name)
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _bool_param(params: dict[str, Any], name: str) -> bool | None:
    value = _json_param(params, name)
    return None if value is None else bool(value)


def _make_handler(fake: FakeBotAPI) -> type[BaseHTTPRequestHandler]:
    path_re = re.compile(r"^/bot([^/]+)/([A-Za-z]+)/?$")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # TCP_NODELAY: with Nagle's algorithm the answer's body (a second small write after the
        # headers) waits for the client's delayed ACK, about 40 ms per request on Linux.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # the token is in every path
            pass

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            path, _, query = self.path.partition("?")
            m = path_re.match(path)
            if not m:
                self._answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
                return
            params: dict[str, Any] = dict(parse_qsl(query))
            ctype = self.headers.get("Content-Type", "")
            if body and "json" in ctype:
                params.update(json.loads(body))
            elif body:
                params.update(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
            try:
                result = fake.handle(m.group(1), m.group(2), params)
            except _ApiError as exc:
                payload: dict[str, Any] = {"ok": False, "error_code": exc.code, "description": exc.description}
                if exc.parameters:
                    payload["parameters"] = exc.parameters
                self._answer(exc.code, payload)
                return
            self._answer(200, {"ok": True, "result": result})

        def _answer(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload, ensure_ascii=False).encode("utf-8")
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): like Telegram, the message stays sent

    return Handler
