"""publish(as_report()) against the fake api.github.com: sticky comment, check run batches, faults, token hygiene."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import as_report
from github_fake import DATA, TOKEN, FakeGitHub, event_env, example, fake_github, github_server, other_server  # noqa: F401 (fixtures)
from pytest_httpserver import HTTPServer

from molt_budget.report.github import GitHubClient, GitHubError, Token, publish

PR_HEAD = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"    # head of PR #2 in GitHub's example payload
REPO = "/repos/Codertocat/Hello-World"


def report(name: str = "report_fail.json") -> dict[str, Any]:
    return json.loads((DATA / name).read_text(encoding="utf-8"))


def many_offending(n: int) -> dict[str, Any]:
    """A failing report with `n` offending KPIs on distinct budgets.yaml lines."""
    r = report()
    base = r["kpis"][0]
    r["kpis"] = [dict(base, id=f"kpi_{i}", line=10 + i, status="fail" if i % 2 else "yellow") for i in range(n)]
    return r


class Sleeps(list):
    """The injected sleep: records, never waits."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_sticky_comment_is_updated_in_place_across_pages(fake_github: FakeGitHub, tmp_path: Path) -> None:
    for i in range(150):                              # 100 per page: the list spans two pages
        fake_github.add_comment(2, f"unrelated comment {i}")
    env = event_env(fake_github, tmp_path, "pull_request")
    first = publish(as_report(report()), env=env, sleep=Sleeps())
    second = publish(as_report(report()), env=env, sleep=Sleeps())
    ours = [c for c in fake_github.issue_comments(2) if c["body"].startswith("<!-- molt-budget:budgets.yaml -->")]
    assert (first.comment, second.comment) == ("created", "updated")
    assert len(ours) == 1 and len(fake_github.issue_comments(2)) == 151
    assert first.comment_url == second.comment_url
    assert len(fake_github.requests_to("POST", r"/issues/2/comments$")) == 1
    assert len(fake_github.requests_to("PATCH", r"/issues/comments/\d+$")) == 1
    pages = [s.query.get("page", "1") for s in fake_github.requests_to("GET", r"/issues/2/comments$")]
    assert pages == ["1", "2", "1", "2"]


def test_one_comment_per_config_and_duplicates_removed(fake_github: FakeGitHub, tmp_path: Path) -> None:
    env = event_env(fake_github, tmp_path, "pull_request")
    fake_github.add_comment(2, "<!-- molt-budget:budgets.yaml -->\nold", "github-actions[bot]", "Bot")
    fake_github.add_comment(2, "<!-- molt-budget:budgets.yaml -->\nrace duplicate", "github-actions[bot]", "Bot")
    fake_github.add_comment(2, "quoting: <!-- molt-budget:budgets.yaml --> is not at the start", "someone")
    other = report()
    other["config_path"] = "ci/other-budgets.yaml"
    publish(as_report(report()), env=env, sleep=Sleeps())
    publish(as_report(other), env=env, sleep=Sleeps())
    bodies = [c["body"] for c in fake_github.issue_comments(2)]
    assert sum(b.startswith("<!-- molt-budget:budgets.yaml -->") for b in bodies) == 1
    assert sum(b.startswith("<!-- molt-budget:ci/other-budgets.yaml -->") for b in bodies) == 1
    assert any(b.startswith("quoting") for b in bodies)


def test_120_annotations_go_50_50_20(fake_github: FakeGitHub, tmp_path: Path) -> None:
    env = event_env(fake_github, tmp_path, "pull_request")
    outcome = publish(as_report(many_offending(120)), env=env, sleep=Sleeps())
    assert outcome.annotation_batches == [50, 50, 20]
    run_id = outcome.check_run_id
    assert run_id is not None
    notes = fake_github.annotations[run_id]
    assert len(notes) == 120 and fake_github.check_runs[run_id]["output"]["annotations_count"] == 120
    assert {n["path"] for n in notes} == {"budgets.yaml"}
    assert sorted(n["start_line"] for n in notes) == list(range(10, 130))
    assert {n["annotation_level"] for n in notes} == {"failure", "warning"}
    sizes = [len(s.body["output"]["annotations"]) for s in fake_github.seen if s.path.startswith(REPO + "/check-runs")]
    assert sizes == [50, 50, 20]
    run = fake_github.check_runs[run_id]
    assert (run["name"], run["head_sha"], run["conclusion"]) == ("molt-budget", PR_HEAD, "failure")


@pytest.mark.parametrize(("name", "status", "conclusion"), [
    ("pass", "pass", "success"), ("yellow", "yellow", "neutral"), ("error", "error", "failure"), ("skipped", "pass", "neutral"),
])
def test_conclusions(fake_github: FakeGitHub, tmp_path: Path, name: str, status: str, conclusion: str) -> None:
    r = report()
    r["verdict"]["status"] = status
    r["kpis"] = [] if name == "skipped" else [dict(k, status=status) for k in r["kpis"]]
    outcome = publish(as_report(r), env=event_env(fake_github, tmp_path, "pull_request"), check_name="budgets / molt", sleep=Sleeps())
    run = fake_github.check_runs[outcome.check_run_id or -1]
    assert (run["conclusion"], run["name"]) == (conclusion, "budgets / molt")


def test_fork_403_falls_back_to_summary_and_workflow_commands(fake_github: FakeGitHub, tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    fake_github.read_only = True
    env = event_env(fake_github, tmp_path, "pull_request")
    outcome = publish(as_report(report()), env=env, sleep=Sleeps())
    out = capsys.readouterr().out
    assert outcome.fell_back and outcome.comment is None and outcome.check_run_id is None
    lines = out.splitlines()
    assert [line for line in lines if "403" in line] == [line for line in lines if "fell back" in line]
    assert len([line for line in lines if "403" in line]) == 1
    assert "::error file=budgets.yaml,line=31,title=ir_size_mb (dev_cold)%3A fail::13.25 MB is above the limit 12 MB" in lines
    assert any(line.startswith("::warning file=budgets.yaml,line=45,") for line in lines)
    assert outcome.workflow_commands == 3
    summary = (tmp_path / "summary.md").read_text(encoding="utf-8")
    assert "molt-budget: FAIL" in summary and "could not post" in summary
    assert "verdict=fail\n" in (tmp_path / "output.txt").read_text(encoding="utf-8")
    assert not fake_github.check_runs and not fake_github.issue_comments(2)


def test_422_names_the_endpoint_and_keeps_going(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.commits = {"1" * 40}                  # GitHub does not know the PR's head: 422
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=Sleeps())
    assert outcome.comment == "created"
    line = next(m for m in outcome.messages if "check run" in m)
    assert "POST /repos/Codertocat/Hello-World/check-runs" in line and "422" in line and "No commit found" in line
    assert outcome.check_run_id is None and outcome.fell_back and outcome.workflow_commands == 3


def test_5xx_then_success_is_retried(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("POST", r"/check-runs$", 502, times=2)
    fake_github.fail("GET", r"/comments$", 500, times=1)
    sleeps = Sleeps()
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=sleeps)
    assert outcome.check_run_id is not None and outcome.comment == "created"
    assert sleeps == [1.0, 1.0, 2.0]
    assert len(fake_github.check_runs) == 1


def test_5xx_forever_gives_up_after_bounded_attempts(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("POST", r"/check-runs$", 503, times=100)
    sleeps = Sleeps()
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=sleeps)
    assert len(fake_github.requests_to("POST", r"/check-runs$")) == 4
    assert any("gave up after 4 attempts (HTTP 503)" in m for m in outcome.messages)
    assert outcome.workflow_commands == 3


def test_redirects_are_not_followed(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("POST", r"/check-runs$", 307, {"message": "Moved"}, {"Location": "http://127.0.0.1:9/repos/x/y/check-runs"})
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=Sleeps())
    assert any("307" in m and "redirects are not followed" in m for m in outcome.messages)
    assert len(fake_github.requests_to("POST", r"/check-runs$")) == 1


def test_429_honours_retry_after(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.fail("POST", r"/issues/2/comments$", 429, {"message": "Too many requests"}, {"retry-after": "7"})
    sleeps = Sleeps()
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=sleeps)
    assert sleeps == [7.0] and outcome.comment == "created"


def test_secondary_rate_limit_403_waits(fake_github: FakeGitHub, tmp_path: Path) -> None:
    body = {"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
            "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api", "status": "403"}
    fake_github.fail("POST", r"/check-runs$", 403, body)
    sleeps = Sleeps()
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=sleeps)
    assert sleeps == [60.0] and outcome.check_run_id is not None and not outcome.fell_back


def test_primary_rate_limit_waits_until_reset(fake_github: FakeGitHub, tmp_path: Path) -> None:
    reset = int(time.time()) + 20
    fake_github.fail("GET", r"/comments$", 403, {"message": "API rate limit exceeded"},
                     {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    sleeps = Sleeps()
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=sleeps)
    assert len(sleeps) == 1 and 15 <= sleeps[0] <= 22
    assert outcome.comment == "created" and not outcome.fell_back


def test_primary_rate_limit_far_away_is_not_waited_for(fake_github: FakeGitHub, tmp_path: Path) -> None:
    reset = int(time.time()) + 3600
    fake_github.fail("GET", r"/comments$", 403, {"message": "API rate limit exceeded"},
                     {"x-ratelimit-remaining": "0", "x-ratelimit-reset": str(reset)})
    sleeps = Sleeps()
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=sleeps)
    assert sleeps == [] and any("rate limited" in m and "more than the 60s" in m for m in outcome.messages)
    assert outcome.comment is None and outcome.check_run_id is not None     # a rate limit is not a fork's 403
    assert not any("fork" in m for m in outcome.messages)


def test_pagination_never_leaves_the_api_base(fake_github: FakeGitHub, other_server: HTTPServer, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    other_server.clear()
    trap = FakeGitHub(other_server)                    # another port on 127.0.0.1 = another origin
    for i in range(120):
        fake_github.add_comment(2, f"comment {i}")
    fake_github.next_link_base = trap.url
    publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=Sleeps())
    assert trap.seen == []
    assert "not following a pagination link off" in capsys.readouterr().err
    other_server.clear()


def test_enterprise_api_base(github_server: HTTPServer, tmp_path: Path) -> None:
    github_server.clear()
    fake = FakeGitHub(github_server, prefix="/api/v3")
    for i in range(101):
        fake.add_comment(2, f"c{i}")
    env = event_env(fake, tmp_path, "pull_request", GITHUB_SERVER_URL="https://ghe.example")
    outcome = publish(as_report(report()), env=env, sleep=Sleeps())
    github_server.clear()
    assert outcome.comment == "created" and outcome.check_run_id is not None
    assert [s.query.get("page", "1") for s in fake.requests_to("GET", "comments")] == ["1", "2"]
    assert all(s.path.startswith("/repos/") for s in fake.seen) and fake.url.endswith("/api/v3")
    assert fake.violations == []
    assert fake.check_runs[outcome.check_run_id]["details_url"] == "https://ghe.example/Codertocat/Hello-World/actions/runs/4242"


def test_merge_group_posts_a_check_run_only(fake_github: FakeGitHub, tmp_path: Path) -> None:
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "merge_group"), sleep=Sleeps())
    assert outcome.comment is None and fake_github.comments == {}
    assert fake_github.check_runs[outcome.check_run_id or -1]["head_sha"] == "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d"


def test_workflow_run_of_a_fork_pr_finds_the_pr(fake_github: FakeGitHub, tmp_path: Path) -> None:
    payload = json.loads((DATA / "events" / "workflow_run.completed.json").read_text(encoding="utf-8"))
    run = payload["workflow_run"]
    run.update(event="pull_request", pull_requests=[], head_branch="fork-feature")   # GitHub omits fork PRs
    run["head_repository"]["owner"]["login"] = "forker"
    other, pr = example("pull-request-simple-items")[0], example("pull-request-simple-items")[0]
    other["head"].update(label="forker:fork-feature", sha="f" * 40)       # an older PR from the same branch
    other.update(number=1)
    pr["head"].update(label="forker:fork-feature", sha=run["head_sha"])
    pr.update(number=2, state="open")
    for item in (pr, other):
        item["requested_teams"] = []        # GitHub's example team lacks the `type` its schema requires
    fake_github.pulls = [other, pr]
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "workflow_run", payload), sleep=Sleeps())
    assert outcome.comment == "created" and fake_github.issue_comments(2)
    assert fake_github.requests_to("GET", r"/pulls$")[0].query["head"] == "forker:fork-feature"
    assert fake_github.check_runs[outcome.check_run_id or -1]["head_sha"] == run["head_sha"]


def workflow_run_payload(pr_head: str | None = None) -> dict[str, Any]:
    payload = json.loads((DATA / "events" / "workflow_run.completed.json").read_text(encoding="utf-8"))
    run = payload["workflow_run"]
    run["pull_requests"][0]["head"]["sha"] = pr_head or run["head_sha"]
    return payload


def test_workflow_run_from_the_example_payload(fake_github: FakeGitHub, tmp_path: Path) -> None:
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "workflow_run", workflow_run_payload()), sleep=Sleeps())
    assert outcome.comment == "created" and fake_github.issue_comments(2)
    run = fake_github.check_runs[outcome.check_run_id or -1]
    assert run["head_sha"] == "3484a3fb816e0859fd6e1cea078d76385ff50625"
    assert run["details_url"] == "https://github.com/octo-org/octo-repo/actions/runs/289782451"
    assert "https://github.com/octo-org/octo-repo/actions/runs/289782451" in run["output"]["summary"]


def test_workflow_run_of_an_older_head_gets_no_comment(fake_github: FakeGitHub, tmp_path: Path) -> None:
    """GitHub's example as it is: the PR's head (ec26c3e5) is not the commit the run measured."""
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "workflow_run"), sleep=Sleeps())
    assert outcome.comment is None and fake_github.issue_comments(2) == []
    assert any("PR #2 has moved on to ec26c3e57ca3" in m for m in outcome.messages)
    run = fake_github.check_runs[outcome.check_run_id or -1]
    assert run["head_sha"] == "3484a3fb816e0859fd6e1cea078d76385ff50625" and not outcome.fell_back


def test_workflow_run_asks_github_for_the_prs_head_now(fake_github: FakeGitHub, tmp_path: Path) -> None:
    """The payload still says the PR is at the run's commit, but a newer commit was pushed since."""
    payload = workflow_run_payload()
    run = payload["workflow_run"]
    pr = example("pull-request-simple-items")[0]
    pr.update(number=2, state="open", requested_teams=[])
    pr["head"].update(label=f"{run['head_repository']['owner']['login']}:{run['head_branch']}", sha="a" * 40)
    fake_github.pulls = [pr]
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "workflow_run", payload), sleep=Sleeps())
    assert outcome.comment is None and fake_github.issue_comments(2) == []
    assert fake_github.requests_to("GET", r"/pulls$")[0].query["head"] == "octo-org:master"
    assert outcome.check_run_id is not None
    pr["head"]["sha"] = run["head_sha"]                       # the PR is still where the run measured
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "workflow_run", payload), sleep=Sleeps())
    assert outcome.comment == "created"


def test_no_token_reports_through_the_job_only(fake_github: FakeGitHub, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request", token=None), sleep=Sleeps())
    assert fake_github.seen == [] and outcome.workflow_commands == 3 and outcome.summary_written
    assert "GITHUB_TOKEN is not set" in capsys.readouterr().out


def test_every_request_has_a_timeout(fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    timeouts: list[Any] = []
    real_send = requests.Session.send

    def send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        timeouts.append(kwargs.get("timeout"))
        return real_send(self, request, **kwargs)

    monkeypatch.setattr(requests.Session, "send", send)
    for i in range(130):
        fake_github.add_comment(2, f"c{i}")
    fake_github.fail("POST", r"/check-runs$", 502)
    publish(as_report(many_offending(60)), env=event_env(fake_github, tmp_path, "pull_request"), sleep=Sleeps())
    publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=Sleeps())
    assert len(timeouts) == len(fake_github.seen) >= 9
    assert all(isinstance(t, tuple) and all(x and x > 0 for x in t) for t in timeouts)


@pytest.mark.slow
def test_length_limits_hold_for_a_huge_report(fake_github: FakeGitHub, tmp_path: Path) -> None:
    r = many_offending(400)
    r["diff"]["modules_added"] = [{"module": f"pkg{i}.mod", "reasons": ["import " + "x" * 200]} for i in range(20000)]
    r["diff"]["functions_added"] = [f"molt_init_{i}" for i in range(50000)]
    outcome = publish(as_report(r), env=event_env(fake_github, tmp_path, "pull_request"), sleep=Sleeps())
    (comment,) = fake_github.issue_comments(2)
    assert len(comment["body"]) <= 65_536 and comment["body"].startswith("<!-- molt-budget:budgets.yaml -->")
    run = fake_github.check_runs[outcome.check_run_id or -1]
    assert len(run["output"]["summary"]) <= 65_535
    assert "Full report: the `report.json` artifact of https://github.com/Codertocat/Hello-World/actions/runs/4242" in comment["body"]
    assert len(fake_github.annotations[run["id"]]) == 400
    assert fake_github.violations == []


# -- the token never shows -------------------------------------------------------------


def test_token_never_appears_anywhere(fake_github: FakeGitHub, tmp_path: Path, capfd: pytest.CaptureFixture[str],
                                      caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG")
    seen: list[str] = []
    env = event_env(fake_github, tmp_path, "pull_request")
    # GitHub echoing the token back in an error body must not leak it either
    fake_github.fail("POST", r"/check-runs$", 422, {"message": f"Validation Failed for {TOKEN}", "status": "422"})
    seen.append(repr(publish(as_report(report()), env=env, sleep=Sleeps())))
    fake_github.read_only = True
    seen.append(repr(publish(as_report(report()), env=env, sleep=Sleeps())))
    fake_github.read_only = False
    fake_github.fail("GET", r"/comments$", 500, times=10)
    fake_github.fail("POST", r"/check-runs$", 500, times=10)
    seen.append(repr(publish(as_report(report()), env=env, sleep=Sleeps())))
    dead = dict(env, GITHUB_API_URL="http://127.0.0.1:9")    # nothing listens: connection refused
    seen.append(repr(publish(as_report(report()), env=dead, sleep=Sleeps())))
    client = GitHubClient(fake_github.url, Token(TOKEN), sleep=Sleeps())
    fake_github.fail("GET", r"/check-runs/1$", 404, {"message": f"Not Found {TOKEN}"})
    with pytest.raises(GitHubError) as info:
        client.json("GET", "/repos/Codertocat/Hello-World/check-runs/1")
    seen += [repr(client), repr(Token(TOKEN)), str(Token(TOKEN)), f"{Token(TOKEN)}", str(info.value),
             "".join(info.getrepr(showlocals=True).__str__())]
    captured = capfd.readouterr()
    seen += [captured.out, captured.err, caplog.text]
    for name in ("summary.md", "output.txt"):
        seen.append((tmp_path / name).read_text(encoding="utf-8"))
    assert all(TOKEN not in text for text in seen)
    assert all(s.authorization == f"Bearer {TOKEN}" for s in fake_github.seen)


def test_token_is_not_picklable() -> None:
    import pickle

    with pytest.raises(TypeError):
        pickle.dumps(Token(TOKEN))


# -- who owns the sticky comment, and the check run always goes out ----------------------


def test_only_our_bots_comment_is_adopted(fake_github: FakeGitHub, tmp_path: Path) -> None:
    """Anyone can paste the marker: a person's or another bot's comment is never edited or deleted."""
    env = event_env(fake_github, tmp_path, "pull_request")
    marker = "<!-- molt-budget:budgets.yaml -->"
    by_user = fake_github.add_comment(2, marker + "\nI wrote this myself", "mallory", "User")
    by_other_bot = fake_github.add_comment(2, marker + "\nanother bot", "dependabot[bot]", "Bot")
    outcome = publish(as_report(report()), env=env, sleep=Sleeps())
    assert outcome.comment == "created"
    bodies = {c["id"]: c["body"] for c in fake_github.issue_comments(2)}
    assert bodies[by_user["id"]].endswith("I wrote this myself") and bodies[by_other_bot["id"]].endswith("another bot")
    assert not fake_github.requests_to("PATCH", r"/issues/comments/") and not fake_github.requests_to("DELETE", r"/issues/comments/")
    assert publish(as_report(report()), env=env, sleep=Sleeps()).comment == "updated"        # its own comment, the next time
    assert len(fake_github.issue_comments(2)) == 3


def test_a_configured_app_comment_is_adopted(fake_github: FakeGitHub, tmp_path: Path) -> None:
    env = event_env(fake_github, tmp_path, "pull_request")
    mine = fake_github.add_comment(2, "<!-- molt-budget:budgets.yaml -->\nold", "budget-app[bot]", "Bot")
    assert publish(as_report(report()), env=env, sleep=Sleeps()).comment == "created"         # not github-actions[bot]
    fake_github.comments.clear()
    mine = fake_github.add_comment(2, "<!-- molt-budget:budgets.yaml -->\nold", "budget-app[bot]", "Bot")
    outcome = publish(as_report(report()), env=env, sleep=Sleeps(), bot_login="budget-app[bot]")
    assert outcome.comment == "updated" and fake_github.issue_comments(2)[0]["id"] == mine["id"]


def test_a_refused_comment_does_not_stop_the_check_run(fake_github: FakeGitHub, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A token without pull-requests: write still creates the check run: the required check is never left pending."""
    from github_fake import FORK_403

    fake_github.fail("POST", r"/issues/2/comments$", 403, FORK_403)
    outcome = publish(as_report(report()), env=event_env(fake_github, tmp_path, "pull_request"), sleep=Sleeps())
    assert outcome.comment is None and outcome.check_run_id is not None and not outcome.fell_back
    assert fake_github.check_runs[outcome.check_run_id]["conclusion"] == "failure"
    lines = capsys.readouterr().out.splitlines()
    assert [line for line in lines if "403" in line] == [
        line for line in lines if "could not post the PR comment" in line and "the check run carries the verdict" in line]
    assert outcome.workflow_commands == 0                # the check run has the annotations


def test_a_budget_only_failure_is_annotated_at_its_line(fake_github: FakeGitHub, tmp_path: Path) -> None:
    r = report()
    r["kpis"] = [dict(k, status="pass") for k in r["kpis"]]
    r["verdict"] = {"status": "fail", "counts": {"pass": len(r["kpis"]), "budget_fail": 1}}
    r["budget_changes"] = [
        {"kpi": "ir_ops", "lane": "dev_cold", "kind": "loosened", "field": "target", "old": 100000, "new": 400000,
         "justification": "bigger stdlib", "owner": "fe", "status": "fail", "line": 39,
         "reason": "budget far looser than measured: target 400000 is above measured 98000 + 50%"},
        {"kpi": None, "lane": None, "kind": "loosened", "field": "settings.compare_on", "old": ["python"], "new": [],
         "justification": "new runners", "owner": "", "status": "yellow", "line": 7, "reason": "justified"},
    ]
    outcome = publish(as_report(r), env=event_env(fake_github, tmp_path, "pull_request"), sleep=Sleeps())
    run = fake_github.check_runs[outcome.check_run_id or -1]
    assert run["output"]["title"] == "FAIL (5 pass, 1 budget fail, 1 budget yellow)"
    notes = fake_github.annotations[run["id"]]
    assert [(n["start_line"], n["annotation_level"]) for n in notes] == [(39, "failure"), (7, "warning")]
    assert notes[0]["title"] == "budget change ir_ops target: fail"
    assert "100000 -> 400000" in notes[0]["message"] and "far looser" in notes[0]["message"]
    assert "justification: bigger stdlib" in notes[0]["message"]
    # a read-only token: the same findings as workflow commands
    import io

    fake_github.read_only = True
    out = io.StringIO()
    outcome = publish(as_report(r), env=event_env(fake_github, tmp_path, "pull_request"), sleep=Sleeps(), stream=out)
    lines = out.getvalue().splitlines()
    assert outcome.fell_back and outcome.workflow_commands == 2
    assert any(line.startswith("::error file=budgets.yaml,line=39,title=budget change ir_ops target%3A fail::100000 -> 400000")
               for line in lines)
    assert any(line.startswith("::warning file=budgets.yaml,line=7,title=budget change settings.compare_on%3A yellow::")
               for line in lines)


def test_budget_findings_become_workflow_commands(tmp_path: Path) -> None:
    from molt_budget.report.github import workflow_commands

    r = {"config_path": "budgets.yaml", "kpis": [], "budget_changes": [
        {"kpi": None, "lane": "cold", "field": "command", "old": ["a"], "new": ["b"], "status": "fail", "line": 12,
         "reason": "lane changed without a justification", "justification": ""},
        {"kpi": "ops", "lane": "cold", "field": "target", "old": 1, "new": 2, "status": "pass", "line": 20, "reason": "x"},
    ]}
    assert workflow_commands(as_report(r)) == [
        '::error file=budgets.yaml,line=12,title=budget change lane cold command%3A fail::["a"] -> ["b"]: lane changed '
        'without a justification']
