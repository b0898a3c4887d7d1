"""`lookout demo`: its arguments, and the handler that checks them and runs ``lookout.demo``
(serve seeds/ as a local news site, crawl it, match, store and print the alerts)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lookout.commands import add_command
from lookout.config import Config
from lookout.demo import TelegramTarget, run_demo

if TYPE_CHECKING:
    import argparse

    from lookout.commands import Subparsers
    from lookout.context import AppContext


def register(sub: Subparsers) -> None:
    p = add_command(
        sub,
        "demo",
        description="Serve seeds/ as a news site on 127.0.0.1, crawl it with the real spiders, clean, "
        "match the example rules, store in a temporary SQLite database and print each alert as "
        "Telegram would show it. With --telegram-api, --token and --chat the alerts are also sent "
        "to that Bot API server.",
    )
    p.add_argument("--seeds", type=Path, help="folder of seed articles (default: the project's seeds/)")
    p.add_argument("--telegram-api", metavar="URL", help="Bot API root, e.g. http://127.0.0.1:8081")
    p.add_argument("--token", metavar="T", help="bot token for --telegram-api")
    p.add_argument("--chat", metavar="ID", help="chat id that receives the alerts")
    p.add_argument("--keep", type=Path, metavar="DIR", help="keep the demo database in DIR")
    p.set_defaults(func=handle)


def handle(args: argparse.Namespace, _ctx: AppContext) -> int:
    given = [args.telegram_api, args.token, args.chat]
    if any(given) and not all(given):
        print("lookout demo: --telegram-api, --token and --chat go together", file=sys.stderr)
        return 2
    target = TelegramTarget(args.telegram_api, args.token, str(args.chat)) if all(given) else None
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    # The demo runs on embedded defaults whatever lookout.yaml says: it must work anywhere.
    summary = run_demo(Config(), seeds_dir=args.seeds, telegram=target, out=sys.stdout, workdir=args.keep)
    return 0 if summary.alerts > 0 else 1
