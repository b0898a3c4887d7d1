"""One module per CLI command group. Each exposes ``register(subparsers)`` and sets
``func(args, ctx) -> int`` on its parsers; ``lookout.cli`` only wires them up."""
