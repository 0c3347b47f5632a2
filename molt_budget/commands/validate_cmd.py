"""`molt-budget validate`: check the budgets file without running anything."""

from __future__ import annotations

import argparse
from typing import Any

from molt_budget.commands.args import command, config_arg, load_config_arg


def register(subparsers: Any) -> None:
    p = command(subparsers, "validate", cmd_validate,
                help="check budgets.yaml (syntax, schema, metrics, lanes) without running anything")
    config_arg(p)


def cmd_validate(args: argparse.Namespace) -> int:
    config = load_config_arg(args)
    print(f"{args.config}: OK ({len(config.lanes)} lanes, {len(config.kpis)} KPIs)")
    return 0
