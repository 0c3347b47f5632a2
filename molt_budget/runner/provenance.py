"""Where a measurement came from: commit, machine, interpreter and tool versions.

Provenance is best effort by design: a missing git, a detached checkout or a broken tool
must show up as None / "unavailable: ..." in the record, never stop the measurement.
"""

from __future__ import annotations

import os
import platform
import shlex
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from molt_budget.runner import proctable
from molt_budget.structs import Struct

GIT_TIMEOUT_S = 5.0
_READ_GRACE_S = 0.1     # what a finished tool read late still gets (see _finish)
TOOL_TIMEOUT_S = 10.0


class _Result(Struct):
    returncode: int | None  # None: could not start or timed out (see error)
    stdout: str
    stderr: str
    error: str | None = None


def collect_provenance(
    cwd: Path,
    tool_commands: Mapping[str, list[str] | str],
    *,
    git_timeout_s: float = GIT_TIMEOUT_S,
    tool_timeout_s: float = TOOL_TIMEOUT_S,
) -> dict[str, Any]:
    """Describe the checkout at `cwd`, this host, and each tool.

    `tool_commands` maps a tool name to the full argv that prints its version, e.g.
    {"cargo": ["cargo", "--version"]}, or one string split as a shell would ("cargo --version",
    never run through a shell); the value recorded is the first non-empty line of
    its stdout (or stderr, for tools that print their version there).
    `dirty` ignores untracked files: output directories inside the checkout would
    otherwise mark every run dirty.
    """
    from molt_budget import gitutil

    # every tool at once, before git: a toolchain's version is a shim's start-up (rustup's,
    # pyenv's: 20-200 ms each), and one after another they added up in every check
    started: dict[str, _Started] = {}
    try:
        for name, command in tool_commands.items():
            started[name] = _start(_argv(command), cwd)
        commit = gitutil.head_commit(cwd, git_timeout_s)
        # one process for both: the v2 format's header names the branch ("(detached)" without one),
        # every other line is a change to a tracked file
        status = _git(cwd, ["status", "--porcelain=v2", "--branch", "--untracked-files=no"], git_timeout_s) if commit else None
        tools = {name: _tool_version(run, tool_timeout_s) for name, run in started.items()}
    except BaseException:
        for run in started.values():      # Ctrl-C meanwhile: no tool outlives the check
            _kill(run)
        raise
    lines = status.splitlines() if status is not None else []
    branch = next((line.removeprefix("# branch.head ") for line in lines if line.startswith("# branch.head ")), None)
    return {
        "commit": commit or None,
        "dirty": None if status is None else any(not line.startswith("#") for line in lines),
        "branch": None if branch in (None, "", "(detached)") else branch,
        "host": _host(),
        "python": platform.python_version(),
        "tools": tools,
    }


def _git(cwd: Path, args: list[str], timeout_s: float) -> str | None:
    """Stripped stdout of a successful git command, else None (no git, not a repo, detached, timeout)."""
    from molt_budget import gitutil

    return gitutil.try_git(cwd, *args, timeout=timeout_s)


def _argv(command: list[str] | str) -> list[str]:
    """A string is split into words as a shell would (without running one): `python3 --version`
    is two words, never a program named "python3 --version"."""
    if isinstance(command, str):
        try:
            return shlex.split(command)
        except ValueError:
            return [command]
    return [str(word) for word in command]


class _Started(Struct):
    """A tool's version command, started (or why it could not be) and when."""

    proc: subprocess.Popen[bytes] | None
    error: str | None
    at: float


def _tool_version(run: _Started, timeout_s: float) -> str:
    result = _finish(run, timeout_s)
    if result.error is not None:
        return f"unavailable: {result.error}"
    if result.returncode != 0:
        detail = _first_line(result.stderr) or _first_line(result.stdout)
        return f"unavailable: exit code {result.returncode}" + (f": {detail}" if detail else "")
    return _first_line(result.stdout) or _first_line(result.stderr) or "unavailable: no output"


def _first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")


def _start(argv: list[str], cwd: Path) -> _Started:
    if not argv:
        return _Started(None, "empty command", time.monotonic())
    try:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except FileNotFoundError:
        return _Started(None, f"command not found: {argv[0]}", time.monotonic())
    except OSError as exc:
        return _Started(None, f"cannot start {argv[0]}: {exc.strerror or exc}", time.monotonic())
    return _Started(proc, None, time.monotonic())


def _finish(run: _Started, timeout_s: float) -> _Result:
    """Its output, with a timeout from its start that really ends it: subprocess.run kills only
    the child and then waits for EOF, which never comes while a grandchild holds the pipes. A
    tool read after others had their turn still gets a moment to hand over what it wrote."""
    proc = run.proc
    if proc is None:
        return _Result(None, "", "", run.error)
    try:
        out, err = proc.communicate(timeout=max(run.at + timeout_s - time.monotonic(), _READ_GRACE_S))
    except subprocess.TimeoutExpired:
        _kill(run)
        return _Result(None, "", "", f"timed out after {timeout_s:g}s")
    return _Result(proc.returncode, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))


def _kill(run: _Started) -> None:
    """The tool and its process group, gone; its pipes closed (not communicate(): a descendant
    that left the group could still hold them open)."""
    proc = run.proc
    if proc is None:
        return
    if proc.returncode is not None:       # already reaped: its group id may be another's by now
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
    for pipe in (proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _host() -> dict[str, Any]:
    return {
        "cpu_model": _cpu_model(),
        "cores": _physical_cores(),
        "logical_cpus": os.cpu_count(),
        "memory_bytes": _memory_total(),
        "hostname": _hostname(),
        "platform": _platform(),
    }


def _hostname() -> str:
    """socket.gethostname() is uname's node name on POSIX: read it there without importing
    socket (~3 ms of every check)."""
    if hasattr(os, "uname"):
        return os.uname().nodename
    import socket

    return socket.gethostname()


def _physical_cores() -> int | None:
    """/sys when it says (psutil costs ~10 ms to import, more than all of provenance), else psutil."""
    found = proctable.physical_cores()
    if found is not None:
        return found
    import psutil

    cores: int | None = psutil.cpu_count(logical=False)
    return cores


def _memory_total() -> int:
    found = proctable.memory_total()
    if found is not None:
        return found
    import psutil

    total: int = psutil.virtual_memory().total
    return total


def _platform() -> str:
    """platform.platform()'s string, without its cost on Linux: it runs `uname -p` and scans
    the interpreter's binary for the glibc version (~17 ms, more than the rest of provenance)."""
    libc = os.confstr("CS_GNU_LIBC_VERSION") if sys.platform == "linux" and "CS_GNU_LIBC_VERSION" in os.confstr_names else None
    if not libc or " " not in libc:
        return platform.platform()
    u = os.uname()
    name, _, version = libc.partition(" ")
    return f"{u.sysname}-{u.release}-{u.machine}-with-{name}{version}"


def _cpu_model() -> str | None:
    """/proc/cpuinfo names the CPU; platform.processor() is often just "x86_64" or empty."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
            for line in cpuinfo:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or None
