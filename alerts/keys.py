"""What an alert was sent for: the kinds of subscription, and the alert keys built from them.

An alert key names why a chat got an alert: a bare rule id for a rule match (the rule's
subscribers and its ``notify`` chats), else ``<kind>:<id>``: ``place:azaz``, ``group:isis``,
``near:azaz``. The outbox stores it on every alert (``outbox.alert_key``), the buttons under an
alert carry it, and ``rule_mutes`` mutes by it. Rule ids never contain ":" (``rules.loader``),
so every key parses back to one kind and target.
"""

from __future__ import annotations

from enum import StrEnum


class SubscriptionKind(StrEnum):
    """What a chat watches, as the ``subscriptions.kind`` column stores it."""

    PLACE = "place"  # every new article that mentions the place
    GROUP = "group"  # every new article that mentions the armed group
    RULE = "rule"  # every match of the rule
    NEAR = "near"  # every rule match with a place within ``km`` of the place


_PREFIXED = frozenset(kind.value for kind in SubscriptionKind if kind is not SubscriptionKind.RULE)


def alert_key(kind: SubscriptionKind, target: str) -> str:
    """The key of a subscription to ``target``: the rule id itself, else ``<kind>:<target>``."""
    return target if kind == SubscriptionKind.RULE else f"{kind}:{target}"


def parse_alert_key(key: str) -> tuple[SubscriptionKind, str]:
    """``near:azaz`` -> (NEAR, "azaz"); anything else is a rule id -> (RULE, key)."""
    prefix, sep, target = key.partition(":")
    if sep and target and prefix in _PREFIXED:
        return SubscriptionKind(prefix), target
    return SubscriptionKind.RULE, key
