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
    """Write the hook where git looks for it. What stands there is looked at, never followed:
    a symlink (a hook manager's, or one left dangling) is a hook that exists, not a path to
    write through, and a folder or a FIFO is refused (the FIFO was read for ever)."""
    from molt_budget.environment import writing
    from molt_budget.results.store import write_bytes_atomic

    config = config.resolve()
    if not config.exists():
        raise ConfigError(f"{config}: no such budgets file")
    hooks = gitutil.try_git(config.parent, "rev-parse", "--git-path", "hooks", timeout=10)
    if not hooks:
        raise ConfigError(f"{config.parent}: not inside a git repository; cannot install a pre-push hook")
    hook = Path(os.path.abspath(config.parent / hooks / "pre-push"))
    if _existing_hook(hook) and not force:
        raise ConfigError(f"{hook}: a pre-push hook already exists; pass --force to replace it")
    with writing(hook, "the pre-push hook"):
        if hook.is_symlink():
            hook.unlink()                     # --force replaces the link itself, not what it points at
        hook.parent.mkdir(parents=True, exist_ok=True)
        write_bytes_atomic(hook, hook_script(config).encode(), mode=0o755)
    return Path(os.path.relpath(hook, Path.cwd())) if hook.is_relative_to(Path.cwd()) else hook


def _existing_hook(hook: Path) -> bool:
    """Whether a hook not installed by us stands at `hook` (ours is replaced without --force)."""
    from molt_budget.bounded import InputError, read_regular

    try:
        info = hook.lstat()
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise ConfigError(f"{hook}: cannot look at the pre-push hook: {exc.strerror or exc}") from None
    if stat.S_ISLNK(info.st_mode):
        return True
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{hook}: is not a file; git runs the pre-push hook from a file there")
    try:
        text = read_regular(hook, 1 << 20).decode("utf-8", "replace")
    except (OSError, InputError):
        return True                           # unreadable or huge: not ours, so not replaced silently
    return MARK not in text
