"""Secrets never reach a log: the token is redacted whichever logger writes it."""

from __future__ import annotations

import logging

from core.logs import RedactingFilter


def _record(msg, *args, exc_info=None):
    return logging.LogRecord("httpx", logging.INFO, __file__, 1, msg, args, exc_info)


def test_token_redacted_in_message_and_args():
    f = RedactingFilter(["123:SECRETTOKEN"])
    rec = _record("POST %s", "https://api.telegram.org/bot123:SECRETTOKEN/sendMessage")
    f.filter(rec)
    assert "SECRETTOKEN" not in rec.getMessage()
    assert "/bot[REDACTED]/sendMessage" in rec.getMessage()


def test_bot_url_pattern_redacted_even_for_unknown_tokens():
    f = RedactingFilter()
    rec = _record("GET http://127.0.0.1:1/bot42:abc-DEF_1/getMe failed")
    f.filter(rec)
    assert "abc-DEF_1" not in rec.getMessage()


def test_token_redacted_in_tracebacks():
    f = RedactingFilter(["7:TOPSECRET"])
    try:
        raise RuntimeError("bad url http://x/bot7:TOPSECRET/getMe")
    except RuntimeError:
        import sys

        rec = _record("failed", exc_info=sys.exc_info())
    f.filter(rec)
    formatted = logging.Formatter().format(rec)
    assert "TOPSECRET" not in formatted
    assert "RuntimeError" in formatted
