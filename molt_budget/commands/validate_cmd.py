"""`molt-budget validate`: check the budgets file without running anything.

Beyond the file itself it says where a lane's recorded noise (`calibrate`, past paired
checks) cannot resolve a timed KPI's budget within max_pairs: before a PR pays for the pairs.
"""

from __future__ import annotations

import argparse
from typing import Any

from molt_budget.commands.args import command, config_arg, load_config_arg


def register(subparsers: Any) -> None:
    p = command(subparsers, "validate", cmd_validate,
                help="check budgets.yaml (syntax, schema, metrics, lanes) without running anything; "
                     "warn where a lane's recorded noise cannot resolve a timed budget")
    config_arg(p)
    p.add_argument("--strict", action="store_true", help="exit 1 on a warning (a timed budget the lane's noise cannot resolve)")


def cmd_validate(args: argparse.Namespace) -> int:
    from molt_budget.compare.sampler import load_noise, noise_warnings
    from molt_budget.config.loader import advice

    config = load_config_arg(args)
    print(f"{args.config}: OK ({len(config.lanes)} lanes, {len(config.kpis)} KPIs)")
    lanes = list(config.lanes)
    warnings = noise_warnings(config, lanes, load_noise(config, lanes))
    for warning in warnings:
        print(f"{config.where('kpis', warning.kpi)}: warning[noise]: {warning.message}")
    for note in advice(config):            # builds that buy nothing: advice, never a failure
        print(f"note: {note}")
    return 1 if warnings and args.strict else 0
