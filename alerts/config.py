"""The ``telegram:`` section of the configuration: what the bot and the dispatcher need."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

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

    @field_validator("api_url")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/")
