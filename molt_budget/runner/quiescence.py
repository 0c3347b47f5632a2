"""Wait until the machine is quiet enough that a timing measurement means something.

Three signals, because each alone misleads: the 1-minute load average lags (it stays high
for a while after a build and misses a build that just started), instantaneous busy CPUs
are noisy, and a competing compiler process is the usual cause of both.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Set
from dataclasses import dataclass

import psutil

_CPU_SAMPLE_S = 0.2  # cpu_percent needs a window; shorter is noise, longer delays every lane


@dataclass
class QuiescenceReport:
    quiet: bool
    reasons: list[str]          # empty when quiet; else why not, from the last poll
    load1: float
    busy_cpus: float            # CPUs' worth of non-idle time during the sample window
    competitors: list[str]      # "cargo(pid 123)"
    waited_s: float


def wait_for_quiescence(
    max_wait_s: float,
    poll_s: float = 1.0,
    competitor_names: Iterable[str] = ("cargo", "rustc", "molt"),
    max_load_per_cpu: float = 0.5,
    max_busy_cpus: float | None = None,
    exclude_pids: Set[int] = frozenset(),
    check_load: bool = True,
) -> QuiescenceReport:
    """Poll until quiet or `max_wait_s` has passed; return at once (no sleep) when already quiet.

    Not quiet when load1 > max_load_per_cpu x cpus, when busy CPUs exceed `max_busy_cpus`
    (None: the same limit as the load, max_load_per_cpu x cpus), or when a process whose
    name or argv[0] basename is exactly one of `competitor_names` runs. Our own process, its
    descendants (lanes we started) and its ancestors (whatever invoked us, e.g. `cargo xtask`)
    are never competitors, nor are `exclude_pids`. `check_load=False` skips load1, which after
    our own previous lane still counts that lane's builds for a minute.
    """
    ncpu = os.cpu_count() or 1
    names = frozenset(competitor_names)
    busy_limit = max_busy_cpus if max_busy_cpus is not None else max_load_per_cpu * ncpu
    started = time.monotonic()
    while True:
        load1 = os.getloadavg()[0]
        busy = psutil.cpu_percent(interval=_CPU_SAMPLE_S) * ncpu / 100.0
        competitors = _find_competitors(names, _own_family() | set(exclude_pids))
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
    """Running processes named exactly like one of `names`, as "name(pid N)", by pid."""
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
    try:
        cmdline = proc.cmdline()
    except psutil.AccessDenied:
        return None
    return os.path.basename(cmdline[0]) if cmdline else None


def _own_family() -> set[int]:
    """Us, our descendants and our ancestors: never competitors of the measurement we make."""
    me = psutil.Process()
    family = {me.pid}
    family.update(parent.pid for parent in me.parents())
    try:
        family.update(child.pid for child in me.children(recursive=True))
    except psutil.Error:
        pass
    return family
