"""Command line: the parser, `main()` and error → exit code. Each verb lives in its own module
under `molt_budget.commands` with a `register(subparsers)` that adds its parser and handler.

Command modules import only argparse and light modules at load time (what a command needs
to run is imported inside it), so `molt-budget --help` starts fast.
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from molt_budget import __version__
from molt_budget.commands.args import EXIT_CODES_EPILOG, STARTED
from molt_budget.errors import EXIT_CONFIG, EXIT_INTERNAL, BudgetError
from molt_budget.runner.proctable import read_cpu

DESCRIPTION = """\
molt-budget: a CI regression-budget gate for compiler build cost.

Runs the lanes declared in budgets.yaml (build commands with env, cache state,
warm-ups, repeats, timeouts), collects wall/CPU time, peak memory, molt's
diagnostics payload and IR stats, and judges every KPI against its budget:
pass (within target), yellow (past target, within limit), fail (past limit).
"""

EPILOG = EXIT_CODES_EPILOG
EXIT_INTERRUPTED = 130

# Each verb and the module that registers it, in the order `--help` lists them (a module may
# register several verbs; tests/test_cli_help.py holds this table to what they register).
COMMANDS: dict[str, str] = {
    "check": "molt_budget.commands.check",
    "run": "molt_budget.commands.run_cmd",
    "verdict": "molt_budget.commands.verdict_cmd",
    "validate": "molt_budget.commands.validate_cmd",
    "history": "molt_budget.commands.history_cmd",
    "import-compile-progress": "molt_budget.commands.import_cmd",
    "inspect": "molt_budget.commands.inspect_cmd",
    "install-hook": "molt_budget.commands.hook_cmd",
    "tracker": "molt_budget.commands.tracker_cmd",
    "charts": "molt_budget.commands.tracker_cmd",
    "bump": "molt_budget.commands.budget_cmds",
    "ratchet": "molt_budget.commands.budget_cmds",
    "budget-diff": "molt_budget.commands.budget_cmds",
    "report": "molt_budget.commands.report_cmd",
    "merge": "molt_budget.commands.merge_cmd",
    "calibrate": "molt_budget.commands.calibrate_cmd",
}
COMMAND_MODULES: tuple[str, ...] = tuple(dict.fromkeys(COMMANDS.values()))


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; given the command line, only what its verb needs (a command line
    that names a verb first parses nothing of the other verbs: their modules and the
    parsers' ~150 arguments, ~10 ms, are not built). Anything else (`--help`, a typo, no
    verb) gets the whole parser, whose messages list every verb."""
    parser = argparse.ArgumentParser(
        prog="molt-budget", description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"molt-budget {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    verb = argv[0] if argv else None
    for module in (COMMANDS[verb],) if verb in COMMANDS else COMMAND_MODULES:
        importlib.import_module(module).register(sub)
    return parser


# The cyclic collector's first threshold for a command (CPython's default is 700 allocations).
# A command keeps what it builds (samples, the lanes' module tables, the report) until it
# ends and makes few cycles: at 700, a 12-lane check ran ~45 collections walking the same
# long-lived tables, 20-35 ms. mypy raises it the same way.
GC_THRESHOLD = 100_000


def run() -> NoReturn:
    """The command line's entry (the console script and `python -m molt_budget`): `main`, then
    an exit that skips the interpreter's teardown, as mypy's does (mypy.util.hard_exit).

    Tearing down frees every object the command made one by one, a check's lanes' module
    tables among them: 0.1-0.25 s at 12-48 lanes, longer than judging them. Nothing is lost:
    what a command writes is written whole before `main` returns (files closed, the journal
    flushed line by line, history transactions committed, children reaped or killed), and
    stdout/stderr, the only buffers left, are flushed here. In-process callers (the tests)
    call `main` and keep their interpreter."""
    code = main()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):      # a closed or broken pipe: nothing more can be said there
            pass
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    before = gc.get_threshold()
    gc.set_threshold(max(GC_THRESHOLD, before[0]), *before[1:])
    try:
        return _main(argv)
    finally:
        gc.set_threshold(*before)          # a caller in the same process (a test) keeps its own


def _main(argv: Sequence[str] | None) -> int:
    started = read_cpu()            # the quiet-host meter's first window (commands.args.start_of_command)
    words = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(words)
    args = parser.parse_args(words)
    setattr(args, STARTED, started)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    from molt_budget.gitutil import forget_toplevels

    forget_toplevels()
    try:
        code: int = args.handler(args)
        return code
    except BudgetError as exc:
        print(f"molt-budget: error: {_one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("molt-budget: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            return _internal_error(exc)
        # a path a flag gave that no file system can name: the user's to shorten, not a bug
        from molt_budget.environment import advice

        where = f"{_one_line(exc.filename)}: " if exc.filename else ""
        print(f"molt-budget: error: {where}{_one_line(exc.strerror)}: {advice(exc, exc.filename or '.')}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        return _internal_error(exc)
    finally:
        # after an interruption, later signals were held off until the hint above was printed
        held = sys.modules.get("molt_budget.runner.signals")
        if held is not None:
            held.restore()


def _internal_error(exc: Exception) -> int:
    """A bug: still one line, the traceback on request."""
    if os.environ.get("MOLT_BUDGET_DEBUG"):
        raise exc
    print(f"molt-budget: internal error: {type(exc).__name__}: {_one_line(exc)} "
          f"(set MOLT_BUDGET_DEBUG=1 for the traceback; results already measured are kept)", file=sys.stderr)
    return EXIT_INTERNAL


def _one_line(exc: object) -> str:
    """An error as one printable line: its message names what the user or a build gave (a run
    id from a results file, a lane's output), and a forged one must not drive the terminal
    (escape sequences) nor crash the print (a lone surrogate)."""
    from molt_budget.report.escape import plain

    return plain(exc)
