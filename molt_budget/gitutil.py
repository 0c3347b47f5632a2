"""The few git operations the gate needs, each with a timeout and a one-line error."""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

from molt_budget.errors import ConfigError


def git(cwd: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None) -> str:
    return run_git(cwd, *args, timeout=timeout, env=env).decode("utf-8", "replace").strip()


def run_git(cwd: Path, *args: str, timeout: float = 60, env: dict[str, str] | None = None, data: bytes | None = None) -> bytes:
    """git's raw stdout; any failure is one ConfigError naming the command and git's last line."""
    proc = _spawn(cwd, args, timeout, env, data)
    if proc.returncode != 0:
        raise ConfigError(f"git {' '.join(args)} in {cwd}: {_last_line(proc.stderr)}")
    return proc.stdout


def _spawn(cwd: Path, args: tuple[str, ...], timeout: float, env: dict[str, str] | None, data: bytes | None) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(["git", *args], cwd=cwd, input=data, capture_output=True, timeout=timeout,
                              env={**os.environ, **env} if env else None)
    except FileNotFoundError:
        raise ConfigError("git is not installed; --base and the history data branch need git") from None
    except subprocess.TimeoutExpired:
        raise ConfigError(f"git {' '.join(args)} timed out after {timeout:g}s in {cwd}") from None


def _last_line(stderr: bytes) -> str:
    return (stderr.decode("utf-8", "replace").strip().splitlines() or ["failed"])[-1]


def try_git(cwd: Path, *args: str, timeout: float = 60) -> str | None:
    try:
        return git(cwd, *args, timeout=timeout)
    except ConfigError:
        return None


def resolve_commit(cwd: Path, ref: str) -> str | None:
    """The commit `ref` names, or None when it names none."""
    return try_git(cwd, "rev-parse", "--verify", "--quiet", f"{_ref(ref)}^{{commit}}")


def _ref(ref: str) -> str:
    """`ref` as git's positional argument: a base or main branch comes from --base and
    budgets.yaml, and `git rev-list --first-parent --output=FILE` creates FILE."""
    return _not_an_option(ref, "git ref", "a branch or commit never starts with '-'")


def _not_an_option(value: str, what: str, instead: str) -> str:
    """The one rule for a value git takes as a positional argument: one starting with '-' is
    read as an option, so it never reaches git (a ConfigError, exit 2)."""
    if value.startswith("-"):
        raise ConfigError(f"{what} {value!r} starts with '-', which git reads as an option: {instead}")
    return value


def file_at(repo: Path, commit: str, rel_path: str) -> bytes | None:
    """A file's bytes at `commit`; None when the commit has no such file."""
    rel = rel_path.replace("\\", "/").lstrip("/")
    while rel.startswith("./"):
        rel = rel[2:]
    if _spawn(repo, ("cat-file", "-e", f"{commit}:{rel}"), 60, None, None).returncode != 0:
        return None
    return run_git(repo, "show", f"{commit}:{rel}")


_TOPLEVELS: dict[Path, Path | None] = {}


def toplevel(path: Path) -> Path | None:
    """The work tree `path` is in, asked of git once a command (`forget_toplevels`): a check
    asks it from four places, and each ask is a git process."""
    if path not in _TOPLEVELS:
        out = try_git(path, "rev-parse", "--show-toplevel")
        _TOPLEVELS[path] = Path(out) if out else None
    return _TOPLEVELS[path]


def head_commit(path: Path, timeout: float = 60) -> str | None:
    """HEAD's commit in the work tree `path` is in (None: no git, not a repository, no commit
    yet), asking git for the work tree too in the same process: every check wants both."""
    try:
        proc = _spawn(path, ("rev-parse", "--show-toplevel", "--verify", "HEAD"), timeout, None, None)
    except ConfigError:
        return None
    lines = proc.stdout.decode("utf-8", "replace").splitlines()
    if path not in _TOPLEVELS:
        # printed before HEAD is looked at, so an unborn branch still names its work tree
        _TOPLEVELS[path] = Path(lines[0]) if lines and (proc.returncode == 0 or len(lines) == 1) else None
    return lines[1].strip() if proc.returncode == 0 and len(lines) == 2 else None


def forget_toplevels() -> None:
    """A new command (cli.main) asks again: a test or a long-lived caller may create repositories."""
    _TOPLEVELS.clear()


def default_base(cwd: Path, candidates: list[str]) -> tuple[str, str] | None:
    """(ref, merge-base sha) with the first candidate branch that exists, e.g. origin/main then main,
    else the remote's default branch (origin/HEAD)."""
    for ref in _with_remote_head(cwd, candidates):
        if not ref_exists(cwd, ref):
            continue
        base = try_git(cwd, "merge-base", "HEAD", _ref(ref))
        if base:
            return ref, base
    return None


MAIN_HINT = ("no main branch found: set settings.main_branch (and settings.remote_main) in the budgets file, "
             "or run `git remote set-head origin --auto`")


def ref_exists(cwd: Path, ref: str) -> bool:
    return resolve_commit(cwd, ref) is not None


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
    sha = resolve_commit(cwd, commit)
    if sha is None or try_git(cwd, "merge-base", "--is-ancestor", sha, _ref(ref)) is None:
        return False
    listed = try_git(cwd, "rev-list", "--first-parent", _ref(ref))
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


# -- plumbing for the history data branch -----------------------------------------------
# Commits are built from blobs and trees in a temporary index, never in the user's index or
# work tree: `history push` may run in any checkout, even one with uncommitted changes.

# A push refused for one of these reasons lost a race with another pusher: fetch and retry.
# ("failed to update ref" / "cannot lock ref": two receive-packs updated the branch at once.)
RACE_REASONS = ("fetch first", "non-fast-forward", "stale info", "failed to update ref", "cannot lock ref",
                "failed to lock", "incorrect old value")


class PushRejected(ConfigError):
    """The remote branch moved on (another pusher won the race): fetch, recommit, push again."""


def hash_blob(repo: Path, data: bytes) -> str:
    return run_git(repo, "hash-object", "-w", "--stdin", data=data).decode().strip()


def _remote(remote: str) -> str:
    """`remote` as git's positional argument: the data remote comes from budgets.yaml and
    --remote, and `--upload-pack=CMD` made `git fetch` run CMD."""
    return _not_an_option(remote, "git remote", f"name a remote, a URL or a path (./{remote} for a folder)")


def fetch_branch(repo: Path, remote: str, branch: str, into: str, timeout: float = 600) -> str | None:
    """Fetch the tip of `branch` of `remote` into the private ref `into`; its commit, or None when the
    remote has no such branch.

    Only the tip (--depth 1): the data branch is append-only, so its tip's tree holds every file,
    and skipping one commit and two trees per record makes the fetch ~5x faster (bench/databranch_scale.py).
    """
    proc = _spawn(repo, ("fetch", "--quiet", "--no-tags", "--no-write-fetch-head", "--depth", "1", _remote(remote),
                         f"+refs/heads/{branch}:{into}"), timeout, None, None)
    if proc.returncode != 0:
        detail = _last_line(proc.stderr)
        if "couldn't find remote ref" in detail or "could not find remote ref" in detail:
            return None
        raise ConfigError(f"git fetch {remote} {branch} in {repo}: {detail}")
    return git(repo, "rev-parse", "--verify", f"{into}^{{commit}}")


def ls_tree(repo: Path, commit: str, *paths: str) -> dict[str, str]:
    """path -> blob sha of every file at or under `paths` in `commit`."""
    out = run_git(repo, "ls-tree", "-r", "-z", "--full-tree", commit, "--", *paths, timeout=300)
    files = {}
    for entry in out.split(b"\0"):
        if not entry:
            continue
        meta, _, path = entry.partition(b"\t")
        mode, kind, sha = meta.split()
        if kind == b"blob":
            files[path.decode("utf-8", "replace")] = sha.decode()
    return files


def read_blobs(repo: Path, shas: list[str], max_bytes: int | None = None) -> Iterator[tuple[str, bytes | None]]:
    """(sha, content) of each blob, in order, through one `git cat-file --batch` process;
    content None for a blob larger than `max_bytes` (skipped unread: a hostile branch cannot fill memory)."""
    if not shas:
        return
    with tempfile.TemporaryFile() as wanted:
        wanted.write("".join(f"{s}\n" for s in shas).encode())
        wanted.seek(0)
        proc = subprocess.Popen(["git", "cat-file", "--batch"], cwd=repo, stdin=wanted, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL)
        assert proc.stdout is not None
        try:
            for sha in shas:
                header = proc.stdout.readline().split()
                if len(header) != 3:
                    raise ConfigError(f"git cat-file in {repo}: object {sha} is missing")
                size = int(header[2])
                if max_bytes is not None and size > max_bytes:
                    while size > 0:
                        chunk = proc.stdout.read(min(size, 1 << 20))
                        if not chunk:
                            raise ConfigError(f"git cat-file in {repo}: object {sha} is truncated")
                        size -= len(chunk)
                    content = None
                else:
                    content = proc.stdout.read(size)
                proc.stdout.read(1)                  # the newline after each object
                yield sha, content
        finally:
            proc.stdout.close()
            proc.kill()
            proc.wait()


def commit_files(repo: Path, parent: str | None, files: dict[str, str], message: str,
                 replace: str | None = None) -> str:
    """A commit on top of `parent` with `files` (path -> blob sha) added, built in a temporary index.

    `replace`: a folder whose old content is dropped first (a published site, regenerated whole).
    """
    with tempfile.TemporaryDirectory(prefix="molt-budget-index-") as tmp:
        env = {"GIT_INDEX_FILE": str(Path(tmp) / "index"), **IDENTITY}
        if parent is not None:
            git(repo, "read-tree", parent, env=env, timeout=300)
            if replace:
                stale = run_git(repo, "ls-files", "-z", "--", replace, env=env)
                if stale:
                    run_git(repo, "update-index", "--force-remove", "-z", "--stdin", env=env, data=stale)
        entries = "".join(f"100644 {sha}\t{path}\0" for path, sha in sorted(files.items()))
        run_git(repo, "update-index", "--add", "-z", "--index-info", env=env, data=entries.encode("utf-8"))
        tree = git(repo, "write-tree", env=env)
    args = ["commit-tree", tree, "-m", message] + (["-p", parent] if parent else [])
    return git(repo, *args, env=IDENTITY)


def push_commit(repo: Path, remote: str, commit: str, branch: str, timeout: float = 600) -> None:
    """Fast-forward `branch` of `remote` to `commit`; PushRejected when another pusher got there first."""
    proc = _spawn(repo, ("push", "--porcelain", "--quiet", _remote(remote), f"{commit}:refs/heads/{branch}"), timeout, None, None)
    if proc.returncode == 0:
        return
    text = (proc.stdout + proc.stderr).decode("utf-8", "replace")
    if any(reason in text for reason in RACE_REASONS):
        raise PushRejected(f"git push {remote} {branch}: the branch moved on")
    rejected = [line for line in text.splitlines() if line.startswith("!")]
    raise ConfigError(f"git push {remote} {branch} in {repo}: {(rejected or [_last_line(proc.stderr)])[-1].strip()}")


# Who commits on the data branch: a fixed identity, so a runner without git config can record
# (the user's own identity, when set, is not needed and would leak into shared data).
IDENTITY = {
    "GIT_AUTHOR_NAME": "molt-budget", "GIT_AUTHOR_EMAIL": "molt-budget@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "molt-budget", "GIT_COMMITTER_EMAIL": "molt-budget@users.noreply.github.com",
}
