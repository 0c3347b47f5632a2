"""The command line's verbs: one table says which module registers each, a command line that
names a verb builds only that verb's parser, and everything else still sees every verb."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import subprocess
import sys

import pytest

import molt_budget.commands
from molt_budget.cli import COMMAND_MODULES, COMMANDS, build_parser, main


def registered(module: str) -> list[str]:
    sub = argparse.ArgumentParser().add_subparsers(dest="command")
    importlib.import_module(module).register(sub)
    return list(sub.choices)


def test_the_verb_table_is_what_the_modules_register() -> None:
    verb_modules = {f"molt_budget.commands.{m.name}" for m in pkgutil.iter_modules(molt_budget.commands.__path__)
                    if hasattr(importlib.import_module(f"molt_budget.commands.{m.name}"), "register")}
    assert set(COMMAND_MODULES) == verb_modules
    for module in COMMAND_MODULES:
        assert registered(module) == [verb for verb, owner in COMMANDS.items() if owner == module]
    assert list(build_parser()._subparsers._group_actions[0].choices) == list(COMMANDS)  # type: ignore[union-attr]


def test_help_and_a_wrong_verb_see_every_verb(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    shown = capsys.readouterr().out
    assert all(verb in shown for verb in COMMANDS)
    with pytest.raises(SystemExit) as done:
        main(["chekc"])
    assert done.value.code == 2
    error = capsys.readouterr().err
    assert "chekc" in error and all(repr(verb) in error for verb in COMMANDS)


@pytest.mark.parametrize("verb", ["check", "validate", "bump", "charts"])
def test_a_verb_builds_only_its_own_parser(verb: str) -> None:
    """Measured in a fresh interpreter: which command modules a command line loads."""
    code = ("import json, sys; from molt_budget import cli; cli.build_parser(sys.argv[1:]); "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('molt_budget.commands.'))))")
    out = subprocess.run([sys.executable, "-c", code, verb], capture_output=True, text=True, check=True).stdout
    loaded = set(json.loads(out)) - {"molt_budget.commands.args"}
    assert loaded == {COMMANDS[verb]}


def test_help_imports_no_record_machinery() -> None:
    """`--help` builds every verb's parser: the verbs' modules import argparse and light
    modules only (msgspec, which the records need, is ~15 ms of a fresh interpreter)."""
    code = "import sys; from molt_budget import cli; cli.build_parser(); print('msgspec' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False"]


@pytest.mark.parametrize("argv", [
    ["history", "list", "--limit", "99999999999999999999999"],
    ["history", "prune", "--keep", "99999999999999999999999"],
    ["tracker", "--out", "page.md", "--runs", "99999999999999999999999"],
    ["charts", "--out", "charts", "--runs", "0"],
    ["report", "report.json", "--markdown", "--max-chars", "1e9"],
    ["report", "report.json", "--markdown", "--max-chars", "199"],
    ["calibrate", "dev", "--pairs", "10001"],
])
def test_a_count_out_of_range_is_a_usage_line(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """A count past SQLite's integers reached it as an OverflowError (an internal error, exit 4);
    calibrate's pairs past the budgets schema's bound ran for days."""
    with pytest.raises(SystemExit) as done:
        main(argv)
    err = capsys.readouterr().err
    assert done.value.code == 2 and "internal error" not in err
    assert f"argument {argv[-2]}:" in err.splitlines()[-1]


def test_a_count_in_range_is_taken() -> None:
    from molt_budget.commands.args import count

    assert count(low=1)("1") == 1 and count()("1000000000") == 10**9
    with pytest.raises(argparse.ArgumentTypeError):
        count(low=1)("0")
