"""Runner faults: a daemon that escapes every marker, and a second signal right after the first."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
from conftest import FIXTURES, PY_STDLIB, wait_for_file
from test_engine import latest_results, write_budgets

from molt_budget.cli import main

pytestmark = pytest.mark.slow   # CLI runs signalled mid-lane, real process trees


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return False


def test_a_daemon_that_calls_setsid_and_clears_its_environment_dies_with_its_lane(tmp_path: Path) -> None:
    pids = tmp_path / "daemons.txt"
    command = [*PY_STDLIB, str(FIXTURES / "procs" / "envless_daemon.py"), str(pids)]
    config = write_budgets(tmp_path, {"d": {"command": command, "repeats": 3}, "after": {"command": ["true"], "repeats": 1}},
                           {"w": {"lane": "d", "metric": "wall_s", "target": 10},
                            "a": {"lane": "after", "metric": "wall_s", "target": 10}})
    assert main(["run", "--config", str(config), "--quiet", "--no-history"]) == 0
    started = [int(x) for x in pids.read_text().split()]
    assert len(started) == 3                                   # one daemon per sample
    survivors = [pid for pid in started if alive(pid)]
    for pid in survivors:                                      # never leave them to the next test
        psutil.Process(pid).kill()
    assert survivors == []
    assert latest_results(tmp_path).lanes["after"].status == "ok"


@pytest.mark.parametrize(("second", "delay"), [(signal.SIGTERM, 0.02), (signal.SIGTERM, 0.05), (signal.SIGINT, 0.07), (signal.SIGTERM, 0.1)])
def test_a_second_signal_soon_after_the_first_keeps_the_hint_and_exit_130(tmp_path: Path, second: int, delay: float) -> None:
    """CI's cancel, then its follow-up `delay` seconds later (while the runner kills the lane's
    SIGTERM-deaf build and saves the samples): neither the clean-up nor the exit is cut short."""
    ready = tmp_path / "ready"
    config = write_budgets(
        tmp_path,
        {"slow": {"command": [*PY_STDLIB, str(FIXTURES / "procs" / "ignore_term.py"), str(ready)], "repeats": 1, "timeout_s": 60}},
        {"s": {"lane": "slow", "metric": "wall_s", "target": 100}},
    )
    proc = subprocess.Popen([sys.executable, "-m", "molt_budget", "run", "--config", str(config), "--no-history"],
                            stderr=subprocess.PIPE, text=True)
    build = int(wait_for_file(ready))          # the first attempt is running and deaf to SIGTERM
    proc.send_signal(signal.SIGTERM)
    time.sleep(delay)                          # the scenario's gap between the two signals, not a wait for anything
    proc.send_signal(second)
    rest = proc.communicate(timeout=60)[1]
    assert proc.returncode == 130, rest
    assert "--resume" in rest, rest
    results = latest_results(tmp_path)
    assert results.state == "interrupted"
    assert results.lanes["slow"].samples == []   # interrupted in its first attempt: no timeout, no retry ran
    assert not alive(build)                      # the clean-up ran to its end: the deaf build got SIGKILL
