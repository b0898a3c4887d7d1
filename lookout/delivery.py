"""Telegram for the service: python-telegram-bot's Application (the bot) and the dispatcher that
sends the outbox, started and stopped on the service's loop, and notices to the admin chats.

Without a token nothing starts: crawling and matching go on and alerts wait in the outbox until
the service runs with one.

Telegram's faults never stop the service. The bot and the dispatcher connect in the background
(getMe, then polling or the webhook); while the Bot API is unreachable or failing they retry with
a doubling pause (``retry_initial`` up to ``retry_max`` seconds) and ``state`` says ``retrying``,
while crawling, matching and queueing go on. A token Telegram rejects (401, or 404 for a token of
the wrong form) is a configuration error, not a fault: ``state`` becomes ``rejected`` and
``on_rejected`` gets a ``TokenRejected`` whose text never holds the token.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from enum import StrEnum
from typing import TYPE_CHECKING

from alerts.bot import build_application, start_bot, stop_bot
from alerts.dispatcher import Dispatcher
from alerts.format import clip_reply
from alerts.telegram import DeliveryError, Fatal, PTBSender, classify, error_text

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from telegram.ext import Application

    from alerts.admincommands import AdminReports
    from alerts.config import TelegramConfig
    from alerts.dispatcher import DispatchSummary
    from core.store import Store
    from rules.model import Ruleset

log = logging.getLogger(__name__)

DISPATCHER_STOP_TIMEOUT = 30.0  # seconds the dispatcher gets to finish the message in flight
RETRY_INITIAL = 1.0  # seconds before the first reconnection to the Bot API; doubles each time ...
RETRY_MAX = 60.0  # ... up to this


class DeliveryState(StrEnum):
    """What Telegram delivery is doing, as ``/healthz`` shows it."""

    DISABLED = "disabled"  # no telegram.token
    CONNECTING = "connecting"  # the first attempt is under way
    RETRYING = "retrying"  # the Bot API was unreachable or failing: the next attempt is scheduled
    RUNNING = "running"  # the bot polls (or serves its webhook) and the dispatcher sends
    REJECTED = "rejected"  # Telegram refused the token: a configuration error
    STOPPED = "stopped"


class TokenRejected(Exception):
    """Telegram refused ``telegram.token``: the configuration is wrong, retrying cannot help."""

    def __init__(self, status: int):
        self.status = status
        super().__init__(f"telegram.token was rejected by Telegram ({status})")


class TelegramDelivery:
    """The bot and the dispatcher, connected in the background once ``start`` has run with
    ``telegram.token`` set."""

    def __init__(self, config: TelegramConfig, *, dispatch_idle: float, retry_initial: float = RETRY_INITIAL,
                 retry_max: float = RETRY_MAX):
        self.config = config
        self.dispatch_idle = dispatch_idle  # the dispatcher re-checks the outbox at least this often
        self.retry_initial = retry_initial
        self.retry_max = max(retry_max, retry_initial)
        self.state = DeliveryState.DISABLED if config.token is None else DeliveryState.STOPPED
        self.last_error: str | None = None  # why the last attempt failed (redacted), while retrying
        self.rejected: TokenRejected | None = None
        self.app: Application | None = None
        self.sender: PTBSender | None = None
        self.dispatcher: Dispatcher | None = None
        self.dispatch_task: asyncio.Task[None] | None = None
        self._dispatch_stop: asyncio.Event | None = None
        self._supervisor: asyncio.Task[None] | None = None
        self._stop: asyncio.Event | None = None
        self._attempted: asyncio.Event | None = None  # set when the first attempt has an outcome
        self._start_returned = False  # from now on a rejection goes to ``on_rejected``
        self._connect_args: _Wiring | None = None

    @property
    def started(self) -> bool:
        """Delivery is configured and ``start`` ran (connected or still trying)."""
        return self._supervisor is not None

    async def start(
        self,
        store: Store,
        *,
        rules: Callable[[], Ruleset],
        on_crawl: Callable[[str], Awaitable[str]],
        on_reload: Callable[[], Awaitable[str]],
        after_pass: Callable[[DispatchSummary], Awaitable[None]],
        reports: AdminReports | None = None,
        on_rejected: Callable[[TokenRejected], None] | None = None,
        first_wait: float = 5.0,
    ) -> None:
        """Connect the bot (``rules``: the rules in force; ``on_crawl`` and ``on_reload`` answer an
        admin's /crawl and /reload, ``reports`` their /status and /sources) and the dispatcher
        (``after_pass`` runs after each pass) in the background, retrying until they connect.

        Returns once the first attempt has an outcome, or after ``first_wait`` seconds: a token
        rejected at once is then in ``rejected``. A rejection later goes to ``on_rejected``."""
        if self.config.token is None:
            log.warning(
                "telegram delivery disabled: no telegram.token (set TELEGRAM_BOT_TOKEN); crawling and "
                "matching go on and alerts wait in the outbox until the service runs with a token")
            return
        self._connect_args = _Wiring(store, rules, on_crawl, on_reload, after_pass, reports, on_rejected)
        self._stop = asyncio.Event()
        self._attempted = asyncio.Event()
        self.state = DeliveryState.CONNECTING
        self._supervisor = asyncio.create_task(self._supervise(), name="telegram-delivery")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._attempted.wait(), timeout=first_wait)
        self._start_returned = True

    async def _supervise(self) -> None:
        """Connect; on a failure retry after a doubling pause; once connected, wait for the stop
        or for the dispatcher to give up (Telegram refused the token), then connect again."""
        assert self._stop is not None and self._attempted is not None
        delay = self.retry_initial
        while not self._stop.is_set():
            try:
                await self._connect()
            except Fatal as exc:
                await self._disconnect()
                self.rejected = TokenRejected(exc.status)
                self.state = DeliveryState.REJECTED
                self.last_error = str(self.rejected)
                self._attempted.set()
                wiring = self._connect_args
                if self._start_returned and wiring is not None and wiring.on_rejected is not None:
                    wiring.on_rejected(self.rejected)  # else ``start``'s caller finds it in ``rejected``
                return
            except Exception as exc:
                await self._disconnect()
                self.last_error = exc.reason if isinstance(exc, DeliveryError) else error_text(exc)
                self.state = DeliveryState.RETRYING
                self._attempted.set()
                log.warning("telegram not reachable (%s); delivery retries in %.0f s, crawling and matching "
                            "go on", self.last_error, delay)
                if await _set_within(self._stop, delay):
                    break
                delay = min(delay * 2, self.retry_max)
                continue
            self.state = DeliveryState.RUNNING
            self.last_error = None
            self._attempted.set()
            delay = self.retry_initial
            log.info("telegram delivery running: bot and dispatcher connected")
            assert self.dispatch_task is not None
            stop_waiter = asyncio.ensure_future(self._stop.wait())
            try:
                await asyncio.wait([stop_waiter, self.dispatch_task], return_when=asyncio.FIRST_COMPLETED)
            finally:
                stop_waiter.cancel()
            if self._stop.is_set():
                break
            # The dispatcher returned by itself: Telegram refused the token mid-run. Reconnect: a
            # rejected getMe makes it a configuration error, a passing one restarts delivery.
            await self._disconnect()
            self.state = DeliveryState.RETRYING
            self.last_error = "the dispatcher stopped: Telegram refused a send"
            if await _set_within(self._stop, delay):
                break
            delay = min(delay * 2, self.retry_max)

    async def _connect(self) -> None:
        """One attempt: getMe, the bot started, the dispatcher running. Raises ``Fatal`` for a
        rejected token, another ``DeliveryError`` (redacted) for anything else."""
        wiring = self._connect_args
        token = self.config.token
        assert wiring is not None and token is not None
        secret = token.get_secret_value()
        self.sender = PTBSender(secret, self.config.api_url)
        await self.sender.start()  # getMe: Fatal when the token is refused
        app = build_application(self.config, wiring.store, wiring.rules, on_crawl=wiring.on_crawl,
                                on_reload=wiring.on_reload, reports=wiring.reports)
        try:
            await start_bot(app, self.config)
        except BaseException as exc:  # also a cancellation (stop) mid-attempt: close what started
            await _close_app(app)
            if isinstance(exc, Exception):
                raise classify(exc, secret) from None
            raise
        self.app = app
        self.dispatcher = Dispatcher(wiring.store, self.sender, self.config)
        self._dispatch_stop = asyncio.Event()
        # Woken at once by a finished crawl (wake), else when the next held or retried row is
        # due, else every dispatch_idle seconds.
        self.dispatch_task = asyncio.create_task(
            self.dispatcher.run_forever(self._dispatch_stop, poll=self.dispatch_idle, on_pass=wiring.after_pass),
            name="dispatcher",
        )

    async def _disconnect(self) -> None:
        """The dispatcher finishes the message in flight, then the bot stops; whatever an attempt
        left half started is closed."""
        if self.dispatch_task is not None:
            if self._dispatch_stop is not None:
                self._dispatch_stop.set()
            try:
                await asyncio.wait_for(self.dispatch_task, timeout=DISPATCHER_STOP_TIMEOUT)
            except (TimeoutError, asyncio.CancelledError):
                # In-flight rows stay in "sending": the next start resends them (at most one duplicate).
                log.warning("dispatcher did not stop in %.0fs; cancelled", DISPATCHER_STOP_TIMEOUT)
            except Exception as exc:
                log.error("dispatcher failed while stopping: %s", error_text(exc))
        if self.sender is not None:
            with contextlib.suppress(Exception):
                await self.sender.close()
        if self.app is not None:
            await _close_app(self.app)
        self.app, self.sender, self.dispatcher = None, None, None
        self.dispatch_task, self._dispatch_stop = None, None

    async def stop(self) -> None:
        """Stop trying to connect; the dispatcher finishes the message in flight, then the bot stops."""
        if self._stop is not None:
            self._stop.set()
        if self._supervisor is not None:
            if self.state is not DeliveryState.RUNNING:
                self._supervisor.cancel()  # an attempt may hang on a silent host: stop waiting for it
            await asyncio.wait([self._supervisor])
            failure = None if self._supervisor.cancelled() else self._supervisor.exception()
            if failure is not None:
                log.error("telegram delivery failed: %s", error_text(failure))
        await self._disconnect()
        if self.state is not DeliveryState.DISABLED and self.state is not DeliveryState.REJECTED:
            self.state = DeliveryState.STOPPED

    def wake(self) -> None:
        """Dispatch now (a crawl just queued alerts) rather than at the next poll."""
        if self.dispatcher is not None:
            self.dispatcher.wake()

    def flood_waits(self) -> dict[str, float]:
        """Chats in a flood wait (Telegram answered 429), with the seconds left."""
        return self.dispatcher.flood_waits() if self.dispatcher is not None else {}

    def dispatcher_state(self) -> tuple[str, bool]:
        """What the dispatcher is doing, for ``/healthz``, and whether delivery is healthy: only
        when the bot is connected and the dispatcher runs."""
        if self.state is DeliveryState.DISABLED:
            return "disabled (no telegram token)", False
        if self.state is not DeliveryState.RUNNING:
            return str(self.state), False
        alive = self.dispatch_task is not None and not self.dispatch_task.done()
        return ("running" if alive else "stopped"), alive

    async def tell_admins(self, text: str) -> None:
        """``text`` (Telegram HTML, one whole element per line) to every admin chat; a text over
        the limit is cut at a line end, so no tag or entity is split and Telegram takes it."""
        if not self.config.admins:
            return
        if self.app is None:
            if self.started:
                log.warning("admins not told (telegram delivery is %s): %s", self.state,
                            text.splitlines()[0] if text else "")
            return
        body = clip_reply(text)
        for admin in self.config.admins:
            try:
                await self.app.bot.send_message(chat_id=admin, text=body)
            except Exception as exc:
                log.warning("could not tell admin chat=%s: %s", admin, error_text(exc))


class _Wiring:
    """What ``start`` was given, kept for every reconnection."""

    def __init__(self, store: Store, rules: Callable[[], Ruleset], on_crawl: Callable[[str], Awaitable[str]],
                 on_reload: Callable[[], Awaitable[str]], after_pass: Callable[[DispatchSummary], Awaitable[None]],
                 reports: AdminReports | None, on_rejected: Callable[[TokenRejected], None] | None):
        self.store = store
        self.rules = rules
        self.on_crawl = on_crawl
        self.on_reload = on_reload
        self.after_pass = after_pass
        self.reports = reports
        self.on_rejected = on_rejected


async def _close_app(app: Application) -> None:
    """Stop the bot, whether it runs or its start failed half way."""
    try:
        await stop_bot(app)
    except Exception as exc:
        log.error("bot did not stop cleanly: %s", error_text(exc))
    with contextlib.suppress(Exception):  # an app whose start failed keeps its bot's pool open
        await app.bot.shutdown()


async def _set_within(event: asyncio.Event, seconds: float) -> bool:
    """Wait up to ``seconds`` for ``event``; True when it was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(event.wait(), timeout=seconds)
    return event.is_set()
