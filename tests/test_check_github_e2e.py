"""`molt-budget check --github` end to end: a real regression in a real repo, posted to the fake GitHub."""

from __future__ import annotations

from pathlib import Path

import pytest
from github_fake import FakeGitHub, event_env, fake_github, github_server  # noqa: F401 (fixtures)
from test_compare_git import DEMO, commit, demo_repo, git

from molt_budget.cli import main

pytestmark = pytest.mark.slow   # real git repositories and demo builds: `pytest -m "not slow"` skips them


def test_check_github_posts_the_regression_with_its_reasons(
    fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    repo = demo_repo(tmp_path)
    git(repo, "checkout", "-qb", "feature")
    # import json: a real regression of every IR KPI (7 modules enter), built in a seventh of multiprocessing's time
    commit(repo, {"hello.py": "import json\n" + (DEMO / "hello.py").read_text()})
    for key, value in event_env(fake_github, tmp_path, "pull_request").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("GITHUB_SHA", git(repo, "rev-parse", "HEAD").strip())   # the commit the workflow checked out
    code = main(["check", "--config", str(repo / "budgets.yaml"), "--quiet", "--github", "--check-name", "build budgets"])
    assert code == 1
    (run,) = fake_github.check_runs.values()
    assert run["name"] == "build budgets" and run["conclusion"] == "failure"
    from molt_budget.config import load_config

    lines = {k.id: k.line for k in load_config(repo / "budgets.yaml").kpis.values()}
    notes = fake_github.annotations[next(iter(fake_github.check_runs))]
    assert {(a["path"], a["start_line"], a["annotation_level"]) for a in notes} >= {
        ("budgets.yaml", lines["ir_ops"], "failure"), ("budgets.yaml", lines["modules"], "failure"),
        ("budgets.yaml", lines["init_modules"], "warning")}         # 13 init modules: over the target, within the limit
    (comment,) = fake_github.issue_comments(2)
    body = comment["body"]
    assert "`json.decoder`" in body and "entry_closure" in body and "ir_ops" in body
    assert "molt-budget check --config budgets.yaml --base " in body
    summary = (tmp_path / "summary.md").read_text()
    assert "ir_ops" in summary
    assert fake_github.token not in capsys.readouterr().out
    # the second run edits the same comment in place
    assert main(["check", "--config", str(repo / "budgets.yaml"), "--quiet", "--github", "--check-name", "build budgets"]) == 1
    assert len(fake_github.issue_comments(2)) == 1
