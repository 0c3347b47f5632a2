"""The gate's own cost, as counts that can regress: parses per check, builds per exact lane."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import PY_STDLIB

from molt_budget.cli import main
from molt_budget.config import loader


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def budgets(target: int, justification: str = "") -> str:
    doc: dict[str, Any] = {
        "version": 1,
        "defaults": {"timeout_s": 60, "repeats": 1, "retries": 0},
        "settings": {"output_root": "../out", "history": "../out/history.sqlite", "quiescence": {"max_wait_s": 0}},
        "lanes": {"echo": {"command": [*PY_STDLIB, "-c", "print('size: 42')"]}},
        "kpis": {"size": {"lane": "echo", "metric": "regex:stdout:size: (\\d+)", "class": "exact", "target": target,
                          "owner": "me", "justification": justification}},
    }
    return yaml.safe_dump(doc, sort_keys=False)


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often each distinct budgets text goes through the loader (YAML + schema + model)."""
    seen: Counter[str] = Counter()
    real = loader.parse_text

    def counting(path: Path, text: str) -> Any:
        seen[text] += 1
        return real(path, text)

    monkeypatch.setattr(loader, "parse_text", counting)
    return seen


def test_check_parses_head_and_base_budgets_once_each(tmp_path: Path, parses: Counter[str]) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "main")
    git(repo, "config", "user.email", "t@example.com")
    git(repo, "config", "user.name", "t")
    (repo / ".gitignore").write_text("out/\n")
    base_text = budgets(50)
    (repo / "budgets.yaml").write_text(base_text)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "checkout", "-qb", "feature")
    head_text = budgets(60, "the new parser needs room")
    (repo / "budgets.yaml").write_text(head_text)
    git(repo, "commit", "-qam", "loosen")

    code = main(["check", "--config", str(repo / "budgets.yaml"), "--quiet", "--report-json", str(tmp_path / "r.json")])

    assert code == 0
    report = yaml.safe_load((tmp_path / "r.json").read_text())
    assert [c["kind"] for c in report["budget_changes"]] == ["loosened"]   # the budget gate did run
    assert parses == Counter({head_text: 1, base_text: 1})


def _strace_works() -> bool:
    """strace is installed and may trace here (a container without ptrace rights refuses)."""
    if shutil.which("strace") is None:
        return False
    return subprocess.run(["strace", "-f", "-o", "/dev/null", "true"], capture_output=True, timeout=30).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(not _strace_works(), reason="needs strace (allowed to trace) to see the fsyncs")
def test_the_journal_is_fsyncd_only_once_a_second_of_builds_is_unsynced(tmp_path: Path) -> None:
    """A lane of quick builds ends without an fsync (measuring it again is cheaper); a lane whose
    builds took over a second gets one. Seen as the real syscalls of a real check."""
    doc = {
        "version": 1, "defaults": {"timeout_s": 60, "retries": 0, "repeats": 3},
        "settings": {"output_root": "out", "history": "out/history.sqlite", "quiescence": {"max_wait_s": 0}},
        "lanes": {"quick": {"command": ["true"]}, "slow": {"command": ["sleep", "0.4"]}},
        "kpis": {"quick_s": {"lane": "quick", "metric": "wall_s", "target": 30},
                 "slow_s": {"lane": "slow", "metric": "wall_s", "target": 30}},
    }
    (tmp_path / "budgets.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    trace = tmp_path / "trace.txt"
    run = subprocess.run(["strace", "-f", "-y", "-e", "trace=fsync,fdatasync", "-o", str(trace),
                          sys.executable, "-m", "molt_budget", "check", "--no-base", "--quiet"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    synced = [line for line in trace.read_text().splitlines() if "journal.jsonl>" in line]
    assert len(synced) == 1, synced


def test_a_check_runs_almost_no_cyclic_collections_and_gives_the_threshold_back(tmp_path: Path) -> None:
    """The command keeps what it builds until it ends: at CPython's default threshold a check of
    a few diagnostics lanes ran dozens of collections walking the same tables. Counted with
    gc.callbacks around a real check; the caller's threshold is unchanged after."""
    import gc

    payload = tmp_path / "diag.json"
    payload.write_text('{"module_count": 3, "module_reasons": {'
                       + ",".join(f'"m{i}": ["core_closure"]' for i in range(6000)) + '}, "frontend_module_timings": ['
                       + ",".join(f'{{"module": "m{i}", "total_s": 0.01}}' for i in range(6000)) + "]}")
    doc = {
        "version": 1, "defaults": {"timeout_s": 60, "retries": 0, "repeats": 1},
        "settings": {"output_root": "out", "history": "out/history.sqlite", "quiescence": {"max_wait_s": 0}},
        "lanes": {f"l{i}": {"command": ["cp", str(payload), "${diagnostics_file}"], "diagnostics": True} for i in range(4)},
        "kpis": {f"k{i}": {"lane": f"l{i}", "metric": "diag.module_count", "class": "exact", "target": 3} for i in range(4)},
    }
    (tmp_path / "budgets.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    collections: list[int] = []

    def count(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    before = gc.get_threshold()
    gc.callbacks.append(count)
    try:
        assert main(["check", "--config", str(tmp_path / "budgets.yaml"), "--no-base", "--quiet"]) == 0
    finally:
        gc.callbacks.remove(count)
    assert gc.get_threshold() == before
    assert len(collections) <= 5, collections


# what a check on Linux never imports, and why each is not needed: psutil (/proc answers what
# a check asks of the host; psutil is the fallback elsewhere, ~10 ms), typing_extensions
# (msgspec's optional TypedDict support, ~18 ms: molt_budget.structs), socket (the host name
# is uname's, ~3 ms) and html (escaping for Markdown and HTML reports only, ~3 ms)
NOT_IMPORTED_BY_A_CHECK = ("psutil", "typing_extensions", "socket", "html")


def test_a_check_imports_none_of_what_it_does_not_need(tmp_path: Path) -> None:
    """Seen in the interpreter of a real check (typing_extensions is installed here, with mypy)."""
    doc = {
        "version": 1, "defaults": {"timeout_s": 60, "retries": 0, "repeats": 2},
        "settings": {"output_root": "out", "history": "out/history.sqlite", "quiescence": {"max_wait_s": 0}},
        "lanes": {"quick": {"command": ["true"]}},
        "kpis": {"quick_s": {"lane": "quick", "metric": "wall_s", "target": 30}},
    }
    (tmp_path / "budgets.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    code = ("import sys; from molt_budget.cli import main; rc = main(['check', '--no-base', '--quiet']); "
            f"print(rc, [m for m in {NOT_IMPORTED_BY_A_CHECK!r} if m in sys.modules])")
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.stdout.splitlines()[-1] == "0 []", run.stderr


# KPIs whose report is past a pipe's 64 KiB buffer: a pass row is ~80 bytes (1,000: ~80 KB), a
# failing one with its cause ~460 (300: ~140 KB; 1,000 cost a CPU-second more a run)
@pytest.mark.slow   # a CLI run of real subprocess lanes (README: what -m "not slow" skips)
@pytest.mark.parametrize("target, code, kpis", [(4200, 0, 1000), (41, 1, 300)])
def test_the_command_line_ends_without_teardown_and_loses_nothing(tmp_path: Path, target: int, code: int, kpis: int) -> None:
    """`python -m molt_budget` (and the console script, the same `cli.run`) ends with os._exit
    after `main`: every line of a report larger than a pipe's buffer arrives, the exit code is
    the verdict's, and the run is whole on disk (results without a journal, the history row)."""
    from molt_budget.results.history import History
    from molt_budget.results.store import load_results

    doc = {
        "version": 1, "defaults": {"timeout_s": 60, "retries": 0, "repeats": 1},
        "settings": {"output_root": "out", "history": "out/history.sqlite", "quiescence": {"max_wait_s": 0}},
        "lanes": {"echo": {"command": [*PY_STDLIB, "-c", "print('size: 42')"]}},
        "kpis": {f"size_{i:04d}_{'x' * 60}": {"lane": "echo", "metric": "regex:stdout:size: (\\d+)", "class": "exact",
                                               "target": target, "limit": target, "owner": "me"} for i in range(kpis)},
    }
    (tmp_path / "budgets.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    buffered = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}     # stdout a buffered pipe
    run = subprocess.run([sys.executable, "-m", "molt_budget", "check", "--no-base"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120, env=buffered)
    assert run.returncode == code, run.stderr
    assert len(run.stdout) > 1 << 16                                   # past a pipe's buffer
    assert run.stdout.rstrip().splitlines()[-1].startswith("verdict: ")
    assert sum(f"size_{i:04d}_" in run.stdout for i in range(kpis)) == kpis
    run_dir = next((tmp_path / "out" / "runs").iterdir())
    results = load_results(run_dir / "results.json")
    assert results.state == "complete" and not (run_dir / "journal.jsonl").exists()
    assert History(tmp_path / "out" / "history.sqlite").runs(limit=5)[0].run_id == results.run_id
    # what is still in stdout's buffer when `main` returns is flushed before the hard exit
    code_line = ("import sys; from molt_budget import cli; print('written-before', end=''); "
                 "sys.argv = ['molt-budget', 'validate']; cli.run()")
    late = subprocess.run([sys.executable, "-c", code_line], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                          env=buffered)
    assert late.returncode == 0 and late.stdout.startswith("written-before"), late.stderr


def test_a_lane_no_kpi_measures_builds_once_unless_it_asks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Defaults' repeats are for judging timed KPIs: a lane without KPIs (a smoke build) builds
    once in a real check, as an exact-only lane does; `repeats` on the lane itself is kept, and
    `validate` says what those builds buy. The timed lane beside it still builds three times."""
    from molt_budget.cli import main

    def project(smoke_repeats: int | None) -> Path:
        smoke: dict[str, object] = {"command": f"echo built >> {tmp_path / 'smoke.log'}"}
        if smoke_repeats is not None:
            smoke["repeats"] = smoke_repeats
        doc = {
            "version": 1, "defaults": {"timeout_s": 60, "retries": 0},
            "settings": {"output_root": "out", "history": "out/history.sqlite", "quiescence": {"max_wait_s": 0}},
            "lanes": {"smoke": smoke, "timed": {"command": f"echo built >> {tmp_path / 'timed.log'}"}},
            "kpis": {"timed_s": {"lane": "timed", "metric": "wall_s", "target": 30}},
        }
        (tmp_path / "budgets.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
        for log in ("smoke.log", "timed.log"):
            (tmp_path / log).unlink(missing_ok=True)
        return tmp_path / "budgets.yaml"

    def builds(log: str) -> int:
        return len((tmp_path / log).read_text().splitlines())

    config = project(None)
    assert main(["check", "--config", str(config), "--no-base", "--quiet", "--no-quiescence"]) == 0
    assert (builds("smoke.log"), builds("timed.log")) == (1, 3)
    assert main(["validate", "--config", str(config)]) == 0
    assert "note:" not in capsys.readouterr().out

    config = project(4)
    assert main(["check", "--config", str(config), "--no-base", "--quiet", "--no-quiescence"]) == 0
    assert (builds("smoke.log"), builds("timed.log")) == (4, 3)
    assert main(["validate", "--config", str(config)]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and notes[0].startswith("note: budgets.yaml:") and "lanes.smoke.repeats" in notes[0], notes
