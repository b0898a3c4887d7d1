"""Logging: one line per event with its fields, and secrets (the bot token) redacted from every
record, whichever library wrote it (httpx logs full request URLs, token included)."""

from __future__ import annotations

import logging
import re
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from collections.abc import Iterable

_BOT_URL_TOKEN = re.compile(r"/bot\d+:[A-Za-z0-9_-]+")
# A Telegram bot token anywhere in a text (``<bot id>:<35 characters>``), known or not.
_TOKEN_SHAPE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}\b")


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with every secret, any Bot API URL's token and anything shaped like a bot token
    replaced by ``[REDACTED]``: for what goes to a terminal outside logging (error lines)."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "[REDACTED]")
    text = _BOT_URL_TOKEN.sub("/bot[REDACTED]", text)
    return _TOKEN_SHAPE.sub("[REDACTED]", text)


class RedactingFilter(logging.Filter):
    def __init__(self, secrets: Iterable[str] = ()):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[REDACTED]")
        return _BOT_URL_TOKEN.sub("/bot[REDACTED]", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = self.redact(message)
        if record.exc_info and record.exc_info[1] is not None:
            # Format the traceback now so the redacted text is what handlers print.
            record.exc_text = self.redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        if clean != message or record.args:
            record.msg, record.args = clean, None
        return True


class StderrHandler(logging.StreamHandler[TextIO]):
    """Writes to whatever ``sys.stderr`` is now (test runners swap it), not the one at start-up."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass  # StreamHandler sets its stream on creation: ignored, sys.stderr is read on every write


def setup_logging(level: int | str = logging.INFO, secrets: Iterable[str] = ()) -> RedactingFilter:
    redactor = RedactingFilter(secrets)
    handler = StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.addFilter(redactor)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # httpx logs every request URL at INFO, and the Bot API URL carries the token.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    return redactor
