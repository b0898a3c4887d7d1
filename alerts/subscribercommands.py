"""The bot's subscriber side: what a chat can watch (``/places``, ``/groups``, ``/rules``, paged
with "Watch" buttons), what it watches (``/watch``, ``/near``, ``/unwatch``, ``/list``,
``/stop``), the greeting and help, the hint for plain text, and a group's move to a supergroup.
Its delivery preferences are ``alerts.prefcommands``; the buttons under alerts ``alerts.buttons``.

Each handler resolves what the user typed against the current ruleset, does its store work
through ``alerts.subscriptions`` (and ``alerts.discovery`` for the stories a subscription would
have brought) in a worker thread, and answers in Telegram HTML; bad input gets a usage answer.
"""

from __future__ import annotations

import difflib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from telegram import InlineKeyboardButton, InlineKeyboardMarkup
from telegram.error import BadRequest

from alerts import chatprefs, discovery, subscriptions
from alerts.botbase import BotCommands, echo
from alerts.format import SEVERITY_DOTS, clip_reply, esc, shown
from alerts.keys import SubscriptionKind, alert_key
from alerts.prefcommands import PREF_COMMANDS
from alerts.telegram import CALLBACK_LIMIT, button_name, callback_answer, callback_key
from core.store import utcnow
from rules.fold import fold

if TYPE_CHECKING:
    from collections.abc import Sequence

    from telegram import Update
    from telegram.ext import ContextTypes

    from alerts.botbase import Handler
    from alerts.discovery import RecentStory
    from alerts.subscriptions import Subscription
    from rules.model import Group, Place, Resolved

log = logging.getLogger(__name__)

SUBSCRIBER_COMMANDS: list[tuple[str, str]] = [
    ("start", "What this bot does, with examples to start from"),
    ("help", "Commands and what this chat watches"),
    ("places", "Places you can watch"),
    ("groups", "Armed groups you can watch"),
    ("rules", "Rules you can watch"),
    ("watch", "Watch a place, group or rule: /watch Azaz"),
    ("near", "Matches near a place: /near Azaz 15"),
    ("unwatch", "Stop watching: /unwatch Azaz"),
    ("list", "Everything this chat has set"),
    *PREF_COMMANDS,  # how alerts arrive: mute, quiet hours, digest, time zone, pins
    ("stop", "Remove all of this chat's subscriptions"),
]

WATCH_USAGE = "Usage: /watch <place | group | rule>, e.g. /watch Azaz, /watch ISIS, /watch is-near-azaz"
NEAR_USAGE = "Usage: /near <place> <km>, e.g. /near Azaz 15"
UNWATCH_USAGE = "Usage: /unwatch <place | group | rule> or /unwatch near <place> (see /list)"
MAX_NEAR_KM = 500.0
MAX_QUERY = 200  # characters of a name worth looking up; longer input is no name (and slow to compare)
WATCH_SCOPE = {
    SubscriptionKind.PLACE: "every new article that mentions it",
    SubscriptionKind.GROUP: "every new article that mentions it",
    SubscriptionKind.RULE: "every match of this rule",
}

PAGE_SIZE = 10
LISTINGS: dict[str, SubscriptionKind] = {
    "places": SubscriptionKind.PLACE, "groups": SubscriptionKind.GROUP, "rules": SubscriptionKind.RULE,
}
WATCHABLE = frozenset(LISTINGS.values())
STALE_BUTTON = "This button no longer works."
MAX_SUGGESTED_KEYS = 10


@dataclass(frozen=True)
class Entry:
    """One watchable place, group or rule as a listing shows it."""

    kind: SubscriptionKind
    id: str
    name: str
    line: str  # Telegram HTML


@dataclass(frozen=True)
class Page:
    text: str  # Telegram HTML
    keyboard: InlineKeyboardMarkup | None
    number: int
    count: int


class SubscriberCommands(BotCommands):
    """What any chat can ask the bot, and the buttons under its listings."""

    def handlers(self) -> dict[str, Handler]:
        """Command name -> handler, for every subscriber command (SUBSCRIBER_COMMANDS)."""
        return {
            "start": self.start, "help": self.help, "places": self.places, "groups": self.groups,
            "rules": self.rules, "watch": self.watch, "near": self.near, "unwatch": self.unwatch,
            "list": self.show_list, "stop": self.stop,
        }

    def button_handlers(self) -> dict[str, Handler]:
        """Callback-data pattern -> handler, for the buttons under the listings: ``page:<listing>:<n>``
        turns the page in place, ``watch:<kind>:<id>`` (or ``watch:<kind>:#<hash>``) watches."""
        return {r"^page:": self.page_button, r"^watch:": self.watch_button}

    # --- what a chat watches --------------------------------------------------------------------

    def describe_target(self, kind: SubscriptionKind, target: str, km: float | None = None) -> str:
        ruleset = self.ruleset_provider()
        if kind is SubscriptionKind.RULE:
            rule = ruleset.rules.get(target)
            defined, name = rule is not None, rule.title if rule is not None else None
        else:
            named = ruleset.groups if kind is SubscriptionKind.GROUP else ruleset.places
            item = named.get(target)
            defined, name = item is not None, item.name if item is not None else None
        gone = "" if defined else " (no longer defined in the rules)"
        label = f"{esc(name)} " if name else ""
        key = alert_key(kind, target)
        if kind is SubscriptionKind.NEAR:
            return f"near {label}within {km:g} km <code>{esc(key)}</code>{gone}"
        return f"{kind} {label}<code>{esc(key)}</code>{gone}"

    async def watching_lines(self, chat_id: str) -> list[str]:
        subs = await self.db(subscriptions.list_for_chat, chat_id)
        return [f"• {self.describe_target(s.kind, s.target, s.km)}" for s in subs]

    async def chat_lines(self, chat_id: str) -> list[str]:
        """What this chat watches and its preferences, as /start and /help end."""
        watching = await self.watching_lines(chat_id)
        lines = ["<b>This chat watches:</b>", *watching] if watching else ["This chat watches nothing yet."]
        chat = await self.db(subscriptions.get_chat, chat_id)
        lines.extend(esc(line) for line in chatprefs.describe(chat.prefs if chat else None, utcnow()))
        return lines

    def unknown_reply(self, query: str, what: str = "place, group or rule") -> str:
        text = f"Unknown {what} “{echo(query)}”."
        if len(query) > MAX_QUERY:
            return f"{text} Names are short: see /places, /groups, /rules."
        suggestions = self.ruleset_provider().suggest(query, n=3)
        if suggestions:
            text += " Did you mean: " + ", ".join(f"<code>{esc(s)}</code>" for s in suggestions) + "?"
        return text + "\nUse a place, group or rule id, name or alias from the rule files (see /places)."

    def examples(self) -> list[tuple[str, str]]:
        """``/watch`` arguments from the loaded rules, one per kind, each with what it brings."""
        ruleset = self.ruleset_provider()
        out: list[tuple[str, str]] = []
        place = next(iter(ruleset.places.values()), None)
        if place is not None:
            out.append((place.name, f"the place {place.name}: every new article that mentions it"))
        group = next(iter(ruleset.groups.values()), None)
        if group is not None:
            out.append((group.name, f"the group {group.name}: every new article that mentions it"))
        rule = next(iter(ruleset.rules.values()), None)
        if rule is not None:
            out.append((rule.id, f"the rule “{rule.title}”: every match"))
        return out

    # --- greeting and help ----------------------------------------------------------------------

    async def start(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = await self.touch_chat(update)
        lines = [
            "<b>Lookout</b> watches news sources for reports about places and armed groups, "
            "and alerts this chat when an article matches.",
            "",
            "/watch &lt;place | group | rule&gt; starts watching one, for example:",
        ]
        examples = self.examples()
        lines.extend(f"• <code>/watch {esc(arg)}</code> — {esc(what)}" for arg, what in examples)
        place = next(iter(self.ruleset_provider().places.values()), None)
        if place is not None:
            lines.append(f"• <code>/near {esc(place.name)} 15</code> — rule matches within 15 km of it")
        lines += [
            "Each answer shows the last stories it would have brought.",
            "Browse what can be watched: /places, /groups, /rules. All commands: /help",
            "",
            *await self.chat_lines(chat_id),
        ]
        await self.reply(update, "\n".join(lines))

    async def help(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = await self.touch_chat(update)
        lines = ["<b>Commands</b>"]
        lines.extend(f"/{name} — {esc(text)}" for name, text in SUBSCRIBER_COMMANDS)
        lines += ["Held alerts are never dropped: they arrive together as one digest.", ""]
        lines.extend(await self.chat_lines(chat_id))
        await self.reply(update, "\n".join(lines))

    # --- what can be watched --------------------------------------------------------------------

    async def places(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.listing(update, context, "places")

    async def groups(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.listing(update, context, "groups")

    async def rules(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        await self.listing(update, context, "rules")

    async def listing(self, update: Update, context: ContextTypes.DEFAULT_TYPE, listing: str) -> None:
        args = context.args or []
        usage = f"Usage: /{listing} [page], e.g. /{listing} 2"
        number = _parse_page(args[0]) if len(args) == 1 else (1 if not args else None)
        if number is None:
            await self.reply(update, esc(usage))
            return
        entries = self.entries(listing)
        count = _page_count(len(entries))
        if not entries:
            await self.reply(update, f"No {listing} are defined in the loaded rules.")
            return
        if not 1 <= number <= count:
            await self.reply(update, f"There {_are(count)} of {listing}. {esc(usage)}")
            return
        page = self.page(listing, number)
        if update.effective_message is not None:
            await update.effective_message.reply_text(clip_reply(page.text), reply_markup=page.keyboard)

    def entries(self, listing: str) -> list[Entry]:
        """A listing's entries: places and groups by name, rules in file order (authors put what
        matters most first)."""
        ruleset = self.ruleset_provider()
        kind = LISTINGS[listing]
        if kind is SubscriptionKind.RULE:
            return [
                Entry(kind, r.id, r.title,
                      f"• {SEVERITY_DOTS[r.severity]} <b>{shown(r.title)}</b> <code>{esc(r.id)}</code>")
                for r in ruleset.rules.values()
            ]
        named: Sequence[Place | Group] = list(
            (ruleset.places if kind is SubscriptionKind.PLACE else ruleset.groups).values()
        )
        out = []
        for item in sorted(named, key=lambda i: (fold(i.name), i.id)):
            also = f" · also {shown(', '.join(item.aliases[:3]))}" if item.aliases else ""
            line = f"• <b>{shown(item.name)}</b> <code>{esc(item.id)}</code>{also}"
            out.append(Entry(kind, item.id, item.name, line))
        return out

    def page(self, listing: str, number: int) -> Page:
        """Page ``number`` of a listing (clamped to the pages there are), with its buttons."""
        entries = self.entries(listing)
        count = _page_count(len(entries))
        number = min(max(number, 1), count)
        shown = entries[(number - 1) * PAGE_SIZE: number * PAGE_SIZE]
        if not shown:
            return Page(f"No {listing} are defined in the loaded rules.", None, 1, 1)
        first = (number - 1) * PAGE_SIZE + 1
        heading = f"<b>{listing.capitalize()}</b> {first}–{first + len(shown) - 1} of {len(entries)}"
        if count > 1:
            heading += f", page {number}/{count}"
        text = "\n".join([heading, *(e.line for e in shown), "", "Tap Watch, or send /watch &lt;id or name&gt;."])
        buttons = [InlineKeyboardButton(f"Watch {button_name(e.name)}", callback_data=watch_data(e.kind, e.id))
                   for e in shown]
        rows = [buttons[i:i + 2] for i in range(0, len(buttons), 2)]
        turn = []
        if number > 1:
            turn.append(InlineKeyboardButton("‹ Previous", callback_data=f"page:{listing}:{number - 1}"))
        if number < count:
            turn.append(InlineKeyboardButton("Next ›", callback_data=f"page:{listing}:{number + 1}"))
        if turn:
            rows.append(turn)
        return Page(text, InlineKeyboardMarkup(rows), number, count)

    async def page_button(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """``page:<listing>:<n>``: the message shows that page instead."""
        query = update.callback_query
        assert query is not None
        _, _, rest = (query.data or "").partition(":")
        listing, _, number_text = rest.partition(":")
        number = _parse_page(number_text)
        if listing not in LISTINGS or number is None or query.message is None:
            await query.answer(STALE_BUTTON)
            return
        page = self.page(listing, number)
        try:
            await query.edit_message_text(clip_reply(page.text), reply_markup=page.keyboard)
        except BadRequest as exc:
            # A second press on the same page changes nothing, which Telegram refuses; a message
            # it can no longer edit gets a pointer to a fresh listing instead of an error reply.
            if "not modified" not in exc.message.lower():
                log.info("could not turn a %s page: %s", listing, exc.message)
                await query.answer(f"This list is out of date: send /{listing} again.")
                return
        await query.answer()

    async def watch_button(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """``watch:<kind>:<id>``: this chat watches it; the answer says so."""
        query = update.callback_query
        assert query is not None
        _, _, rest = (query.data or "").partition(":")
        kind_text, _, target = rest.partition(":")
        resolved = self.watchable(kind_text, target)
        if resolved is None or update.effective_chat is None:
            await query.answer(STALE_BUTTON)
            return
        kind, target_id, name = resolved
        chat_id = await self.touch_chat(update)
        added = await self.db(subscriptions.add, chat_id, kind, target_id)
        done = f"Watching {kind} {name}." if added else f"This chat already watches {kind} {name}."
        await query.answer(callback_answer(f"{done} /list shows all, /unwatch {target_id} stops it."))

    def watchable(self, kind_text: str, target: str) -> tuple[SubscriptionKind, str, str] | None:
        """The place, group or rule a "Watch" button names (by id, or by ``#<callback_key>``)."""
        try:
            kind = SubscriptionKind(kind_text)
        except ValueError:
            return None
        if kind not in WATCHABLE or not target:
            return None
        ruleset = self.ruleset_provider()
        if kind is SubscriptionKind.RULE:
            names = {r.id: r.title for r in ruleset.rules.values()}
        else:
            named = ruleset.places if kind is SubscriptionKind.PLACE else ruleset.groups
            names = {i.id: i.name for i in named.values()}
        if target.startswith("#"):  # an id too long for callback_data travels as a hash
            target = next((i for i in names if callback_key(i) == target[1:]), "")
        return (kind, target, names[target]) if target in names else None

    # --- commands -------------------------------------------------------------------------------

    async def watch(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = " ".join(context.args or []).strip()
        if not query:
            await self.reply(update, esc(WATCH_USAGE))
            return
        resolved = self.ruleset_provider().resolve(query) if len(query) <= MAX_QUERY else None
        if resolved is None:
            await self.reply(update, self.unknown_reply(query))
            return
        kind = SubscriptionKind(resolved.kind)
        chat_id = await self.touch_chat(update)
        added = await self.db(subscriptions.add, chat_id, kind, resolved.id)
        stories = await self.db(discovery.recent_stories, kind, resolved.id, self.names(resolved))
        what = f"{kind} <b>{esc(resolved.name)}</b> (<code>{esc(resolved.id)}</code>)"
        lines = [f"Watching {what}: you will get {WATCH_SCOPE[kind]}." if added
                 else f"This chat already watches {what}."]
        if stories:
            lines.append(f"The last {_stories(len(stories))} it would have brought:")
            lines.extend(story_line(s) for s in stories)
        else:
            lines.append("No stored story would have matched yet: the next one will arrive here.")
        await self.reply(update, "\n".join(lines))

    def names(self, resolved: Resolved) -> tuple[str, ...]:
        """A place's or group's names, as article text would hold them (none for a rule)."""
        ruleset = self.ruleset_provider()
        item = (ruleset.places if resolved.kind == "place" else ruleset.groups).get(resolved.id)
        return item.names if item is not None and resolved.kind != "rule" else ()

    async def near(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        args = list(context.args or [])
        if len(args) >= 3 and args[-1].lower() == "km":  # "/near Azaz 15 km"
            args.pop()
        km = _parse_km(args[-1]) if len(args) >= 2 else None
        if km is None:
            await self.reply(update, esc(NEAR_USAGE))
            return
        if not 0 < km <= MAX_NEAR_KM:
            limit = f"The distance must be between 0 and {MAX_NEAR_KM:g} km."
            await self.reply(update, f"{limit} {esc(NEAR_USAGE)}")
            return
        query = " ".join(args[:-1])
        resolved = self.ruleset_provider().resolve(query) if len(query) <= MAX_QUERY else None
        if resolved is None:
            await self.reply(update, self.unknown_reply(query, "place"))
            return
        if SubscriptionKind(resolved.kind) is not SubscriptionKind.PLACE:
            not_place = f"“{echo(query)}” is a {resolved.kind}, not a place."
            await self.reply(update, f"{not_place} {esc(NEAR_USAGE)}")
            return
        chat_id = await self.touch_chat(update)
        await self.db(subscriptions.add, chat_id, SubscriptionKind.NEAR, resolved.id, km)
        await self.reply(
            update,
            f"Watching rule matches within {km:g} km of <b>{esc(resolved.name)}</b> "
            f"(<code>{esc(alert_key(SubscriptionKind.NEAR, resolved.id))}</code>).",
        )

    async def unwatch(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = " ".join(context.args or []).strip()
        if not query:
            await self.reply(update, esc(UNWATCH_USAGE))
            return
        chat_id = self.chat_id(update)
        subs = await self.db(subscriptions.list_for_chat, chat_id)
        by_key = {s.alert_key: s for s in subs}
        target = self._unwatch_target(query, by_key) if len(query) <= MAX_QUERY else None
        if target is None:
            if not subs:
                await self.reply(update, "This chat watches nothing. " + esc(WATCH_USAGE))
                return
            missing = f"This chat does not watch “{echo(query)}”."
            close = self.closest_subscriptions(query, subs)
            if close:
                offer = ", ".join(f"<code>/unwatch {esc(key)}</code>" for key in close)
                await self.reply(update, f"{missing} Did you mean {offer}?")
                return
            keys = [s.alert_key for s in subs]
            more = " …" if len(keys) > MAX_SUGGESTED_KEYS else ""
            listed = ", ".join(f"<code>{esc(k)}</code>" for k in keys[:MAX_SUGGESTED_KEYS]) + more
            await self.reply(update, f"{missing} It watches {listed}. {esc(UNWATCH_USAGE)}")
            return
        sub = by_key[target]
        await self.db(subscriptions.remove, chat_id, sub.kind, sub.target)
        await self.reply(update, f"Stopped watching {self.describe_target(sub.kind, sub.target, sub.km)}.")

    def _unwatch_target(self, query: str, by_key: dict[str, Subscription]) -> str | None:
        """The alert key of this chat's subscription that ``query`` names, if any."""
        if query in by_key:
            return query  # a key from /list: "near:azaz", "place:azaz", a rule id
        near = query.lower().startswith("near ")
        resolved = self.ruleset_provider().resolve(query[5:].strip() if near else query)
        if resolved is None:
            return None
        candidates = [alert_key(SubscriptionKind(resolved.kind), resolved.id)] if not near else []
        if SubscriptionKind(resolved.kind) is SubscriptionKind.PLACE:
            candidates.append(alert_key(SubscriptionKind.NEAR, resolved.id))  # "/unwatch Azaz" with only near
        return next((key for key in candidates if key in by_key), None)

    def closest_subscriptions(self, query: str, subs: Sequence[Subscription], n: int = 3) -> list[str]:
        """Did-you-mean for /unwatch: the alert keys of the chat's subscriptions whose key, id,
        name, alias or rule title comes closest to ``query``."""
        if len(query) > MAX_QUERY:
            return []
        ruleset = self.ruleset_provider()
        labels: dict[str, str] = {}  # folded label -> alert key
        for sub in subs:
            names: tuple[str, ...] = (sub.alert_key, sub.target)
            if sub.kind is SubscriptionKind.RULE and (rule := ruleset.rules.get(sub.target)) is not None:
                names += (rule.title,)
            elif sub.kind is not SubscriptionKind.RULE:
                named = ruleset.groups if sub.kind is SubscriptionKind.GROUP else ruleset.places
                if (item := named.get(sub.target)) is not None:
                    names += item.names
                if sub.kind is SubscriptionKind.NEAR:
                    names += tuple(f"near {name}" for name in names)
            for name in names:
                labels.setdefault(fold(name), sub.alert_key)
        out: list[str] = []
        for label in difflib.get_close_matches(fold(query), list(labels), n=n * 4, cutoff=0.6):
            if labels[label] not in out:
                out.append(labels[label])
        return out[:n]

    async def show_list(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """Everything the chat has set: subscriptions, then its preferences and mutes."""
        chat_id = self.chat_id(update)
        watching = await self.watching_lines(chat_id)
        now = utcnow()
        chat = await self.db(subscriptions.get_chat, chat_id)
        mutes = await self.db(subscriptions.active_mutes, chat_id, now)
        lines = ["<b>This chat watches:</b>", *watching] if watching else [
            "This chat watches nothing. " + esc(WATCH_USAGE) + " (see /places)"
        ]
        prefs = chat.prefs if chat else None
        lines.extend(esc(line) for line in chatprefs.describe(prefs, now))
        lines.extend(esc(line) for line in chatprefs.describe_mutes(prefs, mutes))
        lines.append(f"Map pins under alerts: {'on' if chat is not None and chat.pins else 'off'} (/pins)")
        await self.reply(update, "\n".join(lines))

    async def stop(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        chat_id = self.chat_id(update)
        removed = await self.db(subscriptions.remove_all, chat_id)
        await self.reply(
            update, f"Removed {removed} subscription(s). This chat gets no new alerts; /watch to start again."
        )

    async def migrated(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """The group became a supergroup (a new chat id): its subscriptions follow it."""
        message = update.effective_message
        if message is None or not message.migrate_to_chat_id or update.effective_chat is None:
            return
        moved = await self.db(subscriptions.move_chat, str(update.effective_chat.id),
                              str(message.migrate_to_chat_id), utcnow())
        log.info("chat %s became supergroup %s; %d pending alert(s) moved",
                 update.effective_chat.id, message.migrate_to_chat_id, moved)

    async def plain_text(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        """Text that is no command, in a private chat: a one-line hint, naming the place, group or
        rule it is (or is close to) when there is one."""
        message = update.effective_message
        text = " ".join(((message.text if message else None) or "").split())
        ruleset = self.ruleset_provider()
        resolved = ruleset.resolve(text) if text and len(text) <= MAX_QUERY else None
        if resolved is not None:
            hint = (f"“{echo(text)}” is a {resolved.kind} (<b>{esc(resolved.name)}</b>): "
                    f"send <code>/watch {echo(text)}</code> to watch it.")
        elif text and len(text) <= MAX_QUERY and (close := ruleset.suggest(text, n=1)):
            hint = f"Did you mean <code>/watch {esc(close[0])}</code>? Commands start with /; see /help."
        else:
            example = next((arg for arg, _ in self.examples()), None)
            hint = (f"Commands start with /: try <code>/watch {esc(example)}</code>, /places or /help."
                    if example else "Commands start with /: try /places or /help.")
        await self.reply(update, hint)

    async def unknown(self, update: Update, _context: ContextTypes.DEFAULT_TYPE) -> None:
        if update.effective_chat is not None and update.effective_chat.type == "private":
            await self.reply(update, "Unknown command. See /help.")


def watch_data(kind: SubscriptionKind, target: str) -> str:
    """A "Watch" button's callback_data: ``watch:<kind>:<id>``, or ``watch:<kind>:#<hash>`` when
    the id would not fit Telegram's 64 bytes (``SubscriberCommands.watchable`` reads it back)."""
    data = f"watch:{kind}:{target}"
    return data if len(data.encode("utf-8")) <= CALLBACK_LIMIT else f"watch:{kind}:#{callback_key(target)}"


def story_line(story: RecentStory) -> str:
    """• <title, linked> — outlet, 1 Jun 2016"""
    date = story.date
    outlet = f"{shown(story.outlet)}, " if story.outlet else ""
    title = shown(story.title) or esc(story.url)
    return f'• <a href="{esc(story.url)}">{title}</a> — {outlet}{date.day} {date:%b %Y}'


def _page_count(entries: int) -> int:
    return max(1, -(-entries // PAGE_SIZE))


def _are(pages: int) -> str:
    return "is 1 page" if pages == 1 else f"are {pages} pages"


def _stories(n: int) -> str:
    return "story" if n == 1 else f"{n} stories"


def _parse_page(text: str) -> int | None:
    # ASCII digits only: str.isdigit() also accepts "²", which int() refuses.
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 6 else None


def _parse_km(text: str) -> float | None:
    try:
        return float(text.lower().removesuffix("km").replace(",", "."))
    except ValueError:
        return None
