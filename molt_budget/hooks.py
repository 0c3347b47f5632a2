"""`molt-budget install-hook`: a git pre-push hook that runs the fast lanes before a push."""

from __future__ import annotations

import os
import shlex
import stat
import sys
from pathlib import Path

from molt_budget import gitutil
from molt_budget.errors import ConfigError

MARK = "# installed by molt-budget install-hook"


def hook_script(config: Path) -> str:
    return f"""#!/bin/sh
{MARK}
# Runs the lanes marked `pre_push: true` and blocks the push when a KPI fails.
# Skip once with: git push --no-verify
exec {shlex.quote(sys.executable)} -m molt_budget check --pre-push --config {shlex.quote(str(config))}
"""


def install_pre_push(config: Path, force: bool = False) -> Path:
    config = config.resolve()
    if not config.exists():
        raise ConfigError(f"{config}: no such budgets file")
    hooks = gitutil.try_git(config.parent, "rev-parse", "--git-path", "hooks", timeout=10)
    if not hooks:
        raise ConfigError(f"{config.parent}: not inside a git repository; cannot install a pre-push hook")
    hook = (config.parent / hooks / "pre-push").resolve()
    if hook.exists() and MARK not in hook.read_text(errors="replace") and not force:
        raise ConfigError(f"{hook}: a pre-push hook already exists; pass --force to replace it")
    hook.parent.mkdir(parents=True, exist_ok=True)
    hook.write_text(hook_script(config))
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return Path(os.path.relpath(hook, Path.cwd())) if hook.is_relative_to(Path.cwd()) else hook
