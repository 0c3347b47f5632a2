"""run_process / kill_marked against real process trees (fixtures in tests/fixtures/procs)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
from conftest import PY_STDLIB

from molt_budget.runner import process, proctable
from molt_budget.runner.process import ProcessOutcome, kill_marked, run_process

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process-tree behaviour is Linux-specific")

PROCS = Path(__file__).parent / "fixtures" / "procs"
MARKER_NAME = "MOLT_BUDGET_TEST_RUN"
MiB = 1 << 20


@dataclass
class Lane:
    """What a test needs to run commands under one fresh marker."""

    tmp: Path
    marker: tuple[str, str]

    def run(self, command: list[str] | str, *, timeout_s: float = 20.0, **kwargs: object) -> ProcessOutcome:
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}
        env.update(kwargs.pop("env", {}))  # type: ignore[arg-type]
        return run_process(
            command,
            env=env,
            cwd=kwargs.pop("cwd", self.tmp),  # type: ignore[arg-type]
            timeout_s=timeout_s,
            marker=self.marker,
            stdout_path=self.tmp / "stdout.log",
            stderr_path=self.tmp / "stderr.log",
            **kwargs,  # type: ignore[arg-type]
        )


@pytest.fixture
def lane(tmp_path: Path) -> Iterator[Lane]:
    marker = (MARKER_NAME, uuid.uuid4().hex)
    yield Lane(tmp_path, marker)
    # A failing test must not leak daemons into the next one; checked independently of kill_marked below.
    kill_marked(marker, grace_s=0.2)


def py(script: str, *args: object) -> list[str]:
    return [*PY_STDLIB, str(PROCS / script), *map(str, args)]


def marked_alive(marker: tuple[str, str]) -> list[int]:
    """Independent of the module under test: a plain psutil scan of environments."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if proc.environ().get(marker[0]) == marker[1]:
                found.append(proc.pid)
        except psutil.Error:
            continue
    return found


def is_alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


# --- normal runs: exit codes, logs, tails, env --------------------------------------------


def test_full_logs_and_last_20_lines(lane: Lane) -> None:
    out = lane.run(py("output.py", 5000, 30))
    assert out.returncode == 0 and not out.timed_out and out.start_error is None
    assert (lane.tmp / "stdout.log").read_text().splitlines() == [f"out {i}" for i in range(5000)]
    assert (lane.tmp / "stderr.log").read_text().splitlines() == [f"err {i}" for i in range(30)]
    assert out.stdout_tail == "\n".join(f"out {i}" for i in range(4980, 5000))
    assert out.stderr_tail == "\n".join(f"err {i}" for i in range(10, 30))
    assert out.killed_pids == []
    assert out.wall_s > 0


def test_short_tail_invalid_utf8_and_no_final_newline(lane: Lane) -> None:
    out = lane.run(py("output.py", 2, 0, "raw"))
    assert out.stdout_tail == "out 0\nout 1\nbad \ufffd\ufffd bytes"
    assert out.stderr_tail == ""


def test_shell_string_runs_with_sh(lane: Lane) -> None:
    out = lane.run("echo one; echo two >&2; for i in 1 2; do echo loop $i; done; exit 3")
    assert out.returncode == 3
    assert out.stdout_tail == "one\nloop 1\nloop 2"
    assert out.stderr_tail == "two"


def test_env_is_exactly_the_given_env_plus_marker(lane: Lane) -> None:
    out = lane.run(["env"], env={"FOO": "bar baz"})
    assert out.returncode == 0
    lines = (lane.tmp / "stdout.log").read_text().splitlines()
    assert sorted(lines) == sorted([f"PATH={os.environ.get('PATH', '/usr/bin:/bin')}", "FOO=bar baz", f"{lane.marker[0]}={lane.marker[1]}"])


def test_cwd_is_used(lane: Lane, tmp_path: Path) -> None:
    workdir = tmp_path / "work dir"
    workdir.mkdir()
    out = lane.run(["pwd"], cwd=workdir)
    assert out.stdout_tail == str(workdir)


@pytest.mark.parametrize(("mode", "expected"), [("137", 137), ("sigkill", -9)])
def test_exit_137_and_death_by_sigkill(lane: Lane, mode: str, expected: int) -> None:
    out = lane.run(py("exit_code.py", mode))
    assert out.returncode == expected
    assert not out.timed_out
    assert out.stdout_tail == "about to die"


def test_build_lock_message_is_in_stderr_tail(lane: Lane) -> None:
    out = lane.run(py("build_lock.py"))
    assert out.returncode == 1
    assert out.stderr_tail.splitlines()[-1] == "Timed out waiting for build lock"
    assert out.stdout_tail == "Compiling molt v0.1.0"


# --- commands that cannot start --------------------------------------------------------------


def test_missing_binary_is_a_start_error(lane: Lane) -> None:
    out = lane.run(["molt-budget-no-such-binary", "--version"])
    assert out.returncode is None
    assert out.start_error == "command not found: molt-budget-no-such-binary"
    assert not out.timed_out and out.cpu_s == 0 and out.peak_rss_bytes == 0
    assert "command not found" in (lane.tmp / "stderr.log").read_text()
    assert out.stderr_tail == "molt-budget: command not found: molt-budget-no-such-binary"


def test_not_executable_is_a_start_error(lane: Lane) -> None:
    script = lane.tmp / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    out = lane.run([str(script)])
    assert out.returncode is None
    assert out.start_error == f"permission denied: {script}"


def test_missing_cwd_is_a_start_error(lane: Lane) -> None:
    missing = lane.tmp / "nope"
    out = lane.run(["true"], cwd=missing)
    assert out.returncode is None
    assert out.start_error == f"working directory not found: {missing}"


def test_empty_command_is_a_start_error(lane: Lane) -> None:
    out = lane.run([])
    assert out.returncode is None and out.start_error == "empty command"


# --- timeouts: quick, flagged, nothing survives ------------------------------------------


def test_hang_times_out_within_timeout_plus_grace(lane: Lane) -> None:
    out = lane.run(py("hang.py"), timeout_s=0.5, kill_grace_s=1.0)
    assert out.timed_out
    assert out.returncode == -15  # it died from the SIGTERM: the grace was not waited out, no SIGKILL needed
    assert out.wall_s >= 0.5      # stopped at the timeout, not before
    assert len(out.killed_pids) == 1
    assert not is_alive(out.killed_pids[0])
    assert marked_alive(lane.marker) == []


def test_whole_tree_is_killed_on_timeout(lane: Lane) -> None:
    pid_file = lane.tmp / "tree.pids"
    out = lane.run(py("tree.py", pid_file), timeout_s=1.0, kill_grace_s=1.0)
    pids = [int(line) for line in pid_file.read_text().split()]
    assert len(pids) == 4
    assert out.timed_out
    assert set(pids) <= set(out.killed_pids)
    assert [pid for pid in pids if is_alive(pid)] == []
    assert marked_alive(lane.marker) == []


def test_a_child_moving_to_us_while_the_tree_is_read_is_still_killed(lane: Lane, monkeypatch: pytest.MonkeyPatch) -> None:
    # One walk of the tree reads our children, then theirs. When the leader dies in between, its
    # children move to us after our list was read and are gone from the dead leader's list when
    # that is read: the walk misses them although they live. The walk is held here at exactly
    # that point (on a loaded host the scheduler does it): the kill must still find and end them.
    pid_file = lane.tmp / "tree.pids"
    real_children = proctable.direct_children
    real_signal_all = process._Run._signal_all
    held: list[int] = []

    def preempted(pid: int | None = None) -> set[int] | None:
        found = real_children(pid)
        if held and held[0] in (found or ()) and pid == os.getpid():
            leader = held.pop()                # once: later walks see the tree as it is
            give_up = time.monotonic() + 10
            while getattr(proctable._stat(leader), "state", "Z") != "Z" and time.monotonic() < give_up:
                time.sleep(0.005)
        return found

    def signal_all(self: process._Run, sig: int) -> None:
        real_signal_all(self, sig)
        if sig == signal.SIGTERM:
            held.append(self.pid)              # the next walk is the first one after the leader was signalled

    monkeypatch.setattr(proctable, "direct_children", preempted)
    monkeypatch.setattr(process._Run, "_signal_all", signal_all)
    out = lane.run(py("tree.py", pid_file, "deaf"), timeout_s=1.0, kill_grace_s=0.2)
    pids = [int(line) for line in pid_file.read_text().split()]
    assert out.timed_out and held == []       # the walk was held while the leader died
    assert out.returncode == -15              # the leader died of the SIGTERM, its deaf children need SIGKILL
    assert set(pids) <= set(out.killed_pids)
    assert [pid for pid in pids if is_alive(pid)] == []
    assert marked_alive(lane.marker) == []


def test_double_forked_daemon_is_killed_on_timeout(lane: Lane) -> None:
    pid_file = lane.tmp / "daemon.pid"
    out = lane.run(py("daemon.py", pid_file, "hang"), timeout_s=1.0, kill_grace_s=1.0)
    daemon = int(pid_file.read_text())
    assert out.timed_out
    assert daemon in out.killed_pids
    assert not psutil.pid_exists(daemon)  # killed and reaped, not left as a zombie
    assert marked_alive(lane.marker) == []


def test_sigterm_ignored_gets_sigkill_after_grace(lane: Lane) -> None:
    # sh ignores SIGTERM within a millisecond of starting (ignore_term.py needs Python's start-up
    # first: on a loaded host that outlasted the 0.3 s and the SIGTERM ended it, -15); the ignored
    # signal stays ignored across the exec, so only the SIGKILL after the grace ends the run
    deaf = ["/bin/sh", "-c", "trap '' TERM; echo 'ignoring SIGTERM'; exec sleep 3600"]
    out = lane.run(deaf, timeout_s=0.3, kill_grace_s=0.5)
    assert out.timed_out
    assert out.returncode == -9
    assert out.wall_s >= 0.3 + 0.5    # SIGKILL only once the grace had passed
    assert out.stdout_tail == "ignoring SIGTERM"
    assert marked_alive(lane.marker) == []


def test_interrupt_while_waiting_still_kills_the_tree(lane: Lane, monkeypatch: pytest.MonkeyPatch) -> None:
    pid_file = lane.tmp / "tree.pids"
    real_wait_exit = process._Run.wait_exit

    def interrupted(self: process._Run, timeout_s: float) -> bool:
        exited = real_wait_exit(self, timeout_s)
        if pid_file.exists():
            raise KeyboardInterrupt
        return exited

    monkeypatch.setattr(process._Run, "wait_exit", interrupted)
    with pytest.raises(KeyboardInterrupt):
        lane.run(py("tree.py", pid_file), timeout_s=30.0)
    pids = [int(line) for line in pid_file.read_text().split()]
    assert [pid for pid in pids if is_alive(pid)] == []
    assert marked_alive(lane.marker) == []


def test_fast_command_is_not_timed_out(lane: Lane) -> None:
    out = lane.run(["true"], timeout_s=5.0)
    assert out.returncode == 0 and not out.timed_out


# --- normal exit leaves daemons for kill_marked --------------------------------------------


def test_daemon_survives_normal_exit_until_kill_marked(lane: Lane) -> None:
    pid_file = lane.tmp / "daemon.pid"
    out = lane.run(py("daemon.py", pid_file, "exit"))
    daemon = int(pid_file.read_text())
    assert out.returncode == 0 and not out.timed_out
    assert out.killed_pids == []
    assert is_alive(daemon), "a daemon must outlive the build that started it"
    assert marked_alive(lane.marker) == [daemon]

    assert kill_marked(lane.marker, grace_s=1.0) == [daemon]
    assert not psutil.pid_exists(daemon)  # reaped too
    assert marked_alive(lane.marker) == []


def test_kill_marked_leaves_other_markers_alone(tmp_path: Path) -> None:
    mine = Lane(tmp_path / "mine", (MARKER_NAME, uuid.uuid4().hex))
    other = Lane(tmp_path / "other", (MARKER_NAME, uuid.uuid4().hex))
    for lane_ in (mine, other):
        lane_.tmp.mkdir()
    try:
        mine.run(py("daemon.py", mine.tmp / "d.pid", "exit"))
        other.run(py("daemon.py", other.tmp / "d.pid", "exit"))
        other_daemon = int((other.tmp / "d.pid").read_text())
        assert kill_marked(mine.marker, grace_s=1.0) == [int((mine.tmp / "d.pid").read_text())]
        assert is_alive(other_daemon)
        assert marked_alive(other.marker) == [other_daemon]
    finally:
        kill_marked(mine.marker, grace_s=0.2)
        kill_marked(other.marker, grace_s=0.2)
    assert kill_marked(other.marker) == []


# --- measurement: CPU and RSS of the whole tree ----------------------------------------------


def test_cpu_includes_waited_child(lane: Lane) -> None:
    out = lane.run(py("burn_cpu.py", "child", 0.3))
    assert out.returncode == 0
    assert out.cpu_s >= 0.28


def test_cpu_includes_orphan_reaped_by_us(lane: Lane) -> None:
    out = lane.run(py("burn_cpu.py", "orphan", 0.3, lane.tmp / "done"))
    assert out.returncode == 0
    assert (lane.tmp / "done").exists()
    assert out.cpu_s >= 0.28


def test_peak_rss_is_summed_over_the_tree(lane: Lane) -> None:
    # Two children of 60 MiB at the same time: more than any single process (ru_maxrss) can show.
    out = lane.run(py("alloc.py", 2, 60, 0.5))
    assert out.returncode == 0
    assert out.peak_rss_bytes >= 120 * MiB


def test_peak_rss_counts_a_100mb_child(lane: Lane) -> None:
    out = lane.run(py("alloc.py", 1, 100, 0.3))
    assert out.returncode == 0
    assert 100 * MiB <= out.peak_rss_bytes < 400 * MiB


def test_the_sampler_thread_starts_only_for_a_build_that_outlives_its_first_interval(
        lane: Lane, monkeypatch: pytest.MonkeyPatch) -> None:
    """A check's builds mostly end within milliseconds: their one look is taken by the runner
    itself, and a thread (whose start and join cost more) samples only longer builds."""
    started: list[int] = []
    real_start = process._Sampler.start

    def counted(self: process._Sampler) -> None:
        started.append(self.run_state.pid)
        real_start(self)

    monkeypatch.setattr(process._Sampler, "start", counted)
    quick = lane.run(["true"], sample_interval_s=2.0)
    assert quick.returncode == 0 and started == []
    held = lane.run(py("alloc.py", 1, 100, 0.4), sample_interval_s=0.05)
    assert held.returncode == 0 and len(started) == 1
    assert 100 * MiB <= held.peak_rss_bytes < 400 * MiB   # allocated after the first look: the thread saw it
    assert [t for t in threading.enumerate() if t.name.startswith("rss-sampler")] == []


def test_peak_rss_is_not_inflated_by_a_big_parent(lane: Lane) -> None:
    """ru_maxrss counts the forked copy of the runner before exec; a 300 MiB runner must not
    make a 100 MiB build look like 400 MiB."""
    ballast = b"\x01" * (300 * MiB)
    out = lane.run(py("alloc.py", 1, 100, 0.3))
    assert ballast and out.returncode == 0
    assert 100 * MiB <= out.peak_rss_bytes < 250 * MiB
