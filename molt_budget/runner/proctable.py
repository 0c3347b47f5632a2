"""One cheap pass over the process table: /proc/<pid>/stat per process, nothing else.

psutil reads several /proc files per process and per call; the runner looks at the table
every few dozen milliseconds while a build runs and the quiet-host check before every timed
lane, so both read it here once per look. A process's environment (the run marker) and
argv are read only for the few processes a caller asks about. None means there is no
/proc (not Linux): callers fall back to psutil.

The host facts a run needs (busy CPU time, physical cores, memory) are read here too, the
way psutil reads them on Linux: a check then never imports psutil (~10 ms of its start).
"""

from __future__ import annotations

import os
import resource
import time
from collections import defaultdict
from collections.abc import Iterable
from typing import NamedTuple

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_BUSY_FIELDS = (0, 1, 2, 5, 6, 7)      # /proc/stat's cpu line: user nice system (idle iowait) irq softirq steal


class Proc(NamedTuple):
    pid: int
    ppid: int
    state: str      # R S D Z X T ... ; Z and X are not alive
    pgrp: int
    rss: int        # bytes
    comm: str       # the kernel's name (15 characters at most)
    start: int      # start time in clock ticks after boot: with pid, names one process for good

    @property
    def alive(self) -> bool:
        return self.state not in "ZX"


Table = dict[int, Proc]


def scan() -> Table | None:
    """pid -> Proc for every process; None when /proc cannot be read."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    table: Table = {}
    for name in entries:
        if name.isdigit():
            proc = _stat(int(name))
            if proc is not None:
                table[proc.pid] = proc
    return table


def scan_tree(root: int, limit: int = 4096) -> Table | None:
    """pid -> Proc for `root` and its descendants only, found through the threads' `children`
    files: the runner, as the subreaper of its builds, has every process of its runs among its
    descendants, so a look at them costs a few reads instead of one per process on the host.
    None when the kernel has no children files or the tree is past `limit` (callers scan the table)."""
    table: Table = {}
    stack = [root]
    while stack:
        pid = stack.pop()
        if pid in table:
            continue
        proc = _stat(pid)
        if proc is None:
            continue                       # it ended meanwhile
        table[pid] = proc
        if len(table) > limit:
            return None
        kids = direct_children(pid)
        if kids is None:
            if pid == root:
                return None
            continue
        stack.extend(kids)
    return table


def _stat(pid: int) -> Proc | None:
    data = _read(f"/proc/{pid}/stat", 4096)
    if data is None:
        return None
    close = data.rfind(b")")
    fields = data[close + 2:].split(None, 22)     # rss is the last field read: the 30 after it stay one
    if len(fields) < 22:
        return None
    comm = data[data.find(b"(") + 1:close].decode("utf-8", "replace")
    return Proc(pid, int(fields[1]), fields[0].decode(), int(fields[2]), int(fields[21]) * _PAGE, comm, int(fields[19]))


def children_of(table: Table) -> dict[int, list[int]]:
    """ppid -> pids (zombies included)."""
    out: dict[int, list[int]] = defaultdict(list)
    for proc in table.values():
        out[proc.ppid].append(proc.pid)
    return out


def expand(roots: Iterable[int], children: dict[int, list[int]]) -> set[int]:
    """Roots plus all their descendants."""
    seen: set[int] = set()
    stack = list(roots)
    while stack:
        pid = stack.pop()
        if pid not in seen:
            seen.add(pid)
            stack.extend(children.get(pid, ()))
    return seen


def ancestors(table: Table, pid: int) -> set[int]:
    """pid's parent, its parent, ... (pid itself not included)."""
    found: set[int] = set()
    current = table.get(pid)
    while current is not None and current.ppid > 0 and current.ppid not in found:
        found.add(current.ppid)
        current = table.get(current.ppid)
    return found


def _read(path: str, limit: int) -> bytes | None:
    """os.open/os.read: a buffered file object per /proc file costs more than the read itself."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        return os.read(fd, limit)
    except OSError:
        return None
    finally:
        os.close(fd)


_argv0_cache: dict[tuple[int, int, str], str | None] = {}


def argv0(proc: Proc) -> str | None:
    """Basename of argv[0]; None when unreadable (gone, another user's, a kernel thread).

    Remembered per process (pid, start time, name), so a check repeated before every lane
    reads only the processes that are new since the last one."""
    key = (proc.pid, proc.start, proc.comm)
    if key not in _argv0_cache:
        if len(_argv0_cache) > 65536:
            _argv0_cache.clear()
        data = _read(f"/proc/{proc.pid}/cmdline", 4096)
        first = data.split(b"\0", 1)[0] if data else b""
        _argv0_cache[key] = os.path.basename(first.decode("utf-8", "replace")) if first else None
    return _argv0_cache[key]


def has_env(pid: int, name: str, value: str) -> bool | None:
    """Whether the process's environment holds NAME=VALUE; None when there is no environment
    to read (another user's process, a kernel thread, one that just ended)."""
    wanted = f"{name}={value}".encode()
    try:
        fd = os.open(f"/proc/{pid}/environ", os.O_RDONLY)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    data = b"".join(chunks)
    return wanted in data.split(b"\0") if data else None


def direct_children(pid: int | None = None) -> set[int] | None:
    """Children (zombies included) of `pid` (default: us) from its threads' `children`
    files: a few tiny reads instead of a pass over the whole table. None when the kernel
    has no such files (callers scan the table instead)."""
    pid = os.getpid() if pid is None else pid
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    found: set[int] = set()
    for tid in tids:
        data = _read(f"/proc/{pid}/task/{tid}/children", 1 << 20)
        if data is None:
            if not os.path.exists(f"/proc/{pid}/task/{tid}/children") and os.path.isdir(f"/proc/{pid}/task/{tid}"):
                return None        # a kernel without CONFIG_PROC_CHILDREN
            continue               # the thread just ended
        found.update(int(x) for x in data.split())
    return found


def lineage(pid: int) -> set[int] | None:
    """pid and its ancestors, reading only their own stat files; None without /proc."""
    found = {pid}
    current = pid
    while current > 1:
        data = _read(f"/proc/{current}/stat", 4096)
        if data is None:
            return None if current == pid else found
        fields = data[data.rfind(b")") + 2:].split()
        parent = int(fields[1])
        if parent <= 0 or parent in found:
            break
        found.add(parent)
        current = parent
    return found


def host_busy_s() -> float | None:
    """Seconds every CPU spent busy since boot (user, nice, system, irq, softirq, steal), as
    psutil.cpu_times() sums them; None without /proc/stat."""
    data = _read("/proc/stat", 4096)
    if data is None or not data.startswith(b"cpu "):
        return None
    fields = data.split(b"\n", 1)[0].split()[1:]
    try:
        return sum(int(fields[i]) for i in _BUSY_FIELDS if i < len(fields)) / _TICKS
    except ValueError:
        return None


def physical_cores() -> int | None:
    """psutil.cpu_count(logical=False)'s first method: distinct core sibling lists in sysfs;
    None when there are none to read (the caller asks psutil)."""
    import glob

    found = set()
    for pattern in ("core_cpus_list", "thread_siblings_list"):
        for path in glob.glob(f"/sys/devices/system/cpu/cpu[0-9]*/topology/{pattern}"):
            data = _read(path, 4096)
            if data is not None:
                found.add(data.strip())
        if found:
            return len(found)
    return None


def memory_total() -> int | None:
    """MemTotal in bytes (psutil.virtual_memory().total on Linux); None without /proc/meminfo."""
    data = _read("/proc/meminfo", 1 << 16)
    for line in (data or b"").splitlines():
        if line.startswith(b"MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return None


class Reading(NamedTuple):
    """The host's and the run's CPU time at one moment: the ends of a quiet-host window."""

    at: float
    host_busy_s: float     # all CPUs, every process
    own_s: float           # this process + the children it waited for (the builds of the run)


def read_cpu() -> Reading:
    """The host's and the run's CPU time now: the start of a meter's first window (here, not in
    runner.quiescence, so that a command can take it before it imports anything heavy)."""
    busy = host_busy_s()
    if busy is None:
        import psutil

        times = psutil.cpu_times()
        busy = sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return Reading(time.monotonic(), busy, me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime)
