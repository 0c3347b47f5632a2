"""The shared history end to end, with real git and real runs: `history push` / `history pull`.

One bare repository is the remote. Ten commits land on its main; two clones act as main
runners, each measuring its own commits for real, then recording them at the same time (two
`history push` processes released together, five rounds). A third clone, whose remote refuses
pushes (a fork: read access only), pulls and gets its base from main's record (no base build),
sparklines of main and a noise fence learned from main's records.
"""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import demo_runtime, wait_for_file

from molt_budget.cli import main
from molt_budget.results import databranch
from molt_budget.results.history import History

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "examples" / "demo"
BRANCH = "molt-budget-data"
# a counted lane that is cheap even under valgrind: a shell loop, n.txt iterations, read by a
# builtin (one process under the counter: `$(cat n.txt)` started a second valgrind, ~0.4 s a run)
COUNT = ["sh", "-c", "read n < n.txt; i=0; while [ $i -lt $n ]; do i=$((i+1)); done"]
COMMITS = 10                     # 10 main records: the fewest the learned fence and the trends need


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


def budgets() -> dict[str, Any]:
    return {
        "version": 1,
        "defaults": {"timeout_s": 120, "repeats": 1, "retries": 0, "env": {"PYTHONHASHSEED": "0", "MOLT_CACHE": "${cache_dir}",
                                                                        "CARGO_TARGET_DIR": demo_runtime()}},
        "settings": {"output_root": ".molt-budget", "history": ".molt-budget/history.sqlite", "quiescence": {"max_wait_s": 0}},
        "lanes": {
            "dev": {"command": ["${python}", "-S", "moltdemo.py", "build", "hello.py", "--build-profile", "dev", "--no-cache",
                                "--emit-ir", "${emit_ir}", "--out-dir", "${attempt_dir}/out"], "emit_ir": True, "diagnostics": True,
                    "env": {"MOLT_BACKEND_DAEMON": "0"}},   # backend in-process: one Python start less a build
            "count": {"command": COUNT},
        },
        "kpis": {
            "ir_ops": {"lane": "dev", "metric": "ir.ops", "target": 100000, "limit": 120000, "max_increase_pct": 5},
            "init_modules": {"lane": "dev", "metric": "ir.init_modules", "target": 12, "limit": 14},
            "modules": {"lane": "dev", "metric": "diag.module_count", "target": 12, "max_increase_abs": 3},
            "ins": {"lane": "count", "metric": "instructions", "max_increase_pct": 50, "noise_floor_pct": 0.1},
        },
    }


def clone(tmp_path: Path, remote: Path, name: str) -> Path:
    work = tmp_path / name
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "config", "user.email", f"{name}@example.com")
    git(work, "config", "user.name", name)
    return work


def cli(repo: Path, *args: str) -> int:
    return main([args[0], "--config", str(repo / "budgets.yaml"), *args[1:]])


RACER = """
import sys, time
from pathlib import Path
from molt_budget import cli
ready, start = Path(sys.argv[1]), Path(sys.argv[2])
ready.write_text("imported\\n")            # Python is up and the CLI imported: only the push is left
while not start.exists():
    time.sleep(0.005)
sys.exit(cli.main(sys.argv[3:]))
"""


def push_together(jobs: list[tuple[Path, Path]], start: Path) -> list[subprocess.CompletedProcess[str]]:
    """`history push --results R` in each clone, released at the same instant."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    readies = [start.with_name(f"{start.name}.ready{i}") for i in range(len(jobs))]
    procs = [subprocess.Popen([sys.executable, "-c", RACER, str(ready), str(start), "history", "push", "--config", str(repo / "budgets.yaml"),
                               "--results", str(results)], cwd=repo, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for (repo, results), ready in zip(jobs, readies)]
    for ready in readies:
        wait_for_file(ready)             # every racer has started Python and imported the CLI
    start.touch()
    out = []
    for p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr))
    start.unlink()
    for ready in readies:
        ready.unlink()
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The remote with COMMITS main commits, each measured by one of two runners and recorded concurrently."""
    tmp = tmp_path_factory.mktemp("sync")
    remote = tmp / "remote.git"
    git(tmp, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = clone(tmp, remote, "seed")
    (seed / "budgets.yaml").write_text(yaml.safe_dump(budgets(), sort_keys=False))
    (seed / ".gitignore").write_text(".molt-budget/\n")
    for name in ("moltdemo.py", "hello.py"):
        (seed / name).write_text((DEMO / name).read_text())
    commits = []
    for k in range(COMMITS):             # main moves on: a little more work per commit (the counted KPI drifts)
        (seed / "n.txt").write_text(str(300 + 10 * k))
        git(seed, "add", "-A")
        git(seed, "commit", "-qm", f"main {k}")
        commits.append(git(seed, "rev-parse", "HEAD"))
    git(seed, "push", "-q", "origin", "HEAD:main")
    runners = [clone(tmp, remote, "runner-a"), clone(tmp, remote, "runner-b")]
    results: list[tuple[Path, Path]] = []
    for k, sha in enumerate(commits):    # runner a measures the even commits, runner b the odd ones
        runner = runners[k % 2]
        git(runner, "checkout", "-q", "--detach", sha)
        out = tmp / f"results-{k}.json"
        assert cli(runner, "run", "--quiet", "--no-history", "--results", str(out)) == 0
        results.append((runner, out))
    start = tmp / "go"
    pushes = []
    for rnd in range(COMMITS // 2):      # two merges at once, five times
        pushes += push_together([results[2 * rnd], results[2 * rnd + 1]], start)
    return {"tmp": tmp, "remote": remote, "commits": commits, "runners": runners, "pushes": pushes, "results": results}


def branch_records(remote: Path) -> list[str]:
    return [p for p in git(remote, "ls-tree", "-r", "--name-only", BRANCH).splitlines() if p.startswith("records/")]


def test_concurrent_main_runners_both_land_exactly_once(world: dict[str, Any]) -> None:
    assert [p.returncode for p in world["pushes"]] == [0] * COMMITS, [p.stderr for p in world["pushes"]]
    files = branch_records(world["remote"])
    assert len(files) == len(set(files)) == COMMITS
    recorded = {}
    for path in files:
        from molt_budget.results.record import RunRecord

        data = subprocess.run(["git", "show", f"{BRANCH}:{path}"], cwd=world["remote"], check=True, capture_output=True).stdout
        record = RunRecord.from_gzip(data, path)
        assert record.main and databranch.run_id_of(path) == record.run_id
        recorded[record.commit] = record
    assert sorted(recorded) == sorted(world["commits"])         # every main commit once, none lost
    assert git(world["remote"], "rev-list", "--count", BRANCH) == str(COMMITS)
    # the runners' checkouts are untouched: still detached at the commit they measured, clean
    for runner in world["runners"]:
        assert git(runner, "status", "--porcelain") == "" and git(runner, "branch", "--list", BRANCH) == ""


def test_push_again_is_idempotent_and_a_non_main_run_is_refused(world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    runner, results = world["results"][0]
    assert cli(runner, "history", "push", "--results", str(results)) == 0
    assert "nothing pushed" in capsys.readouterr().out
    assert len(branch_records(world["remote"])) == COMMITS
    dirty = json.loads(results.read_text())
    dirty["run_id"] = "20261201T000000000Z-dirty1"
    dirty["provenance"]["dirty"] = True
    forged = world["tmp"] / "dirty.json"
    forged.write_text(json.dumps(dirty))
    assert cli(runner, "history", "push", "--results", str(forged)) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("molt-budget: error: run 20261201T000000000Z-dirty1 is not a main record") and "\n" not in err
    assert len(branch_records(world["remote"])) == COMMITS


@pytest.fixture(scope="module")
def fork(world: dict[str, Any]) -> Path:
    """A clone that can read upstream but never write (its remote refuses every push), on a feature branch."""
    hook = world["remote"] / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'permission denied: read-only access' >&2\nexit 1\n")
    hook.chmod(0o755)
    work = clone(world["tmp"], world["remote"], "fork")
    git(work, "checkout", "-qb", "feature")
    (work / "hello.py").write_text("import json\n" + (DEMO / "hello.py").read_text())
    git(work, "commit", "-qam", "feature: import json")
    return work


def test_fork_pulls_incrementally(fork: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(fork, "history", "pull") == 0
    assert f"{COMMITS} new record(s) indexed, 0 already indexed" in capsys.readouterr().out
    history = History(fork / ".molt-budget" / "history.sqlite")
    assert len(history.indexed_ids()) == COMMITS
    assert cli(fork, "history", "pull") == 0                   # nothing new: nothing decompressed or indexed
    assert f"0 new record(s) indexed, {COMMITS} already indexed" in capsys.readouterr().out
    # a record already on the branch is not pushed again; anything new is refused by the remote, in one line
    assert cli(fork, "history", "push", "--run", sorted(history.indexed_ids())[0]) == 0
    assert "nothing pushed" in capsys.readouterr().out
    site = fork.parent / "fork-site"
    site.mkdir(exist_ok=True)
    (site / "index.html").write_text("<html></html>")
    assert cli(fork, "history", "push", "--site", str(site)) == 2
    err = capsys.readouterr().err.strip()
    assert "pre-receive hook declined" in err and len(err.splitlines()) == 1


def test_fork_takes_its_base_from_main_record_with_sparklines(fork: Path, world: dict[str, Any]) -> None:
    assert cli(fork, "history", "pull") == 0
    report_path = fork.parent / "fork-report.json"
    code = cli(fork, "check", "--quiet", "--lanes", "dev", "--no-history", "--report-json", str(report_path))
    report = json.loads(report_path.read_text())
    assert report["base"]["source"] == "history" and report["base"]["commit"] == world["commits"][-1]
    assert not (fork / ".molt-budget" / "worktrees").exists()     # no base was built
    by_id = {k["id"]: k for k in report["kpis"]}
    assert by_id["modules"]["head"] > by_id["modules"]["base"]    # import json: one more module than main
    assert code in (0, 1)
    trends = report["trends"]
    assert set(trends) >= {"ir_ops", "init_modules", "modules"}
    assert all(len(trends[k]) >= 10 for k in ("ir_ops", "init_modules", "modules"))


def test_fork_counted_kpi_uses_the_fence_learned_from_main(fork: Path, world: dict[str, Any]) -> None:
    from molt_budget.commands.check import _fences
    from molt_budget.config import load_config

    assert cli(fork, "history", "pull") == 0
    config = load_config(fork / "budgets.yaml")
    fence = _fences(config, History(config.resolve(config.settings.history)), ["count"])["ins"]
    assert fence is not None and fence > 0.1                      # learned from the main records, above the floor
    report_path = fork.parent / "fork-count.json"
    cli(fork, "check", "--quiet", "--lanes", "count", "--no-history", "--report-json", str(report_path))
    (kpi,) = json.loads(report_path.read_text())["kpis"]
    assert json.loads(report_path.read_text())["base"]["source"] == "worktree"   # counted: measured side by side
    assert "learned fence" in kpi["reason"]


def test_fork_pr_comment_shows_main_sparklines(fork: Path, world: dict[str, Any], capsys: pytest.CaptureFixture[str]) -> None:
    """What the PR comment shows: the report's trends of main, drawn by `report --markdown` (the post job's renderer)."""
    from molt_budget.report.sparkline import sparkline

    assert cli(fork, "history", "pull") == 0
    report_path = fork.parent / "fork-count.json"
    cli(fork, "check", "--quiet", "--lanes", "count", "--no-history", "--report-json", str(report_path))
    trend = json.loads(report_path.read_text())["trends"]["ins"]
    assert len(trend) == COMMITS and trend == sorted(trend)          # main did a little more work every commit
    capsys.readouterr()
    assert main(["report", str(report_path), "--markdown"]) == 0
    # the first screen's table stays narrow: the trend is the KPI's line in the folded "Trends on main"
    trends = [line for line in capsys.readouterr().out.splitlines() if line.startswith("- `ins`")]
    assert trends and sparkline(trend) in trends[0] and len(set(sparkline(trend))) > 2


def test_pull_skips_corrupt_and_forged_files_and_indexes_the_rest(world: dict[str, Any], tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """A broken file on the shared branch costs one line naming it, never the other records."""
    remote = tmp_path / "other.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = world["runners"][0]
    listing = databranch.fetch_records(seed, "origin", BRANCH)
    (good, good_bytes), (other, other_bytes) = list(databranch.read_files(seed, listing.records))[:2]
    forged = databranch.record_path("20261201T000000000Z-forged", "f" * 40, "2026-12-01T00:00:00Z")
    broken = databranch.record_path("20261201T000000000Z-broken", "f" * 40, "2026-12-01T00:00:00Z")
    # a main record under its own name whose branch holds half a UTF-16 pair: SQLite cannot store it
    doc = json.loads(gzip.decompress(good_bytes))
    doc.update(run_id="20261201T000000000Z-lone", branch="main\ud800")
    lone = databranch.record_path(doc["run_id"], doc["commit"], doc["started_utc"])
    files = {good: good_bytes, forged: other_bytes, broken: b"\x1f\x8b not really gzip",
             lone: gzip.compress(json.dumps(doc).encode())}
    databranch.push_files(seed, str(remote), BRANCH, files, "mixed")   # push to a URL/path, not a remote name
    reader = clone(tmp_path, remote, "reader")
    (reader / "budgets.yaml").write_text((seed / "budgets.yaml").read_text())
    assert cli(reader, "history", "pull") == 2
    captured = capsys.readouterr()
    assert "1 new record(s) indexed, 0 already indexed, 3 invalid file(s) skipped" in captured.out
    errors = captured.err.strip().splitlines()
    named = {e.split(": ")[2].split(":")[1] for e in errors}        # branch:path[:line]
    assert len(errors) == 3 and named == {broken, forged, lone}
    assert History(reader / ".molt-budget" / "history.sqlite").indexed_ids() == {databranch.run_id_of(good)}


def test_a_record_whose_counts_are_whole_floats_or_past_2_53_never_poisons_the_index(world: dict[str, Any], tmp_path: Path,
                                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """JSON Schema's "integer" takes 1.0 and 1e308. A pulled record with such verdict counts was
    indexed, and then every `history list` said the whole database was corrupt (and to move
    it aside, losing every record). Now 1.0 is indexed as 1, and a count past 2**53 is the
    record's one invalid-file line at pull, the others indexed."""
    remote = tmp_path / "other.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    seed = world["runners"][0]
    listing = databranch.fetch_records(seed, "origin", BRANCH)
    (_, good_bytes), = list(databranch.read_files(seed, listing.records))[:1]
    files = {}
    for name, counts in (("whole", {"pass": 2.0, "fail": 1.0}), ("huge", {"fail": 1e308})):
        doc = json.loads(gzip.decompress(good_bytes))
        doc.update(run_id=f"20261201T000000000Z-{name}", counts=counts)
        files[databranch.record_path(doc["run_id"], doc["commit"], doc["started_utc"])] = gzip.compress(json.dumps(doc).encode())
    databranch.push_files(seed, str(remote), BRANCH, files, "counts")
    reader = clone(tmp_path, remote, "reader")
    (reader / "budgets.yaml").write_text((seed / "budgets.yaml").read_text())
    assert cli(reader, "history", "pull") == 2
    captured = capsys.readouterr()
    assert "1 new record(s) indexed, 0 already indexed, 1 invalid file(s) skipped" in captured.out
    assert "-huge_" in captured.err and len(captured.err.strip().splitlines()) == 1
    history = History(reader / ".molt-budget" / "history.sqlite")
    assert [(r.run_id, r.counts) for r in history.runs()] == [("20261201T000000000Z-whole", {"pass": 2, "fail": 1})]
    assert cli(reader, "history", "list") == 0
