"""`molt-budget verdict RESULTS.json`: judge saved results again against the (edited) budgets file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from molt_budget.commands.args import command, config_arg, load_config_arg


def register(subparsers: Any) -> None:
    p = command(subparsers, "verdict", cmd_verdict, help="judge a saved results file against budgets.yaml",
                description="Judge RESULTS.json against the (possibly edited) budgets file.")
    p.add_argument("results", metavar="RESULTS.json")
    config_arg(p)


def cmd_verdict(args: argparse.Namespace) -> int:
    from molt_budget.compare.budget import judge_kpi
    from molt_budget.report.terminal import exit_code, render
    from molt_budget.results.store import load_results

    config = load_config_arg(args)
    results = load_results(Path(args.results))
    results.kpis = [judge_kpi(k, results.lanes.get(k.lane)) for k in config.kpis.values() if k.lane in results.lanes]
    skipped = [k.id for k in config.kpis.values() if k.lane not in results.lanes]
    print(render(results))
    if skipped:
        print(f"not judged (their lanes are not in {args.results}): {', '.join(skipped)}")
    return exit_code(results.kpis)
