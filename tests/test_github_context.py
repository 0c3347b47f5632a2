"""GITHUB_* context from GitHub's example payloads, workflow-command escaping, $GITHUB_OUTPUT format."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import as_report
from github_fake import EVENTS

from molt_budget.report.github import (
    GitHubClient,
    Token,
    context_from_env,
    escape_data,
    escape_property,
    marker_for,
    workflow_commands,
    write_outputs,
)


def env_for(tmp_path: Path, event: str, filename: str, **extra: str) -> dict[str, str]:
    return {"GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(EVENTS / filename), "GITHUB_REPOSITORY": "o/r",
            "GITHUB_SHA": "f" * 40, **extra}


@pytest.mark.parametrize(("event", "filename", "sha", "pr"), [
    ("pull_request", "pull_request.opened.json", "ec26c3e57ca3a959ca5aad62de7213c562f8c821", 2),
    ("merge_group", "merge_group.checks_requested.json", "2ffea6db159f6b6c47a24e778fb9ef40cf6b1c7d", None),
    ("push", "push.json", "6113728f27ae82c7b1a177c8d03f9e96e0adf246", None),
    ("workflow_run", "workflow_run.completed.json", "3484a3fb816e0859fd6e1cea078d76385ff50625", 2),
])
def test_context_per_event(tmp_path: Path, event: str, filename: str, sha: str, pr: int | None) -> None:
    ctx = context_from_env(env_for(tmp_path, event, filename, GITHUB_TOKEN="t0k3n-value"))
    assert (ctx.head_sha, ctx.pr_number, ctx.repository) == (sha, pr, "o/r")
    assert ctx.api_url == "https://api.github.com"
    assert "t0k3n-value" not in repr(ctx)


def test_token_only_from_github_token(tmp_path: Path) -> None:
    ctx = context_from_env(env_for(tmp_path, "push", "push.json", GH_TOKEN="x", INPUT_GITHUB_TOKEN="y"))
    assert ctx.token is None


def test_enterprise_api_url(tmp_path: Path) -> None:
    ctx = context_from_env(env_for(tmp_path, "push", "push.json", GITHUB_API_URL="https://ghe.example/api/v3/"))
    assert ctx.api_url == "https://ghe.example/api/v3"
    client = GitHubClient(ctx.api_url, Token("x"))
    assert client.on_base("https://ghe.example/api/v3/repos/o/r/issues/1/comments?page=2")
    assert not client.on_base("https://ghe.example/repos/o/r")                  # same host, outside the base
    assert not client.on_base("https://ghe.example.evil/api/v3/repos/o/r")
    assert not client.on_base("http://ghe.example/api/v3/repos/o/r")            # scheme change
    assert not client.on_base("https://ghe.example/api/v30/repos")


def test_escaping_matches_githubs_rules() -> None:
    assert escape_data("50% done\r\nnext: a,b") == "50%25 done%0D%0Anext: a,b"
    assert escape_property("a:b,c%\n") == "a%3Ab%2Cc%25%0A"


def test_workflow_commands_for_offending_kpis() -> None:
    report = {"config_path": "ci/budgets.yaml", "kpis": [
        {"id": "ok", "lane": "l", "status": "pass", "reason": "fine", "line": 3},
        {"id": "ir_ops", "lane": "dev,cold", "status": "fail", "reason": "131000 ops > 120000\n100% over?", "line": 38},
        {"id": "w", "lane": "l", "status": "yellow", "reason": "above target", "line": None},
    ]}
    assert workflow_commands(as_report(report)) == [
        "::error file=ci/budgets.yaml,line=38,title=ir_ops (dev%2Ccold)%3A fail::131000 ops > 120000%0A100%25 over?",
        "::warning file=ci/budgets.yaml,title=w (l)%3A yellow::above target",
    ]


def parse_github_output(text: str) -> dict[str, str]:
    """The runner's parser: `name=value` lines and `name<<DELIM` … `DELIM` blocks."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line:
            i += 1
            continue
        m = re.fullmatch(r"([^=<]+)<<(.+)", line)
        if m:
            end = lines.index(m[2], i + 1)
            values[m[1]] = "\n".join(lines[i + 1:end])
            i = end + 1
        else:
            name, _, value = line.partition("=")
            values[name] = value
            i += 1
    return values


def test_outputs_use_heredoc_for_multiline(tmp_path: Path) -> None:
    path = tmp_path / "out"
    write_outputs(path, {"verdict": "fail", "reasons": "fail a: x\nyellow b: y", "tricky": "ghadelimiter_\nx"})
    parsed = parse_github_output(path.read_text(encoding="utf-8"))
    assert parsed == {"verdict": "fail", "reasons": "fail a: x\nyellow b: y", "tricky": "ghadelimiter_\nx"}
    assert "reasons<<ghadelimiter_" in path.read_text(encoding="utf-8")


def test_marker_cannot_close_the_html_comment() -> None:
    assert marker_for(as_report({"config_path": "a-->b<c.yaml"})) == "<!-- molt-budget:a-bc.yaml -->"
    assert marker_for(as_report({})) == "<!-- molt-budget:budgets.yaml -->"


def test_event_files_are_githubs_examples() -> None:
    note = (EVENTS / "README.md").read_text(encoding="utf-8")
    assert "@octokit/webhooks-examples@7.6.1" in note
    for name in ("pull_request.opened.json", "merge_group.checks_requested.json", "push.json", "workflow_run.completed.json"):
        assert json.loads((EVENTS / name).read_text(encoding="utf-8"))["repository"]


FORGED_EVENTS = {    # name: (event, payload, the PR number the payload still gives)
    "pull_request a list": ("pull_request", {"pull_request": [1]}, None),
    "repository a list": ("push", {"repository": [1]}, None),
    "number a float, head a list": ("pull_request", {"pull_request": {"number": 1.5, "head": [1]}}, None),
    "number of 4,400 digits": ("pull_request", {"pull_request": {"number": "9" * 4400}}, None),
    "number true": ("pull_request", {"pull_request": {"number": True}}, None),
    "head sha not hex": ("pull_request", {"pull_request": {"number": 7, "head": {"sha": "zz/../x"}}}, 7),
    "after a list": ("push", {"after": ["x"]}, None),
    "merge group sha an object": ("merge_group", {"merge_group": {"head_sha": {"x": 1}}}, None),
    "workflow_run of wrong types": ("workflow_run", {"workflow_run": {"pull_requests": {"a": 1}, "head_repository": [2],
                                                                      "head_branch": 5, "head_sha": 3}}, None),
}


@pytest.mark.parametrize(("event", "payload", "pr"), list(FORGED_EVENTS.values()), ids=list(FORGED_EVENTS))
def test_a_forged_payload_gives_no_pr_and_the_env_commit(tmp_path: Path, event: str, payload: object, pr: int | None) -> None:
    """Each field is checked for its type and form where it is read: before, a list where an
    object belongs was an internal error, and 1.5 or True passed for PR numbers."""
    path = tmp_path / "event.json"
    path.write_text(json.dumps(payload))
    ctx = context_from_env({"GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": str(path), "GITHUB_REPOSITORY": "o/r",
                            "GITHUB_SHA": "f" * 40})
    assert ctx.pr_number == pr
    assert ctx.head_sha == "f" * 40 and ctx.repository == "o/r"
    assert ctx.pr_lookup is None and ctx.pr_head_sha is None


@pytest.mark.parametrize("kind", ["/dev/zero", "fifo"])
def test_an_event_path_that_is_not_a_file_is_no_payload_at_once(tmp_path: Path, kind: str) -> None:
    """`GITHUB_EVENT_PATH=/dev/zero` read for ever (a FIFO waited for a writer for ever)."""
    import os
    import threading

    path = "/dev/zero" if kind == "/dev/zero" else str(tmp_path / "event.fifo")
    if kind == "fifo":
        os.mkfifo(path)
    found: list[object] = []
    reader = threading.Thread(target=lambda: found.append(context_from_env(
        {"GITHUB_EVENT_NAME": "pull_request", "GITHUB_EVENT_PATH": path, "GITHUB_REPOSITORY": "o/r", "GITHUB_SHA": "f" * 40})),
        daemon=True)
    reader.start()
    reader.join(30)
    assert found and found[0].event == {} and found[0].pr_number is None        # type: ignore[attr-defined]


@pytest.mark.parametrize("token", ["abc\r\nX-Evil: 1", "two words", "tab\there", "caf\u00e9"])
def test_a_token_no_header_can_carry_is_refused_not_sent(tmp_path: Path, token: str) -> None:
    """A line break in GITHUB_TOKEN reached requests, which refused the header mid-post (an
    internal error); now there is no token, and publish says why."""
    ctx = context_from_env({"GITHUB_TOKEN": token, "GITHUB_REPOSITORY": "o/r", "GITHUB_SHA": "f" * 40})
    assert ctx.token is None and ctx.token_malformed


@pytest.mark.parametrize("repository", ["../../etc", "o/r/extra", "o", "o/r?x=1", "o /r"])
def test_a_repository_that_is_not_owner_slash_name_is_unknown(repository: str) -> None:
    """It goes into every API path: `../../etc` would have reached /repos/../../etc/..."""
    assert context_from_env({"GITHUB_REPOSITORY": repository, "GITHUB_SHA": "f" * 40}).repository is None
