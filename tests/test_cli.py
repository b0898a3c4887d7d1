"""The CLI skeleton: every command answers --help, and a bad command line gets usage."""

from __future__ import annotations

import pytest

from lookout.cli import build_parser, main

COMMANDS = [
    ["demo"], ["crawl"], ["send"], ["run"], ["status"], ["rules", "check"], ["rules", "test"],
    ["rules", "backtest"], ["sources", "list"], ["sources", "check"], ["subscribe"], ["unsubscribe"],
    ["subscribers", "list"], ["alerts", "list"], ["alerts", "retry"], ["gazetteer", "import"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: lookout " + " ".join(command))


def test_top_level_help_lists_every_command(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name in {c[0] for c in COMMANDS}:
        assert name in out


def test_no_command_prints_help_and_exits_2(capsys):
    assert main([]) == 2
    assert "usage: lookout" in capsys.readouterr().out


def test_unknown_command_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["frobnicate"])
    assert exc.value.code == 2
    assert "invalid choice" in capsys.readouterr().err
