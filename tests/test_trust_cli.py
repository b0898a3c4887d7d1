"""The command line one can trust: an uncaught exception is one redacted line and exit 1 (the
traceback only with -v, redacted too); read-only commands create no database; `alerts retry`
names unknown ids; configuration keys get a did-you-mean."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from datetime import UTC, datetime

import pytest
from service_harness import ROOT

import lookout.commands.status as status_command
from core.located import LocatedErrors
from core.store import Store, articles, outbox
from lookout.cli import main
from lookout.config import load_config

TOKEN = "123456:SECRET-token-in-the-error_abcdefghijklmn"
SHORT_TOKEN = "999:wrong"  # not token-shaped: only knowing it redacts it


def _config(tmp_path, token: str = TOKEN, extra: str = "") -> str:
    path = tmp_path / "lookout.yaml"
    path.write_text(f"database: sqlite:///var/lookout.db\nsources: []\ntelegram:\n  token: \"{token}\"\n{extra}")
    return str(path)


def _boom(_args, ctx):
    token = ctx.config.telegram.token.get_secret_value()
    raise RuntimeError(f"failed talking to http://127.0.0.1:1/bot{token}/getMe with {token}\n"
                       "second line of the message")


@pytest.fixture
def clean_env(monkeypatch):
    monkeypatch.delenv("LOOKOUT_CONFIG", raising=False)
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)


@pytest.fixture(autouse=True)
def _restore_logging():
    """``main`` sets up the root logger: undo it, so it does not leak into the tests that follow."""
    loggers = [logging.getLogger(), logging.getLogger("httpx"), logging.getLogger("httpcore")]
    saved = [(lg, lg.level, lg.handlers[:]) for lg in loggers]
    yield
    for lg, level, handlers in saved:
        lg.setLevel(level)
        lg.handlers[:] = handlers


# -- uncaught exceptions ---------------------------------------------------------------------------

@pytest.mark.parametrize("token", [TOKEN, SHORT_TOKEN])
def test_uncaught_exception_is_one_redacted_line(tmp_path, capsys, monkeypatch, clean_env, token):
    monkeypatch.setattr(status_command, "status", _boom)
    code = main(["--config", _config(tmp_path, token), "status"])
    out, err = capsys.readouterr()
    assert code == 1
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("lookout status: RuntimeError: failed talking to")
    assert "-v" in lines[0] and "second line" not in lines[0]
    assert token not in out + err and "SECRET" not in err and "wrong" not in err


def test_verbose_shows_the_traceback_redacted(tmp_path, capsys, monkeypatch, clean_env):
    monkeypatch.setattr(status_command, "status", _boom)
    code = main(["--config", _config(tmp_path, SHORT_TOKEN), "-v", "status"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback (most recent call last)" in err and "_boom" in err
    assert err.strip().splitlines()[-1].startswith("lookout status: RuntimeError:")
    assert SHORT_TOKEN not in err and TOKEN not in err


def test_uncaught_exception_while_loading_the_config(tmp_path, capsys, monkeypatch, clean_env):
    def broken(*_args, **_kwargs):
        raise PermissionError(f"cannot read the file holding {TOKEN}")

    monkeypatch.setattr("lookout.cli.load_config", broken)
    code = main(["--config", _config(tmp_path), "status"])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip().splitlines() == ["lookout status: PermissionError: cannot read the file holding [REDACTED] "
                                        "(-v shows the traceback)"]


def test_uncaught_exception_in_a_real_process(tmp_path):
    config = _config(tmp_path, SHORT_TOKEN)
    script = textwrap.dedent(f"""
        import sys
        import lookout.commands.status as status_command
        def boom(args, ctx):
            raise ValueError("the token is " + ctx.config.telegram.token.get_secret_value())
        status_command.status = boom
        from lookout.cli import main
        sys.exit(main(["--config", {config!r}, "status"]))
    """)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("TELEGRAM_BOT_TOKEN", None)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                            cwd=tmp_path, timeout=60, check=False)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "lookout status: ValueError: the token is [REDACTED] (-v shows the traceback)"]
    assert SHORT_TOKEN not in result.stdout + result.stderr and "Traceback" not in result.stderr


# -- read-only commands create nothing -------------------------------------------------------------

def _nothing_created(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.name != "lookout.yaml")


def test_status_in_an_empty_folder_creates_nothing(tmp_path, capsys, monkeypatch, clean_env):
    monkeypatch.chdir(tmp_path)  # no lookout.yaml: the embedded defaults, database var/lookout.db here
    code = main(["status"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert f"no database yet at {tmp_path / 'var' / 'lookout.db'}" in err
    assert "no database yet" in out and "0 pending" in out
    assert _nothing_created(tmp_path) == []


@pytest.mark.parametrize("command", [["sources", "list"], ["alerts", "list"], ["subscribers", "list"],
                                     ["alerts", "list", "--failed"], ["alerts", "retry", "42"]])
def test_listing_commands_without_a_database_create_nothing(tmp_path, capsys, clean_env, command):
    config = _config(tmp_path)
    code = main(["--config", config, *command])
    err = capsys.readouterr().err
    assert code == 1
    assert err.strip() == (f"lookout {' '.join(command[:2])}: no database yet at {tmp_path / 'var' / 'lookout.db'} "
                           "(`lookout crawl`, `lookout subscribe` or `lookout run` creates it)")
    assert _nothing_created(tmp_path) == []
    # Once a database exists the same command reads it.
    Store(f"sqlite:///{tmp_path / 'var' / 'lookout.db'}").dispose()
    code = main(["--config", config, *command])
    err = capsys.readouterr().err
    assert "no database yet" not in err
    assert code == (1 if command[1] == "retry" else 0), err


# -- alerts retry -----------------------------------------------------------------------------------

def _failed_alert(store: Store) -> int:
    now = datetime.now(UTC)
    with store.begin() as conn:
        article = conn.execute(articles.insert().values(
            url="http://x/1", url_hash="h1", source="s", title="t", fetched=now, first_seen=now,
            content_hash="c", story_id="s1", text="")).inserted_primary_key[0]
        return conn.execute(outbox.insert().values(
            chat_id="1", story_id="s1", alert_key="place:azaz", article_id=article, state="failed",
            attempts=8, created_at=now, updated_at=now, last_error="boom")).inserted_primary_key[0]


def _state(store: Store, alert_id: int) -> str:
    with store.connect() as conn:
        return conn.execute(outbox.select().where(outbox.c.id == alert_id)).one().state


def test_alerts_retry_names_unknown_ids_and_queues_nothing(tmp_path, capsys, clean_env):
    config = _config(tmp_path)
    store = Store(f"sqlite:///{tmp_path / 'var' / 'lookout.db'}")
    try:
        known = _failed_alert(store)
        code = main(["--config", config, "alerts", "retry", str(known), "42", "43"])
        err = capsys.readouterr().err
        assert code == 1
        assert "no alert with id 42, 43" in err and str(known) not in err.split("id", 1)[1].split(";")[0]
        assert _state(store, known) == "failed"  # nothing queued again

        assert main(["--config", config, "alerts", "retry", str(known)]) == 0
        assert "1 alert(s) queued again" in capsys.readouterr().out
        assert _state(store, known) == "pending"
    finally:
        store.dispose()


# -- did you mean ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("yaml", "expected"), [
    ("keep_article: 30d\n", ":1:1: unknown key 'keep_article' (did you mean 'keep_articles'?)"),
    ("telegram:\n  tokn: x\n", ":2:3: unknown key 'tokn' (did you mean 'token'?)"),
    ("crawl:\n  max_ages: 3d\n", ":2:3: unknown key 'max_ages' (did you mean 'max_age'?)"),
    ("gazeteer:\n  countries: [SY]\n", ":1:1: unknown key 'gazeteer' (did you mean 'gazetteer'?)"),
])
def test_unknown_config_key_suggests_the_known_one(tmp_path, yaml, expected):
    path = tmp_path / "lookout.yaml"
    path.write_text(yaml)
    with pytest.raises(LocatedErrors) as exc:
        load_config(path, env={})
    assert str(exc.value) == f"{path}{expected}"


def test_only_a_close_key_is_suggested(tmp_path):
    path = tmp_path / "lookout.yaml"
    path.write_text("colour: blue\ndatabse: sqlite:///x.db\n")
    with pytest.raises(LocatedErrors) as exc:
        load_config(path, env={})
    assert str(exc.value).splitlines() == [f"{path}:1:1: unknown key 'colour'",
                                           f"{path}:2:1: unknown key 'databse' (did you mean 'database'?)"]
