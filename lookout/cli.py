"""The ``lookout`` command line: parses arguments, loads and validates the config, and hands
off to the command modules in ``lookout.commands``."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
from typing import TYPE_CHECKING

from lookout import __version__

if TYPE_CHECKING:
    from collections.abc import Sequence

# Command modules, in the order --help lists them.
COMMAND_MODULES = (
    "demo", "crawl", "send", "run", "status", "rules", "sources", "subscribe", "alerts", "gazetteer",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lookout",
        description="Watch news sources, match rules about places and armed groups, alert on Telegram.",
    )
    parser.add_argument("--version", action="version", version=f"lookout {__version__}")
    parser.add_argument(
        "--config", metavar="FILE",
        help="configuration file (default: $LOOKOUT_CONFIG, then ./lookout.yaml, then embedded defaults)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug details")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"lookout.commands.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from core.located import LocatedErrors
    from lookout.config import load_config

    try:
        config = load_config(args.config)
    except LocatedErrors as exc:
        print(str(exc), file=sys.stderr)
        print(f"lookout: configuration has {len(exc.errors)} error(s); nothing started", file=sys.stderr)
        return 1
    return run_command(args, config)


def run_command(args: argparse.Namespace, config) -> int:
    """Run a parsed command with a validated config: logging set up, secrets redacted, the
    store closed afterwards, located errors printed. The service's crawl children use it too."""
    from core.located import LocatedErrors
    from core.logs import setup_logging
    from lookout.context import AppContext

    verbose = getattr(args, "verbose", False)
    setup_logging(logging.DEBUG if verbose else config.log_level, secrets=_secrets(config))
    ctx = AppContext(config)
    try:
        return int(args.func(args, ctx) or 0)
    except LocatedErrors as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `lookout ... | head` closed the pipe: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    finally:
        ctx.close()


def _secrets(config) -> list[str]:
    token = config.telegram.token
    return [token.get_secret_value()] if token is not None else []


if __name__ == "__main__":
    sys.exit(main())
