"""Which failures are retried: real processes that exit 124, die of SIGTERM or SIGKILL (an OOM
kill), hit the build lock, or fail as a compiler does (never retried)."""

from __future__ import annotations

import os
import sys
import uuid
from pathlib import Path

import pytest

from molt_budget.runner.process import run_process
from molt_budget.runner.retry import retry_reason

LOCK = "Timed out waiting for build lock"


def outcome_of(tmp_path: Path, code: str, timeout_s: float = 20.0) -> tuple[object, Path]:
    stderr = tmp_path / "stderr.log"
    outcome = run_process([sys.executable, "-c", code], env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, cwd=tmp_path,
                          timeout_s=timeout_s, marker=("MOLT_BUDGET_TEST_RUN", uuid.uuid4().hex),
                          stdout_path=tmp_path / "stdout.log", stderr_path=stderr)
    return outcome, stderr


@pytest.mark.parametrize(("code", "reason"), [
    ("import sys; sys.exit(124)", "timeout_exit_124"),                        # `timeout(1)` gave up on the build
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", "sigterm"),     # the runner was asked to stop
    ("import sys; sys.exit(143)", "sigterm"),                                 # a shell reporting the same
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", "oom_kill"),    # what the OOM killer looks like
    ("import sys; sys.exit(137)", "oom_kill"),
    (f"import sys; print({LOCK!r}, file=sys.stderr); sys.exit(1)", "build_lock_timeout"),
    ("import sys; print('error[E0308]: mismatched types', file=sys.stderr); sys.exit(1)", None),   # the compiler's fault
    ("import sys; sys.exit(2)", None),
    ("pass", None),
])
def test_real_exits_are_classified(tmp_path: Path, code: str, reason: str | None) -> None:
    outcome, stderr = outcome_of(tmp_path, code)
    assert retry_reason(outcome, stderr, LOCK) == reason  # type: ignore[arg-type]


def test_a_timeout_is_retried_as_a_timeout(tmp_path: Path) -> None:
    outcome, stderr = outcome_of(tmp_path, "import time; time.sleep(30)", timeout_s=0.5)
    assert retry_reason(outcome, stderr, LOCK) == "timeout"  # type: ignore[arg-type]
