"""`molt-budget run`: measure only; the results JSON and history, no verdict exit code."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from molt_budget.commands.args import close_progress, command, load_config_arg, run_args, run_options, start_of_command
from molt_budget.errors import EXIT_MEASUREMENT, EXIT_PASS


def register(subparsers: Any) -> None:
    p = command(subparsers, "run", cmd_run, help="measure only: run the lanes and write results, no verdict exit code",
                description="Run the lanes and write the results JSON; exits 3 only if a lane failed.")
    run_args(p)


def cmd_run(args: argparse.Namespace) -> int:
    from molt_budget.environment import writing
    from molt_budget.results.history import History
    from molt_budget.results.store import save_results
    from molt_budget.runner.engine import Engine

    started = start_of_command(args)
    config = load_config_arg(args)
    options = run_options(args, config, started)
    if args.pre_push and not options.lanes:
        close_progress(options)
        print("molt-budget: no lanes are marked `pre_push: true`; nothing to run", file=sys.stderr)
        return EXIT_PASS
    engine = Engine(config, options)
    try:
        results = engine.run()
    finally:
        close_progress(options)
    if not args.no_history:
        from molt_budget.commands.check import record_run

        record_run(config, History(config.resolve(config.settings.history), config.settings.main_branch),
                   results, engine.results_path)
    if args.results:                    # after the history, as in check: a failed copy loses nothing
        with writing(args.results, "the results"):
            save_results(Path(args.results), results)
    if not args.quiet:
        print(f"[molt-budget] wrote {engine.results_path}", file=sys.stderr)
    for lane in results.lanes.values():
        print(f"{lane.lane}: {lane.status}" + (f" ({lane.error})" if lane.error else ""))
    return EXIT_MEASUREMENT if any(lane.status == "error" for lane in results.lanes.values()) else EXIT_PASS
