"""Lookout: the composition root. Config, store, CLI and the service wire crawler, rules
and alerts together; nothing happens at import time."""

__version__ = "0.1.0"
