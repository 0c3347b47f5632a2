"""`install-hook` looks at what stands where git runs the pre-push hook, and never follows it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from molt_budget.cli import main

BUDGETS = ("version: 1\nlanes:\n  fast: {command: [/bin/true], repeats: 1, pre_push: true}\n"
           "kpis:\n  fast_s: {lane: fast, metric: wall_s, target: 30}\n")


def repo(tmp_path: Path) -> Path:
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    (tmp_path / "budgets.yaml").write_text(BUDGETS)
    return tmp_path / "budgets.yaml"


@pytest.mark.parametrize("kind", ["fifo", "folder", "hooks-a-file"])
def test_what_git_cannot_run_as_a_hook_is_refused_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    """A FIFO there was read for ever; a folder, or a file where the hooks folder belongs, was an internal error."""
    config = repo(tmp_path)
    hooks = tmp_path / ".git" / "hooks"
    if kind == "fifo":
        os.mkfifo(hooks / "pre-push")
    elif kind == "folder":
        (hooks / "pre-push").mkdir()
    else:
        subprocess.run(["rm", "-rf", str(hooks)], check=True)
        hooks.write_text("")
    assert main(["install-hook", "--config", str(config), "--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pre-push" in err and "internal error" not in err


def test_a_symlinked_hook_is_an_existing_hook_and_force_replaces_the_link(tmp_path: Path) -> None:
    """A dangling link (a hook manager's, gone) was written through: its target's folders were made."""
    config = repo(tmp_path)
    hook = tmp_path / ".git" / "hooks" / "pre-push"
    target = tmp_path / "elsewhere" / "hook"
    hook.symlink_to(target)
    assert main(["install-hook", "--config", str(config)]) == 2
    assert hook.is_symlink() and not target.parent.exists()
    assert main(["install-hook", "--config", str(config), "--force"]) == 0
    assert not hook.is_symlink() and hook.stat().st_mode & 0o111 and not target.parent.exists()
    assert "check --pre-push" in hook.read_text()
    assert main(["install-hook", "--config", str(config)]) == 0          # ours: replaced without --force


def test_a_hooks_folder_that_cannot_be_made_is_a_write_fault(tmp_path: Path) -> None:
    config = repo(tmp_path)
    subprocess.run(["git", "-C", str(tmp_path), "config", "core.hooksPath", "/proc/self/no-hooks"], check=True)
    assert main(["install-hook", "--config", str(config)]) == 3
