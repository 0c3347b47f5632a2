"""`molt-budget install-hook`: a git pre-push hook that runs the fast lanes before a push."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from molt_budget.commands.args import command, config_arg


def register(subparsers: Any) -> None:
    p = command(subparsers, "install-hook", cmd_install_hook, help="install a git pre-push hook running `check --pre-push`")
    config_arg(p)
    p.add_argument("--force", action="store_true", help="replace an existing pre-push hook")


def cmd_install_hook(args: argparse.Namespace) -> int:
    from molt_budget.hooks import install_pre_push

    path = install_pre_push(Path(args.config), force=args.force)
    print(f"installed {path}: runs `molt-budget check --pre-push --config {args.config}` before every push")
    return 0
