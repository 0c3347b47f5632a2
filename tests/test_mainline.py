"""What counts as main, in real git repositories: dirty trees, branch runs, merged branches,
partial runs and a default branch that is not `main` never pass for main."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from test_compare_git import DEMO, check, commit, demo_repo, git

from molt_budget import gitutil
from molt_budget.budgets.ratchet import latest_main_measurements
from molt_budget.cli import main
from molt_budget.config import load_config
from molt_budget.report.tracker import kpi_rows
from molt_budget.results.history import History
from molt_budget.results.mainline import classify
from molt_budget.results.model import LaneResult, RunResults, Sample
from molt_budget.structs import replace

pytestmark = pytest.mark.slow   # real git repositories and demo builds: `pytest -m "not slow"` skips them


def history_of(repo: Path) -> History:
    return History(repo.parent / "out" / "history.sqlite")


def fake_run(commit_sha: str, lanes: list[str], *, dirty: bool = False, branch: str = "main") -> RunResults:
    """A complete, quiet run of `commit_sha` (classify only reads provenance, state and lanes)."""
    run = RunResults(run_id=f"r-{commit_sha[:7]}", config_path="budgets.yaml", config_sha256="0",
                     started_utc="2026-11-30T00:00:00Z", state="complete",
                     provenance={"commit": commit_sha, "branch": branch, "dirty": dirty})
    for lane in lanes:
        run.lanes[lane] = LaneResult(lane, "ok", samples=[Sample("measure", 0, True, metrics={"wall_s": 1.0})])
    return run


def test_dirty_tree_and_branch_runs_are_recorded_but_never_main(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = demo_repo(tmp_path)
    clean_sha = git(repo, "rev-parse", "HEAD")
    assert main(["check", "--config", str(repo / "budgets.yaml"), "--quiet"]) == 0
    history = history_of(repo)
    (clean,) = history.runs()
    assert clean.main and clean.commit == clean_sha

    # the story: an uncommitted experiment on main, checked before committing
    (repo / "hello.py").write_text("import json\n" + (DEMO / "hello.py").read_text())
    check(repo, "--no-base")
    dirty = history.runs()[0]
    assert dirty.run_id != clean.run_id and dirty.commit == clean_sha and not dirty.main
    assert "uncommitted changes in the tree" in dirty.why_not_main
    git(repo, "checkout", "--", "hello.py")

    # a branch commit
    git(repo, "checkout", "-qb", "feature")
    branch_sha = commit(repo, {"hello.py": "import json\n" + (DEMO / "hello.py").read_text()})
    _code, report = check(repo, "--base-source", "history")
    branch = history.runs()[0]
    assert branch.commit == branch_sha and not branch.main and "first-parent history" in branch.why_not_main
    # the base came from the clean main record, never from the dirty run of the same commit
    assert report["base"]["source"] == "history" and report["base"]["run_id"] == clean.run_id

    config = load_config(repo / "budgets.yaml")
    assert history.latest_main().run_id == clean.run_id
    assert latest_main_measurements(config).run_id == clean.run_id          # ratchet's input
    latest = {row.kpi.id: row.latest for row in kpi_rows(config, history)}   # the tracker's "Latest"
    assert {p.run_id for p in latest.values()} == {clean.run_id}
    assert history.main_record_for_commit(clean_sha[:10]).run_id == clean.run_id
    assert [p.run_id for p in history.kpi_series("ir_ops", "dev", "ir.ops")] == [clean.run_id]
    assert len(history.kpi_series("ir_ops", "dev", "ir.ops", main_only=False)) == 3

    assert main(["history", "--config", str(repo / "budgets.yaml")]) == 0
    listing = capsys.readouterr().out
    assert "no: uncommitted changes in the tree" in listing and "first-parent" in listing

    # the whole verdict is recorded: the branch run failed a change budget, and says so
    assert report["verdict"]["status"] in ("fail", "yellow")
    assert branch.status == report["verdict"]["status"]
    assert history.get(branch.run_id).counts == {k: v for k, v in report["verdict"]["counts"].items() if v}


def test_merged_branch_commits_and_partial_runs_are_not_main(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path)
    config = load_config(repo / "budgets.yaml")
    git(repo, "checkout", "-qb", "feature")
    inside = commit(repo, {"hello.py": "x = 1\n"}, "on the branch")
    git(repo, "checkout", "-q", "main")
    git(repo, "merge", "-q", "--no-ff", "-m", "merge feature", "feature")
    merge = git(repo, "rev-parse", "HEAD")
    assert classify(config, fake_run(merge, ["dev"]), repo).main
    inner = classify(config, fake_run(inside, ["dev"]), repo)
    assert not inner.main and inner.reasons == [f"commit {inside[:12]} (branch main) is not on main's first-parent history"]
    partial = classify(replace(config, lanes={**config.lanes, "other": config.lanes["dev"]}),
                       fake_run(merge, ["dev"]), repo)
    assert partial.reasons == ["lanes not run: other"]
    noisy = fake_run(merge, ["dev"])
    noisy.authoritative, noisy.authoritative_reasons = False, ["load1 3.0 per CPU"]
    assert classify(config, noisy, repo).reasons == ["host not quiet: load1 3.0 per CPU"]
    assert classify(config, fake_run(merge, ["dev"], dirty=True), repo).reasons == ["uncommitted changes in the tree"]


def test_default_branch_found_from_origin_head(tmp_path: Path) -> None:
    """A repository whose default branch is `master`: main is found from origin/HEAD."""
    upstream = demo_repo(tmp_path)
    git(upstream, "branch", "-qm", "main", "master")
    bare = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(upstream), str(bare)], check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(bare), str(clone)], check=True)
    config = load_config(clone / "budgets.yaml")
    assert (config.settings.main_branch, config.settings.remote_main) == ("main", "origin/main")
    assert gitutil.main_ref(clone, ["origin/main", "main"]) == "origin/master"
    head = git(clone, "rev-parse", "HEAD")
    found = classify(config, fake_run(head, ["dev"], branch="master"), clone)
    assert found.main and found.main_ref == "origin/master"
    assert gitutil.default_base(clone, ["origin/main", "main"]) == ("origin/master", head)


def test_no_main_branch_is_one_line_saying_how_to_set_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = demo_repo(tmp_path)
    git(repo, "branch", "-qm", "main", "trunk")
    config = load_config(repo / "budgets.yaml")
    found = classify(config, fake_run(git(repo, "rev-parse", "HEAD"), ["dev"], branch="trunk"), repo)
    assert not found.main and found.reasons == [gitutil.MAIN_HINT]
    assert main(["check", "--config", str(repo / "budgets.yaml"), "--quiet"]) == 0
    err = [line for line in capsys.readouterr().err.splitlines() if "note:" in line]
    assert err == [f"molt-budget: note: {gitutil.MAIN_HINT}"]
