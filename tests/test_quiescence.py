"""wait_for_quiescence against real processes; the reason wording against fixed numbers."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from time import sleep as time_sleep
from typing import Any

import pytest

from molt_budget.runner.quiescence import QuiescenceReport, _assess, wait_for_quiescence

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="process names are Linux-specific")

Spawn = Callable[..., "subprocess.Popen[bytes]"]
HUGE = 1e9  # thresholds no machine reaches: only the competitor check can make it not quiet

CHECKER = """
import json, sys
from molt_budget.structs import asdict
from molt_budget.runner.quiescence import wait_for_quiescence
args = json.loads(sys.argv[1])
args["exclude_pids"] = frozenset(args["exclude_pids"])
print(json.dumps(asdict(wait_for_quiescence(**args))))
"""


@pytest.fixture
def competitor_name() -> str:
    return "mbq" + uuid.uuid4().hex[:8]  # short: the kernel truncates process names to 15 chars


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[Spawn]:
    """Start `sleep` under a chosen name, via a symlink (name) or a fake argv[0] (argv0)."""
    started: list[subprocess.Popen[bytes]] = []

    def start(name: str, seconds: float = 30, how: str = "name") -> subprocess.Popen[bytes]:
        if how == "name":
            link = tmp_path / name
            link.symlink_to("/bin/sleep")
            proc = subprocess.Popen([str(link), str(seconds)])
        else:
            proc = subprocess.Popen([f"/opt/fake/bin/{name}", str(seconds)], executable="/bin/sleep")
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()
        proc.wait()


def check_from_sibling(**kwargs: object) -> QuiescenceReport:
    """Run the check in a separate process: our own children are never competitors of ourselves."""
    kwargs.setdefault("exclude_pids", [])
    done = subprocess.run(
        [sys.executable, "-c", CHECKER, json.dumps(kwargs)], capture_output=True, text=True, timeout=60, check=True
    )
    return QuiescenceReport(**json.loads(done.stdout))


def test_quiet_machine_returns_at_once(competitor_name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from molt_budget.runner import quiescence

    slept: list[float] = []
    monkeypatch.setattr(quiescence.time, "sleep", lambda s: slept.append(s) or time_sleep(s))
    report = wait_for_quiescence(
        max_wait_s=30, poll_s=10, competitor_names=(competitor_name,), max_load_per_cpu=HUGE, max_busy_cpus=HUGE
    )
    assert report.quiet and report.reasons == [] and report.competitors == []
    assert all(s <= quiescence.MIN_WINDOW_S for s in slept)   # one CPU window at most, no poll sleep
    assert report.load1 >= 0 and report.busy_cpus >= 0


def test_sibling_competitor_is_reported_until_max_wait(competitor_name: str, spawn: Spawn) -> None:
    proc = spawn(competitor_name)
    report = check_from_sibling(
        max_wait_s=0.6, poll_s=0.2, competitor_names=[competitor_name], max_load_per_cpu=HUGE, max_busy_cpus=HUGE
    )
    assert not report.quiet
    assert report.competitors == [f"{competitor_name}(pid {proc.pid})"]
    assert report.reasons == [f"competing processes: {competitor_name}(pid {proc.pid})"]
    assert report.waited_s >= 0.6          # gave up only once max_wait_s had passed


def test_competitor_found_by_argv0_basename(competitor_name: str, spawn: Spawn) -> None:
    proc = spawn(competitor_name, how="argv0")  # process name stays "sleep"
    report = check_from_sibling(
        max_wait_s=0, competitor_names=[competitor_name], max_load_per_cpu=HUGE, max_busy_cpus=HUGE
    )
    assert report.competitors == [f"{competitor_name}(pid {proc.pid})"]


def test_name_match_is_exact(competitor_name: str, spawn: Spawn) -> None:
    spawn(competitor_name)
    report = check_from_sibling(
        max_wait_s=0, competitor_names=[competitor_name[:-1]], max_load_per_cpu=HUGE, max_busy_cpus=HUGE
    )
    assert report.quiet and report.competitors == []


def test_excluded_pid_is_not_a_competitor(competitor_name: str, spawn: Spawn) -> None:
    proc = spawn(competitor_name)
    report = check_from_sibling(
        max_wait_s=0,
        competitor_names=[competitor_name],
        max_load_per_cpu=HUGE,
        max_busy_cpus=HUGE,
        exclude_pids=[proc.pid],
    )
    assert report.quiet and report.competitors == []


def test_own_descendant_is_not_a_competitor(competitor_name: str, spawn: Spawn) -> None:
    spawn(competitor_name)
    report = wait_for_quiescence(
        max_wait_s=0, competitor_names=(competitor_name,), max_load_per_cpu=HUGE, max_busy_cpus=HUGE
    )
    assert report.quiet and report.competitors == []


@pytest.mark.slow   # waits ~3 s for a real competitor process to exit
def test_becomes_quiet_when_competitor_exits(competitor_name: str, spawn: Spawn) -> None:
    spawn(competitor_name, seconds=3)   # outlives the checker's start-up on a loaded host
    report = check_from_sibling(
        max_wait_s=20, poll_s=0.1, competitor_names=[competitor_name], max_load_per_cpu=HUGE, max_busy_cpus=HUGE
    )
    assert report.quiet and report.reasons == []
    assert report.waited_s >= 0.1          # quiet only after at least one poll: it saw the competitor first


def test_reason_wording() -> None:
    assert _assess(1.73, 0.2, [], 2, 0.5, 1.0) == ["load1 1.73 > 1.00 (0.5 x 2 cpus)"]
    assert _assess(0.1, 1.4, [], 2, 0.5, 1.0) == ["busy cpus 1.40 > 1.00"]
    assert _assess(0.1, 0.1, ["cargo(pid 123)", "rustc(pid 9)"], 2, 0.5, 1.0) == [
        "competing processes: cargo(pid 123), rustc(pid 9)"
    ]
    assert _assess(1.0, 1.0, [], 2, 0.5, 1.0) == []  # at the limit is still quiet
    assert len(_assess(3.0, 2.0, ["molt(pid 1)"], 2, 0.5, 1.0)) == 3


def test_busy_limit_defaults_to_load_limit() -> None:
    # No real machine is both: prove the default by making the load limit impossible to meet.
    report = wait_for_quiescence(max_wait_s=0, competitor_names=(), max_load_per_cpu=-1.0)
    assert not report.quiet
    assert report.reasons[0].startswith("load1 ")
    assert report.reasons[1].startswith("busy cpus ")


def test_busy_cpus_leave_out_the_runs_own_work() -> None:
    from molt_budget.runner.quiescence import Reading, others_busy_cpus

    # 2 s of window: the host was busy for 3 CPU-seconds, 2.5 of them ours (the lane that just ended)
    assert others_busy_cpus(Reading(10.0, 100.0, 40.0), Reading(12.0, 103.0, 42.5)) == pytest.approx(0.25)
    # our rusage is finer than /proc/stat's ticks: never below zero
    assert others_busy_cpus(Reading(10.0, 100.0, 40.0), Reading(11.0, 100.5, 40.6)) == 0.0


def test_meter_sees_a_process_that_is_not_ours_yet() -> None:
    """A spinning child not yet waited for is someone else's load as far as the meter can tell."""
    from molt_budget.runner.quiescence import CpuMeter

    meter = CpuMeter()
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        busy = meter.busy_cpus()
    finally:
        spinner.kill()
        spinner.wait()
    assert busy >= 0.3     # at least the spinner's share (a contended host is busier still)


def test_meter_waits_only_to_fill_a_too_short_first_window(monkeypatch: pytest.MonkeyPatch) -> None:
    from molt_budget.runner import quiescence

    slept: list[float] = []
    monkeypatch.setattr(quiescence.time, "sleep", lambda s: slept.append(s) or time_sleep(s))
    meter = quiescence.CpuMeter()
    meter.busy_cpus()
    assert len(slept) == 1 and 0 < slept[0] <= quiescence.MIN_WINDOW_S    # the first window was topped up, once
    slept.clear()
    time_sleep(quiescence.MIN_WINDOW_S)
    meter.busy_cpus()
    assert slept == []                                                     # a full window costs a read, no sleep


def test_a_short_first_window_far_below_the_limit_needs_no_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """A start faster than a full window: a reading whose worst tick error still leaves it
    under the limit finds the host quiet at once; one that cannot tell waits for the window."""
    from molt_budget.runner import quiescence

    slept: list[float] = []
    monkeypatch.setattr(quiescence.time, "sleep", lambda s: slept.append(s) or time_sleep(s))
    meter = quiescence.CpuMeter()
    time_sleep(quiescence.FIRST_LOOK_S + 0.005)
    meter.busy_cpus(quiet_below=HUGE)
    assert slept == []                                           # decided on the short window
    meter = quiescence.CpuMeter()
    time_sleep(quiescence.FIRST_LOOK_S + 0.005)
    meter.busy_cpus(quiet_below=0.0)                             # nothing is below zero: it must look longer
    assert len(slept) == 1 and 0 < slept[0] < quiescence.MIN_WINDOW_S - quiescence.FIRST_LOOK_S + 0.001
    slept.clear()
    meter = quiescence.CpuMeter()
    meter.busy_cpus(quiet_below=HUGE)                            # shorter than the first look: always waits
    assert len(slept) == 1


def test_a_start_faster_than_the_first_look_waits_only_for_it_on_a_quiet_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    """A check that reaches its first timed lane sooner than FIRST_LOOK_S waits until then, not
    for the full window: a reading that decides there decides; one that cannot waits on to
    MIN_WINDOW_S, its window as long as before."""
    from molt_budget.runner import quiescence

    slept: list[float] = []
    monkeypatch.setattr(quiescence.time, "sleep", lambda s: slept.append(s) or time_sleep(s))
    meter = quiescence.CpuMeter()
    meter.busy_cpus(quiet_below=HUGE)
    assert len(slept) == 1 and 0 < slept[0] <= quiescence.FIRST_LOOK_S          # to the first look only
    slept.clear()
    meter = quiescence.CpuMeter()
    started = time.monotonic()
    meter.busy_cpus(quiet_below=0.0)                                            # nothing decides below zero
    assert len(slept) == 2 and time.monotonic() - started >= quiescence.MIN_WINDOW_S - 0.001


def test_a_busy_cpu_is_never_found_quiet_on_a_short_first_window(monkeypatch: pytest.MonkeyPatch) -> None:
    """The early decision's safety: a spinning process (a whole CPU of someone else's work) on a
    limit of one CPU is never below it even with the tick error taken off: the meter waits for
    the full window, and its reading sees the spinner."""
    from molt_budget.runner import quiescence

    slept: list[float] = []
    monkeypatch.setattr(quiescence.time, "sleep", lambda s: slept.append(s) or time_sleep(s))
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time_sleep(0.3)                                          # spinning at full speed
        meter = quiescence.CpuMeter()
        time_sleep(quiescence.FIRST_LOOK_S + 0.01)
        busy = meter.busy_cpus(quiet_below=1.0)
    finally:
        spinner.kill()
        spinner.wait()
    assert len(slept) == 1                                       # not decided early
    assert busy >= 0.5


def test_fast_lanes_never_make_the_meter_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    """Lanes of a few milliseconds: each check reads the window from the reading before the last
    one (still a full window), so only the very first check ever sleeps."""
    from molt_budget.runner import quiescence

    slept: list[float] = []
    monkeypatch.setattr(quiescence.time, "sleep", lambda s: slept.append(s) or time_sleep(s))
    meter = quiescence.CpuMeter()
    meter.busy_cpus()
    first = len(slept)
    readings = [meter.busy_cpus() for _ in range(20)]        # back to back: windows of microseconds
    assert first == 1 and len(slept) == first and all(r >= 0 for r in readings)


def test_a_meter_started_with_the_command_never_sleeps_for_its_first_window(monkeypatch: pytest.MonkeyPatch) -> None:
    from molt_budget.runner import quiescence

    slept: list[float] = []
    since = quiescence.read_cpu()
    time_sleep(quiescence.MIN_WINDOW_S)                       # what loading the budgets and the imports take
    monkeypatch.setattr(quiescence.time, "sleep", lambda s: slept.append(s) or time_sleep(s))
    assert quiescence.CpuMeter(since).busy_cpus() >= 0
    assert slept == []


def test_the_runs_first_quiet_host_check_starts_from_the_commands_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine's meter takes the reading the command took first (RunOptions.cpu_since): a
    timed lane's first check is a read, not a top-up sleep of the window."""
    from molt_budget.config import load_config
    from molt_budget.runner import quiescence
    from molt_budget.runner.engine import Engine, RunOptions

    config = tmp_path / "budgets.yaml"
    config.write_text("version: 1\nsettings: {quiescence: {max_wait_s: 0}}\nlanes:\n  a: {command: ['true'], repeats: 1}\n"
                      "kpis:\n  k: {lane: a, metric: wall_s, target: 30}\n")
    since = quiescence.read_cpu()
    time_sleep(quiescence.MIN_WINDOW_S)
    slept: list[float] = []

    class QuiescenceClock:               # the meter's own sleeps only (the runner sleeps elsewhere too)
        def __getattr__(self, name: str) -> Any:
            return getattr(time, name)

        def sleep(self, s: float) -> None:
            slept.append(s)
            time_sleep(s)

    monkeypatch.setattr(quiescence, "time", QuiescenceClock())
    results = Engine(load_config(config), RunOptions(output_root=tmp_path / "out", cpu_since=since)).run()
    assert results.lanes["a"].status == "ok" and slept == []


def test_the_command_start_is_taken_before_the_verbs_are_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    """cli.main reads the CPU clocks before it builds the parser (the verbs' imports, msgspec
    among them) and hands that reading to the command: the first quiet-host window then spans
    the imports as well, instead of a top-up sleep once the rest got faster than the window."""
    from molt_budget import cli
    from molt_budget.commands import args as cargs
    from molt_budget.commands import check

    built_at: list[float] = []
    real_build = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda argv=None: built_at.append(time.monotonic()) or real_build(argv))
    got: list[Any] = []
    monkeypatch.setattr(check, "cmd_check", lambda args: got.append((cargs.start_of_command(args), getattr(args, cargs.STARTED))) or 0)
    assert cli.main(["check", "--no-base"]) == 0
    (reading, handed), = got
    assert reading is handed and reading.at <= built_at[0]
