"""The CLI's commands: one module per command group, and the table naming each command's module
and one-line help. A module exposes ``register(subparsers)`` and sets ``func(args, ctx) -> int``
on its parsers; ``lookout.cli`` imports a module only when one of its commands runs."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Sequence

    from lookout.context import AppContext

    Subparsers = argparse._SubParsersAction[argparse.ArgumentParser]
    Handler = Callable[[argparse.Namespace, AppContext], int]


@dataclass(frozen=True)
class Command:
    module: str  # dotted name of the module that registers and runs the command
    help: str  # the line ``lookout --help`` lists it with


# In the order ``lookout --help`` lists them.
COMMANDS: dict[str, Command] = {
    "demo": Command(
        "lookout.commands.demo",
        "run the whole pipeline on a local news site built from seeds/ (no network, no token)",
    ),
    "crawl": Command("lookout.commands.crawl", "crawl sources now, match rules and enqueue alerts"),
    "send": Command("lookout.commands.send", "deliver pending alerts to Telegram and exit"),
    "run": Command("lookout.commands.run", "run the service: scheduled crawls, the Telegram bot and alert delivery"),
    "status": Command("lookout.commands.status", "sources, outbox, subscribers, rules and alert latency"),
    "rules": Command("lookout.commands.rules", "check, test and backtest rule files"),
    "sources": Command("lookout.commands.sources", "list sources with their crawl state, or check a sources file"),
    "failures": Command("lookout.commands.failures", "list failing article URLs and their backoff, or forget them"),
    "subscribe": Command(
        "lookout.commands.subscribe", "subscribe a chat to a place, group, rule, or matches near a place"
    ),
    "unsubscribe": Command("lookout.commands.subscribe", "remove a chat's subscription (or all of them)"),
    "subscribers": Command("lookout.commands.subscribe", "list subscriptions"),
    "alerts": Command("lookout.commands.alerts", "list queued, sent and failed alerts; retry failed ones"),
    "gazetteer": Command("lookout.commands.gazetteer", "import GeoNames dumps, build the gazetteer cache"),
}


def add_command(sub: Subparsers, name: str, **kwargs: Any) -> argparse.ArgumentParser:
    """The parser of command ``name``, listed with its line from ``COMMANDS``."""
    return sub.add_parser(name, help=COMMANDS[name].help, **kwargs)


def usage_handler(parser: argparse.ArgumentParser, *, full: bool = True) -> Handler:
    """The handler of a command group called without its sub-command: its help (``full``) or
    usage line on stderr, exit 2."""

    def handler(_args: argparse.Namespace, _ctx: AppContext) -> int:
        if full:
            parser.print_help(sys.stderr)
        else:
            parser.print_usage(sys.stderr)
        return 2

    return handler


def table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Columns padded to their widest cell, a rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
        for row in [header, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
