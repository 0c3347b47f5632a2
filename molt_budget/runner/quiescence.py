"""Wait until the machine is quiet enough that a timing measurement means something.

Three signals, because each alone misleads: the 1-minute load average lags (it stays high
for a while after a build and misses a build that just started), instantaneous busy CPUs
are noisy, and a competing compiler process is the usual cause of both.

Busy CPUs come from one `CpuMeter` per run: the host's busy time (/proc/stat, else
psutil.cpu_times) between two checks minus our own (this process and the builds it
waited for), so the check before a lane measures what else ran during the previous one
and costs a read, not a sampling sleep. A window shorter than MIN_WINDOW_S (lanes that take
milliseconds) is measured from the reading before, so it spans the lanes since. The first
window starts with the command (`proctable.read_cpu`, cli.main's first step, before the verbs'
imports; handed to the run's meter): the imports and loading the budgets fill it; a start
faster than FIRST_LOOK_S waits for the first look, and one whose reading cannot yet tell for
the rest of MIN_WINDOW_S (a reading far below the limit already does: `CpuMeter.busy_cpus`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Set
from typing import TYPE_CHECKING

from molt_budget.runner import proctable
from molt_budget.runner.proctable import Reading, read_cpu
from molt_budget.structs import Struct

if TYPE_CHECKING:
    import psutil

MIN_WINDOW_S = 0.1   # /proc/stat counts in 10 ms ticks per CPU: shorter windows are noise
FIRST_LOOK_S = 0.05  # the shortest first window that may still find the host quiet (see CpuMeter)
_TICK_S = 0.01       # USER_HZ: /proc/stat's unit


class QuiescenceReport(Struct):
    quiet: bool
    reasons: list[str]          # empty when quiet; else why not, from the last poll
    load1: float
    busy_cpus: float            # CPUs' worth of non-idle time during the sample window
    competitors: list[str]      # "cargo(pid 123)"
    waited_s: float


class CpuMeter:
    """CPUs' worth of other processes' work since the previous reading: one per run."""

    def __init__(self, since: Reading | None = None) -> None:
        self._last = since or read_cpu()
        self._before: Reading | None = None      # the reading before _last, a full window earlier

    def busy_cpus(self, quiet_below: float | None = None) -> float:
        """`quiet_below`: the limit the caller judges against. A first window shorter than
        MIN_WINDOW_S is topped up to FIRST_LOOK_S, and that is enough when even its reading's
        worst tick error (`tick_error`) leaves it below that limit: the host is quiet either
        way, and the wait for the rest of the window is skipped. Any other reading waits for a
        full window."""
        now = read_cpu()
        window = now.at - self._last.at
        if window < MIN_WINDOW_S:
            if self._before is not None:
                # a fast lane since the last check: measure from the reading before it (a window
                # of at least MIN_WINDOW_S, the previous lane's included) instead of sleeping
                return others_busy_cpus(self._before, now)
            if quiet_below is not None and window < FIRST_LOOK_S:
                # a start faster than the first look: wait for the first look, not the full window;
                # a quiet host is decided there as on a start that took that long by itself
                time.sleep(FIRST_LOOK_S - window)
                now = read_cpu()
                window = now.at - self._last.at
            early = others_busy_cpus(self._last, now) if window >= FIRST_LOOK_S else None
            if early is None or quiet_below is None or early + tick_error(window) >= quiet_below:
                time.sleep(MIN_WINDOW_S - window)
                now = read_cpu()
        busy = others_busy_cpus(self._last, now)
        self._before, self._last = self._last, now
        return busy


def tick_error(window_s: float) -> float:
    """CPUs' worth a busy reading over `window_s` can be off by: two ticks a CPU, one at each
    end (the counters advance in whole ticks, and each CPU's are sampled on its own)."""
    return 2 * _TICK_S * (os.cpu_count() or 1) / window_s


def others_busy_cpus(before: Reading, after: Reading) -> float:
    """CPUs' worth of work not ours between two readings: the host's busy time minus the
    run's own (a build that just ended is not a competitor of the next one)."""
    others = (after.host_busy_s - before.host_busy_s) - (after.own_s - before.own_s)
    return max(0.0, others) / max(after.at - before.at, 1e-9)


def wait_for_quiescence(
    max_wait_s: float,
    poll_s: float = 1.0,
    competitor_names: Iterable[str] = ("cargo", "rustc", "molt"),
    max_load_per_cpu: float = 0.5,
    max_busy_cpus: float | None = None,
    exclude_pids: Set[int] = frozenset(),
    check_load: bool = True,
    meter: CpuMeter | None = None,
) -> QuiescenceReport:
    """Poll until quiet or `max_wait_s` has passed; return at once (no sleep) when already quiet.

    Not quiet when load1 > max_load_per_cpu x cpus, when busy CPUs exceed `max_busy_cpus`
    (None: the same limit as the load, max_load_per_cpu x cpus), or when a process whose
    name or argv[0] basename is exactly one of `competitor_names` runs. Our own process, its
    descendants (lanes we started) and its ancestors (whatever invoked us, e.g. `cargo xtask`)
    are never competitors, nor are `exclude_pids`. `check_load=False` skips load1, which after
    our own previous lane still counts that lane's builds for a minute. `meter`: the run's
    CpuMeter (busy CPUs since its previous reading); without one, a new meter waits
    MIN_WINDOW_S once.
    """
    ncpu = os.cpu_count() or 1
    names = frozenset(competitor_names)
    busy_limit = max_busy_cpus if max_busy_cpus is not None else max_load_per_cpu * ncpu
    meter = meter or CpuMeter()
    started = time.monotonic()
    while True:
        load1 = os.getloadavg()[0]
        busy = meter.busy_cpus(quiet_below=busy_limit)
        competitors = _find_competitors(names, set(exclude_pids))
        reasons = _assess(load1 if check_load else 0.0, busy, competitors, ncpu, max_load_per_cpu, busy_limit)
        waited = time.monotonic() - started
        if not reasons or waited >= max_wait_s:
            return QuiescenceReport(not reasons, reasons, load1, busy, competitors, waited)
        time.sleep(min(poll_s, max(0.0, max_wait_s - waited)))


def _assess(
    load1: float,
    busy_cpus: float,
    competitors: list[str],
    ncpu: int,
    max_load_per_cpu: float,
    max_busy_cpus: float,
) -> list[str]:
    """Reasons the machine is not quiet; empty means quiet. Pure, so the wording is testable."""
    reasons = []
    load_limit = max_load_per_cpu * ncpu
    if load1 > load_limit:
        reasons.append(f"load1 {load1:.2f} > {load_limit:.2f} ({max_load_per_cpu:g} x {ncpu} cpus)")
    if busy_cpus > max_busy_cpus:
        reasons.append(f"busy cpus {busy_cpus:.2f} > {max_busy_cpus:.2f}")
    if competitors:
        reasons.append(f"competing processes: {', '.join(competitors)}")
    return reasons


def _find_competitors(names: Set[str], exclude_pids: Set[int]) -> list[str]:
    """Running processes named exactly like one of `names`, as "name(pid N)", by pid.

    Us, our descendants (lanes we started) and our ancestors (whatever invoked us) never are."""
    table = proctable.scan()
    if table is None:
        return _find_competitors_psutil(names, _own_family() | set(exclude_pids))
    me = os.getpid()
    family = proctable.expand({me}, proctable.children_of(table)) | proctable.ancestors(table, me)
    found = []
    for proc in sorted(table.values()):
        if not proc.alive or proc.pid in exclude_pids or proc.pid in family:
            continue
        match = proc.comm if proc.comm in names else None
        if match is None:
            # argv[0]'s basename: a `cargo` run through a wrapper or symlink (and names
            # longer than the kernel's 15 characters)
            argv0 = proctable.argv0(proc)
            match = argv0 if argv0 in names else None
        if match is not None:
            found.append(f"{match}(pid {proc.pid})")
    return found


def _find_competitors_psutil(names: Set[str], exclude_pids: Set[int]) -> list[str]:
    """The same without /proc (not Linux)."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        if proc.pid in exclude_pids:
            continue
        try:
            name = proc.name()
            argv0 = _argv0_name(proc)
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
        except psutil.Error:
            continue
        match = name if name in names else argv0 if argv0 in names else None
        if match is not None:
            found.append(f"{match}(pid {proc.pid})")
    return found


def _argv0_name(proc: psutil.Process) -> str | None:
    """Basename of argv[0]: the name of a `cargo` run through a wrapper or symlink."""
    import psutil

    try:
        cmdline = proc.cmdline()
    except psutil.AccessDenied:
        return None
    return os.path.basename(cmdline[0]) if cmdline else None


def _own_family() -> set[int]:
    """Us, our descendants and our ancestors: never competitors of the measurement we make."""
    import psutil

    me = psutil.Process()
    family = {me.pid}
    family.update(parent.pid for parent in me.parents())
    try:
        family.update(child.pid for child in me.children(recursive=True))
    except psutil.Error:
        pass
    return family
