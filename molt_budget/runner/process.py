"""Run one command as a whole process tree: measure it, time it out, leave nothing behind.

What callers (the engine) rely on:

- `run_process` starts the command in its own session/process group with stdin from
  /dev/null, stdout/stderr written in full to the given files, and `env` (complete, not
  merged with ours) plus the marker variable. It never raises because the command could
  not start: it returns returncode None and `start_error` ("command not found: X",
  "permission denied: X", "working directory not found: D", ...), and writes that line
  to the stderr log as well.
- The runner process becomes a Linux child subreaper (best effort, once per process), so
  orphans of the run (double-forked daemons, children of dead parents) are reparented to
  us; the runner reaps them and counts their CPU.
- Normal exit: nothing is killed. A marked daemon may legitimately outlive one build and
  be reused by the next build of the same run, and leftover members of the process group
  are left alone as well; the engine calls `kill_marked(marker, adopted_since=...)` at the
  end of the lane or run, which also kills unmarked orphans adopted during the lane (a
  daemon that cleared its environment). Zombies of the run are reaped.
- Timeout (wall > timeout_s): SIGTERM to the process group and to every process of the
  run (group members, descendants, orphans reparented to us, marked processes), up to
  `kill_grace_s` for them to exit, then SIGKILL survivors, repeated until none is left.
  `timed_out` is True, `returncode` is what the child ended with (-15, -9, or its own exit
  code if it handled SIGTERM), `killed_pids` lists every pid that was signalled. On return
  no process of the run survives; if one still survives SIGKILL after
  `_KILL_VERIFY_S` seconds, MeasurementError is raised rather than returning a lie.
- `run_process` assumes the calling process does not spawn other children concurrently
  (from other threads): any new direct child that appears during the run is taken to be
  an orphan of the run.
"""

from __future__ import annotations

import ctypes
import os
import resource
import select
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from molt_budget.errors import MeasurementError
from molt_budget.runner import proctable
from molt_budget.structs import Struct, field

if TYPE_CHECKING:
    import psutil  # imported where used: only the non-Linux fallbacks need it

TAIL_LINES = 20
_TAIL_MAX_BYTES = 64 * 1024        # a tail is for a report line, not for a 100 MB single-line log
_PR_SET_CHILD_SUBREAPER = 36       # from <linux/prctl.h>
_MARKER_RESCAN_S = 0.5             # reading every process's environ is the expensive part of sampling
_REAP_EVERY_S = 0.25               # how often zombies of a long run are collected
_MAX_SAMPLE_S = 0.25               # sampling interval ceiling for long builds
_POLL_S = 0.02                     # sleep between checks while processes are dying
_KILL_VERIFY_S = 10.0              # SIGKILL that takes longer than this means something is stuck in D state

# Subreaper status is per process (not inherited across fork), hence keyed by pid.
_subreaper_pid: int | None = None
_subreaper_ok = False
# Orphans of earlier runs that were reparented to us and are still alive: we must reap
# them when they die (kill_marked or a later run), nobody else will.
_adopted: set[int] = set()


class ProcessOutcome(Struct):
    returncode: int | None          # None only if it could not be started
    wall_s: float
    cpu_user_s: float               # whole tree, children included
    cpu_sys_s: float
    peak_rss_bytes: int             # sampled sum over the tree, at least the largest single process
    timed_out: bool
    start_error: str | None = None  # e.g. "command not found: foo"
    killed_pids: list[int] = field(default_factory=list)  # survivors killed after exit/timeout
    stdout_tail: str = ""           # last 20 lines
    stderr_tail: str = ""

    @property
    def cpu_s(self) -> float:
        return self.cpu_user_s + self.cpu_sys_s


def run_process(
    command: list[str] | str,
    *,
    env: dict[str, str],
    cwd: Path,
    timeout_s: float,
    marker: tuple[str, str],
    stdout_path: Path,
    stderr_path: Path,
    sample_interval_s: float = 0.05,
    kill_grace_s: float = 2.0,
) -> ProcessOutcome:
    """Run `command` (argv list, or a shell string run with /bin/sh -c) in a new process group.

    `env` is the complete environment; `marker` = (NAME, VALUE) is added to it so that
    processes which leave the group (daemons, setsid) can still be found and killed.
    stdout/stderr go to the given files in full. On timeout: SIGTERM the group and every
    marked process, wait `kill_grace_s`, then SIGKILL; afterwards no process of the run
    survives. See the module docstring for the full contract.

    CPU (user/sys) is an honest lower bound of the tree's cost:
    - rusage of the main child from wait4, which on Linux includes every descendant that
      was waited for by its parent;
    - plus rusage of orphans of the run that we reaped ourselves with wait4;
    - plus, for processes of the run still alive at the end (daemons), the CPU they used
      since the start of this run (psutil cpu_times incl. their waited children, minus
      what they had used when the run started), so work done in a reused backend daemon
      is charged to the build that caused it.
    CPU of a process reaped by someone outside the run (only possible when the subreaper
    could not be set) is lost.

    Peak RSS is the largest sampled sum of RSS over the tree (main child, descendants,
    orphans reparented to us, marked processes), and at least the largest VmHWM seen of one of them.
    """
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    run_env = dict(env)
    run_env[marker[0]] = marker[1]
    _become_subreaper()
    me = os.getpid()
    _reap(_adopted)  # adopted daemons that died between runs: nobody else will reap them
    before = _scan(marker)
    preexisting = set(before.children.get(me, ()))
    _adopted.intersection_update(preexisting)
    baseline = _cpu_times(before.marked)  # daemons of earlier builds: only CPU from now on is ours

    started = time.perf_counter()
    try:
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            if not argv:
                raise _StartError("empty command")
            try:
                popen = subprocess.Popen(
                    argv,
                    cwd=cwd,
                    env=run_env,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=err,
                    start_new_session=True,
                )
            except OSError as exc:
                raise _StartError(_describe_start_error(exc, argv[0], cwd)) from exc
    except _StartError as exc:
        message = str(exc)
        with open(stderr_path, "a", encoding="utf-8") as err_text:
            err_text.write(f"molt-budget: {message}\n")
        return ProcessOutcome(
            returncode=None,
            wall_s=time.perf_counter() - started,
            cpu_user_s=0.0,
            cpu_sys_s=0.0,
            peak_rss_bytes=0,
            timed_out=False,
            start_error=message,
            stdout_tail=_tail(stdout_path),
            stderr_tail=_tail(stderr_path),
        )

    run = _Run(popen, marker, preexisting, baseline)
    sampler = _Sampler(run, sample_interval_s)
    sampler.sample()            # the first look at once, in this thread (see _Sampler.start_late)
    timed_out = False
    try:
        deadline = started + timeout_s
        while True:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                timed_out = True
                break
            if run.wait_exit(min(remaining, _REAP_EVERY_S if sampler.started else sample_interval_s)):
                break
            sampler.start_late()
            run.reap_orphans(sampler.zombie_children)   # the sampler's last look: no scan of our own
    except BaseException:
        # Ctrl-C or a bug while waiting: still leave nothing behind.
        sampler.stop()
        run.terminate(0.0)
        run.close()
        raise
    sampler.stop()

    if timed_out:
        run.terminate(kill_grace_s)
    else:
        # Scan before reaping the main child: while it is a zombie its pid (= our pgid) cannot be
        # reused. The one scan of the run's end: survivors, and which of our children to reap.
        snap = run.scan()
        survivors = run.members(snap)
        run.reap_main()
        run.reap_orphans(set(snap.children.get(os.getpid(), ())))
        run.charge_survivors(survivors)
    run.close()
    _adopted.update(pid for pid in run.new_children() if pid not in run.reaped)

    assert run.status is not None and run.usage is not None
    wall_s = run.exited_at - started
    # Not ru_maxrss: for a child it includes the (v)forked copy of *this* process's memory
    # before exec, so a big runner inflates every build. VmHWM read while sampling is clean.
    peak = max(sampler.peak_rss, sampler.peak_single)
    return ProcessOutcome(
        returncode=os.waitstatus_to_exitcode(run.status),
        wall_s=wall_s,
        cpu_user_s=run.usage.ru_utime + run.extra_user,
        cpu_sys_s=run.usage.ru_stime + run.extra_sys,
        peak_rss_bytes=peak,
        timed_out=timed_out,
        killed_pids=sorted(run.killed),
        stdout_tail=_tail(stdout_path),
        stderr_tail=_tail(stderr_path),
    )


def direct_children() -> set[int]:
    """Our direct children now (zombies included), from the threads' children files, else a
    scan: taken at the start of a lane, so that `kill_marked(..., adopted_since=...)` can tell
    which processes the lane left to us, and at a run's end for its reparented orphans."""
    found = proctable.direct_children()
    return found if found is not None else set(_scan().children.get(os.getpid(), ()))


def kill_marked(marker: tuple[str, str], grace_s: float = 1.0, adopted_since: set[int] | None = None) -> list[int]:
    """Kill every live process whose environment carries `marker`; return their pids.

    With `adopted_since` (our direct children at the start of a lane), also every process
    the subreaper adopted since then, with its descendants: a daemon that called setsid and
    cleared its environment carries no marker, but as an orphan of the lane it was
    reparented to us. SIGTERM first, SIGKILL whatever is left after `grace_s`; our own
    zombies among them are reaped. Never kills the calling process or its ancestors.
    """
    _become_subreaper()

    def targets() -> set[int]:
        snap = _scan(marker)
        found = set(snap.marked)
        if adopted_since is not None:
            adopted = set(snap.children.get(os.getpid(), ())) - adopted_since
            found |= (proctable.expand(adopted, snap.children) & snap.alive) - _self_and_ancestors()
            _adopted.update(adopted)          # reaped below, whether they die of our signal or not
        return found

    found = targets()
    killed = _signal(found, signal.SIGTERM)
    grace_end = time.monotonic() + grace_s
    while time.monotonic() < grace_end:
        survivors = targets()
        _reap(killed | _adopted)  # after the scan: whatever was dead at the scan is reaped now
        if not survivors and not _unreaped_children(killed):
            if not found:
                return []         # two clean walks in a row (see _Run._all_gone): nothing was there
            break
        time.sleep(_POLL_S)
    give_up = time.monotonic() + _KILL_VERIFY_S
    while True:
        survivors = targets()
        _reap(killed | _adopted)
        if not survivors and not _unreaped_children(killed):
            break
        if time.monotonic() > give_up:
            raise MeasurementError(f"processes of the run survived SIGKILL: {sorted(survivors)}")
        killed |= _signal(survivors, signal.SIGKILL)
        time.sleep(_POLL_S)
    return sorted(killed)


class _StartError(Exception):
    """The command could not be started; the message is the outcome's start_error."""


class _Snapshot(Struct):
    """One pass over the process table: who is alive, who is whose child, who is marked."""

    alive: set[int]                   # not zombies
    children: dict[int, list[int]]    # ppid -> pids, zombies included
    marked: set[int]                  # alive and carrying the marker (never us or our ancestors)
    grouped: set[int]                 # alive and in the asked-for process group


def _scan(marker: tuple[str, str] | None = None, pgid: int | None = None) -> _Snapshot:
    """Read the process table once (one /proc/<pid>/stat read each); environments only of
    processes that can carry the marker, when one is asked for (they are the slow part)."""
    table = _table()
    if table is None:
        return _scan_psutil(marker, pgid)
    return _snapshot_of(table, marker, pgid)


def _table() -> proctable.Table | None:
    """As the subreaper, every process of our runs is one of our descendants: only they are
    read (a few reads, not one per process on the host); else the whole table."""
    me = os.getpid()
    if _subreaper_ok and _subreaper_pid == me:
        tree = proctable.scan_tree(me)
        if tree is not None:
            return tree
    return proctable.scan()


def _snapshot_of(table: proctable.Table, marker: tuple[str, str] | None, pgid: int | None) -> _Snapshot:
    children = proctable.children_of(table)
    alive = {pid for pid, proc in table.items() if proc.alive}
    grouped = {pid for pid in alive if table[pid].pgrp == pgid} if pgid is not None else set()
    marked: set[int] = set()
    if marker is not None:
        me = os.getpid()
        # As the subreaper, every process of our runs is one of our descendants (an orphan
        # is reparented to us): only their environments need reading, not the whole host's.
        candidates = proctable.expand({me}, children) if _subreaper_ok and _subreaper_pid == me else alive
        # never us (our own environment, read again every scan, is never a process of the run)
        marked = {pid for pid in (candidates & alive) - {me} if proctable.has_env(pid, *marker)}
        if marked:
            marked -= proctable.ancestors(table, me)
    return _Snapshot(alive, children, marked, grouped)


def _scan_psutil(marker: tuple[str, str] | None, pgid: int | None) -> _Snapshot:
    """The same without /proc (not Linux)."""
    import psutil

    alive: set[int] = set()
    children: dict[int, list[int]] = defaultdict(list)
    marked: set[int] = set()
    grouped: set[int] = set()
    # Plain process_iter(): with attrs it stores .info on cached objects shared with the sampler thread.
    for proc in psutil.process_iter():
        try:
            with proc.oneshot():
                ppid, status = proc.ppid(), proc.status()
        except psutil.Error:
            continue
        children[ppid].append(proc.pid)
        if status in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            continue
        alive.add(proc.pid)
        if marker is not None and _environ(proc).get(marker[0]) == marker[1]:
            marked.add(proc.pid)
        if pgid is not None and _getpgid(proc.pid) == pgid:
            grouped.add(proc.pid)
    if marked:
        marked -= _self_and_ancestors()
    return _Snapshot(alive, children, marked, grouped)


def _hwm(pid: int) -> int:
    """VmHWM (peak resident set since exec) in bytes; 0 when unreadable (gone, not Linux)."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _environ(proc: psutil.Process) -> dict[str, str]:
    """Other users' processes (AccessDenied) and kernel threads (NoSuchProcess) have no readable environ."""
    import psutil

    try:
        return proc.environ()
    except psutil.Error:
        return {}


_lineage_of: dict[tuple[int, int], frozenset[int]] = {}


def _self_and_ancestors() -> frozenset[int]:
    """A marker may leak into our own environment (nested runs): never kill upwards.

    Read once per (pid, parent): every sample asks twice. An ancestor further up that dies
    re-parents the one below it without our parent changing; the set then misses the new
    ancestor, which cannot carry our run's marker (only what we started can)."""
    key = (os.getpid(), os.getppid())
    if key not in _lineage_of:
        lineage = proctable.lineage(key[0])
        if lineage is None:
            import psutil

            me = psutil.Process()
            lineage = {me.pid} | {parent.pid for parent in me.parents()}
        _lineage_of.clear()
        _lineage_of[key] = frozenset(lineage)
    return _lineage_of[key]


def _getpgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except (ProcessLookupError, PermissionError):
        return None


def _signal(pids: Iterable[int], sig: int) -> set[int]:
    """Send `sig`, skipping processes that are gone or not ours; return pids actually signalled."""
    sent: set[int] = set()
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            continue
        sent.add(pid)
    return sent


def _unreaped_children(pids: Iterable[int]) -> set[int]:
    """Those of `pids` that are still our children, exited or not (peeked at, never reaped).

    A dying process loses its environment before it becomes a zombie: the scan no longer sees
    it as marked while `wait4` cannot reap it yet. Until it is reaped it is not gone."""
    if not hasattr(os, "waitid"):
        return set()
    pending = set()
    for pid in pids:
        try:
            os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            continue                  # not ours, or already reaped
        pending.add(pid)
    return pending


def _reap(pids: Iterable[int]) -> dict[int, resource.struct_rusage]:
    """wait4 each pid that is our zombie child; return its rusage. Never blocks, never touches other pids."""
    reaped: dict[int, resource.struct_rusage] = {}
    for pid in list(pids):
        try:
            got, _status, usage = os.wait4(pid, os.WNOHANG)
        except ChildProcessError:
            continue
        if got == pid:
            reaped[pid] = usage
            _adopted.discard(pid)
    return reaped


def _cpu_times(pids: Iterable[int]) -> dict[int, tuple[float, float]]:
    """(user, sys) including waited-for children, for processes that are still alive."""
    times: dict[int, tuple[float, float]] = {}
    wanted = list(pids)
    if not wanted:
        return times              # a plain build's run never loads psutil
    import psutil

    for pid in wanted:
        try:
            cpu = psutil.Process(pid).cpu_times()
        except psutil.Error:
            continue
        times[pid] = (cpu.user + cpu.children_user, cpu.system + cpu.children_system)
    return times


def _rss(pid: int) -> int:
    import psutil

    try:
        return psutil.Process(pid).memory_info().rss
    except psutil.Error:
        return 0


def _become_subreaper() -> bool:
    """Make orphans of our runs reparent to us instead of init, so we can find, kill and reap them."""
    global _subreaper_pid, _subreaper_ok
    if _subreaper_pid == os.getpid():
        return _subreaper_ok
    _subreaper_pid = os.getpid()
    _subreaper_ok = False
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            zero = ctypes.c_ulong(0)
            _subreaper_ok = libc.prctl(_PR_SET_CHILD_SUBREAPER, ctypes.c_ulong(1), zero, zero, zero) == 0
        except (OSError, AttributeError):
            _subreaper_ok = False
    return _subreaper_ok


def _describe_start_error(exc: OSError, program: str, cwd: Path) -> str:
    if isinstance(exc, FileNotFoundError) and exc.filename is not None and Path(exc.filename) == Path(cwd):
        return f"working directory not found: {cwd}"
    if isinstance(exc, NotADirectoryError) and not Path(cwd).is_dir():
        return f"working directory not found: {cwd}"
    if isinstance(exc, FileNotFoundError):
        return f"command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {program}"
    return f"cannot start {program}: {exc.strerror or exc}"


def _tail(path: Path, lines: int = TAIL_LINES) -> str:
    """Last `lines` lines (no trailing newline), read backwards from the end so huge logs stay cheap."""
    try:
        with open(path, "rb") as handle:
            pos = handle.seek(0, os.SEEK_END)
            data = b""
            # lines + 1 newlines: the final newline ends the last line, and the first chunk line may be partial.
            while pos > 0 and data.count(b"\n") <= lines and len(data) < _TAIL_MAX_BYTES:
                step = min(4096, pos)
                pos -= step
                handle.seek(pos)
                data = handle.read(step) + data
    except OSError:
        return ""
    if data.endswith(b"\n"):
        data = data[:-1]
    if not data:
        return ""
    kept = b"\n".join(data.split(b"\n")[-lines:])
    return kept[-_TAIL_MAX_BYTES:].decode("utf-8", errors="replace")


class _Run:
    """State of one started command: its main child, what we reaped, what we killed."""

    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        marker: tuple[str, str],
        preexisting: set[int],
        baseline: dict[int, tuple[float, float]],
    ) -> None:
        self.popen = popen
        self.pid = popen.pid  # also the pgid: start_new_session makes it the group leader
        self.marker = marker
        self.preexisting = preexisting
        self.baseline = baseline
        self.status: int | None = None
        self.usage: resource.struct_rusage | None = None
        self.exited_at = 0.0
        self.extra_user = 0.0
        self.extra_sys = 0.0
        self.reaped: set[int] = set()
        self.killed: set[int] = set()
        self._pidfd = _open_pidfd(self.pid)

    def wait_exit(self, timeout_s: float) -> bool:
        """Block until the main child has exited (it stays a zombie: its status is read by reap_main)."""
        if self.status is not None:
            return True
        if self._pidfd is not None:
            ready, _, _ = select.select([self._pidfd], [], [], max(0.0, timeout_s))
            exited = bool(ready)
        else:
            end = time.monotonic() + timeout_s
            while not (exited := _is_zombie_or_gone(self.pid)) and time.monotonic() < end:
                time.sleep(min(_POLL_S, max(0.0, end - time.monotonic())))
        if exited:
            self.exited_at = time.perf_counter()
        return exited

    def reap_main(self) -> None:
        """wait4 (not waitpid) because its rusage is the bulk of the tree's CPU."""
        if self.status is not None:
            return
        try:
            _pid, status, usage = os.wait4(self.pid, 0)
        except ChildProcessError as exc:
            raise MeasurementError(f"exit status of pid {self.pid} was taken by someone else") from exc
        if not self.exited_at:
            self.exited_at = time.perf_counter()
        self.status = status
        self.usage = usage
        # Keep Popen from ever waiting on this pid again (it could be reused by then).
        self.popen.returncode = os.waitstatus_to_exitcode(status)

    def new_children(self, children: set[int] | None = None) -> set[int]:
        """Direct children of ours that appeared during the run: reparented orphans of the run.
        `children`: our direct children as a recent look saw them (else they are read now)."""
        if children is None:
            children = direct_children()
        return children - self.preexisting - {self.pid}

    def reap_orphans(self, children: set[int] | None = None) -> None:
        for pid, usage in _reap(self.new_children(children) | _adopted).items():
            user, system = self.baseline.get(pid, (0.0, 0.0))
            self.extra_user += max(0.0, usage.ru_utime - user)
            self.extra_sys += max(0.0, usage.ru_stime - system)
            self.reaped.add(pid)

    def charge_survivors(self, pids: set[int]) -> None:
        """CPU used during this run by processes that outlive it (daemons)."""
        for pid, (user, system) in _cpu_times(pids - {self.pid} - self.reaped).items():
            base_user, base_sys = self.baseline.get(pid, (0.0, 0.0))
            self.extra_user += max(0.0, user - base_user)
            self.extra_sys += max(0.0, system - base_sys)

    def scan(self) -> _Snapshot:
        # Matching by pgid is only safe while the main child is unreaped: until then its pid cannot be reused.
        return _scan(self.marker, self.pid if self.status is None else None)

    def members(self, snap: _Snapshot) -> set[int]:
        """Live processes of the run: main child, its descendants, orphans, group members, marked ones."""
        orphans = set(snap.children.get(os.getpid(), ())) - self.preexisting
        roots = {self.pid} | orphans | snap.grouped | snap.marked
        return (proctable.expand(roots, snap.children) & snap.alive) - _self_and_ancestors()

    def collect(self) -> None:
        if self.status is None and _is_zombie_or_gone(self.pid):
            self.reap_main()
        self.reap_orphans()

    def terminate(self, grace_s: float) -> None:
        """SIGTERM everything of the run, wait up to grace_s, then SIGKILL until nothing is left."""
        self._signal_all(signal.SIGTERM)
        grace_end = time.monotonic() + grace_s
        while time.monotonic() < grace_end:
            if self._all_gone():
                return
            time.sleep(_POLL_S)
        give_up = time.monotonic() + _KILL_VERIFY_S
        while not self._all_gone():
            if time.monotonic() > give_up:
                raise MeasurementError(f"processes of the run survived SIGKILL: {sorted(self.members(self.scan()))}")
            self._signal_all(signal.SIGKILL)
            time.sleep(_POLL_S)

    def _all_gone(self) -> bool:
        # Scan, then reap: whatever was already dead at the scan is a zombie this reap collects.
        members = self.members(self.scan())
        self.collect()
        if self.status is None or members:
            return False
        # One walk can miss a live process: when its parent dies during the walk, it moves to us
        # after our children were read and has left the dead parent's list when that is read.
        # The move is over by the end of the walk, so a second walk finds it among ours.
        return not self.members(self.scan())

    def _signal_all(self, sig: int) -> None:
        # Scan first: once the group is signalled its members are zombies and no longer show up as members.
        members = self.members(self.scan())
        if self.status is None:
            try:
                os.killpg(self.pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        self.killed |= _signal(members, sig)

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def _open_pidfd(pid: int) -> int | None:
    """A pidfd becomes readable when the process exits: exit is noticed at once, without polling."""
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def _is_zombie_or_gone(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD)
    except psutil.NoSuchProcess:
        return True


class _Sampler(threading.Thread):
    """Samples the summed RSS of the run's tree; the main thread only waits and reaps.

    The first look is taken by the caller, right after the start (`sample`); the thread starts
    only for a build that outlives the first interval (`start_late`). Most of a check's builds
    end sooner, and a thread's start and join cost more than their build's whole bookkeeping."""

    def __init__(self, run: _Run, interval_s: float) -> None:
        super().__init__(name=f"rss-sampler-{run.pid}", daemon=True)
        self.run_state = run
        self.interval_s = interval_s
        self.peak_rss = 0
        self._stop_event = threading.Event()
        self._marked: set[int] = set()
        self.peak_single = 0
        self._orphan_owner: dict[int, bool] = {}
        self._next_marker_scan = 0.0
        self._table: proctable.Table | None = None
        self._marker_seen: dict[tuple[int, int], bool] = {}
        self._lineage = _self_and_ancestors()
        self.zombie_children: set[int] = set()    # our children that died: the main thread reaps them

    @property
    def started(self) -> bool:
        return self.ident is not None

    def start_late(self) -> None:
        """The build outlived the first interval: sample it from now on in the thread."""
        if not self.started:
            self.start()

    def run(self) -> None:
        # Dense at first (short builds, early peaks), then backing off to _MAX_SAMPLE_S so a
        # long build is not slowed by its own measurement.
        interval = self.interval_s
        while True:
            self.sample()
            if self._stop_event.wait(interval):
                return
            interval = min(_MAX_SAMPLE_S, interval * 1.25)

    def stop(self) -> None:
        self._stop_event.set()
        if self.started:
            self.join()

    def _ours(self, pid: int) -> bool:
        """An orphan adopted mid-run belongs to this run only if it carries the marker
        (another job's stray daemon may be reparented to us at any time)."""
        if pid not in self._orphan_owner:
            if self._table is not None:
                self._orphan_owner[pid] = proctable.has_env(pid, *self.run_state.marker) is not False
            else:
                import psutil

                try:
                    env = _environ(psutil.Process(pid))
                    self._orphan_owner[pid] = not env or env.get(self.run_state.marker[0]) == self.run_state.marker[1]
                except psutil.Error:
                    self._orphan_owner[pid] = True
        return self._orphan_owner[pid]

    def sample(self) -> None:
        """One pass over the process table per tick; environments only of processes never seen before."""
        run = self.run_state
        table = self._table = _table()
        if table is None:
            self._sample_psutil()
            return
        me = os.getpid()
        children = proctable.children_of(table)
        direct = set(children.get(me, ()))
        self.zombie_children = {pid for pid in direct if not table[pid].alive}
        orphans = {pid for pid in direct - run.preexisting if self._ours(pid)}
        tree = proctable.expand({run.pid} | orphans, children)
        tree |= proctable.expand(self._marked_elsewhere(table, children, tree), children)
        live = [pid for pid in tree if pid in table and table[pid].alive]
        self.peak_rss = max(self.peak_rss, sum(table[pid].rss for pid in live))
        # a peak between two samples still shows in the process's own high-water mark
        self.peak_single = max([self.peak_single, *(_hwm(pid) for pid in live)])

    def _marked_elsewhere(self, table: proctable.Table, children: dict[int, list[int]], tree: set[int]) -> set[int]:
        """Marked processes outside the tree (daemons of earlier builds of the run): as the
        subreaper, only our descendants can be; each process's environment is read once."""
        me = os.getpid()
        if _subreaper_ok and _subreaper_pid == me:
            candidates = proctable.expand({me}, children)
        else:
            candidates = set(table)
        marked = set()
        for pid in candidates - tree - self._lineage:
            proc = table[pid]
            if not proc.alive:
                continue
            key = (pid, proc.start)
            if key not in self._marker_seen:
                self._marker_seen[key] = bool(proctable.has_env(pid, *self.run_state.marker))
            if self._marker_seen[key]:
                marked.add(pid)
        return marked

    def _sample_psutil(self) -> None:
        run = self.run_state
        if time.monotonic() >= self._next_marker_scan:
            self._marked = _scan(run.marker).marked
            self._next_marker_scan = time.monotonic() + _MARKER_RESCAN_S
        snap = _scan(None)
        orphans = set(snap.children.get(os.getpid(), ())) - run.preexisting
        tree = proctable.expand({run.pid} | orphans | self._marked, snap.children) & snap.alive
        self.peak_rss = max(self.peak_rss, sum(_rss(pid) for pid in tree))
