"""The Telegram bot, wired up: python-telegram-bot's ``Application`` with the subscriber commands
(``alerts.subscribercommands``), the admin commands (``alerts.admincommands``) and an error
handler; and starting and stopping it. In groups and channels the commands and buttons that
change a chat are kept for its administrators (``alerts.chatadmins``).

``build_application`` builds it; ``start_bot``/``stop_bot`` (inside a running loop, as the service
does) choose long polling or, when ``telegram.webhook_url`` is set, a webhook.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import TYPE_CHECKING, TypedDict
from urllib.parse import urlsplit

from telegram import BotCommand, Update
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

from alerts.admincommands import AdminCommands, AdminReports, CrawlCallback, ReloadCallback
from alerts.buttons import AlertButtons
from alerts.chatadmins import ChatAdmins
from alerts.prefcommands import PrefCommands
from alerts.subscribercommands import SUBSCRIBER_COMMANDS, SubscriberCommands
from alerts.telegram import NO_PREVIEW, error_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from telegram.error import TelegramError

    from alerts.config import TelegramConfig
    from core.store import Store
    from rules.model import Ruleset

__all__ = ["SUBSCRIBER_COMMANDS", "build_application", "register_commands", "start_bot", "stop_bot"]

log = logging.getLogger(__name__)

# CommandHandler's default takes only (edited) messages; a channel's commands come as channel posts.
COMMAND_UPDATES = filters.UpdateType.MESSAGES | filters.UpdateType.CHANNEL_POSTS


class WebhookArgs(TypedDict):
    """``Updater.start_webhook``'s arguments for ``telegram.webhook_url``."""

    listen: str
    port: int
    url_path: str
    webhook_url: str
    secret_token: str  # Telegram echoes it in a header: forged webhook posts are refused


def build_application(
    config: TelegramConfig, store: Store, ruleset_provider: Callable[[], Ruleset], *,
    on_crawl: CrawlCallback | None = None, on_reload: ReloadCallback | None = None,
    reports: AdminReports | None = None, rate_limiter: bool = True, chat_admins: ChatAdmins | None = None,
) -> Application:
    """The bot, pointed at ``telegram.api_url`` (a fake server in tests). ``reports`` answers
    ``/status`` and ``/sources``, ``on_crawl`` and ``on_reload`` serve ``/crawl`` and ``/reload``;
    ``chat_admins`` is the group administrator check (tests give one with a fake clock).

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
    app: Application = (
        builder.rate_limiter(AIORateLimiter(max_retries=3)).build() if rate_limiter else builder.build()
    )
    subscriber = SubscriberCommands(config, store, ruleset_provider)
    prefs = PrefCommands(config, store, ruleset_provider)
    buttons = AlertButtons(config, store, ruleset_provider)
    admin = AdminCommands(config, store, ruleset_provider, reports=reports, on_crawl=on_crawl, on_reload=on_reload)
    gate = chat_admins or ChatAdmins()
    for name, callback in {**subscriber.handlers(), **prefs.handlers()}.items():
        app.add_handler(CommandHandler(name, gate.command(name, callback), filters=COMMAND_UPDATES))
    for name, callback in admin.handlers().items():  # operators: AdminCommands checks the chat itself
        app.add_handler(CommandHandler(name, callback, filters=COMMAND_UPDATES))
    app.add_handler(CallbackQueryHandler(gate.button(buttons.button), pattern=r"^(mute|unwatch):"))
    for pattern, callback in subscriber.button_handlers().items():  # the gate lets paging through
        app.add_handler(CallbackQueryHandler(gate.button(callback), pattern=pattern))
    # Stale or foreign buttons still get an answer; ungated: data not matching the pattern above
    # is never obeyed (AlertButtons only acts on mute:/unwatch:).
    app.add_handler(CallbackQueryHandler(buttons.button))
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, subscriber.migrated))
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND & filters.ChatType.PRIVATE, subscriber.plain_text))
    app.add_handler(MessageHandler(filters.COMMAND, subscriber.unknown))  # same group: only if none above
    app.add_error_handler(_report_error)
    return app


async def _report_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    log.error("bot handler failed: %s: %s", type(context.error).__name__, context.error)
    if isinstance(update, Update) and update.effective_message is not None:
        with contextlib.suppress(Exception):  # the chat may be gone; the failure is logged above
            await update.effective_message.reply_text("Sorry, something went wrong. Please try again.")


async def register_commands(app: Application) -> None:
    """setMyCommands: the subscriber menu (admin commands stay unlisted)."""
    try:
        await app.bot.set_my_commands([BotCommand(name, text) for name, text in SUBSCRIBER_COMMANDS])
    except Exception as exc:  # the menu is a convenience; the bot works without it
        log.warning("could not register bot commands: %s", exc)


def _webhook_args(config: TelegramConfig) -> WebhookArgs:
    assert config.webhook_url and config.token is not None
    host, _, port = config.webhook_listen.rpartition(":")
    secret = hashlib.sha256(b"lookout-webhook:" + config.token.get_secret_value().encode()).hexdigest()[:48]
    return WebhookArgs(
        listen=host or "127.0.0.1", port=int(port), url_path=urlsplit(config.webhook_url).path.lstrip("/"),
        webhook_url=config.webhook_url, secret_token=secret,
    )


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
        await app.updater.start_polling(poll_interval=poll_interval, allowed_updates=Update.ALL_TYPES,
                                        error_callback=_polling_failed)


def _polling_failed(exc: TelegramError) -> None:
    """A failed getUpdates: one line (PTB's default logs a traceback each time); PTB retries
    with a growing pause (up to 30 s) for as long as the bot runs."""
    log.warning("bot polling failed, retrying: %s", error_text(exc))


async def stop_bot(app: Application) -> None:
    # In webhook mode the webhook stays set: Telegram keeps updates until we are back.
    if app.updater is not None and app.updater.running:
        await app.updater.stop()
    if app.running:
        await app.stop()
    await app.shutdown()
