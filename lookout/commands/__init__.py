"""One module per CLI command group. Each exposes ``register(subparsers)`` and sets
``func(args, ctx) -> int`` on its parsers; ``lookout.cli`` only wires them up."""

from __future__ import annotations

import argparse
import sys

# Exit code for a command whose issue is not done yet.
NOT_YET = 2


def not_yet(name: str, issue: str):
    def handler(args: argparse.Namespace, ctx: object) -> int:
        print(f"lookout {name}: not available yet (planned in the {issue} issue)", file=sys.stderr)
        return NOT_YET

    return handler
