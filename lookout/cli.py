"""The ``lookout`` command line: parses arguments, loads and validates the config, and runs the
command. Only the module of the command asked for is imported (``lookout.commands.COMMANDS``
names each command's module), so ``lookout --help`` and ``lookout status`` start fast.

Whatever a command raises ends as one line on stderr with the bot token redacted, and exit 1; the
traceback (redacted too) only with ``-v``. Commands that only read (``READ_ONLY_COMMANDS``) open
the store without creating anything: no database file, folder or table."""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys
import traceback
from typing import TYPE_CHECKING

from core.located import LocatedErrors
from core.logs import redact, setup_logging
from lookout import __version__
from lookout.commands import COMMANDS
from lookout.config import Config, load_config
from lookout.context import AppContext, NoDatabase

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

# Commands that only read the store ("command sub-command"): they never create a database.
READ_ONLY_COMMANDS = frozenset({"status", "sources list", "alerts list", "subscribers list", "rules backtest"})


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The ``lookout`` parser. Given ``argv``, only the module of the command it names is imported
    and registered in full, the other commands are listed by name and help line (a top-level
    ``--help``, ``--version`` or unknown command exits here): how ``main`` starts fast. Without
    ``argv``, every command is registered in full."""
    if argv is None:
        return _parser(lambda _module: True)
    named = _parser(lambda _module: False).parse_known_args(argv)[0].command
    wanted = COMMANDS[named].module if named else None
    return _parser(lambda module: module == wanted)


def _parser(in_full: Callable[[str], bool]) -> argparse.ArgumentParser:
    """The top-level parser: the commands whose module ``in_full`` picks registered by that module
    (imported now), the others as placeholders that list the command and take anything."""
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
    registered: set[str] = set()
    for name, command in COMMANDS.items():
        if not in_full(command.module):
            sub.add_parser(name, help=command.help, add_help=False)
        elif command.module not in registered:  # a module registers all of its commands at once
            importlib.import_module(command.module).register(sub)
            registered.add(command.module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        parser = build_parser(argv)
    except Exception as exc:  # a command module that fails to import
        return report_uncaught("", exc, secrets=_env_secrets(), verbose="-v" in argv or "--verbose" in argv)
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        config = load_config(args.config)
    except LocatedErrors as exc:
        print(redact(str(exc), _env_secrets()), file=sys.stderr)
        print(f"lookout: configuration has {len(exc.errors)} error(s); nothing started", file=sys.stderr)
        return 1
    except Exception as exc:
        return report_uncaught(command_name(args), exc, secrets=_env_secrets(),
                               verbose=getattr(args, "verbose", False))
    return run_command(args, config)


def command_name(args: argparse.Namespace) -> str:
    """``status``, ``alerts list``: the command and its sub-command as typed."""
    command = str(getattr(args, "command", "") or "")
    sub = getattr(args, f"{command}_command", None)
    return f"{command} {sub}" if sub else command


def run_command(args: argparse.Namespace, config: Config) -> int:
    """Run a parsed command with a validated config: logging set up, secrets redacted, the
    store closed afterwards, located errors printed, anything else as one redacted line. The
    service's crawl children use it too."""
    verbose = getattr(args, "verbose", False)
    secrets = _secrets(config) + _env_secrets()
    setup_logging(logging.DEBUG if verbose else config.log_level, secrets=secrets)
    name = command_name(args)
    ctx = AppContext(config, read_only=name in READ_ONLY_COMMANDS)
    try:
        return int(args.func(args, ctx) or 0)
    except LocatedErrors as exc:
        print(redact(str(exc), secrets), file=sys.stderr)
        return 1
    except NoDatabase as exc:
        print(redact(f"lookout {name}: {exc}", secrets), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `lookout ... | head` closed the pipe: stop quietly, as Unix tools do.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as exc:
        return report_uncaught(name, exc, secrets=secrets, verbose=verbose)
    finally:
        ctx.close()


def report_uncaught(command: str, exc: BaseException, *, secrets: Sequence[str], verbose: bool) -> int:
    """An exception no command handled: one line on stderr (its first line), the traceback
    before it only with ``-v``, every secret redacted from both. Returns the exit status, 1."""
    if verbose:
        print(redact("".join(traceback.format_exception(exc)), secrets).rstrip(), file=sys.stderr)
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
    line = f"lookout{' ' + command if command else ''}: {type(exc).__name__}" + (f": {text}" if text else "")
    hint = "" if verbose else " (-v shows the traceback)"
    print(redact(line, secrets) + hint, file=sys.stderr)
    return 1


def _secrets(config: Config) -> list[str]:
    token = config.telegram.token
    return [token.get_secret_value()] if token is not None else []


def _env_secrets() -> list[str]:
    """The token in the environment, known before (or without) a valid configuration."""
    token = os.environ.get("TELEGRAM_BOT_TOKEN")
    return [token] if token else []


if __name__ == "__main__":
    sys.exit(main())
