"""The dispatcher: drains the outbox to Telegram without losing an alert, flooding a chat, or
letting one chat hold up another.

Each chat is served on its own task, its alerts in order (a chat's second alert never goes
before its first). A chat that may not send yet — paced by its rate, or in a flood wait after a
429 — has its alerts rescheduled to the moment it may (``next_attempt_at``) and its task ends:
nothing sleeps on a slow chat, and other chats' alerts are picked up as soon as they are due. A
chat whose queue would take longer than ``telegram.max_backlog`` at its rate gets it as a digest.

Delivery guarantee. A send is: wait for a global rate-limit slot, claim the rows ("sending", with
this dispatcher as owner and a lease: ``alerts.ledger``) and COMMIT, call the Bot API, then mark
them "sent" with the message id. At most ``telegram.max_in_flight`` sends are claimed at once. A
crash (or a store error) after Telegram accepted a message but before "sent" is stored leaves its
rows claimed; the next dispatcher (the one holding the delivery lock) sends them again. So a crash
at any moment costs at most ``max_in_flight`` duplicate messages and never loses an alert. A row
only leaves the queue as sent, failed (after ``telegram.max_attempts`` transient errors, with the
reason) or cancelled (the chat blocked the bot or is gone, with the reason; the chat is paused).

Mutes, quiet hours and digest mode hold a chat's alerts; when released they go out together as
one digest. Only one dispatcher may run per database: callers hold ``lookout.lock``'s lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from alerts import ledger
from alerts.chatprefs import in_quiet_hours, release_time
from alerts.format import AlertView, primary_place, render_alert, render_digest, to_terminal
from alerts.keys import SubscriptionKind, parse_alert_key
from alerts.ledger import ClaimOwner
from alerts.outbox import OutboxState, load_rows
from alerts.ratelimit import RateLimiter
from alerts.subscriptions import Chat, chats_by_id, move_chat, pause_chat
from alerts.telegram import (
    BadMarkup,
    Button,
    ChatGone,
    ChatMoved,
    DeliveryError,
    Fatal,
    NotModified,
    RetryLater,
    Sender,
    Transient,
    alert_buttons,
)
from core.store import Store, articles, matches, utcnow
from rules.geo import describe_position
from rules.types import Match

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Sequence

    from alerts.config import TelegramConfig
    from alerts.outbox import OutboxRow
    from rules.model import Ruleset

log = logging.getLogger(__name__)

CLAIM_LEASE = timedelta(minutes=2)  # far above one Bot API request (15 s read timeout, 10 s connect)
RECOVER_EVERY = 60.0  # seconds between looks for claims whose lease ran out
PASS_GAP = 0.05  # seconds between passes woken by chats finishing: a fan-out ends ~30 a second


@dataclass
class DispatchSummary:
    sent: int = 0  # alerts delivered (a digest delivers several in one message)
    messages: int = 0  # messages Telegram accepted
    edited: int = 0  # "Also: ..." edits
    failed: int = 0
    cancelled: int = 0
    retrying: int = 0  # sends that will be retried later (429, transient)
    held: int = 0  # alerts held for a digest (mute, quiet hours, digest mode)
    folded: int = 0  # alerts sent in a digest because their chat's backlog was too long
    plain: int = 0  # resent as plain text after the HTML was refused
    moved: int = 0  # alerts that followed a group upgraded to a supergroup
    recovered: int = 0  # claims of a dispatcher that is gone, sent again
    waiting: int = 0  # still pending when drain() returned
    first_due: datetime | None = None  # ... due from
    last_due: datetime | None = None  # ... to

    def add(self, other: DispatchSummary) -> None:
        for name in _COUNTS:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def minus(self, other: DispatchSummary) -> DispatchSummary:
        done = DispatchSummary()
        for name in _COUNTS:
            setattr(done, name, getattr(self, name) - getattr(other, name))
        return done


_COUNTS = tuple(f.name for f in fields(DispatchSummary) if f.name not in ("waiting", "first_due", "last_due"))


@dataclass
class ChatWork:
    """What one chat has due: alerts to send (oldest first) and sent messages to edit."""

    chat_id: str
    chat: Chat | None
    rows: list[OutboxRow] = field(default_factory=list)
    edits: list[OutboxRow] = field(default_factory=list)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        sender: Sender,
        config: TelegramConfig,
        *,
        clock: Callable[[], datetime] = utcnow,
        limiter: RateLimiter | None = None,  # its clock and sleep are the dispatcher's waits too
        backoff_base: float = 2.0,
        backoff_cap: float = 900.0,
        rng: Callable[[], float] = random.random,
        ruleset: Ruleset | None = None,  # for "9 km E of Azaz" place lines (alerts go out without)
        owner: ClaimOwner | None = None,
        batch: int = 5000,
    ):
        self.store = store
        self.sender = sender
        self.config = config
        self.clock = clock
        self.limiter = limiter or RateLimiter.from_config(config)
        self.monotonic = self.limiter.clock
        self.sleep = self.limiter.sleep
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        self.rng = rng
        self.ruleset = ruleset
        self.owner = owner or ClaimOwner.current()
        self.batch = batch
        self.max_in_flight = config.max_in_flight
        self._send_slots = asyncio.Semaphore(self.max_in_flight)
        self._active: dict[str, asyncio.Task[None]] = {}  # chat id -> the task serving it
        self._sending: set[str] = set()  # chats with a claimed send: never cancelled mid-request
        self._claimed: set[int] = set()  # row ids this process has claimed and not yet settled
        self._not_before: dict[str, float] = {}  # monotonic: chats waiting (edits, paced sends)
        self._changed = asyncio.Event()  # wake(), or a chat's task ended
        self._totals = DispatchSummary()
        self._fatal: Fatal | None = None
        self._last_recovery: float | None = None
        self._last_pass = float("-inf")

    # -- entry points -----------------------------------------------------------------------------
    async def run_once(self) -> DispatchSummary:
        """Serve every chat with something due now until it is done or must wait, then return."""
        before = self._snapshot()
        await self._pass()
        while self._active:
            await asyncio.gather(*self._active.values(), return_exceptions=True)
        self._raise_fatal()
        return self._since(before)

    async def drain(self, max_wait: float = 60.0) -> DispatchSummary:
        """Send everything pending; return when nothing is, when what remains is due later than
        ``max_wait`` seconds from now, or at that deadline at the latest (plus the requests in
        flight then). What is left stays pending with its due time (``waiting``, ``first_due``)."""
        before = self._snapshot()
        deadline = self.monotonic() + max_wait
        try:
            while True:
                self._changed.clear()
                wait = await self._pass()
                self._raise_fatal()
                left = deadline - self.monotonic()
                # Done when nothing is being served, nothing comes due in time, and no chat ended
                # during the pass (its rescheduled rows may not have been seen by it).
                idle = not self._active and not self._changed.is_set()
                if left <= 0 or (idle and (wait is None or wait > left)):
                    break
                await _first_of(self._changed, within=min(wait if wait is not None else left, left),
                                sleep=self.sleep)
                self._raise_fatal()
        finally:
            await self._stop_chats()
        summary = self._since(before)
        with self.store.connect() as conn:
            left_behind = ledger.waiting(conn)
        summary.waiting, summary.first_due, summary.last_due = (
            left_behind.count, left_behind.first_due, left_behind.last_due)
        return summary

    def wake(self) -> None:
        """Dispatch now (a crawl just queued alerts) rather than at the next poll."""
        self._changed.set()

    async def run_forever(
        self, stop: asyncio.Event, *, poll: float = 2.0,
        on_pass: Callable[[DispatchSummary], Awaitable[None]] | None = None,
    ) -> None:
        """The service loop: serve what is due, then wait for ``wake()``, a chat to finish, the
        next due row or ``poll`` seconds. Returns on ``stop`` (after the sends in flight), or when
        Telegram refuses the token (nothing can be sent)."""
        reported = self._snapshot()
        try:
            while not stop.is_set():
                self._changed.clear()
                wait = poll
                try:
                    nxt = await self._pass()
                    if nxt is not None:
                        wait = min(poll, max(nxt, 0.05))
                    self._raise_fatal()
                    if on_pass is not None:
                        done = self._since(reported)
                        reported = self._snapshot()
                        await on_pass(done)
                except Fatal as exc:
                    log.error("telegram refused the bot token; delivery stopped: %s", exc.reason)
                    return
                except Exception as exc:  # a store hiccup must not end delivery
                    log.error("dispatcher pass failed: %s: %s", type(exc).__name__, exc)
                await _first_of(stop, self._changed, within=wait, sleep=self.sleep)
        finally:
            await self._stop_chats()
            if on_pass is not None:  # what the last sends did
                with contextlib.suppress(Exception):
                    await on_pass(self._since(reported))

    def flood_waits(self) -> dict[str, float]:
        """Chats in a flood wait (Telegram answered 429), with the seconds left."""
        return self.limiter.flood_waits()

    # -- the pass -------------------------------------------------------------------------------
    async def _pass(self) -> float | None:
        """Start a task for each chat with work due and not being served; returns the seconds
        until the next thing is due (None: nothing pending)."""
        gap = self._last_pass + PASS_GAP - self.monotonic()
        if gap > 0:
            await self.sleep(gap)
        now_mono = self.monotonic()
        self._last_pass = now_mono
        recover = self._recovery_due(now_mono)
        work, next_at, recovered = await asyncio.to_thread(
            self._due_work, recover, set(self._active), set(self._claimed))
        self._totals.recovered += recovered
        now_mono = self.monotonic()
        for chat_id in [c for c, t in self._not_before.items() if t <= now_mono]:
            del self._not_before[chat_id]
        for item in work:
            if item.chat_id in self._active or (item.chat_id in self._not_before and not item.rows):
                continue  # only edits, and the chat must wait for them
            task = asyncio.create_task(self._serve(item), name=f"chat {item.chat_id}")
            # A done callback as well as ``_serve``'s own ``finally``: a task cancelled before its
            # first step never runs its body, and would stay "active" for good.
            task.add_done_callback(functools.partial(self._chat_done, item.chat_id))
            self._active[item.chat_id] = task
        # What comes next: a row due later (no due row of an idle chat is left unserved: each was
        # started above or waits behind its chat's oldest, which is a row due later), a chat
        # waiting for its edits; chats being served wake the loop when they end.
        waits = [t - now_mono for chat, t in self._not_before.items() if chat not in self._active]
        if next_at is not None:
            waits.append((next_at - self.clock()).total_seconds())
        return max(min(waits), 0.0) if waits else None

    def _recovery_due(self, now_mono: float) -> bool:
        if self._last_recovery is not None and now_mono - self._last_recovery < RECOVER_EVERY:
            return False
        self._last_recovery = now_mono
        return True

    def _due_work(self, recover: bool, busy: set[str], claimed: set[int],
                  ) -> tuple[list[ChatWork], datetime | None, int]:
        """(runs in a worker thread) Claims of a gone dispatcher back to the queue, then each idle
        chat's due alerts and edits, when the next alert is due, and how many were recovered."""
        now = self.clock()
        recovered = 0
        with self.store.begin() as conn:
            if recover:
                recovered = ledger.recover_in_flight(conn, self.owner, now, in_flight=claimed)
                if recovered:
                    log.warning("sending %d alert(s) again: claimed by a dispatcher that is gone "
                                "(each may arrive twice)", recovered)
            due = ledger.due_by_chat(conn, now, skip=busy, limit=self.batch)
            edits = ledger.edits_due(conn, skip=busy)
            chat_ids = set(due) | {r.chat_id for r in edits}
            known = chats_by_id(conn, chat_ids)
            next_at = ledger.next_due_after(conn, now)
        work = {chat_id: ChatWork(chat_id, known.get(chat_id), rows) for chat_id, rows in due.items()}
        for row in edits:
            work.setdefault(row.chat_id, ChatWork(row.chat_id, known.get(row.chat_id))).edits.append(row)
        return list(work.values()), next_at, recovered

    async def _stop_chats(self) -> None:
        """Stop serving: a chat waiting for its slot stops at once, a send in flight finishes."""
        for chat_id, task in list(self._active.items()):
            if chat_id not in self._sending:
                task.cancel()
        while self._active:
            await asyncio.gather(*self._active.values(), return_exceptions=True)

    # -- one chat ---------------------------------------------------------------------------------
    async def _serve(self, work: ChatWork) -> None:
        try:
            await self._serve_chat(work)
        except Fatal as exc:
            self._fatal = exc
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("chat %s: dispatch error: %s: %s", work.chat_id, type(exc).__name__, exc)
        finally:  # at once, not a loop turn later as the done callback: the loop wakes sooner
            self._chat_done(work.chat_id, asyncio.current_task())

    def _chat_done(self, chat_id: str, task: asyncio.Task[Any] | None) -> None:
        if self._active.get(chat_id) is task:
            del self._active[chat_id]
        self._changed.set()

    async def _serve_chat(self, work: ChatWork) -> None:
        chat_id, chat = work.chat_id, work.chat
        if work.rows:
            now = self.clock()
            if chat is not None and chat.paused:
                self._totals.cancelled += await asyncio.to_thread(
                    self._cancel_paused, chat_id, chat.paused_reason or "chat paused")
                return
            released = any(r.held for r in work.rows)
            hold_until = _release_time(chat, now)
            if hold_until is not None and (not released or _silenced(chat, now)):
                await asyncio.to_thread(self._hold, [r.id for r in work.rows], hold_until)
                self._totals.held += len(work.rows)
                return
            units, folded = await asyncio.to_thread(self._units, chat_id, work.rows, released)
            self._totals.folded += folded
            for unit in units:
                if not await self._deliver(chat_id, chat, unit):
                    return  # the chat waits: its order is kept, the rest goes later
        for row in work.edits:
            if not await self._edit(row):
                return

    def _units(self, chat_id: str, rows: list[OutboxRow], released: bool) -> tuple[list[list[OutboxRow]], int]:
        """(runs in a worker thread) One message per alert; a digest for alerts released from a
        hold, and for a backlog that would take longer than ``telegram.max_backlog`` at the
        chat's rate. Returns the messages' rows and how many alerts were folded for the backlog."""
        if len(rows) < 2:
            return [rows], 0
        if released:
            return self._digest_units(rows), 0
        backlog = len(rows) * self.limiter.interval(chat_id)
        if backlog <= self.config.max_backlog.total_seconds():
            return [[r] for r in rows], 0
        units = self._digest_units(rows)
        log.warning("chat %s: %d alerts queued would take %.0f min at its rate; sent as %d digest message(s)",
                    chat_id, len(rows), backlog / 60, len(units))
        return units, len(rows)

    def _digest_units(self, rows: list[OutboxRow]) -> list[list[OutboxRow]]:
        """Rows grouped so each group renders as one digest message (within Telegram's limit)."""
        views = self._views(rows)
        units: list[list[OutboxRow]] = []
        current: list[OutboxRow] = []
        current_views: list[AlertView] = []
        for row in rows:
            trial = [*current_views, views[row.id]]
            if current and len(render_digest(trial)) > 1:
                units.append(current)
                current, current_views = [], []
            current.append(row)
            current_views.append(views[row.id])
        if current:
            units.append(current)
        return units

    async def _chat_waits(self, chat_id: str) -> bool:
        """True (and the chat's alerts rescheduled) if it must wait for its own rate or a flood
        wait before its next message."""
        ready = self.limiter.chat_ready_at(chat_id)
        if ready <= self.limiter.clock():
            self._not_before.pop(chat_id, None)
            return False
        self._not_before[chat_id] = ready
        at = self.clock() + timedelta(seconds=ready - self.limiter.clock())
        await asyncio.to_thread(self._reschedule, chat_id, at)
        return True

    async def _deliver(self, chat_id: str, chat: Chat | None, unit: list[OutboxRow]) -> bool:
        """Send one message for ``unit`` (one alert, or a digest). False: stop serving this chat."""
        if await self._chat_waits(chat_id):
            return False
        # The global slot is booked only once a send may go (an in-flight place is free), so
        # sends leave at the global pace however long Telegram takes to answer the ones before.
        async with self._send_slots:
            slot = self.limiter.reserve(chat_id)
            if slot is None:  # a flood wait came in meanwhile
                await self._chat_waits(chat_id)
                return False
            await self.limiter.wait_for(slot)
            self._sending.add(chat_id)
            try:
                sent = await self._claimed_send(chat_id, unit)
            finally:
                self._sending.discard(chat_id)
        if sent is None:
            return False
        if sent and chat is not None and chat.pins and len(unit) == 1:
            await self._pin(chat_id, unit[0])
        return True

    async def _claimed_send(self, chat_id: str, unit: list[OutboxRow]) -> bool | None:
        """Claim, send, record. True: sent; False: not sent, go on with the chat; None: stop."""
        # The ledger: claimed and committed before Telegram hears anything. Store work runs off
        # the event loop: a slow commit must not bunch other chats' sends together.
        claimed = await asyncio.to_thread(self._claim, [r.id for r in unit])
        if claimed is None:
            return False  # no longer pending (a chat paused meanwhile, an operator cancelled)
        fresh, views = claimed
        ids = [r.id for r in fresh]
        self._claimed.update(ids)
        try:
            buttons: tuple[Button, ...] = ()
            if len(fresh) == 1:
                html = render_alert(views[fresh[0].id])
                buttons = alert_buttons(fresh[0].alert_key, _muted_name(views[fresh[0].id]))
            else:
                html = render_digest([views[r.id] for r in fresh])[0]
            note = None
            self.limiter.departed(chat_id)
            try:
                try:
                    message_id = await self.sender.send_message(chat_id, html, buttons)
                except BadMarkup as exc:
                    # Refused before it counted as a message: the plain copy takes the same slot.
                    log.warning("chat %s refused the alert's HTML (%s); resending as plain text",
                                chat_id, exc.reason)
                    message_id = await _send_plain(self.sender, chat_id, html, buttons)
                    note = f"sent as plain text: {exc.reason}"
                    self._totals.plain += 1
            except DeliveryError as exc:
                if isinstance(exc, RetryLater):
                    self.limiter.block(chat_id, exc.retry_after)
                go_on, counted, n = await asyncio.to_thread(self._failed_send, chat_id, fresh, exc)
                if counted:
                    setattr(self._totals, counted, getattr(self._totals, counted) + n)
                return go_on
            await asyncio.to_thread(self._mark_sent, ids, message_id, note)
        finally:
            self._claimed.difference_update(ids)
        self._totals.sent += len(ids)
        self._totals.messages += 1
        return True

    def _claim(self, ids: list[int]) -> tuple[list[OutboxRow], dict[int, AlertView]] | None:
        now = self.clock()
        with self.store.begin() as conn:
            if ledger.claim(conn, ids, self.owner, now, now + CLAIM_LEASE) == 0:
                return None
            fresh = [r for r in load_rows(conn, ids) if r.state is OutboxState.SENDING]
        return fresh, self._views(fresh)

    def _mark_sent(self, ids: list[int], message_id: int, note: str | None) -> None:
        with self.store.begin() as conn:
            ledger.mark_sent(conn, ids, message_id, self.clock(), note)

    def _hold(self, ids: list[int], until: datetime) -> None:
        with self.store.begin() as conn:
            ledger.mark_held(conn, ids, until, self.clock())

    def _cancel_paused(self, chat_id: str, reason: str) -> int:
        with self.store.begin() as conn:
            return pause_chat(conn, chat_id, reason, self.clock())

    def _reschedule(self, chat_id: str, at: datetime) -> None:
        with self.store.begin() as conn:
            ledger.reschedule_chat(conn, chat_id, at, self.clock())

    def _failed_send(self, chat_id: str, rows: Sequence[OutboxRow], exc: DeliveryError,
                     ) -> tuple[bool | None, str | None, int]:
        """Record a refused send (runs in a worker thread). Returns False: go on with this chat's
        next alert, None: stop serving the chat for now; and the summary count it adds to."""
        ids = [r.id for r in rows]
        now = self.clock()
        with self.store.begin() as conn:
            if isinstance(exc, RetryLater):
                until = now + timedelta(seconds=exc.retry_after)
                ledger.mark_retry(conn, ids, until, exc.reason, now, count_attempt=False)
                ledger.reschedule_chat(conn, chat_id, until, now)  # the whole chat waits, in order
                log.warning("chat %s: flood wait %.0f s (%s)", chat_id, exc.retry_after, exc.reason)
                return None, "retrying", 1
            if isinstance(exc, ChatMoved):
                n = move_chat(conn, chat_id, exc.new_chat_id, now)
                log.warning("chat %s became supergroup %s: %d alert(s) and its subscriptions moved",
                            chat_id, exc.new_chat_id, n)
                return None, "moved", n
            if isinstance(exc, ChatGone):
                n = pause_chat(conn, chat_id, exc.reason, now)
                log.warning("chat %s paused, %d alert(s) cancelled: %s", chat_id, n, exc.reason)
                return None, "cancelled", n
            if isinstance(exc, Fatal):
                ledger.mark_retry(conn, ids, now, exc.reason, now, count_attempt=False)
                raise exc
            attempts = max(r.attempts for r in rows)
            if isinstance(exc, Transient) and attempts < self.config.max_attempts:
                delay = self._backoff(attempts)
                ledger.mark_retry(conn, ids, now + timedelta(seconds=delay), exc.reason, now)
                log.info("chat %s: attempt %d failed (%s); retrying in %.1f s", chat_id, attempts, exc.reason,
                         delay)
                return None, "retrying", 1
            ledger.mark_failed(conn, ids, exc.reason, now)
            log.error("chat %s: alert(s) %s failed after %d attempt(s): %s", chat_id, ids, attempts, exc.reason)
            return False, "failed", len(ids)

    def _backoff(self, attempts: int) -> float:
        """Exponential with full jitter in its upper half: base·2^(n-1) · [0.5, 1)."""
        raw = min(self.backoff_cap, self.backoff_base * (2 ** max(attempts - 1, 0)))
        return raw * (0.5 + self.rng() / 2)

    async def _pin(self, chat_id: str, row: OutboxRow) -> None:
        """The alert's place as a map pin, right after it (no claim held: a pin lost in a crash
        is not an alert lost)."""
        view = (await asyncio.to_thread(self._views, [row]))[row.id]
        place = primary_place(view.match)
        if place is None:
            return
        # This chat's next slot (a second later in a private chat): it waits, no one else does;
        # the in-flight place is taken only once it is time.
        await self.sleep(max(self.limiter.chat_ready_at(chat_id) - self.limiter.clock(), 0.0))
        async with self._send_slots:
            await self.limiter.acquire(chat_id)
            try:
                await self.sender.send_location(chat_id, place.lat, place.lon)
            except DeliveryError as exc:
                if isinstance(exc, RetryLater):
                    self.limiter.block(chat_id, exc.retry_after)
                log.warning("chat %s: map pin not sent: %s", chat_id, exc.reason)

    # -- "Also: <outlet>" edits -------------------------------------------------------------------
    async def _edit(self, row: OutboxRow) -> bool:
        """Edit a sent message to show the outlets that ran its story since. False: the chat must
        wait (its rate, a flood wait, a network error); the edit stays due."""
        assert row.message_id is not None  # ledger.edits_due: sent rows only
        message_id = row.message_id
        # Whether the chat may send comes first: a waiting chat's edit is not rendered each pass.
        ready = self.limiter.chat_ready_at(row.chat_id)
        if ready > self.limiter.clock():
            self._not_before[row.chat_id] = ready
            return False
        planned = await asyncio.to_thread(self._plan_edit, row, message_id)
        if planned is None:
            return True
        same, html, buttons = planned
        note: str | None = None
        gone: str | None = None
        async with self._send_slots:
            await self.limiter.acquire(row.chat_id)  # ready: this waits for the global pace only
            try:
                await self.sender.edit_message(row.chat_id, message_id, html, buttons)
                self._totals.edited += 1
            except NotModified:
                pass
            except RetryLater as exc:
                self._not_before[row.chat_id] = self.limiter.block(row.chat_id, exc.retry_after)
                return False  # stays flagged
            except Transient as exc:
                log.info("chat %s: edit of message %s postponed: %s", row.chat_id, message_id, exc.reason)
                self._not_before[row.chat_id] = self.limiter.clock() + self._backoff(1)
                return False
            except ChatGone as exc:
                gone = exc.reason
                note = f"edit not possible: {exc.reason}"
            except DeliveryError as exc:
                note = f"edit not possible: {exc.reason}"
        self._totals.cancelled += await asyncio.to_thread(self._settle_edit, row.chat_id, same, note, gone)
        return True

    def _plan_edit(self, row: OutboxRow, message_id: int,
                   ) -> tuple[list[OutboxRow], str, tuple[Button, ...]] | None:
        """(runs in a worker thread) The alerts the message shows and its new text and buttons;
        None when the digest it is would no longer fit (the edit is dropped with a note)."""
        with self.store.connect() as conn:
            same = ledger.in_message(conn, row.chat_id, message_id) or [row]
        views = self._views(same)
        if len(same) == 1:
            return same, render_alert(views[row.id]), alert_buttons(row.alert_key, _muted_name(views[row.id]))
        rendered = render_digest([views[r.id] for r in same])
        if len(rendered) > 1:
            with self.store.begin() as conn:
                ledger.clear_edit(conn, row.id, self.clock(), "also-edit skipped: digest would not fit")
            return None
        return same, rendered[0], ()

    def _settle_edit(self, chat_id: str, same: list[OutboxRow], note: str | None, gone: str | None) -> int:
        """(runs in a worker thread) The edit is done with: pause a chat that is gone (returns the
        alerts cancelled), clear the rows' flags."""
        with self.store.begin() as conn:
            cancelled = pause_chat(conn, chat_id, gone, self.clock()) if gone is not None else 0
            for r in same:
                ledger.clear_edit(conn, r.id, self.clock(), note)
        return cancelled

    # -- what an alert shows ----------------------------------------------------------------------
    def _views(self, rows: Sequence[OutboxRow]) -> dict[int, AlertView]:
        article_ids = {r.article_id for r in rows}
        match_ids = {r.match_id for r in rows if r.match_id is not None}
        with self.store.connect() as conn:
            arts = {a.id: a for a in conn.execute(select(articles).where(articles.c.id.in_(article_ids)))}
            evid = {m.id: m.evidence for m in conn.execute(
                select(matches.c.id, matches.c.evidence).where(matches.c.id.in_(match_ids)))} if match_ids else {}
        views: dict[int, AlertView] = {}
        for r in rows:
            art = arts.get(r.article_id)
            raw = evid.get(r.match_id) if r.match_id is not None else r.evidence
            match = _load_match(raw)
            kind, target = parse_alert_key(r.alert_key)
            is_rule = kind is SubscriptionKind.RULE
            label = r.label or (None if is_rule else target)
            views[r.id] = AlertView(
                title=art.title if art else "",
                url=art.url if art else "",
                outlet=(art.outlet or art.source) if art else None,
                published=art.published if art else None,
                language=art.language if art else None,
                rule_title=match.title if (match and is_rule) else None,
                severity=match.severity if match else None,
                label=None if is_rule else label,
                match=match,
                text=art.text if (art and match is None) else "",
                also=r.also,
                place_line=self._place_line(match),
            )
        return views

    def _place_line(self, match: Match | None) -> str | None:
        place = primary_place(match)
        if place is None or self.ruleset is None:
            return None  # the formatter computes one from the match's own places
        try:
            where = describe_position(place, self.ruleset)
        except Exception:  # a rules-side problem must not stop an alert
            return None
        return f"{place.name} — {where}" if where else place.name

    # -- bookkeeping ------------------------------------------------------------------------------
    def _snapshot(self) -> DispatchSummary:
        copy = DispatchSummary()
        copy.add(self._totals)
        return copy

    def _since(self, before: DispatchSummary) -> DispatchSummary:
        return self._totals.minus(before)

    def _raise_fatal(self) -> None:
        if self._fatal is not None:
            fatal, self._fatal = self._fatal, None
            raise fatal


def _muted_name(view: AlertView) -> str | None:
    """What the mute button under this alert mutes: the subscription's place or group, or the rule."""
    return view.label or view.rule_title


def _load_match(raw: dict[str, Any] | str | None) -> Match | None:
    if not raw:
        return None
    try:
        return Match.from_json(raw)
    except (TypeError, ValueError, KeyError):
        return None


def _release_time(chat: Chat | None, now: datetime) -> datetime | None:
    return release_time(chat.prefs, now) if chat is not None else None


def _silenced(chat: Chat | None, now: datetime) -> bool:
    """Muted or in quiet hours right now: even a digest that is due waits (a dispatcher that was
    down when the quiet hours ended must not release it in the next night's quiet hours)."""
    if chat is None:
        return False
    if chat.muted_until and chat.muted_until > now:
        return True
    return in_quiet_hours(chat.prefs, now)


async def _send_plain(sender: Sender, chat_id: str, html: str, buttons: Sequence[Button]) -> int:
    return await sender.send_plain(chat_id, to_terminal(html, show_links=True), buttons)


async def _first_of(*events: asyncio.Event, within: float,
                    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep) -> None:
    """Return when any event is set, or after ``within`` seconds (slept with ``sleep``)."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    timer = asyncio.create_task(_sleeping(sleep, within))
    try:
        await asyncio.wait([*waiters, timer], return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in [*waiters, timer]:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*waiters, timer, return_exceptions=True)


async def _sleeping(sleep: Callable[[float], Awaitable[object]], seconds: float) -> None:
    await sleep(seconds)
