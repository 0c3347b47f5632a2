"""`molt-budget tracker` and `molt-budget charts`: the tracker page and trend charts from history.

Registered through molt_budget.cli.EXTENSIONS; only argparse is imported at module level
so `molt-budget --help` stays fast.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from molt_budget.commands.args import count


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "tracker", help="regenerate the KPI table and Run History of a tracker page from history",
        description="Rewrite the text between the <!-- molt-budget:kpi-table:start/end --> and "
                    "<!-- molt-budget:run-history:start/end --> markers of a Markdown page (appended if absent, "
                    "page created if missing). Everything else on the page is left byte for byte; "
                    "running it twice changes nothing. Baseline = the KPI's `seeded_from` when declared, "
                    "else the oldest value in history.",
    )
    _common(p)
    p.add_argument("--out", required=True, metavar="PAGE.md", help="the tracker page, e.g. docs/benchmarks/compile_progress.md")
    p.add_argument("--runs", type=count(low=1), default=20, metavar="N", help="rows of Run History (default 20, newest first)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 if the page is out of date")
    p.set_defaults(handler=cmd_tracker)

    p = subparsers.add_parser(
        "charts", help="write one trend chart per KPI (PNG and SVG) from history; needs molt-budget[charts]",
        description="One chart per KPI over the last N runs: value, target and limit lines, yellow and fail "
                    "bands, non-authoritative runs marked. Needs matplotlib: pip install 'molt-budget[charts]'.",
    )
    _common(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for <kpi>.png and <kpi>.svg")
    p.add_argument("--runs", type=count(low=1), default=100, metavar="N", help="points per chart (default 100, the newest)")
    p.set_defaults(handler=cmd_charts)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", default="budgets.yaml", metavar="FILE", help="budgets file (default: ./budgets.yaml)")
    p.add_argument("--db", metavar="PATH", help="history database (default: settings.history)")
    p.add_argument("--branch", metavar="NAME", help="only runs recorded on this branch (default: all)")
    p.add_argument("--all-branches", action="store_true",
                   help="every recorded run, not only main records (a commit on main's first-parent history, "
                        "clean tree, every lane complete, quiet host)")


def _load(args: argparse.Namespace) -> tuple[Any, Any]:
    from molt_budget.config import load_config
    from molt_budget.errors import ConfigError
    from molt_budget.results.history import History

    config = load_config(args.config)
    path = Path(args.db) if args.db else config.resolve(config.settings.history)
    if not path.is_file():
        raise ConfigError(f"{path}: no history database (run `molt-budget check` or `import-compile-progress` first)")
    return config, History(path, config.settings.main_branch)


def cmd_tracker(args: argparse.Namespace) -> int:
    from molt_budget.report.tracker import update_tracker

    config, history = _load(args)
    changed = update_tracker(Path(args.out), config, history, runs=args.runs, branch=args.branch, check=args.check,
                             main_only=not args.all_branches)
    if args.check:
        print(f"{args.out}: {'out of date (run `molt-budget tracker`)' if changed else 'up to date'}")
        return 1 if changed else 0
    print(f"{args.out}: {'updated' if changed else 'unchanged'}")
    return 0


def cmd_charts(args: argparse.Namespace) -> int:
    from molt_budget.environment import output_folder, writing
    from molt_budget.report.charts import require_matplotlib, series_from_config, write_charts

    require_matplotlib()
    out = output_folder(args.out, "--out", "<kpi>.png and <kpi>.svg")
    config, history = _load(args)
    series = series_from_config(config, history, runs=args.runs, branch=args.branch, main_only=not args.all_branches)
    with writing(out, "the charts"):
        files = write_charts(series, out)
    for f in files:
        print(f"{f.kpi}: {f.png} {f.svg}", file=sys.stdout)
    return 0
