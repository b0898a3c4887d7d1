"""One module per CLI command group. Each exposes ``register(subparsers)`` and sets
``func(args, ctx) -> int`` on its parsers; ``lookout.cli`` only wires them up."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable


def print_usage(parser: argparse.ArgumentParser) -> Callable[[argparse.Namespace, Any], int]:
    """The handler of a command group called without its sub-command: usage, exit 2."""

    def handler(args: argparse.Namespace, ctx: Any) -> int:
        parser.print_help(sys.stderr)
        return 2

    return handler
