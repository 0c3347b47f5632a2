"""A report (or budgets file) written to attack the reviewers' view or forge the verdict.

Rendered by GitHub's own Markdown renderer (cmark-gfm with GitHub's extensions) and posted
to the fake GitHub: no live link, image, HTML or @-mention from any untrusted string; a
crash while posting still posts a failing check run and exits 4; a forged verdict or a
report for another commit never turns the check green; a slow or endless GitHub never
gets two comments, two check runs or 2,000 GETs.
"""

from __future__ import annotations

import copy
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from github_fake import (  # noqa: F401 (fixtures)
    DATA,
    MEASURED_SHA,
    TOKEN,
    FakeGitHub,
    event_env,
    fake_github,
    github_server,
    other_server,
)

from molt_budget import cli
from molt_budget.compare.model import Report
from molt_budget.errors import EXIT_CONFIG, EXIT_INTERNAL
from molt_budget.report import escape
from molt_budget.report.github import GitHubClient, RetryPolicy, publish, recomputed
from molt_budget.report.html import _page
from molt_budget.report.markdown import render_markdown
from molt_budget.report.terminal import render_report

HOSTILE = ('<a href="https://evil.example/x">click</a> <img src="https://evil.example/i.png"> @molt-budget/owners '
           '[link](https://evil.example/l) ![img](https://evil.example/p.png) https://evil.example/bare www.evil.example '
           'someone@evil.example <!-- molt-budget:budgets.yaml --> `code` **bold** \x1b[31mred\x1b[0m \u202eevil')


def report() -> dict[str, Any]:
    return json.loads((DATA / "report_fail.json").read_text(encoding="utf-8"))


def hostile_report() -> dict[str, Any]:
    r = report()
    for k in r["kpis"]:
        k.update(unit=HOSTILE, reason=HOSTILE, lane=HOSTILE)
    r["kpis"][0]["id"] = HOSTILE
    r["authoritative"] = False
    r["authoritative_reasons"] = [HOSTILE]
    r["head"]["ref"] = HOSTILE
    r["diff"]["modules_added"] = [{"module": HOSTILE, "reasons": [HOSTILE]}]
    r["budget_changes"] = [{"kpi": HOSTILE, "field": "target", "old": HOSTILE, "new": HOSTILE, "status": "fail",
                            "reason": HOSTILE, "justification": HOSTILE, "line": 3, "kind": "loosened"}]
    return r


class Elements(HTMLParser):
    """Tags, and the text outside code (GitHub links mentions and URLs only outside code)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.in_code = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self.in_code += tag in ("code", "pre")

    def handle_endtag(self, tag: str) -> None:
        self.in_code -= tag in ("code", "pre")

    def handle_data(self, data: str) -> None:
        if not self.in_code:
            self.text.append(data)

    def handle_comment(self, data: str) -> None:
        self.tags.append(("<!--", {"text": data}))


def gfm(markdown: str) -> Elements:
    """GitHub's renderer with its extensions; raw HTML kept (GitHub allows <details>, <sub>, ...)."""
    exe = shutil.which("cmark-gfm")
    if exe is None:
        pytest.skip("cmark-gfm (GitHub's Markdown renderer) is not installed")
    out = subprocess.run([exe, "--unsafe", "-e", "table", "-e", "strikethrough", "-e", "autolink", "-e", "tagfilter"],
                         input=markdown, capture_output=True, text=True, check=True).stdout
    parser = Elements()
    parser.feed(out)
    return parser


def assert_inert(markdown: str) -> None:
    page = gfm(markdown)
    live = [(tag, attrs) for tag, attrs in page.tags if tag in ("a", "img", "script", "iframe", "style", "<!--")]
    assert live == [], live
    text = "".join(page.text)
    assert not re.search(r"(?<![\w\u200b])@[A-Za-z0-9]", text), "a live @-mention"   # GitHub links @name after rendering
    assert "\x1b" not in text and "\u202e" not in text


def test_every_untrusted_string_is_inert_in_the_comment_check_run_and_summary() -> None:
    r = hostile_report()
    for max_chars in (65_536, 8_000):
        text = render_markdown(Report.from_dict(r), max_chars=max_chars, marker="<!-- molt-budget:budgets.yaml -->")
        assert text.startswith("<!-- molt-budget:budgets.yaml -->")
        assert_inert(text[len("<!-- molt-budget:budgets.yaml -->"):])
    assert "evil.example" in render_markdown(Report.from_dict(r), max_chars=65_536)    # shown, only not live


def test_the_unit_never_reaches_the_page_raw() -> None:
    r = report()
    r["kpis"][0]["unit"] = '<img src="https://evil.example/u.png">'
    text = render_markdown(Report.from_dict(r), max_chars=65_536)
    assert "<img" not in text and all(tag != "img" for tag, _ in gfm(text).tags)


def test_html_report_and_terminal_are_inert(tmp_path: Path) -> None:
    r = hostile_report()
    page = Elements()
    page.feed(_page(Report.from_dict(r), tmp_path, {}, {}, ""))
    assert [t for t, _ in page.tags if t in ("a", "img", "script")] == []
    shown = render_report(Report.from_dict(r))
    assert "\x1b" not in shown and "\u202e" not in shown


def test_escape_keeps_the_characters_a_reader_sees() -> None:
    shown = "".join(gfm(escape.markdown("a_b [x](y) <b> @me 1*2*3")).text).replace("\u200b", "").strip()
    assert shown == "a_b [x](y) <b> @me 1*2*3"
    assert escape.plain("a\udcffb\x00c\nd") == "a\ufffdb c d"


# -- the check run must never go missing ------------------------------------------------------------


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def on_pr(fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in event_env(fake, tmp_path, "pull_request").items():
        monkeypatch.setenv(key, value)


def test_a_deeply_nested_report_posts_a_failing_check(fake_github: FakeGitHub, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    on_pr(fake_github, tmp_path, monkeypatch)
    path = tmp_path / "report.json"
    path.write_text(json.dumps(report())[:-1] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}", encoding="utf-8")
    assert cli.main(["report", str(path), "--github"]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err and "nested" in err
    (run,) = fake_github.check_runs.values()
    assert run["conclusion"] == "failure" and "invalid report" in run["output"]["summary"]


def test_a_lone_surrogate_in_a_reason_is_posted(fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    on_pr(fake_github, tmp_path, monkeypatch)
    text = json.dumps(report()).replace('"reason": "', '"reason": "\\udcff lone ', 1)
    path = tmp_path / "report.json"
    path.write_text(text, encoding="utf-8")
    assert cli.main(["report", str(path), "--github"]) == 1          # the verdict: fail
    (run,) = fake_github.check_runs.values()
    assert run["conclusion"] == "failure" and "\ufffd lone" in run["output"]["summary"]
    assert "\ufffd lone" in (tmp_path / "summary.md").read_text(encoding="utf-8")


def test_a_crash_while_posting_still_posts_a_failing_check_and_exits_4(
        fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    on_pr(fake_github, tmp_path, monkeypatch)
    passing = report()
    passing["kpis"] = [dict(k, status="pass") for k in passing["kpis"]]
    passing["verdict"]["status"] = "pass"

    def broken(*args: Any, **kwargs: Any) -> str:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr("molt_budget.report.github.render_markdown", broken)
    assert cli.main(["report", str(write(tmp_path / "r.json", passing)), "--github"]) == EXIT_INTERNAL
    (run,) = fake_github.check_runs.values()
    assert run["conclusion"] == "failure" and "internal error" in run["output"]["summary"]
    assert "internal error" in capsys.readouterr().err


def test_the_action_fails_on_an_internal_error_even_when_verdicts_do_not_fail_it(tmp_path: Path) -> None:
    """action.yml's script, run by bash with a fake molt-budget exiting 4, 3 and 1."""
    import yaml

    action = yaml.safe_load((Path(__file__).resolve().parents[1] / "action.yml").read_text(encoding="utf-8"))
    script = next(s for s in action["runs"]["steps"] if s.get("id") == "report")["run"]
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    for code, step_fails in ((4, True), (2, True), (3, False), (1, False), (0, False)):
        (fake_bin / "molt-budget").write_text(f"#!/bin/sh\nexit {code}\n", encoding="utf-8")
        (fake_bin / "molt-budget").chmod(0o755)
        env = {"PATH": f"{fake_bin}:/usr/bin:/bin", "FAIL_ON_VERDICT": "false", "REPORT": "r.json", "CHECK_NAME": "c",
               "CONFIG_PATH": "budgets.yaml", "RUNNER_TEMP": str(tmp_path)}
        result = subprocess.run(["bash", "-e", "-c", script], env=env, capture_output=True, text=True, check=False)
        assert (result.returncode != 0) == step_fails, (code, result.stdout, result.stderr)


# -- a verdict nobody can forge ------------------------------------------------------------------------


def test_a_pass_verdict_over_a_failing_row_posts_a_failure(fake_github: FakeGitHub, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    on_pr(fake_github, tmp_path, monkeypatch)
    forged = report()
    forged["verdict"] = {"status": "pass", "counts": {"pass": 5}}
    assert cli.main(["report", str(write(tmp_path / "r.json", forged)), "--github"]) == 1
    (run,) = fake_github.check_runs.values()
    assert run["conclusion"] == "failure"
    assert recomputed(Report.from_dict(forged)).verdict.counts["fail"] == 2


def test_an_unknown_row_status_refuses_the_report(fake_github: FakeGitHub, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    on_pr(fake_github, tmp_path, monkeypatch)
    r = report()
    r["kpis"] = [dict(k, status="pass") for k in r["kpis"]]
    r["kpis"][0]["status"] = "passed-honest"
    r["verdict"]["status"] = "pass"
    assert cli.main(["report", str(write(tmp_path / "r.json", r)), "--github"]) == EXIT_CONFIG
    (run,) = fake_github.check_runs.values()
    assert run["conclusion"] == "failure"


def test_a_report_for_another_commit_is_refused(fake_github: FakeGitHub, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    on_pr(fake_github, tmp_path, monkeypatch)
    replayed = report()
    replayed["kpis"] = [dict(k, status="pass") for k in replayed["kpis"]]
    replayed["verdict"]["status"] = "pass"
    replayed["head"]["commit"] = "9" * 40
    assert cli.main(["report", str(write(tmp_path / "r.json", replayed)), "--github"]) == EXIT_CONFIG
    assert "refused the report" in capsys.readouterr().err
    (run,) = fake_github.check_runs.values()
    assert run["conclusion"] == "failure" and run["head_sha"] != "9" * 40
    replayed["head"]["commit"] = MEASURED_SHA                      # the commit this run checked out: fine
    fake_github.check_runs.clear()
    assert cli.main(["report", str(write(tmp_path / "r.json", replayed)), "--github"]) == 0
    (run,) = fake_github.check_runs.values()
    assert run["conclusion"] == "success"


# -- a slow or endless GitHub ---------------------------------------------------------------------------


def client(fake: FakeGitHub, read_timeout: float = 30.0) -> GitHubClient:
    """The fake checks every request against GitHub's OpenAPI description, which takes over a
    second for a 50-annotation POST on a loaded machine: a short read timeout turned these tests
    into tests of the timeout path (a flake on 3.10 under load). The one test of that path asks for it."""
    from github_fake import TOKEN as secret

    from molt_budget.report.github import Token

    return GitHubClient(fake.url, Token(secret), timeout=(2.0, read_timeout), retry=RetryPolicy(backoff_s=0.0),
                        sleep=lambda s: None)


def test_a_slow_post_never_makes_two_comments_or_two_check_runs(fake_github: FakeGitHub, tmp_path: Path) -> None:
    fake_github.answer_late("POST", r"/issues/2/comments$", 1.5)
    fake_github.answer_late("POST", r"/check-runs$", 1.5)
    outcome = publish(Report.from_dict(report()), env=event_env(fake_github, tmp_path, "pull_request"),
                      client=client(fake_github, read_timeout=0.5),        # the answers come after the timeout
                      stream=io.StringIO())
    assert len(fake_github.issue_comments(2)) == 1 and len(fake_github.check_runs) == 1
    assert outcome.comment == "created" and outcome.check_run_id in fake_github.check_runs
    assert len(fake_github.requests_to("POST", r"/check-runs$")) == 1
    assert len(fake_github.requests_to("GET", r"/commits/[0-9a-f]+/check-runs$")) == 1


def test_endless_pagination_stops_at_the_page_cap(fake_github: FakeGitHub, tmp_path: Path) -> None:
    for i in range(120):
        fake_github.add_comment(2, f"comment {i}")
    fake_github.fail("GET", r"/issues/2/comments$", 200, body=[], headers={
        "Link": f'<{fake_github.url}/repos/{fake_github.repo}/issues/2/comments?per_page=100&page=2>; rel="next"'}, times=10_000)
    outcome = publish(Report.from_dict(report()), env=event_env(fake_github, tmp_path, "pull_request"), client=client(fake_github),
                      stream=io.StringIO())
    gets = fake_github.requests_to("GET", r"/issues/2/comments$")
    assert len(gets) == 50
    assert outcome.comment is None and any("50 pages" in m for m in outcome.messages)
    assert outcome.check_run_id is not None                       # the check run still carries the verdict


def test_a_failed_annotation_patch_is_named_as_such(fake_github: FakeGitHub, tmp_path: Path) -> None:
    many = report()
    many["kpis"] = [dict(copy.deepcopy(many["kpis"][0]), id=f"k{i}") for i in range(120)]
    fake_github.fail("PATCH", r"/check-runs/\d+$", 422, times=1)
    outcome = publish(Report.from_dict(many), env=event_env(fake_github, tmp_path, "pull_request"), client=client(fake_github),
                      stream=io.StringIO())
    line = next(m for m in outcome.messages if "annotations" in m)
    assert "could not add annotations 51-100" in line and "could not create the check run" not in " ".join(outcome.messages)
    assert outcome.check_run_id is not None and outcome.annotation_batches == [50] and not outcome.fell_back


def test_every_output_is_token_scrubbed(fake_github: FakeGitHub, tmp_path: Path) -> None:
    leaky = report()
    leaky["kpis"][0]["reason"] = f"see https://x.example/?token={TOKEN}"
    publish(Report.from_dict(leaky), env=event_env(fake_github, tmp_path, "pull_request"), client=client(fake_github),
            stream=io.StringIO())
    for name in ("output.txt", "summary.md"):
        text = (tmp_path / name).read_text(encoding="utf-8")
        assert TOKEN not in text and "***" in text, name


FORGED_ID = "evil\x1b[2J\x1b]0;pwned\x07\nkpis:\r\n  injected: x\u202e"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\ud800-\udfff]")


def test_a_forged_results_file_never_drives_the_terminal(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A results file's commit and branch are anyone's words (a saved file, a shard, a record
    pulled from the data branch), and so is a run id, which only the schema's pattern bounds.
    Printed by `verdict`, `history record / list / show`, `ratchet` and in an error line, none
    may clear the screen, retitle the window or forge extra lines."""
    config_path, forged = _forged_results(tmp_path)
    _config, forged_id = _forged_results(tmp_path / "id", run_id=FORGED_ID)
    db = str(tmp_path / "h.sqlite")
    runs = [
        (["verdict", str(forged), "--config", str(config_path)], None),
        (["history", "record", str(forged), "--db", db, "--config", str(config_path)], 0),
        (["history", "--db", db, "--config", str(config_path)], 0),
        (["history", "show", "forged-run", "--db", db, "--config", str(config_path)], 0),
        (["history", "show", FORGED_ID, "--db", db, "--config", str(config_path)], EXIT_CONFIG),
        (["ratchet", "--results", str(forged), "--config", str(config_path)], 0),
        (["verdict", str(forged_id), "--config", str(config_path)], EXIT_CONFIG),       # the id's pattern refuses it
        (["history", "record", str(forged_id), "--db", db, "--config", str(config_path)], EXIT_CONFIG),
    ]
    for argv, expected in runs:
        code = cli.main(argv)
        out, err = capsys.readouterr()
        if expected is not None:
            assert code == expected, (argv, err)
        for stream in (out, err):
            assert not CONTROL.search(stream), (argv, CONTROL.findall(stream))
        assert "injected" not in {line.split(":")[0].strip() for line in out.splitlines()}, argv   # no forged line


def _forged_results(tmp_path: Path, run_id: str = "forged-run", branch: str = "main\x1b[5m") -> tuple[Path, Path]:
    """A budgets file and a results file for it whose run id, commit and branch are forged."""
    import random

    from history_factory import make_run, write_budgets

    from molt_budget.config import load_config
    from molt_budget.results.store import save_results

    tmp_path.mkdir(parents=True, exist_ok=True)
    config_path = write_budgets(tmp_path)
    results = make_run(load_config(config_path), 1, random.Random(1))
    results.run_id = run_id
    results.provenance.update(commit="\x1b[31m" + "c0ffee" * 6, branch=branch)
    forged = tmp_path / "forged.json"
    save_results(forged, results)
    return config_path, forged


def test_a_lone_surrogate_in_a_results_file_is_refused_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """JSON can escape half of a UTF-16 pair; read, it is a str nothing can encode (SQLite
    raised from `history record`: an internal error). The file is refused, naming its line, by
    every command that reads results; an emoji's escaped pair is still text."""
    config_path, forged = _forged_results(tmp_path, branch="main\ud800")
    db = str(tmp_path / "h.sqlite")
    for argv in (["verdict", str(forged), "--config", str(config_path)],
                 ["history", "record", str(forged), "--db", db, "--config", str(config_path)],
                 ["ratchet", "--results", str(forged), "--config", str(config_path)]):
        assert cli.main(argv) == EXIT_CONFIG, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"molt-budget: error: {forged}:") and len(err.splitlines()) == 1, (argv, err)
        line = int(err.split(f"{forged}:", 1)[1].split(":", 1)[0])
        assert "\\ud800" in forged.read_text().splitlines()[line - 1]
    _config, emoji = _forged_results(tmp_path / "emoji", branch="main\U0001f600")
    assert cli.main(["history", "record", str(emoji), "--db", db, "--config", str(config_path)]) == 0


def test_a_report_past_the_row_bound_is_refused_before_it_is_walked(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A report is an artifact a fork's run uploads: 200k forged rows took 40 s and 0.8 GB to
    check and render. Past MAX_KPIS rows it is one line naming the file (exit 2), for `report`
    and for `history record --report-json`; at the bound it renders. (The bound is lowered
    here: the real one, 10,000, holds more KPIs than a budgets file can.)"""
    from molt_budget import bounded

    monkeypatch.setattr(bounded, "MAX_KPIS", 5)
    rows = report()
    kpi = rows["kpis"][0]
    config_path, results = _forged_results(tmp_path)
    for n, expected in ((5, 0), (6, EXIT_CONFIG)):
        rows["kpis"] = [dict(kpi, id=f"k{i}") for i in range(n)]
        path = tmp_path / f"report{n}.json"
        path.write_text(json.dumps(rows), encoding="utf-8")
        assert cli.main(["report", str(path), "--markdown"]) == expected
        err = capsys.readouterr().err
        if expected:
            assert err.startswith(f"molt-budget: error: {path}:"), err
            assert cli.main(["history", "record", str(results), "--report-json", str(path),
                             "--db", str(tmp_path / "h.sqlite"), "--config", str(config_path)]) == EXIT_CONFIG
            assert capsys.readouterr().err.startswith(f"molt-budget: error: {path}:")


@pytest.mark.parametrize("commit", [True, -1, {"$table": "x"}, ["c0ffee"]], ids=["bool", "int", "object", "list"])
def test_a_results_file_whose_commit_is_not_text_is_refused_by_every_reader(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                            commit: object) -> None:
    """Provenance is free facts, but its commit, branch and dirty flag are acted on: a commit
    that was not text reached `bump --from-results` as a TypeError (an internal error). The
    schema now types them, so every reader refuses the file at load, naming it."""
    import json

    config_path, forged = _forged_results(tmp_path)
    doc = json.loads(forged.read_text(encoding="utf-8"))
    doc["provenance"]["commit"] = commit
    forged.write_text(json.dumps(doc), encoding="utf-8")
    budgets = config_path.read_text(encoding="utf-8")
    for argv in (["bump", "ir_ops", "--from-results", str(forged), "--reason", "r", "--config", str(config_path)],
                 ["verdict", str(forged), "--config", str(config_path)],
                 ["merge", str(forged), "--out", str(tmp_path / "m.json"), "--config", str(config_path)],
                 ["ratchet", "--results", str(forged), "--config", str(config_path)]):
        assert cli.main(argv) == EXIT_CONFIG, argv
        err = capsys.readouterr().err.strip()
        assert err.startswith("molt-budget: error: ") and str(forged) in err and len(err.splitlines()) == 1, (argv, err)
    assert config_path.read_text(encoding="utf-8") == budgets


def test_merging_shards_whose_finish_is_unknown_leaves_it_unknown(tmp_path: Path) -> None:
    """A shard's finished_utc of "" (a forged or hand-made file) made merge's max() empty."""
    import json

    config_path, forged = _forged_results(tmp_path)
    doc = json.loads(forged.read_text(encoding="utf-8"))
    doc["finished_utc"] = ""
    forged.write_text(json.dumps(doc), encoding="utf-8")
    out = tmp_path / "merged.json"
    assert cli.main(["merge", str(forged), "--out", str(out), "--config", str(config_path)]) in (0, 1)
    assert json.loads(out.read_text(encoding="utf-8"))["finished_utc"] is None
