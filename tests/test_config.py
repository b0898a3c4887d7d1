"""Configuration: layered, validated at start-up, every problem located as file:line:col."""

from __future__ import annotations

import textwrap
from datetime import timedelta

import pytest

from core.located import LocatedErrors
from lookout.cli import main
from lookout.config import load_config


def write(tmp_path, text: str):
    path = tmp_path / "lookout.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_embedded_defaults_without_a_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(None, env={})
    assert config.database == "sqlite:///var/lookout.db"
    assert config.crawl.max_age == timedelta(days=3)
    assert config.telegram.api_url == "https://api.telegram.org"
    assert config.telegram.token is None
    # The shipped example rules are found even when run from elsewhere.
    assert all(p.exists() for p in config.rule_paths())


def test_issue_example_parses_with_env_token(tmp_path):
    path = write(tmp_path, """\
        database: sqlite:///var/lookout.db        # or postgresql+psycopg://user@host/db
        rules: [rules/examples]                   # rule files or folders of *.yaml
        sources: sources.yaml                     # a path, or an inline list (Crawler issue)
        telegram:
          token: ${TELEGRAM_BOT_TOKEN}            # ${VAR} is read from the environment
          api_url: https://api.telegram.org       # Bot API root
          admins: []                              # chat ids allowed the admin commands
        crawl:
          max_age: 3d                             # older articles are stored but never alerted
        """)
    config = load_config(path, env={"TELEGRAM_BOT_TOKEN": "123:secret"})
    assert config.telegram.token.get_secret_value() == "123:secret"
    assert "123:secret" not in repr(config) and "123:secret" not in str(config.model_dump())
    assert config.crawl.max_age == timedelta(days=3)
    # Relative paths resolve against the config file, not the working directory.
    assert config.database_url() == f"sqlite:///{tmp_path}/var/lookout.db"
    assert config.rule_paths() == [tmp_path / "rules/examples"]


def test_unknown_key_is_reported_with_file_and_line(tmp_path):
    path = write(tmp_path, """\
        database: sqlite:///x.db
        crawl:
          max_age: 3d
          paralel: 4
        """)
    with pytest.raises(LocatedErrors) as exc:
        load_config(path, env={})
    assert str(exc.value) == f"{path}:4:3: unknown key 'paralel' (did you mean 'parallel'?)"


def test_all_errors_at_once(tmp_path):
    path = write(tmp_path, """\
        telegram:
          token: ${MISSING_TOKEN}
          admins: [not-a-number]
        crawl:
          max_age: soon
        colour: blue
        """)
    with pytest.raises(LocatedErrors) as exc:
        load_config(path, env={})
    lines = str(exc.value).splitlines()
    assert [line.split(": ")[0] for line in lines] == [
        f"{path}:2:10", f"{path}:3:12", f"{path}:5:3", f"{path}:6:1",
    ]
    assert "MISSING_TOKEN is not set" in lines[0]
    assert "'soon' is not a duration" in lines[2]
    assert "unknown key 'colour'" in lines[3]


def test_max_age_null_disables_the_limit(tmp_path):
    path = write(tmp_path, "crawl:\n  max_age: null\n")
    assert load_config(path, env={}).crawl.max_age is None


def test_yaml_syntax_error_is_located(tmp_path):
    path = write(tmp_path, "crawl:\n  max_age: [3d\n")
    with pytest.raises(LocatedErrors) as exc:
        load_config(path, env={})
    assert str(exc.value).startswith(f"{path}:")
    assert "YAML syntax" in str(exc.value)


def test_explicit_missing_file_is_an_error(tmp_path):
    with pytest.raises(LocatedErrors, match="configuration file not found"):
        load_config(tmp_path / "nope.yaml", env={})


def test_lookout_config_variable_is_honoured(tmp_path):
    path = write(tmp_path, "database: sqlite:///from-env.db\n")
    config = load_config(None, env={"LOOKOUT_CONFIG": str(path)})
    assert config.database == "sqlite:///from-env.db"


def test_token_from_environment_when_file_has_none(tmp_path):
    path = write(tmp_path, "database: sqlite:///x.db\n")
    config = load_config(path, env={"TELEGRAM_BOT_TOKEN": "9:abc"})
    assert config.telegram.token.get_secret_value() == "9:abc"


def test_cli_refuses_to_start_on_a_bad_config(tmp_path, capsys):
    path = write(tmp_path, "databse: sqlite:///x.db\n")
    code = main(["--config", str(path), "status"])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{path}:1:1: unknown key 'databse'" in err
    assert "nothing started" in err
