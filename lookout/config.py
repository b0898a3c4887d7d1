"""Configuration: embedded defaults, then ``lookout.yaml``, then the environment for secrets.

Validated once at start-up with pydantic; any unknown key, wrong type or missing ``${VAR}``
is reported as ``file:line:col: message`` (all at once) and nothing starts.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError
from ruamel.yaml.comments import CommentedMap, CommentedSeq

from alerts.config import TelegramConfig
from core.durations import Duration
from core.located import (
    ErrorCollector,
    LocatedError,
    LocatedErrors,
    Location,
    load_yaml,
    node_location,
    pydantic_errors,
    value_location,
)
from core.strict import StrictModel
from crawler.config import CrawlConfig
from rules.config import GazetteerConfig

__all__ = ["Config", "CrawlConfig", "GazetteerConfig", "TelegramConfig", "load_config"]

DEFAULT_CONFIG_FILE = "lookout.yaml"
_PROJECT_ROOT = Path(__file__).resolve().parent.parent
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Config(StrictModel):
    database: str = "sqlite:///var/lookout.db"
    rules: list[str] = Field(default_factory=lambda: ["rules/examples"])
    sources: str | list[Any] = "sources.yaml"  # a path, or an inline list (validated by crawler.sources)
    telegram: TelegramConfig = Field(default_factory=TelegramConfig)
    crawl: CrawlConfig = Field(default_factory=CrawlConfig)
    gazetteer: GazetteerConfig = Field(default_factory=GazetteerConfig)
    keep_articles: Duration | None = timedelta(days=90)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    # Not configuration: where it came from, so relative paths resolve against the file.
    origin: str | None = Field(default=None, exclude=True)

    @property
    def base_dir(self) -> Path:
        return Path(self.origin).resolve().parent if self.origin else Path.cwd()

    def resolve(self, path: str) -> Path:
        """A path from the config, relative to the config file (or the working directory)."""
        p = Path(path).expanduser()
        if p.is_absolute():
            return p
        candidate = self.base_dir / p
        if candidate.exists() or self.origin:
            return candidate
        # Embedded defaults run from anywhere: fall back to the files shipped with the project.
        shipped = _PROJECT_ROOT / p
        return shipped if shipped.exists() else candidate

    def rule_paths(self) -> list[Path]:
        return [self.resolve(p) for p in self.rules]

    def database_url(self) -> str:
        """SQLite paths are relative to the config file, like every other path."""
        prefix = "sqlite:///"
        if self.database.startswith(prefix) and not self.database.startswith(prefix + "/"):
            rest = self.database.removeprefix(prefix)
            if rest != ":memory:":
                return prefix + str(self.base_dir / rest)
        return self.database


def _substitute(node: Any, path: str, env: dict[str, str], errors: ErrorCollector, parent: Any, key: Any) -> Any:
    """Replace ``${VAR}`` in every string, collecting a located error per missing variable."""
    if isinstance(node, CommentedMap):
        for k in list(node):
            node[k] = _substitute(node[k], path, env, errors, node, k)
        return node
    if isinstance(node, CommentedSeq):
        for i in range(len(node)):
            node[i] = _substitute(node[i], path, env, errors, node, i)
        return node
    if isinstance(node, str) and "${" in node:
        missing = [m.group(1) for m in _VAR.finditer(node) if m.group(1) not in env]
        for name in missing:
            where = value_location(path, parent, key)
            errors.add(where, f"environment variable {name} is not set")
        if missing:
            return node
        return _VAR.sub(lambda m: env[m.group(1)], node)
    return node


def load_config(path: str | os.PathLike[str] | None = None, env: dict[str, str] | None = None) -> Config:
    """The layered configuration. ``path`` None: ``$LOOKOUT_CONFIG``, then ``./lookout.yaml``,
    then the embedded defaults. Raises ``LocatedErrors`` listing every problem."""
    env = dict(os.environ if env is None else env)
    explicit = path is not None or "LOOKOUT_CONFIG" in env
    chosen = Path(path if path is not None else env.get("LOOKOUT_CONFIG", DEFAULT_CONFIG_FILE))
    if not chosen.exists():
        if explicit:
            raise LocatedErrors([_missing(chosen)])
        return _with_env_secrets(Config(), env)
    name = str(chosen)
    data = load_yaml(chosen)
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        raise LocatedErrors([_at(name, data, "the configuration must be a mapping of keys")])
    errors = ErrorCollector()
    data = _substitute(data, name, env, errors, None, None)
    config: Config | None = None
    try:
        config = Config.model_validate({**data, "origin": name})
    except ValidationError as exc:
        errors.extend(pydantic_errors(name, data, exc, Config))
    errors.raise_if_any()
    assert config is not None
    return _with_env_secrets(config, env)


def _with_env_secrets(config: Config, env: dict[str, str]) -> Config:
    """TELEGRAM_BOT_TOKEN fills in a token the file leaves out (secrets belong in the environment)."""
    if config.telegram.token is None and env.get("TELEGRAM_BOT_TOKEN"):
        telegram = config.telegram.model_copy(update={"token": SecretStr(env["TELEGRAM_BOT_TOKEN"])})
        return config.model_copy(update={"telegram": telegram})
    return config


def _missing(path: Path) -> LocatedError:
    return LocatedError(Location(str(path), 1, 1), "configuration file not found")


def _at(path: str, node: Any, message: str) -> LocatedError:
    return LocatedError(node_location(path, node), message)
