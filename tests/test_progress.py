"""Progress output: live status line on a pseudo terminal, exact plain lines on a pipe."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
import tty
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PY_STDLIB, REPO, fake_build

from molt_budget.config import load_config
from molt_budget.report.progress import CLEAR, LiveProgress, make_progress
from molt_budget.results.history import History
from molt_budget.results.model import LaneResult, RunResults, Sample
from molt_budget.runner.engine import Engine, RunOptions
from molt_budget.runner.events import ProgressEvent

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def budgets(tmp_path: Path) -> Path:
    doc = {
        "version": 1,
        "defaults": {"timeout_s": 20, "repeats": 3, "retries": 1, "retry_backoff_s": 0.01},
        "settings": {"output_root": "out", "history": "out/history.sqlite", "lock_timeout_s": 1, "quiescence": {"max_wait_s": 0}},
        "lanes": {
            "quick": {"command": [*PY_STDLIB, "-c", "pass"]},
            "flaky": {"command": fake_build("--lock-fail", "1", "--state", str(tmp_path / "lock-state")), "repeats": 2},
        },
        "kpis": {
            "quick_s": {"lane": "quick", "metric": "wall_s", "target": 5, "limit": 10},
            "flaky_s": {"lane": "flaky", "metric": "wall_s", "target": 5, "limit": 10},
        },
    }
    path = tmp_path / "budgets.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def seeded_history(tmp_path: Path, seconds: float = 20.0) -> History:
    """Past runs where one `quick` build took ~20 s: the estimate the status line shows."""
    history = History(tmp_path / "past.sqlite")
    for i in range(5):
        run = RunResults(run_id=f"past-{i}", config_path="-", config_sha256="-", started_utc=f"2026-01-0{i + 1}T00:00:00+00:00",
                         state="complete")
        run.lanes["quick"] = LaneResult("quick", "ok", samples=[Sample("measure", 0, True, metrics={"wall_s": seconds + i - 2})])
        history.record(run)
    return history


def run_engine(tmp_path: Path, progress: Any) -> list[ProgressEvent]:
    """The real engine on real subprocesses; returns the events it emitted, in order."""
    events: list[ProgressEvent] = []

    def tee(event: ProgressEvent) -> None:
        events.append(event)
        progress(event)

    config = load_config(budgets(tmp_path))
    Engine(config, RunOptions(output_root=tmp_path / "out", quiescence=False, progress=tee)).run()
    progress.close()
    return events


def screen(data: str) -> list[str]:
    """What a terminal shows after `data`: \\r, erase-line and \\n applied (enough for our output)."""
    lines, cur = [], ""
    for token in re.split(r"(\r|\x1b\[2K|\n)", data):
        if token == "\n":
            lines.append(cur)
            cur = ""
        elif token == "\x1b[2K":
            cur = ""
        elif token and token != "\r":
            cur += token
    return lines + [cur]


# -- a pipe: CI ------------------------------------------------------------------------------


def test_pipe_gets_exactly_the_plain_lines(tmp_path: Path) -> None:
    out = io.StringIO()
    progress = make_progress(out, history=seeded_history(tmp_path))
    events = run_engine(tmp_path, progress)
    assert [e.kind for e in events].count("attempt") == 3 + 3      # quick 3 repeats; flaky 1 retry + 2 repeats
    assert out.getvalue() == "".join(e.plain() + "\n" for e in events)
    assert not CONTROL.search(out.getvalue().replace("\n", ""))
    assert "[molt-budget] lane=flaky repeat=1/2 elapsed=" in out.getvalue()
    assert re.search(r"^\[molt-budget\] lane=flaky repeat=1/2 elapsed=\d+\.\d\ds rc=1 retry=build_lock_timeout$", out.getvalue(), re.M)
    assert re.search(r"^\[molt-budget\] lane=flaky repeat=1/2 attempt=2 elapsed=\d+\.\d\ds rc=0$", out.getvalue(), re.M)


@pytest.mark.slow
def test_cli_on_a_pipe_prints_plain_lines_only(tmp_path: Path) -> None:
    config = budgets(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-m", "molt_budget", "check", "--config", str(config), "--no-quiescence"],
        cwd=REPO, capture_output=True, text=True, timeout=60, env={**os.environ, "TERM": "xterm"},
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert not CONTROL.search(proc.stderr.replace("\n", ""))
    assert len([l for l in lines if " repeat=" in l]) == 6
    for line in lines:
        assert re.fullmatch(r"\[molt-budget\] (lane=\w+ (repeat=\d/\d( attempt=\d)? elapsed=\d+\.\d\ds rc=-?\d+( retry=\w+)?)|wrote .+)", line), line


# -- a terminal ------------------------------------------------------------------------------


class Pty:
    """A pseudo terminal: the code under test writes to the slave, we read the master."""

    def __init__(self, columns: int = 160) -> None:
        self.master, self.slave = pty.openpty()
        tty.setraw(self.slave)                 # no \n -> \r\n translation: we see the exact bytes
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, columns, 0, 0))
        self.chunks: list[bytes] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 65536)
            except OSError:                    # EIO: every slave end is closed
                return
            if not data:
                return
            self.chunks.append(data)

    def output(self) -> str:
        self.reader.join(timeout=10)
        os.close(self.master)
        return b"".join(self.chunks).decode("utf-8")


def test_terminal_gets_a_live_status_line(tmp_path: Path) -> None:
    term = Pty()
    stream = os.fdopen(term.slave, "w", encoding="utf-8")
    assert stream.isatty()
    progress = make_progress(stream, history=seeded_history(tmp_path), interval_s=0.02)
    assert isinstance(progress, LiveProgress)
    events = run_engine(tmp_path, progress)
    stream.close()
    data = term.output()

    assert CLEAR in data
    assert screen(data) == [e.plain() for e in events] + [""]   # the status line is gone after close()
    statuses = {s for s in re.split(r"\r\x1b\[2K|\n", data) if s.startswith("[molt-budget] > ")}
    assert any(re.fullmatch(r"\[molt-budget\] > quick repeat 2/3 \(lane 1/2\) \d+s, ~\d+s left \| run \d+s", s) for s in statuses), statuses
    left = [int(m.group(1)) for s in statuses for m in [re.search(r"quick repeat 2/3 \(lane 1/2\) \d+s, ~(\d+)s left", s)] if m]
    assert left and 38 <= max(left) <= 40                      # median 20 s x 2 builds still to go
    assert any(s.startswith("[molt-budget] > flaky repeat 1/2 (lane 2/2) attempt 2 ") for s in statuses), statuses
    assert any("flaky (lane 2/2): next step" in s for s in statuses)
    assert not any("flaky" in s and "left" in s for s in statuses)   # no history for flaky: no estimate


def test_status_line_fits_a_narrow_terminal(tmp_path: Path) -> None:
    term = Pty(columns=40)
    stream = os.fdopen(term.slave, "w", encoding="utf-8")
    progress = make_progress(stream, history=seeded_history(tmp_path))
    progress(ProgressEvent("attempt", lane="quick", phase="measure", index=1, total=3, attempt=1, elapsed_s=0.1, rc=0))
    progress.close()
    stream.close()
    statuses = [s for s in re.split(r"\r\x1b\[2K|\n", term.output()) if s.startswith("[molt-budget] >")]
    assert statuses and all(len(s) < 40 for s in statuses)


def test_status_text_and_estimates_with_a_fake_clock() -> None:
    now = [100.0]

    class Estimates:
        def lane_estimate(self, lane: str) -> float | None:
            return {"cold": 150.0, "warm": 6.0}.get(lane)

    p = LiveProgress(io.StringIO(), Estimates(), clock=lambda: now[0])
    status = p.status_line
    assert status() == "[molt-budget] > waiting for the next lane | run 0s"
    p(ProgressEvent("attempt", lane="warm", phase="prime", index=1, total=1, attempt=1, elapsed_s=150, rc=0, message="cold"))
    now[0] += 130
    assert status() == "[molt-budget] > warm: next step | run 2m10s"
    p(ProgressEvent("attempt", lane="warm", phase="measure", index=1, total=5, attempt=1, elapsed_s=6, rc=0))
    now[0] += 2
    assert status() == "[molt-budget] > warm repeat 2/5 2s, ~22s left | run 2m12s"
    p(ProgressEvent("attempt", lane="warm", phase="measure", index=2, total=5, attempt=1, elapsed_s=9, rc=143, retry="sigterm"))
    now[0] += 7
    assert status() == "[molt-budget] > warm repeat 2/5 attempt 2 7s, ~17s left | run 2m19s"   # 4 builds of ~6 s
    p(ProgressEvent("attempt", lane="warm", phase="measure", index=5, total=5, attempt=1, elapsed_s=9, rc=124, retry="timeout_exit_124"))
    now[0] += 7
    assert status() == "[molt-budget] > warm repeat 5/5 attempt 2 7s, over the usual 6s | run 2m26s"
    p(ProgressEvent("start", lane="cold", phase="prime", index=1, total=1, attempt=1, message="cold"))
    assert status() == "[molt-budget] > cold prime (cold) 0s, ~2m30s left | run 2m26s"
    p(ProgressEvent("lane_error", lane="cold", message="prime lane cold failed"))
    assert status() == "[molt-budget] > waiting for the next lane | run 2m26s"
    out = p.stream.getvalue()
    assert out.count("\n") == 6 - 1                           # `start` moves the status line only
    assert out.startswith(CLEAR + "[molt-budget] lane=warm prime=cold elapsed=150.00s rc=0\n")
    p.close()
    assert p.stream.getvalue().endswith(CLEAR)
    p(ProgressEvent("wrote", message="late"))                 # after close: silent
    assert p.stream.getvalue().endswith(CLEAR)


def test_term_dumb_and_broken_streams_fall_back_quietly(monkeypatch: pytest.MonkeyPatch) -> None:
    class FakeTty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("TERM", "dumb")
    assert not isinstance(make_progress(FakeTty()), LiveProgress)
    monkeypatch.setenv("TERM", "xterm")
    assert isinstance(make_progress(FakeTty()), LiveProgress)
    assert not isinstance(make_progress(FakeTty(), tty=False), LiveProgress)

    terminal = FakeTty()
    quiet = make_progress(terminal, quiet=True)
    quiet(ProgressEvent("wrote", message="x"))
    quiet.close()
    assert terminal.getvalue() == ""

    closed = io.StringIO()
    closed.close()
    progress = make_progress(closed, tty=False)
    progress(ProgressEvent("wrote", message="x"))             # a closed stderr must not abort a run
    progress.close()


@pytest.mark.slow
def test_cli_check_on_a_terminal(tmp_path: Path) -> None:
    """`python -m molt_budget check` with stderr on a pseudo terminal (stdout on a pipe)."""
    config = budgets(tmp_path)
    term = Pty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "molt_budget", "check", "--config", str(config), "--no-quiescence"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=term.slave, text=True, env={**os.environ, "TERM": "xterm"},
    )
    os.close(term.slave)
    stdout, _ = proc.communicate(timeout=60)
    data = term.output()
    assert proc.returncode == 0, data
    assert CLEAR in data and "[molt-budget] > " in data
    shown = screen(data)
    assert len([l for l in shown if " repeat=" in l]) == 6 and shown[-1] == ""
    assert "verdict: PASS" in stdout and CLEAR not in stdout


@pytest.mark.slow
@pytest.mark.timing
def test_paired_progress_names_the_side_the_pairs_cap_and_the_quiet_host_wait(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A real paired `check` (base in a git worktree): every line says base or head, timed
    pairs show `pair=i max=N` (sampling stops once decided), the quiet-host wait is named."""
    from test_compare_git import commit, make_repo

    from molt_budget.cli import main

    lanes = {"t": {"command": [*PY_STDLIB, "-c", "pass"], "repeats": 2}}
    kpis = {"t_s": {"lane": "t", "metric": "wall_s", "target": 5, "limit": 6, "max_pairs": 12}}
    repo = make_repo(tmp_path, lanes, kpis, {"x.txt": "1"})
    doc = (repo / "budgets.yaml").read_text().replace("max_wait_s: 0", "max_wait_s: 1")
    (repo / "budgets.yaml").write_text(doc)
    base = commit(repo, {"x.txt": "1", "budgets.yaml": doc}, "wait")
    commit(repo, {"x.txt": "2"})
    main(["check", "--config", str(repo / "budgets.yaml"), "--base", base])
    err = capfd.readouterr().err.splitlines()
    attempts = [l for l in err if " elapsed=" in l]
    assert attempts and all(" side=base " in l or " side=head " in l for l in attempts)
    assert {l.split(" side=")[1].split()[0] for l in attempts} == {"base", "head"}
    pairs = [re.search(r" pair=(\d+) max=(\d+) ", l) for l in attempts]
    assert all(pairs) and {int(m.group(2)) for m in pairs if m} == {12}
    assert any("waiting for a quiet host" in l and "lane=t" in l for l in err)


def test_live_status_line_shows_side_pairs_lane_and_wait() -> None:
    out = io.StringIO()
    clock = [100.0]
    live = LiveProgress(out, clock=lambda: clock[0])
    live._advance(ProgressEvent("waiting_quiet", lane="warm", message="up to 10s", lane_pos=2, lanes=3))
    clock[0] += 4
    assert "warm (lane 2/3): waiting for a quiet host (up to 10s) 4s" in live.status_line()
    live._advance(ProgressEvent("attempt", lane="warm", phase="measure", index=3, total=20, side="base", capped=True,
                                lane_pos=2, lanes=3, elapsed_s=1.0, rc=0))
    assert live.status_line().startswith("[molt-budget] > base warm pair 4 (max 20) (lane 2/3)")
