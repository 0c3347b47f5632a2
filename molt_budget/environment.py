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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from molt_budget.bounded import NAME_MAX, PATH_MAX, unnameable
from molt_budget.errors import EnvironmentFault, corrupt_history

_ADVICE = {
    errno.ENOSPC: "free space on that file system (df -h {dir})",
    errno.EDQUOT: "free space or raise the disk quota (quota -s)",
    errno.EROFS: "the file system is read-only: pass --output-root DIR on a writable disk",
    errno.EACCES: "no permission: fix the permissions of {dir} or pass --output-root DIR",
    errno.EPERM: "no permission: fix the permissions of {dir} or pass --output-root DIR",
    errno.EMFILE: "too many open files: raise the limit (ulimit -n)",
    errno.ENAMETOOLONG: f"a name in it is past the {NAME_MAX} bytes a file name can be, or the path past {PATH_MAX - 1}: "
                        "give a shorter one",
}


def advice(exc: OSError, path: Path | str) -> str:
    """What to do about `exc` on `path`, in a few words."""
    where = Path(path)
    folder = where if is_folder(where) else where.parent
    text = _ADVICE.get(exc.errno or 0, "check the disk and the path")
    return text.format(dir=folder)


def is_folder(path: Path) -> bool:
    """Path.is_dir, False where the question cannot be asked: before Python 3.14 it raises
    for a name too long (ENAMETOOLONG), and the line that would say so must not crash."""
    try:
        return path.is_dir()
    except OSError:
        return False


def stands_there(path: Path) -> bool:
    """Path.exists, with the same care as `is_folder`: a path no one can name holds nothing."""
    try:
        return path.exists()
    except OSError:
        return False


def fault(exc: OSError, path: Path | str, doing: str, after: str = "") -> EnvironmentFault:
    """`cannot write X: No space left on device: free space on ... ; <after>` as one error."""
    reason = exc.strerror or type(exc).__name__
    message = f"{path}: cannot {doing}: {reason}: {advice(exc, path)}"
    return EnvironmentFault(message + (f"; {after}" if after else ""))


@contextmanager
def writing(path: Path | str, what: str) -> Iterator[None]:
    """A file the command line named (`--results`, `--report-json`, `--out`, the budgets file a
    `bump` edits): a failed write is one line naming it and what to do (exit 3), not a bug."""
    try:
        yield
    except OSError as exc:
        raise fault(exc, path, f"write {what}") from None


def output_folder(path: Path | str, flag: str, holds: str) -> Path:
    """A folder the command line named for its output (`--html`, `charts --out`): refused in one
    line when something else stands there (a file, a FIFO: mkdir's FileExistsError was an
    internal error); a folder that cannot be made is the write fault of `writing` later."""
    from molt_budget.errors import ConfigError

    folder = Path(path)
    if stands_there(folder) and not is_folder(folder):
        raise ConfigError(f"{flag} {folder}: exists and is not a folder (it is where {holds} go)")
    return folder


def check_output_file(path: Path, flag: str) -> None:
    """A file the command writes at its end (`--results`, `--report-json`), refused before any
    lane runs where it can never be written: a name no file system takes, a folder in its
    place. A full or read-only disk is the write fault of `writing` at the end; the run's own
    results are in its run folder either way."""
    from molt_budget.errors import ConfigError

    problem = unnameable(path.absolute()) or ("is a folder: give a file's path" if is_folder(path) else None)
    if problem:
        raise ConfigError(f"{flag} {path}: {problem}")


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
    """A history database that exists must open, have a whole header and schema and be
    writable; a missing one must be creatable. Checked before any lane runs.

    Only a handful of pages are read: `PRAGMA quick_check` read every page, a cost that grew
    with the history (53 ms at 10k runs, so ~0.5 s at 100k). Damage deeper in the file is said the same
    way (one line, what to do) when a read reaches it (`History`, `record_history`)."""
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
            raise corrupt_history(path, str(exc)) from None
        return
    if not path.is_file():
        raise EnvironmentFault(f"{path}: the history database is not a regular file: set settings.history or pass --no-history")
    try:
        problem = _header_problem(path)
        if problem is not None:
            raise corrupt_history(path, problem)
        conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, timeout=30)
        try:
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()    # the schema's pages
            conn.execute("BEGIN IMMEDIATE")        # takes the write lock: a read-only file fails here
            conn.execute("ROLLBACK")
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise corrupt_history(path, str(exc)) from None
    except OSError as exc:
        raise fault(exc, path, "open the history database", "or pass --no-history") from None


_SQLITE_MAGIC = b"SQLite format 3\x00"


def _header_problem(path: Path) -> str | None:
    """What the file's 100-byte SQLite header says is wrong, without reading further: not a
    database, or shorter than the pages its header counts (a truncated copy or cache restore)."""
    size = path.stat().st_size
    if size == 0:
        return None                                # SQLite's empty database: the schema is made on open
    if any(Path(f"{path}{suffix}").exists() for suffix in ("-journal", "-wal")):
        return None                                # a write in progress or to roll back: SQLite's to judge
    with open(path, "rb") as fh:
        head = fh.read(100)
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        return "not an SQLite database"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # the header's page count is valid only while its change counter matches (SQLite's file format, 1.3.7)
    if pages and head[24:28] == head[92:96] and pages * page_size > size:
        return f"truncated: {size:,} bytes, its header counts {pages:,} pages of {page_size:,}"
    return None


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
        raise corrupt_history(path, str(exc)) from None
    except OSError as exc:
        raise fault(exc, path, "record the run in the history database", kept) from None
