"""Faults of the machine, said as what to do: full disk, read-only or unwritable paths, a corrupt history.

Why one module: an OSError reads as "internal error: OSError" unless someone says which
path it was and what the user can do about it. Every write of the runner (output root,
snapshots, history) goes through `fault()` for its message, and the history is checked
here before any lane runs, so a broken database is found in a second, not after an hour
of measuring.
"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

from molt_budget.errors import EnvironmentFault

_ADVICE = {
    errno.ENOSPC: "free space on that file system (df -h {dir})",
    errno.EDQUOT: "free space or raise the disk quota (quota -s)",
    errno.EROFS: "the file system is read-only: pass --output-root DIR on a writable disk",
    errno.EACCES: "no permission: fix the permissions of {dir} or pass --output-root DIR",
    errno.EPERM: "no permission: fix the permissions of {dir} or pass --output-root DIR",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
}


def advice(exc: OSError, path: Path | str) -> str:
    """What to do about `exc` on `path`, in a few words."""
    where = Path(path)
    folder = where if where.is_dir() else where.parent
    text = _ADVICE.get(exc.errno or 0, "check the disk and the path")
    return text.format(dir=folder)


def fault(exc: OSError, path: Path | str, doing: str, after: str = "") -> EnvironmentFault:
    """`cannot write X: No space left on device: free space on ... ; <after>` as one error."""
    reason = exc.strerror or type(exc).__name__
    message = f"{path}: cannot {doing}: {reason}: {advice(exc, path)}"
    return EnvironmentFault(message + (f"; {after}" if after else ""))


def check_output_root(root: Path) -> None:
    """The output root exists (or can be made) and takes a file: before any lane runs."""
    root = Path(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".molt-budget-write-test-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise fault(exc, root, "write the output root") from None


def check_history(path: Path) -> None:
    """A history database that exists must open, pass SQLite's integrity check and be
    writable; a missing one must be creatable. Checked before any lane runs."""
    path = Path(path)
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise fault(exc, path.parent, "create the folder of the history database", "or pass --no-history") from None
        if not os.access(path.parent, os.W_OK):
            raise EnvironmentFault(f"{path.parent}: cannot create the history database there (not writable): "
                                   "fix its permissions, set settings.history, or pass --no-history")
        from molt_budget.errors import ConfigError
        from molt_budget.results.history import History

        try:
            # created now, by its own code (schema and version): a disk that fills during the lanes cannot stop it later
            History(path)._connect().close()
        except ConfigError as exc:
            raise _corrupt(path, str(exc)) from None
        return
    if not path.is_file():
        raise EnvironmentFault(f"{path}: the history database is not a regular file: set settings.history or pass --no-history")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
        try:
            rows = conn.execute("PRAGMA quick_check").fetchall()
            conn.execute("BEGIN IMMEDIATE")        # takes the write lock: a read-only file fails here
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise _corrupt(path, str(exc)) from None
    except OSError as exc:
        raise fault(exc, path, "open the history database", "or pass --no-history") from None
    problems = [str(r[0]) for r in rows if r and r[0] != "ok"]
    if problems:
        raise _corrupt(path, "; ".join(problems[:3]))


def _corrupt(path: Path, detail: str) -> EnvironmentFault:
    if "readonly" in detail or "read-only" in detail:
        return EnvironmentFault(f"{path}: the history database is read-only ({detail}): fix its permissions or pass --no-history")
    return EnvironmentFault(f"{path}: the history database is unreadable or corrupt ({' '.join(detail.split())[:200]}): "
                            f"move it aside (mv {path} {path}.corrupt) to start a new one")


def record_history(history: object, results: object, results_path: Path | None, **options: object) -> object:
    """`History.record`, with a full disk or a broken database said as what to do; the
    results file already holds every sample, so nothing measured is lost."""
    path = getattr(history, "path", "history")
    kept = f"the results are kept in {results_path}" if results_path else "the results are kept"
    try:
        return history.record(results, results_path, **options)  # type: ignore[attr-defined]
    except sqlite3.OperationalError as exc:
        full = "full" in str(exc)
        what = "free space on that file system" if full else "check the database"
        raise EnvironmentFault(f"{path}: cannot record the run in the history database ({exc}): {what}; {kept}") from None
    except sqlite3.DatabaseError as exc:
        raise _corrupt(Path(str(path)), str(exc)) from None
    except OSError as exc:
        raise fault(exc, path, "record the run in the history database", kept) from None
