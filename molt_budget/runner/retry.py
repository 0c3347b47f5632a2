"""Which failures are the machine's fault (retry) and which are the compiler's (report)."""

from __future__ import annotations

from pathlib import Path

from molt_budget.runner.process import ProcessOutcome

SIGTERM_CODES = {143, -15}
OOM_CODES = {137, -9}


def retry_reason(outcome: ProcessOutcome, stderr_path: Path, lock_pattern: str) -> str | None:
    """The infrastructure reason to retry, or None when the result stands (a compile error is not retried)."""
    if outcome.timed_out:
        return "timeout"
    rc = outcome.returncode
    if rc is None or rc == 0:
        return None
    if rc == 124:
        return "timeout_exit_124"
    if rc in SIGTERM_CODES:
        return "sigterm"
    if rc in OOM_CODES:
        return "oom_kill"
    if lock_pattern and _contains(stderr_path, lock_pattern):
        return "build_lock_timeout"
    return None


def _contains(path: Path, needle: str) -> bool:
    """Stream the log: it may be large, and the line may be anywhere in it."""
    tail = ""
    try:
        with path.open("r", encoding="utf-8", errors="replace") as fh:
            while chunk := fh.read(1 << 20):
                if needle in tail + chunk:
                    return True
                tail = chunk[-len(needle):]
    except OSError:
        return False
    return False
