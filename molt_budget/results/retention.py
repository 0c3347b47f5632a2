"""Retention of run folders: a run's raw files (IR, diagnostics, logs) are big (26-40 MB for
molt's lanes) and history keeps their summary, so only the newest few are kept.

Only folders that look like ours are ever removed: `<root>/runs/<run id>/` holding a
results.json. An imported snapshot's path, or anything else, is never touched.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def is_run_dir(path: Path) -> bool:
    """A molt-budget run folder: runs/<id>/results.json, not a symlink."""
    return (path.parent.name == "runs" and path.is_dir() and not path.is_symlink()
            and (path / "results.json").is_file())


def remove_run_dir(results_path: str | Path | None) -> bool:
    """Remove the run folder holding `results_path` (True when removed)."""
    if not results_path:
        return False
    folder = Path(results_path).parent
    if Path(results_path).name != "results.json" or not is_run_dir(folder):
        return False
    shutil.rmtree(folder, ignore_errors=True)
    return not folder.exists()


def keep_recent_run_dirs(runs_root: Path, keep: int) -> list[Path]:
    """Remove all but the newest `keep` run folders under `runs_root` (run ids sort by start time);
    keep <= 0 keeps everything. Returns the folders removed."""
    if keep <= 0 or runs_root.name != "runs" or not runs_root.is_dir():
        return []
    folders = sorted((p for p in runs_root.iterdir() if is_run_dir(p)), key=lambda p: p.name, reverse=True)
    removed = []
    for old in folders[keep:]:
        shutil.rmtree(old, ignore_errors=True)
        if not old.exists():
            removed.append(old)
    return removed
