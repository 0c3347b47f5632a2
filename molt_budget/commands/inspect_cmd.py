"""`molt-budget inspect ir|diagnostics FILE`: what the collectors read from one molt file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from molt_budget.commands.args import command


def register(subparsers: Any) -> None:
    p = command(subparsers, "inspect", cmd_inspect, help="probe one molt file: IR stats or the diagnostics payload")
    isub = p.add_subparsers(dest="what", metavar="WHAT", required=True)
    pi = isub.add_parser("ir", help="functions, ops, init modules, bytes of an --emit-ir file")
    pi.add_argument("path")
    pi.add_argument("--json", action="store_true", help="print JSON")
    pi.add_argument("--normalize-root", action="append", default=[], metavar="DIR",
                    help="absolute checkout path to replace for bytes_normalized (repeatable)")
    pd = isub.add_parser("diagnostics", help="phases, backend seconds, modules and reasons of a diagnostics payload")
    pd.add_argument("path")
    pd.add_argument("--json", action="store_true", help="print JSON")


def cmd_inspect(args: argparse.Namespace) -> int:
    from molt_budget.collectors.inspect import diagnostics_report, ir_report

    if args.what == "ir":
        report = ir_report(Path(args.path), args.normalize_root)
    else:
        report = diagnostics_report(Path(args.path))
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for key, value in report.items():
            shown = json.dumps(value) if isinstance(value, (dict, list)) else value
            print(f"{key}: {shown}")
    return 0
