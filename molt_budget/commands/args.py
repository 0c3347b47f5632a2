"""Arguments and option handling shared by the commands: one definition of each flag.

Only argparse and the standard library load here; what a command needs to run is imported
inside the function that needs it (`molt-budget --help` stays fast).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molt_budget.errors import BudgetError

if TYPE_CHECKING:
    from molt_budget.config.model import Config
    from molt_budget.results.history import History
    from molt_budget.runner.engine import RunOptions
    from molt_budget.runner.proctable import Reading

EXIT_CODES_EPILOG = """\
exit codes: 0 pass or yellow, 1 a KPI failed (or a build is nondeterministic),
            2 usage or config error, 3 measurement error (a lane failed or a
            metric is missing), 4 internal error (a bug: please report it),
            130 interrupted (measured samples are kept)

examples:
  molt-budget check                      run every lane, judge, record history
  molt-budget check --lanes dev_warm     one lane only
  molt-budget check --resume .molt-budget/runs/<run-id>
  molt-budget verdict results.json       judge saved results again
  molt-budget inspect ir out/ir.json --json
"""


MAX_COUNT = 1_000_000_000      # rows, runs, points, characters: past it a count is a typo (SQLite overflowed at 2^63)
MAX_PAIRS = 10_000             # the budgets schema's bound on a lane's pairs: calibration has the same


def count(low: int = 0, high: int = MAX_COUNT) -> Callable[[str], int]:
    """argparse type: an integer from `low` to `high`, else argparse's one usage line (exit 2).
    `history list --limit 1e23` reached SQLite as an OverflowError, an internal error."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text[:40]} is not from {low:,} to {high:,}")
        return value
    parse.__name__ = "count"          # argparse names the type in "invalid count value"
    return parse


def config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="budgets.yaml", metavar="FILE", help="budgets file (default: ./budgets.yaml)")


def db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--db", metavar="PATH", help="history database (default: settings.history)")


def run_args(p: argparse.ArgumentParser) -> None:
    """What `run` and `check` share: the lanes to run and where their output goes."""
    config_arg(p)
    p.add_argument("--lanes", metavar="A,B", help="run only these lanes (comma-separated); KPIs of other lanes are skipped")
    p.add_argument("--pre-push", action="store_true", help="run only the lanes marked `pre_push: true`")
    p.add_argument("--output-root", metavar="DIR", help="runs, logs and caches go here (default: settings.output_root, .molt-budget)")
    p.add_argument("--resume", metavar="RUN_DIR", help="continue an interrupted run: keeps lanes that finished, re-runs failed or unfinished ones")
    p.add_argument("--clean-state", action="store_true", help="wipe caches before running (never results or logs)")
    p.add_argument("--results", metavar="PATH", help="also write the results JSON here")
    p.add_argument("--no-history", action="store_true", help="do not record the run in the history database")
    p.add_argument("--no-quiescence", action="store_true", help="skip the quiet-host check before timed lanes")
    p.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def load_config_arg(args: argparse.Namespace) -> Config:
    from molt_budget.config import load_config

    return load_config(args.config)


def history_arg(args: argparse.Namespace) -> History:
    """`--db PATH`, else the budgets file's settings.history."""
    from molt_budget.results.history import History

    if getattr(args, "db", None):
        return History(Path(args.db))
    config = load_config_arg(args)
    return History(config.resolve(config.settings.history), config.settings.main_branch)


STARTED = "started_cpu"          # where cli.main leaves the command's start on the parsed arguments


def start_of_command(args: argparse.Namespace | None = None) -> Reading:
    """The quiet-host meter's first window runs from the command's start: the reading cli.main
    took before it built the parser (the verbs' imports), else now. Imports and loading the
    budgets fill the window instead of a sleep (a window shorter than
    runner.quiescence.MIN_WINDOW_S is topped up by one)."""
    taken: Reading | None = getattr(args, STARTED, None)
    if taken is not None:
        return taken
    from molt_budget.runner.proctable import read_cpu

    return read_cpu()


def run_options(args: argparse.Namespace, config: Config, cpu_since: Reading | None = None) -> RunOptions:
    """The engine's options from `run_args`; progress goes to stderr with estimates from history."""
    from molt_budget.compare.budget import judge_results
    from molt_budget.report.progress import make_progress
    from molt_budget.results.history import History
    from molt_budget.runner.engine import RunOptions

    if args.lanes is not None and args.pre_push:
        raise BudgetError("--lanes and --pre-push exclude each other (--pre-push picks the lanes marked `pre_push: true`)")
    lanes = [x.strip() for x in args.lanes.split(",") if x.strip()] if args.lanes is not None else None
    if lanes == []:
        raise BudgetError(f"--lanes {args.lanes!r} names no lane")
    if args.pre_push:
        lanes = [lane.id for lane in config.lanes.values() if lane.pre_push]
    root = Path(args.output_root) if args.output_root else config.resolve(config.settings.output_root)
    history = config.resolve(config.settings.history)
    from molt_budget.environment import check_history, check_output_file, check_output_root

    check_output_root(root)                  # a read-only or full disk is said now, not after the lanes ran
    for flag, path in (("--results", args.results), ("--report-json", getattr(args, "report_json", None))):
        if path and path != "-":
            check_output_file(Path(path), flag)   # so is a file that can never be written where it is named
    if not args.no_history or args.command == "check":
        check_history(history)               # so is a corrupt history (check reads it for the base and trends)
    # History() would create a missing database: only read estimates from one that exists.
    progress = make_progress(sys.stderr, quiet=args.quiet, history=History(history) if history.is_file() else None)
    return RunOptions(
        output_root=root, lanes=lanes, resume=Path(args.resume) if args.resume else None,
        clean_state=args.clean_state, quiescence=not args.no_quiescence, progress=progress, judge=judge_results,
        cpu_since=cpu_since,
    )


def command(subparsers: Any, name: str, handler: Any, **kwargs: Any) -> argparse.ArgumentParser:
    """A sub-command's parser that dispatches to `handler`."""
    p: argparse.ArgumentParser = subparsers.add_parser(name, **kwargs)
    p.set_defaults(handler=handler)
    return p


def close_progress(options: RunOptions) -> None:
    """End the progress display (the status line on a terminal); a plain callable has nothing to close."""
    close = getattr(options.progress, "close", None)
    if close is not None:
        close()
