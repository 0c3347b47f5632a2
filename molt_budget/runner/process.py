"""Run one command as a whole process tree: measure it, time it out, leave nothing behind.

CONTRACT (implemented by the runner helper; the engine relies on exactly this):
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class ProcessOutcome:
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
) -> ProcessOutcome:
    """Run `command` (argv list, or a shell string run with /bin/sh -c) in a new process group.

    `env` is the complete environment; `marker` = (NAME, VALUE) is added to it so that
    processes which leave the group (daemons, setsid) can still be found and killed.
    stdout/stderr go to the given files in full. On timeout: SIGTERM the group and every
    marked process, wait briefly, then SIGKILL; afterwards no process of the run survives.
    """
    raise NotImplementedError


def kill_marked(marker: tuple[str, str], grace_s: float = 1.0) -> list[int]:
    """Kill every live process whose environment carries `marker`; return their pids."""
    raise NotImplementedError
