"""The Telegram bot: subscriber commands, admin commands and the buttons under alerts.

Built on python-telegram-bot's ``Application``; every handler is a small async method of
``BotHandlers`` that does its store work in a worker thread (``asyncio.to_thread``) so the
event loop never blocks. Replies are HTML with every user- or rule-supplied piece escaped.
``build_application`` wires it up; ``start_bot``/``stop_bot`` (inside a running loop, as the
service does) choose long polling or, when ``telegram.webhook_url`` is set, a webhook.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import html
import inspect
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from sqlalchemy import func, select
from telegram import BotCommand, LinkPreviewOptions, Update
from telegram.constants import ParseMode
from telegram.ext import (
    AIORateLimiter,
    Application,
    CallbackQueryHandler,
    CommandHandler,
    ContextTypes,
    Defaults,
    MessageHandler,
    filters,
)

from alerts import chatprefs, subscriptions
from alerts.chatprefs import PrefError
from core.store import Store, crawl_failures, outbox, sources, utcnow

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection

    from alerts.config import TelegramConfig
    from rules.model import Ruleset

log = logging.getLogger(__name__)
T = TypeVar("T")
Callback = Callable[..., Awaitable[str | None] | str | None]
esc = html.escape
MAX_REPLY = 4000  # under Telegram's 4096, leaving room for a closing line
_TAG = re.compile(r"<[^>]*>")
BUTTON_MUTE = timedelta(hours=24)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)

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
PINS_USAGE = "Usage: /pins on | off"
CRAWL_USAGE = "Usage: /crawl <source> (see /sources)"
MAX_NEAR_KM = 500.0


def _clip(text: str) -> str:
    """A reply within MAX_REPLY, cut at a line end (each line's tags are balanced) so no tag or
    entity is split; one over-long line goes out as its visible text, cut and escaped again."""
    if len(text) <= MAX_REPLY:
        return text
    head = text[: MAX_REPLY - 2]
    if "\n" in head:
        return head.rsplit("\n", 1)[0] + "\n…"
    out, size = [], 0
    for ch in html.unescape(_TAG.sub("", text)):
        piece = esc(ch)
        if size + len(piece) > MAX_REPLY - 1:
            break
        out.append(piece)
        size += len(piece)
    return "".join(out) + "…"


def _echo(user_text: str, limit: int = 80) -> str:
    """User input quoted back in a reply: shortened, escaped."""
    text = " ".join(user_text.split())
    return esc(text if len(text) <= limit else text[: limit - 1] + "…")


def _chat_kind(telegram_type: str | None) -> str:
    return {"supergroup": "group", "group": "group", "channel": "channel"}.get(telegram_type or "", "private")


class BotHandlers:
    """The bot's handlers, sharing the store, config, current ruleset and service callbacks."""

    def __init__(
        self, config: TelegramConfig, store: Store, ruleset_provider: Callable[[], Ruleset], *,
        on_crawl: Callback | None = None, on_reload: Callback | None = None,
    ):
        self.config = config
        self.store = store
        self.ruleset_provider = ruleset_provider
        self.on_crawl = on_crawl
        self.on_reload = on_reload
        self.admins = {str(a) for a in config.admins}

    # --- plumbing ------------------------------------------------------------------------------

    async def db(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(conn, ...)`` in one transaction, off the event loop."""
        def work() -> T:
            with self.store.begin() as conn:
                return fn(conn, *args, **kwargs)

        return await asyncio.to_thread(work)

    @staticmethod
    async def reply(update: Update, text: str) -> None:
        if update.effective_message is not None:
            await update.effective_message.reply_text(_clip(text))

    @staticmethod
    def chat_id(update: Update) -> str:
        assert update.effective_chat is not None
        return str(update.effective_chat.id)

    async def touch_chat(self, update: Update) -> str:
        """Record the chat (kind, title); a chat that writes to us is no longer paused."""
        chat = update.effective_chat
        assert chat is not None
        title = chat.title or chat.username or chat.full_name
        await self.db(subscriptions.ensure_chat, str(chat.id), kind=_chat_kind(chat.type),
                      title=title, unpause=True)
        return str(chat.id)

    def is_admin(self, update: Update) -> bool:
        return update.effective_chat is not None and str(update.effective_chat.id) in self.admins

    def describe_target(self, kind: str, target: str, km: float | None = None) -> str:
        ruleset = self.ruleset_provider()
        table = {"place": "places", "near": "places", "group": "groups", "rule": "rules"}[kind]
        obj = (getattr(ruleset, table, {}) or {}).get(target)
        name = getattr(obj, "name", None) or getattr(obj, "title", None)
        gone = "" if obj is not None else " (no longer defined in the rules)"
        label = f"{esc(str(name))} " if name else ""
        key = subscriptions.rule_key(kind, target)
        if kind == "near":
            return f"near {label}within {km:g} km <code>{esc(key)}</code>{gone}"
        return f"{kind} {label}<code>{esc(key)}</code>{gone}"

    async def watching_lines(self, chat_id: str) -> list[str]:
        subs = await self.db(subscriptions.list_for_chat, chat_id)
        return [f"• {self.describe_target(s.kind, s.target, s.km)}" for s in subs]

    def unknown_reply(self, query: str, what: str = "place, group or rule") -> str:
        suggestions = self.ruleset_provider().suggest(query, n=3)
        text = f"Unknown {what} “{_echo(query)}”."
        if suggestions:
            text += " Did you mean: " + ", ".join(f"<code>{esc(s)}</code>" for s in suggestions) + "?"
        return text + "\nUse a place, group or rule id, name or alias from the rule files."

    # --- subscriber commands -------------------------------------------------------------------

    async def start(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
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
        row = await self.db(subscriptions.get_chat, chat_id)
        lines.extend(esc(line) for line in chatprefs.describe(row, utcnow()))
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
        chat_id = await self.touch_chat(update)
        added = await self.db(subscriptions.add, chat_id, resolved.kind, resolved.id)
        what = f"{resolved.kind} <b>{esc(resolved.name)}</b> (<code>{esc(resolved.id)}</code>)"
        if not added:
            await self.reply(update, f"This chat already watches {what}.")
            return
        scope = {
            "place": "every new article that mentions it",
            "group": "every new article that mentions it",
            "rule": "every match of this rule",
        }[resolved.kind]
        await self.reply(update, f"Watching {what}: you will get {scope}.")

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
        ruleset = self.ruleset_provider()
        resolved = ruleset.resolve(query)
        if resolved is None or resolved.kind != "place":
            if resolved is None:
                await self.reply(update, self.unknown_reply(query, "place"))
            else:
                not_place = f"“{_echo(query)}” is a {resolved.kind}, not a place."
                await self.reply(update, f"{not_place} {esc(NEAR_USAGE)}")
            return
        chat_id = await self.touch_chat(update)
        await self.db(subscriptions.add, chat_id, "near", resolved.id, km)
        await self.reply(
            update,
            f"Watching rule matches within {km:g} km of <b>{esc(resolved.name)}</b> "
            f"(<code>{esc(subscriptions.rule_key('near', resolved.id))}</code>).",
        )

    async def unwatch(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = context.args or []
        query = " ".join(args).strip()
        if not query:
            await self.reply(update, esc(UNWATCH_USAGE))
            return
        chat_id = self.chat_id(update)
        subs = await self.db(subscriptions.list_for_chat, chat_id)
        keys = {s.rule_key: s for s in subs}
        target = self._unwatch_target(query, keys)
        if target is None:
            if not subs:
                await self.reply(update, "This chat watches nothing.")
            else:
                missing = f"This chat does not watch “{_echo(query)}”. See /list."
                await self.reply(update, f"{missing} {esc(UNWATCH_USAGE)}")
            return
        sub = keys[target]
        await self.db(subscriptions.remove, chat_id, sub.kind, sub.target)
        await self.reply(update, f"Stopped watching {self.describe_target(sub.kind, sub.target, sub.km)}.")

    def _unwatch_target(self, query: str, keys: dict[str, Any]) -> str | None:
        """The rule key of this chat's subscription that ``query`` names, if any."""
        if query in keys:
            return query  # a key from /list: "near:azaz", "place:azaz", a rule id
        near = query.lower().startswith("near ")
        resolved = self.ruleset_provider().resolve(query[5:].strip() if near else query)
        if resolved is None:
            return None
        candidates = [subscriptions.rule_key(resolved.kind, resolved.id)] if not near else []
        if resolved.kind == "place":
            candidates.append(subscriptions.rule_key("near", resolved.id))  # "/unwatch Azaz" with only near
        return next((key for key in candidates if key in keys), None)

    async def show_list(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = self.chat_id(update)
        watching = await self.watching_lines(chat_id)
        now = utcnow()
        row = await self.db(subscriptions.get_chat, chat_id)
        mutes = await self.db(subscriptions.active_mutes, chat_id, now)
        lines = ["<b>This chat watches:</b>", *watching] if watching else [
            "This chat watches nothing. " + esc(WATCH_USAGE)
        ]
        lines.extend(esc(line) for line in chatprefs.describe(row, now))
        lines.extend(
            f"Muted <code>{esc(key)}</code> until {until:%Y-%m-%d %H:%M} UTC"
            for key, until in sorted(mutes.items())
        )
        await self.reply(update, "\n".join(lines))

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

    async def unmute(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
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

    async def stop(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = self.chat_id(update)
        removed = await self.db(subscriptions.remove_all, chat_id)
        await self.reply(
            update, f"Removed {removed} subscription(s). This chat gets no new alerts; /watch to start again."
        )

    async def migrated(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        """The group became a supergroup (a new chat id): its subscriptions follow it."""
        message = update.effective_message
        if message is None or not message.migrate_to_chat_id or update.effective_chat is None:
            return
        moved = await self.db(subscriptions.move_chat, str(update.effective_chat.id),
                              str(message.migrate_to_chat_id), utcnow())
        log.info("chat %s became supergroup %s; %d pending alert(s) moved",
                 update.effective_chat.id, message.migrate_to_chat_id, moved)

    async def unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_chat is not None and update.effective_chat.type == "private":
            await self.reply(update, "Unknown command. See /help.")

    # --- buttons under alerts ------------------------------------------------------------------

    async def button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
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
            await query.answer(_answer_text(f"Muted {key} in this chat for 24 h."))
            return
        removed = await self.db(subscriptions.remove_key, chat_id, key)
        done = f"Unwatched {key}." if removed else f"This chat no longer watches {key}."
        await query.answer(_answer_text(done))

    def _key_for_hash(self, conn: Connection, chat_id: str, digest: str) -> str | None:
        """The rule key whose ``alerts.telegram.callback_key`` is ``digest``: one of this chat's
        subscriptions, or a rule (notify chats have no subscription row)."""
        from alerts.telegram import callback_key

        keys = [s.rule_key for s in subscriptions.list_for_chat(conn, chat_id)]
        keys.extend(getattr(self.ruleset_provider(), "rules", {}) or {})
        return next((k for k in keys if callback_key(k) == digest), None)

    # --- admin commands ------------------------------------------------------------------------

    async def deny(self, update: Update) -> bool:
        if self.is_admin(update):
            return False
        await self.reply(update, "Not allowed.")
        return True

    async def status(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if await self.deny(update):
            return
        await self.reply(update, await self.db(_status_text))

    async def sources(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if await self.deny(update):
            return
        await self.reply(update, await self.db(_sources_text))

    async def crawl(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if await self.deny(update):
            return
        args = context.args or []
        if len(args) != 1:
            await self.reply(update, esc(CRAWL_USAGE))
            return
        if self.on_crawl is None:
            await self.reply(
                update,
                f"Crawling on demand is not available outside the service; run "
                f"<code>lookout crawl {esc(args[0])}</code> on the server.",
            )
            return
        answer = await _call(self.on_crawl, args[0], default=f"Crawl of {args[0]} queued.")
        await self.reply(update, esc(answer))

    async def reload(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if await self.deny(update):
            return
        if self.on_reload is None:
            await self.reply(update, "Reloading is not available outside the service; restart it instead.")
            return
        await self.reply(update, esc(await _call(self.on_reload, default="Rules reloaded.")))

    async def error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.error("bot handler failed: %s: %s", type(context.error).__name__, context.error)
        if isinstance(update, Update) and update.effective_message is not None:
            with contextlib.suppress(Exception):  # the chat may be gone; the failure is logged above
                await update.effective_message.reply_text("Sorry, something went wrong. Please try again.")


async def _call(callback: Callback, *args: Any, default: str) -> str:
    """Call a service callback (sync or async); an exception becomes the reply, not a crash."""
    try:
        result = callback(*args)
        if inspect.isawaitable(result):
            result = await result
    except Exception as exc:
        return f"Failed: {exc}"
    return str(result) if result else default


def _answer_text(text: str) -> str:
    return text if len(text) <= 200 else text[:199] + "…"  # Telegram's limit for callback answers


def _parse_km(text: str) -> float | None:
    try:
        return float(text.lower().removesuffix("km").replace(",", "."))
    except ValueError:
        return None


def _status_text(conn: Connection) -> str:
    states = dict(conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all())
    source_rows = conn.execute(select(sources).order_by(sources.c.name)).all()
    failing = [s for s in source_rows if s.last_result in ("failed", "timeout", "partial")]
    lines = [
        "<b>Lookout status</b>",
        f"Queue: {states.get('pending', 0)} pending, {states.get('sending', 0)} sending, "
        f"{states.get('failed', 0)} failed, {states.get('sent', 0)} sent",
        f"Sources: {len(source_rows)}, {len(failing)} with problems",
    ]
    for s in failing[:10]:
        lines.append(f"• {esc(s.name)}: {esc(s.last_result or '')} {esc((s.last_error or '')[:200])}")
    recent = conn.execute(select(crawl_failures).order_by(crawl_failures.c.at.desc()).limit(5)).all()
    if recent:
        lines.append("<b>Last errors</b>")
        lines.extend(
            f"• {f.at:%m-%d %H:%M} {esc(f.source)} {esc(f.reason)} {esc(f.url[:120])}" for f in recent
        )
    failed = conn.execute(
        select(outbox.c.chat_id, outbox.c.last_error).where(outbox.c.state == "failed")
        .order_by(outbox.c.updated_at.desc()).limit(3)
    ).all()
    lines.extend(f"• alert to {esc(r.chat_id)}: {esc((r.last_error or '')[:200])}" for r in failed)
    return "\n".join(lines)


def _sources_text(conn: Connection) -> str:
    rows = conn.execute(select(sources).order_by(sources.c.name)).all()
    if not rows:
        return "No sources crawled yet."
    lines = ["<b>Sources</b>"]
    for s in rows:
        last = f"{s.last_crawl_at:%m-%d %H:%M}" if s.last_crawl_at else "never"
        result = esc(s.last_result or "-")
        lines.append(f"• <code>{esc(s.name)}</code> {esc(s.kind)} · last {last} · {result}")
    return "\n".join(lines)


# --- wiring ----------------------------------------------------------------------------------------


def build_application(
    config: TelegramConfig, store: Store, ruleset_provider: Callable[[], Ruleset], *,
    on_crawl: Callback | None = None, on_reload: Callback | None = None,
    rate_limiter: bool = True,
) -> Application:
    """The bot, pointed at ``telegram.api_url`` (a fake server in tests).

    Replies go through ``AIORateLimiter`` so a flood wait (429) on a reply is waited out and
    retried instead of losing the answer; alerts have their own paced dispatcher.
    """
    token = config.token
    if token is None:
        raise ValueError("telegram.token is not set (put it in TELEGRAM_BOT_TOKEN)")
    api = config.api_url
    builder = (
        Application.builder()
        .token(token.get_secret_value())
        .base_url(f"{api}/bot")
        .base_file_url(f"{api}/file/bot")
        .defaults(Defaults(parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW))
        .post_init(register_commands)
    )
    if rate_limiter:
        builder = builder.rate_limiter(AIORateLimiter(max_retries=3))
    app = builder.build()
    h = BotHandlers(config, store, ruleset_provider, on_crawl=on_crawl, on_reload=on_reload)
    app.bot_data["lookout_handlers"] = h
    commands: dict[str, Callable[..., Awaitable[None]]] = {
        "start": h.start, "help": h.start, "watch": h.watch, "near": h.near, "unwatch": h.unwatch,
        "list": h.show_list, "mute": h.mute, "unmute": h.unmute, "quiet": h.quiet, "digest": h.digest,
        "pins": h.pins, "stop": h.stop, "status": h.status, "sources": h.sources, "crawl": h.crawl,
        "reload": h.reload,
    }
    for name, callback in commands.items():
        app.add_handler(CommandHandler(name, callback))
    app.add_handler(CallbackQueryHandler(h.button, pattern=r"^(mute|unwatch):"))
    app.add_handler(CallbackQueryHandler(h.button))  # stale or foreign buttons still get an answer
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, h.migrated))
    app.add_handler(MessageHandler(filters.COMMAND, h.unknown))  # same group: only if none above
    app.add_error_handler(h.error)
    return app


async def register_commands(app: Application) -> None:
    """setMyCommands: the subscriber menu (admin commands stay unlisted)."""
    try:
        await app.bot.set_my_commands([BotCommand(name, text) for name, text in SUBSCRIBER_COMMANDS])
    except Exception as exc:  # the menu is a convenience; the bot works without it
        log.warning("could not register bot commands: %s", exc)


def _webhook_args(config: TelegramConfig) -> dict[str, Any]:
    tg = config
    assert tg.webhook_url and tg.token is not None
    host, _, port = tg.webhook_listen.rpartition(":")
    # Telegram echoes this secret in a header, so forged webhook posts are rejected.
    secret = hashlib.sha256(b"lookout-webhook:" + tg.token.get_secret_value().encode()).hexdigest()[:48]
    return {
        "listen": host or "127.0.0.1", "port": int(port),
        "url_path": urlsplit(tg.webhook_url).path.lstrip("/"),
        "webhook_url": tg.webhook_url, "secret_token": secret,
    }


def _quiet_http_logs() -> None:
    # httpx logs every request URL, and Bot API URLs contain the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)


async def start_bot(app: Application, config: TelegramConfig, *, poll_interval: float = 0.0) -> None:
    """Start inside an already running event loop (the service); pair with ``stop_bot``."""
    _quiet_http_logs()
    await app.initialize()
    await register_commands(app)
    await app.start()
    assert app.updater is not None
    if config.webhook_url:
        # PTB's own webhook server (tornado): it registers the webhook with Telegram and refuses
        # posts without the secret header. Meant to sit behind a TLS-terminating reverse proxy.
        await app.updater.start_webhook(**_webhook_args(config), allowed_updates=Update.ALL_TYPES)
    else:
        await app.updater.start_polling(poll_interval=poll_interval, allowed_updates=Update.ALL_TYPES)


async def stop_bot(app: Application) -> None:
    # In webhook mode the webhook stays set: Telegram keeps updates until we are back.
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await app.shutdown()
