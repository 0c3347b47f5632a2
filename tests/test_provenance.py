"""collect_provenance on real throwaway git repositories and real tool commands."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from molt_budget.runner.provenance import collect_provenance

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


@pytest.fixture(autouse=True)
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No GIT_DIR & co. from a surrounding hook, and no parent repository above tmp_path."""
    for name in list(os.environ):
        if name.startswith("GIT_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "commit.gpgsign=false", *args],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    git(path, "init", "-q", "-b", "trunk")
    (path / "a.txt").write_text("one\n")
    git(path, "add", "a.txt")
    git(path, "commit", "-q", "-m", "first")
    return path


@needs_git
def test_clean_repo(repo: Path) -> None:
    prov = collect_provenance(repo, {})
    assert prov["commit"] == git(repo, "rev-parse", "HEAD")
    assert len(prov["commit"]) == 40
    assert prov["dirty"] is False
    assert prov["branch"] == "trunk"
    assert prov["tools"] == {}


@needs_git
def test_modified_file_is_dirty_untracked_is_not(repo: Path) -> None:
    (repo / "untracked.txt").write_text("x\n")
    assert collect_provenance(repo, {})["dirty"] is False
    (repo / "a.txt").write_text("two\n")
    assert collect_provenance(repo, {})["dirty"] is True


@needs_git
def test_subdirectory_and_detached_head(repo: Path) -> None:
    (repo / "sub").mkdir()
    git(repo, "checkout", "-q", "--detach")
    prov = collect_provenance(repo / "sub", {})
    assert prov["commit"] == git(repo, "rev-parse", "HEAD")
    assert prov["branch"] is None


@needs_git
def test_not_a_repository(tmp_path: Path) -> None:
    prov = collect_provenance(tmp_path, {})
    assert (prov["commit"], prov["dirty"], prov["branch"]) == (None, None, None)


def test_git_missing(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    prov = collect_provenance(repo, {"git": ["git", "--version"]})
    assert (prov["commit"], prov["dirty"], prov["branch"]) == (None, None, None)
    assert prov["tools"]["git"] == "unavailable: command not found: git"


def test_tool_versions(tmp_path: Path) -> None:
    prov = collect_provenance(
        tmp_path,
        {
            "python": [sys.executable, "--version"],
            "stderr-only": [sys.executable, "-c", "import sys; print('\\n  tool 1.2.3  \\nmore', file=sys.stderr)"],
            "missing": ["molt-budget-no-such-tool", "--version"],
            "fails": [sys.executable, "-c", "import sys; sys.exit('broken install')"],
            "silent": [sys.executable, "-c", "pass"],
        },
    )
    assert prov["tools"] == {
        "python": f"Python {platform.python_version()}",
        "stderr-only": "tool 1.2.3",
        "missing": "unavailable: command not found: molt-budget-no-such-tool",
        "fails": "unavailable: exit code 1: broken install",
        "silent": "unavailable: no output",
    }


def test_tool_versions_are_asked_all_at_once(tmp_path: Path) -> None:
    """Each tool answers only once the other has started: asked one after another, the first
    would wait for the second until its timeout and be recorded as unavailable."""
    def waits_for(mine: str, other: str) -> list[str]:
        return ["/bin/sh", "-c", f"touch {tmp_path / mine}; while [ ! -e {tmp_path / other} ]; do sleep 0.01; done; echo {mine} 1.0"]

    prov = collect_provenance(tmp_path, {"a": waits_for("a", "b"), "b": waits_for("b", "a")}, tool_timeout_s=20)
    assert prov["tools"] == {"a": "a 1.0", "b": "b 1.0"}


def test_hanging_tool_times_out_with_its_children(tmp_path: Path) -> None:
    # The background sleep keeps stdout open: subprocess.run(timeout=...) would wait for it
    # (until the suite's timeout fails the test). Its own children die with the tool.
    nap = f"{1000 + os.getpid() % 1000}.5"            # an argv no other process of the machine has
    prov = collect_provenance(tmp_path, {"hangs": ["/bin/sh", "-c", f"sleep {nap} & sleep {nap}"]}, tool_timeout_s=0.5)
    assert prov["tools"]["hangs"] == "unavailable: timed out after 0.5s"
    left = [p.pid for p in psutil.process_iter(["cmdline", "status"])
            if p.info["cmdline"] == ["sleep", nap] and p.info["status"] != psutil.STATUS_ZOMBIE]
    assert left == []


def test_host_and_python(tmp_path: Path) -> None:
    prov = collect_provenance(tmp_path, {})
    host = prov["host"]
    assert set(host) == {"cpu_model", "cores", "logical_cpus", "memory_bytes", "hostname", "platform"}
    assert host["logical_cpus"] == os.cpu_count()
    assert host["cores"] is None or 1 <= host["cores"] <= host["logical_cpus"]
    assert host["memory_bytes"] > 64 << 20
    assert host["hostname"] == socket.gethostname() and host["platform"]
    if Path("/proc/cpuinfo").exists() and "model name" in Path("/proc/cpuinfo").read_text():
        assert host["cpu_model"] and host["cpu_model"] != platform.machine()
    assert prov["python"] == platform.python_version()
    assert set(prov) == {"commit", "dirty", "branch", "host", "python", "tools"}


def test_a_tool_command_given_as_one_string_is_split_into_words(tmp_path: Path) -> None:
    """`provenance_tools: {py: "python3 --version"}` once ran a program named "python3 --version",
    so both sides recorded "unavailable" and the tools comparison passed silently."""

    tools = collect_provenance(tmp_path, {"py": f"{sys.executable} --version", "list": [sys.executable, "--version"],
                                          "quoted": f"'{sys.executable}' -c 'print(\"a b\")'"})["tools"]
    assert tools["py"].startswith("Python 3") and tools["py"] == tools["list"]
    assert tools["quoted"] == "a b"


def test_the_platform_string_is_platform_platforms_without_its_cost() -> None:
    from molt_budget.runner.provenance import _platform

    assert _platform() == platform.platform()


def test_git_is_asked_for_the_work_tree_once_a_command(tmp_path: Path) -> None:
    """A command's later asks reuse the first answer; the next command asks git again."""
    from molt_budget import gitutil

    gitutil.forget_toplevels()
    assert gitutil.toplevel(tmp_path) is None
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert gitutil.toplevel(tmp_path) is None          # the same command: git is not asked again
    gitutil.forget_toplevels()
    assert gitutil.toplevel(tmp_path) == tmp_path.resolve()


def test_head_commit_answers_the_work_tree_too(tmp_path: Path) -> None:
    """Provenance's one git process names HEAD and the work tree: outside a repository, on an
    unborn branch (a work tree, no commit) and at a commit, from a subfolder."""
    from molt_budget import gitutil

    sub = tmp_path / "repo" / "sub"
    sub.mkdir(parents=True)
    gitutil.forget_toplevels()
    assert gitutil.head_commit(sub) is None
    assert gitutil.toplevel(sub) is None
    subprocess.run(["git", "init", "-q", str(sub.parent)], check=True)
    gitutil.forget_toplevels()
    assert gitutil.head_commit(sub) is None and gitutil.toplevel(sub) == sub.parent.resolve()
    subprocess.run(["git", "-C", str(sub.parent), "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q",
                    "--allow-empty", "-m", "first"], check=True)
    gitutil.forget_toplevels()
    head = gitutil.head_commit(sub)
    assert head == subprocess.run(["git", "-C", str(sub), "rev-parse", "HEAD"], capture_output=True, text=True,
                                  check=True).stdout.strip()
    assert sub in gitutil._TOPLEVELS and gitutil.toplevel(sub) == sub.parent.resolve()
    assert collect_provenance(sub, {})["commit"] == head


def test_host_facts_from_proc_agree_with_psutil() -> None:
    """Cores, memory and busy CPU time are read from /proc and /sys (psutil costs ~10 ms to
    import); they must be psutil's own answers."""
    import psutil

    from molt_budget.runner import proctable

    assert proctable.physical_cores() == psutil.cpu_count(logical=False)
    assert proctable.memory_total() == psutil.virtual_memory().total
    times = psutil.cpu_times()
    theirs = sum(getattr(times, name, 0.0) for name in ("user", "nice", "system", "irq", "softirq", "steal"))
    ours = proctable.host_busy_s()
    assert ours is not None and abs(ours - theirs) < 0.5 + 0.01 * theirs


@needs_git
def test_provenance_in_a_repository_is_two_git_processes(repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """HEAD with the work tree, then the branch with the changes: each git process is a few
    ms of every check. Counted by a `git` first on PATH that logs and runs the real one."""
    from molt_budget import gitutil

    real = shutil.which("git")
    shim = tmp_path / "shim"
    shim.mkdir()
    log = tmp_path / "git-calls.txt"
    (shim / "git").write_text(f'#!/bin/sh\necho "$*" >> {log}\nexec {real} "$@"\n')
    (shim / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{shim}{os.pathsep}{os.environ['PATH']}")
    gitutil.forget_toplevels()
    prov = collect_provenance(repo, {})
    assert (prov["dirty"], prov["branch"]) == (False, "trunk")
    assert len(log.read_text().splitlines()) == 2
    assert gitutil.toplevel(repo) == repo.resolve() and len(log.read_text().splitlines()) == 2
