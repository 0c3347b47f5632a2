"""The few git operations the gate needs, each with a timeout and a one-line error."""

from __future__ import annotations

import subprocess
from pathlib import Path

from molt_budget.errors import ConfigError


def git(cwd: Path, *args: str, timeout: float = 60) -> str:
    try:
        proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        raise ConfigError("git is not installed; --base needs git") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"git {' '.join(args)} timed out after {timeout:g}s in {cwd}") from None
    if proc.returncode != 0:
        detail = (proc.stderr.strip().splitlines() or ["failed"])[-1]
        raise ConfigError(f"git {' '.join(args)} in {cwd}: {detail}")
    return proc.stdout.strip()


def try_git(cwd: Path, *args: str) -> str | None:
    try:
        return git(cwd, *args)
    except ConfigError:
        return None


def toplevel(path: Path) -> Path | None:
    out = try_git(path, "rev-parse", "--show-toplevel")
    return Path(out) if out else None


def default_base(cwd: Path, candidates: list[str]) -> tuple[str, str] | None:
    """(ref, merge-base sha) with the first candidate branch that exists, e.g. origin/main then main,
    else the remote's default branch (origin/HEAD)."""
    for ref in _with_remote_head(cwd, candidates):
        if not ref_exists(cwd, ref):
            continue
        base = try_git(cwd, "merge-base", "HEAD", ref)
        if base:
            return ref, base
    return None


MAIN_HINT = ("no main branch found: set settings.main_branch (and settings.remote_main) in the budgets file, "
             "or run `git remote set-head origin --auto`")


def ref_exists(cwd: Path, ref: str) -> bool:
    return try_git(cwd, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}") is not None


def remote_head(cwd: Path, remote: str = "origin") -> str | None:
    """The remote's default branch as `origin/<name>` (origin/HEAD), e.g. origin/master."""
    return try_git(cwd, "symbolic-ref", "--quiet", "--short", f"refs/remotes/{remote}/HEAD")


def _with_remote_head(cwd: Path, candidates: list[str]) -> list[str]:
    head = remote_head(cwd)
    return [*candidates, head] if head and head not in candidates else list(candidates)


def main_ref(cwd: Path, candidates: list[str]) -> str | None:
    """The first candidate that exists (settings.remote_main, settings.main_branch), else origin/HEAD."""
    return next((ref for ref in _with_remote_head(cwd, candidates) if ref_exists(cwd, ref)), None)


def on_first_parent(cwd: Path, ref: str, commit: str) -> bool:
    """Is `commit` one of `ref`'s first-parent commits (a merge into main, not a commit of the branch merged)?"""
    sha = try_git(cwd, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    if sha is None or try_git(cwd, "merge-base", "--is-ancestor", sha, ref) is None:
        return False
    listed = try_git(cwd, "rev-list", "--first-parent", ref)
    return listed is not None and sha in listed.split()


def is_dirty(cwd: Path) -> bool | None:
    """Uncommitted changes to tracked files (None: not a git checkout)."""
    out = try_git(cwd, "status", "--porcelain", "--untracked-files=no")
    return None if out is None else bool(out)


def ensure_worktree(repo: Path, commit: str, where: Path) -> Path:
    """A detached worktree of `commit` at `where`, reused when it is already there."""
    if (where / ".git").exists():
        where.touch()                      # most recently used: kept by prune_worktrees
        current = try_git(where, "rev-parse", "HEAD")
        if current == commit:
            return where
        git(where, "checkout", "--quiet", "--force", "--detach", commit)
        git(where, "clean", "-fdq")
        return where
    where.parent.mkdir(parents=True, exist_ok=True)
    try_git(repo, "worktree", "prune")
    git(repo, "worktree", "add", "--quiet", "--force", "--detach", str(where), commit, timeout=600)
    return where


def prune_worktrees(repo: Path, folder: Path, keep: int = 3) -> list[Path]:
    """Remove all but the `keep` most recently used base worktrees: a big repository's
    checkouts add up, and a base older than that is rarely asked for again."""
    if not folder.is_dir():
        return []
    trees = sorted((p for p in folder.iterdir() if (p / ".git").exists()), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = []
    for old in trees[keep:]:
        if try_git(repo, "worktree", "remove", "--force", str(old)) is not None:
            removed.append(old)
    try_git(repo, "worktree", "prune")
    return removed
