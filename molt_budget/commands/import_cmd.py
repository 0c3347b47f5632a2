"""`molt-budget import-compile-progress`: molt's hand-kept compile_progress.json snapshots into history."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from molt_budget.commands.args import command, config_arg, db_arg, history_arg
from molt_budget.report.escape import terminal as t


def register(subparsers: Any) -> None:
    p = command(subparsers, "import-compile-progress", cmd_import_compile_progress,
                help="import molt's compile_progress.json snapshots into history")
    config_arg(p)
    p.add_argument("files", nargs="+", metavar="compile_progress.json")
    db_arg(p)


def cmd_import_compile_progress(args: argparse.Namespace) -> int:
    from molt_budget.results.importer import import_compile_progress

    history = history_arg(args)
    for file in args.files:
        results = import_compile_progress(Path(file))
        history.record(results, Path(file), source="compile_progress")
        print(f"imported {t(file)}: run {t(results.run_id)}, {len(results.lanes)} case(s)")
    return 0
