"""The rule language and its matching engine (pure: no I/O beyond reading rule files)."""
