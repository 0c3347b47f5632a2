"""molt-budget-main.yml: its shape (least privilege, never a push to main) and a real run under act.

The act run is the whole push-to-main pipeline in host mode: plan, the lane-group matrix
(`molt-budget run` per group), merge, judge and `history push` against a local bare remote.
Only the actions that would download from github.com are replaced by local stand-ins
(tests/github_data/act/); checkout is act's copy of the repository, whose origin is the bare remote.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from github_fake import DATA, TOKEN, FakeGitHub, fake_github, github_server  # noqa: F401 (fixtures)
from test_github_workflows import load, tool

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / ".github" / "workflows" / "molt-budget-main.yml"
PR = REPO / ".github" / "workflows" / "molt-budget-pr.yml"
BRANCH = "molt-budget-data"
STANDINS = {
    "actions/setup-python@a26af69be951a213d495a4c3e4e4022e16d87065": DATA / "act" / "setup-python",
    "actions/upload-artifact@ea165f8d65b6e75b540449e92b4886f43607fa02": DATA / "act" / "upload-artifact",
    "actions/download-artifact@d3f86a106a0bac45b974a628896c90dbdf5c8093": DATA / "act" / "download-artifact",
}


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout.strip()


# -- shape -----------------------------------------------------------------------------


def test_main_workflow_triggers_and_least_privilege() -> None:
    doc = load(MAIN)
    assert set(doc["on"]) == {"push", "schedule", "workflow_dispatch"} and doc["on"]["push"] == {"branches": ["main"]}
    assert doc["permissions"] == {}
    assert "concurrency" not in doc               # a pending run is never cancelled: every merge records
    perms = {name: job.get("permissions") for name, job in doc["jobs"].items()}
    assert perms == {
        "plan": {}, "measure": {"contents": "read"}, "record": {"contents": "write"},
        "publish": {"contents": "write", "pull-requests": "write"},
    }
    record = "\n".join(s.get("run", "") for s in doc["jobs"]["record"]["steps"])
    assert "molt-budget merge" in record and "molt-budget history push" in record and "--results merged.json" in record
    publish = doc["jobs"]["publish"]
    assert "github.event_name != 'push'" in publish["if"]          # daily / manual only
    scripts = "\n".join(s.get("run", "") for s in publish["steps"])
    assert "history pull" in scripts and "--site site" in scripts and "gh pr create" in scripts
    # the tracker goes through a pull request: nothing is ever pushed to main or the default branch
    pushes = [line for line in scripts.splitlines() if "git push" in line]
    assert pushes == ['git push --force origin "HEAD:refs/heads/$TRACKER_BRANCH"']
    assert load(MAIN)["env"]["TRACKER_BRANCH"] not in ("main", "master")


def test_pr_workflow_reads_the_data_branch_read_only() -> None:
    doc = load(PR)
    assert doc["permissions"] == {"contents": "read"}
    measure = doc["jobs"]["measure"]
    checkout = measure["steps"][0]
    assert checkout["with"]["fetch-depth"] == 0 and checkout["with"]["persist-credentials"] is False
    scripts = "\n".join(s.get("run", "") for s in measure["steps"])
    assert "molt-budget history pull" in scripts and "--no-fetch" in scripts
    assert "history push" not in PR.read_text(encoding="utf-8")
    # an exact-only lane group exists, so at least one group takes its base from main's record
    groups = json.loads(doc["env"]["LANE_GROUPS"])
    assert "dev_cold" in groups


# -- a real run under act ----------------------------------------------------------------

LANES = ["dev_cold", "dev_warm", "dev_nocache_daemon_on", "release_nocache_warm",
         "release_fast_warm", "release_fast_cold", "release_fast_nocache"]


def project(tmp_path: Path, judged: list[str] = LANES) -> tuple[Path, Path]:
    """A bare remote and a clone on main holding the real main workflow and a budgets file with its
    lane groups; the lanes in `judged` have a KPI (each KPI is one more trend chart to draw)."""
    remote = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(remote))
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(remote), str(work))
    git(work, "config", "user.email", "dev@example.com")
    git(work, "config", "user.name", "dev")
    doc = {
        "version": 1,
        "defaults": {"timeout_s": 60, "repeats": 1, "retries": 0},
        "settings": {"quiescence": {"max_wait_s": 0}},
        "lanes": {lane: {"command": ["${python}", "-S", "-c", f"print('ops: {100 + i}')"]} for i, lane in enumerate(LANES)},
        "kpis": {f"{lane}_ops": {"lane": lane, "metric": "regex:stdout:ops: (\\d+)", "class": "exact", "target": 1000}
                 for lane in judged},
    }
    (work / "budgets.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    (work / ".gitignore").write_text(".molt-budget/\n")
    (work / ".github" / "workflows").mkdir(parents=True)
    (work / ".github" / "workflows" / MAIN.name).write_text(MAIN.read_text(encoding="utf-8"))
    git(work, "add", "-A")
    git(work, "commit", "-qm", "main")
    git(work, "push", "-q", "origin", "HEAD:main")
    return remote, work


# GitHub's API is not reachable: `gh` is a stand-in that logs its arguments and answers
# `pr list` with the pull request a previous `pr create` opened (every git push is real).
GH = """#!/bin/sh
printf '%s\\n' "$*" >> "$GH_LOG"
case "$1 $2" in
  "pr list") if [ -f "$GH_LOG.pr" ]; then cat "$GH_LOG.pr"; fi ;;
  "pr create") echo 7 > "$GH_LOG.pr"; echo "https://github.com/o/r/pull/7" ;;
esac
"""


def run_act(tmp_path: Path, work: Path, fake: FakeGitHub, event_name: str = "push") -> tuple[list[dict[str, Any]], str]:
    shim = tmp_path / "bin" / "molt-budget"
    shim.parent.mkdir(exist_ok=True)
    shim.write_text(f"#!/bin/sh\nexec '{sys.executable}' -m molt_budget \"$@\"\n", encoding="utf-8")
    shim.chmod(0o755)
    (tmp_path / "bin" / "gh").write_text(GH, encoding="utf-8")
    (tmp_path / "bin" / "gh").chmod(0o755)
    event = tmp_path / f"{event_name}.json"
    payload: dict[str, Any] = {"ref": "refs/heads/main", "repository": {"full_name": fake.repo, "default_branch": "main"}}
    payload.update({"after": git(work, "rev-parse", "HEAD")} if event_name == "push" else {"inputs": {}})
    event.write_text(json.dumps(payload), encoding="utf-8")
    artifacts = tmp_path / "artifacts"
    artifacts.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GITHUB_", "RUNNER_", "ACTIONS_"))}
    env["PATH"] = f"{shim.parent}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{REPO}{os.pathsep}{env.get('PYTHONPATH', '')}"
    argv = [tool("act"), event_name, "-W", f".github/workflows/{MAIN.name}", "-e", str(event),
            "-P", "ubuntu-latest=-self-hosted", "--no-cache-server", "--json", "--action-cache-path", str(tmp_path / "act-cache"),
            "--env", f"GITHUB_API_URL={fake.url}", "--env", f"GITHUB_REPOSITORY={fake.repo}",
            "--env", f"STANDIN_ARTIFACT_DIR={artifacts}", "--env", f"STANDIN_UPLOAD_DIR={artifacts}",
            "--env", f"GH_LOG={tmp_path / 'gh.log'}",
            "-s", f"GITHUB_TOKEN={TOKEN}"]
    for action, folder in STANDINS.items():
        argv += ["--local-repository", f"{action}={folder}"]
    result = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    events = []
    for line in result.stdout.splitlines():
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events, result.stdout + result.stderr


@pytest.mark.slow
def test_act_main_workflow_records_main_on_the_data_branch(tmp_path: Path, fake_github: FakeGitHub) -> None:
    from molt_budget.results.record import RunRecord

    remote, work = project(tmp_path)
    head = git(work, "rev-parse", "HEAD")
    events, raw = run_act(tmp_path, work, fake_github)
    done = [(e["jobID"], e.get("matrix", {}).get("lanes"), e["jobResult"]) for e in events if "jobResult" in e]
    assert ("record", None, "success") in done, raw[-4000:]
    assert sorted(lanes for job, lanes, result in done if job == "measure" and result == "success") == sorted(
        json.loads(load(MAIN)["env"]["LANE_GROUPS"]))                  # one matrix job per lane group
    files = git(remote, "ls-tree", "-r", "--name-only", BRANCH).splitlines()
    assert len(files) == 1 and files[0].startswith("records/")
    data = subprocess.run(["git", "show", f"{BRANCH}:{files[0]}"], cwd=remote, check=True, capture_output=True).stdout
    record = RunRecord.from_gzip(data, files[0])
    assert record.main and record.commit == head and sorted(record.lanes) == sorted(LANES)
    assert record.status == "pass" and {k.id: k.value for k in record.kpis}["release_fast_nocache_ops"] == 106
    assert git(remote, "rev-parse", "main") == head             # main itself untouched
    assert "publish" not in {job for job, _lanes, _result in done}   # daily / manual only
    assert any("pushed record" in e.get("msg", "") for e in events if e.get("jobID") == "record"), raw[-4000:]
    assert TOKEN not in raw


@pytest.mark.slow
def test_act_daily_run_publishes_the_report_and_one_tracker_pull_request(tmp_path: Path, fake_github: FakeGitHub) -> None:
    # every lane group still runs; one KPI is enough for the publishing under test: the HTML report
    # draws a matplotlib chart per KPI, twice (~0.3 CPU-s a chart, ~3.5 of the test's 18 for the other six)
    remote, work = project(tmp_path, judged=[LANES[-1]])
    first = git(work, "rev-parse", "HEAD")
    events, raw = run_act(tmp_path, work, fake_github, "workflow_dispatch")
    done = {(e["jobID"], e["jobResult"]) for e in events if "jobResult" in e}
    assert ("record", "success") in done and ("publish", "success") in done, raw[-4000:]
    data = git(remote, "ls-tree", "-r", "--name-only", BRANCH).splitlines()
    assert "docs/index.html" in data and "docs/.nojekyll" in data and sum(p.startswith("records/") for p in data) == 1
    assert {p for p in data if p.startswith("docs/charts/")} == {f"docs/charts/{LANES[-1]}_ops.{ext}" for ext in ("png", "svg")}
    # the tracker page went to its own branch, one commit on top of main; main itself is untouched
    assert git(remote, "rev-parse", "main") == first
    assert git(remote, "rev-parse", "molt-budget/tracker~1") == first
    assert git(remote, "diff", "--name-only", "main", "molt-budget/tracker") == "docs/benchmarks/compile_progress.md"
    page = git(remote, "show", "molt-budget/tracker:docs/benchmarks/compile_progress.md")
    assert f"`{first[:12]}`" in page                        # main's record is in Run History
    calls = (tmp_path / "gh.log").read_text().splitlines()
    assert [c.split()[:2] for c in calls] == [["pr", "list"], ["pr", "create"]]
    assert "--head molt-budget/tracker --base main" in calls[1]
    # the next day: main moved on; the same pull request is updated, no second one is opened
    (work / "README.md").write_text("more\n")
    git(work, "add", "README.md")
    git(work, "commit", "-qm", "docs")
    git(work, "push", "-q", "origin", "HEAD:main")
    events, raw = run_act(tmp_path, work, fake_github, "workflow_dispatch")
    assert ("publish", "success") in {(e["jobID"], e["jobResult"]) for e in events if "jobResult" in e}, raw[-4000:]
    calls = (tmp_path / "gh.log").read_text().splitlines()
    assert [c.split()[:2] for c in calls[2:]] == [["pr", "list"]]
    assert git(remote, "rev-parse", "molt-budget/tracker~1") == git(work, "rev-parse", "HEAD")
    assert sum(p.startswith("records/") for p in git(remote, "ls-tree", "-r", "--name-only", BRANCH).splitlines()) == 2
