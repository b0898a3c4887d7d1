"""The ``telegram:`` section of the configuration: what the bot and the dispatcher need."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, SecretStr, field_validator

from core.durations import Duration
from core.strict import StrictModel


class TelegramConfig(StrictModel):
    token: SecretStr | None = None  # never printed: SecretStr renders as '**********'
    api_url: str = "https://api.telegram.org"
    admins: list[int] = Field(default_factory=list)
    webhook_url: str | None = None  # long polling unless set
    webhook_listen: str = "127.0.0.1:8443"
    max_attempts: int = Field(default=8, ge=1)  # 5xx / network / timeout retries before "failed"
    rate_global: float = Field(default=30.0, gt=0)  # messages per second, all chats together
    rate_private: float = Field(default=1.0, gt=0)  # messages per second per private chat
    rate_group_per_minute: float = Field(default=20.0, gt=0)  # per group or channel
    # Sends in flight at once, all chats together: what a crash can cost in duplicates. 8 keep
    # Telegram's 30 messages/s busy up to a 260 ms round trip (8 / 30 s); see bench/fanout.py.
    max_in_flight: int = Field(default=8, ge=1, le=256)
    # A chat whose queue would take longer than this at its rate gets it as a digest.
    max_backlog: Duration = timedelta(minutes=10)

    @field_validator("api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
