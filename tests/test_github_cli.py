"""`molt-budget report` and `molt-budget merge` end to end (in-process CLI, real demo shards)."""

from __future__ import annotations

import json
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import as_report
from github_fake import DATA, FakeGitHub, event_env, fake_github, github_server  # noqa: F401 (fixtures)

from molt_budget import cli
from molt_budget.compare.model import Status
from molt_budget.config import load_config
from molt_budget.schemas import validator

REPO = Path(__file__).resolve().parents[1]


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def report(status: str = "fail") -> dict[str, Any]:
    """The fixture report judged `status`: its rows agree (the poster recomputes the verdict from them)."""
    r = json.loads((DATA / "report_fail.json").read_text(encoding="utf-8"))
    r["verdict"]["status"] = status
    if status != "fail":
        offending = ("fail", "yellow", "error", "nondeterministic")
        r["kpis"] = [dict(k, status=status) if k["status"] in offending else k for k in r["kpis"]]
    return r


# -- report ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["pass", "yellow", "fail", "error"])
def test_markdown_renders_and_exits_0_whatever_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str], status: str) -> None:
    """Rendering worked: exit 0 (only --github, the posting step, exits with the verdict)."""
    path = write(tmp_path / "report.json", report(status))
    assert cli.main(["report", str(path), "--markdown", "--max-chars", "3000"]) == 0
    out = capsys.readouterr().out
    assert "molt-budget:" in out and len(out) <= 3000


@pytest.mark.parametrize("status", ["fail", "pass"])
def test_github_fork_403_keeps_the_verdict_exit_code(fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str], status: str) -> None:
    fake_github.read_only = True
    for key, value in event_env(fake_github, tmp_path, "pull_request").items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr("time.sleep", lambda s: pytest.fail(f"slept {s}s on a 403"))
    r = report(status)
    if status == "pass":
        r["kpis"] = [dict(k, status="pass") for k in r["kpis"]]
    path = write(tmp_path / "report.json", r)
    assert cli.main(["report", str(path), "--github", "--check-name", "budgets"]) == (1 if status == "fail" else 0)
    out = capsys.readouterr().out
    assert sum("403" in line for line in out.splitlines()) == 1
    assert ("::error file=budgets.yaml,line=31," in out) == (status == "fail")
    assert (tmp_path / "summary.md").read_text(encoding="utf-8").count("molt-budget:") >= 1


def test_github_success_posts_with_the_check_name(fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in event_env(fake_github, tmp_path, "pull_request").items():
        monkeypatch.setenv(key, value)
    path = write(tmp_path / "report.json", report("yellow"))
    assert cli.main(["report", str(path), "--github", "--check-name", "perf budgets"]) == 0
    (run,) = fake_github.check_runs.values()
    assert (run["name"], run["conclusion"]) == ("perf budgets", "neutral")
    assert len(fake_github.issue_comments(2)) == 1


@pytest.mark.parametrize(("content", "expected"), [
    (None, "no such report file"),
    ("{not json", "not valid JSON"),
    (json.dumps({"schema_version": 1}), "not a molt-budget report at (top level)"),
    (json.dumps({**report(), "kpis": [{"id": "x"}]}), "not a molt-budget report at kpis/0"),
])
def test_bad_report_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str | None, expected: str) -> None:
    path = tmp_path / "bad.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert cli.main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err and expected in err


def test_html_missing_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "molt_budget.report.html", None)      # import fails
    path = write(tmp_path / "report.json", report("pass"))
    assert cli.main(["report", str(path), "--html", str(tmp_path / "html")]) == 2
    assert "HTML report is not available" in capsys.readouterr().err


def test_html_is_called_with_report_dir_and_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[Any, ...]] = []
    module = types.ModuleType("molt_budget.report.html")
    module.write_html = lambda r, out_dir, history_path, main_only=True: calls.append(  # type: ignore[attr-defined]
        (r.status, out_dir, history_path, main_only))
    monkeypatch.setitem(sys.modules, "molt_budget.report.html", module)
    path = write(tmp_path / "report.json", report("fail"))
    assert cli.main(["report", str(path), "--html", str(tmp_path / "html")]) == 0
    assert len(calls) == 1 and calls[0][:2] == ("fail", tmp_path / "html") and calls[0][3] is True   # main records unless --all-branches
    assert calls[0][2] is not None and calls[0][2].name == "history.sqlite"     # settings.history by default


# -- merge -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """Two real shards of the demo budgets: lane groups run as separate `molt-budget run`s."""
    root = tmp_path_factory.mktemp("shards")
    out = {}
    for name, lanes in (("a", "dev_cold"), ("b", "release_fast_cold")):
        code = cli.main(["run", "--config", str(REPO / "budgets.yaml"), "--lanes", lanes, "--results", str(root / f"{name}.json"),
                         "--output-root", str(root / "out"), "--no-history", "--no-quiescence", "--quiet"])
        assert code == 0
        out[name] = root / f"{name}.json"
    yield out


@pytest.mark.slow   # real runs of the demo lanes (the `shards` fixture)
def test_merge_unions_lanes_and_rejudges(shards: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    budgets = (REPO / "budgets.yaml").read_text(encoding="utf-8")
    strict = tmp_path / "budgets.yaml"                 # same lanes, an ir_ops limit the demo cannot meet
    strict.write_text(budgets.replace("examples/demo", str(REPO / "examples/demo")), encoding="utf-8")
    from molt_budget.config import load_config

    config = load_config(strict)
    kpi = config.kpis["ir_ops"]
    text = strict.read_text(encoding="utf-8").splitlines()
    for key, value in (("target:", "5"), ("limit:", "10")):
        at = next(i for i in range(kpi.line, len(text)) if text[i].strip().startswith(key))
        text[at] = text[at].split(key)[0] + f"{key} {value}"
    strict.write_text("\n".join(text) + "\n", encoding="utf-8")
    merged, rep = tmp_path / "merged.json", tmp_path / "report.json"
    assert cli.main(["merge", str(shards["a"]), str(shards["b"]), "--out", str(merged), "--config", str(strict),
                     "--report-json", str(rep)]) == 0
    data = json.loads(merged.read_text(encoding="utf-8"))
    assert sorted(data["lanes"]) == ["dev_cold", "release_fast_cold"]
    assert [s["run_id"] for s in data["provenance"]["shards"]] == data["run_id"].split("+")
    r = json.loads(rep.read_text(encoding="utf-8"))
    assert list(validator("report").iter_errors(r)) == []
    ir_ops = next(k for k in r["kpis"] if k["id"] == "ir_ops")
    assert (ir_ops["status"], ir_ops["line"], r["verdict"]["status"], r["base"]) == ("fail", kpi.line, "fail", None)
    assert r["verdict"]["counts"]["skipped"] == len(config.kpis) - len(r["kpis"])
    assert cli.main(["report", str(rep), "--markdown"]) == 0


@pytest.mark.slow   # real runs of the demo lanes (the `shards` fixture)
def test_history_adds_a_trend_column(shards: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from molt_budget.results.history import History
    from molt_budget.results.record import MainCheck
    from molt_budget.results.store import load_results

    db = History(tmp_path / "history.sqlite")
    for i in range(3):
        results = load_results(shards["a"])
        results.run_id, results.started_utc = f"run-{i}", f"2026-11-2{i}T00:00:00Z"
        db.record(results, main=MainCheck(True))
    branch_run = load_results(shards["a"])
    branch_run.run_id, branch_run.started_utc = "run-branch", "2026-11-24T00:00:00Z"
    for lane in branch_run.lanes.values():
        for sample in lane.samples:
            sample.metrics = {m: v * 3 for m, v in sample.metrics.items()}
    for k in branch_run.kpis:
        k.value = None if k.value is None else k.value * 3
    db.record(branch_run, main=MainCheck(False, ["not on main"]))
    r = report("pass")
    r["kpis"] = [dict(k, metric="ir.mb", lane="dev_cold") if k["id"] == "ir_size_mb" else k for k in r["kpis"]]
    path = write(tmp_path / "report.json", r)
    assert cli.main(["report", str(path), "--history", str(db.path)]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("- `ir_size_mb` ") and line[15:16] in "▁▂▃▄▅▆▇█")
    assert line.startswith("- `ir_size_mb` ▄▄▄ ")                 # three equal main values: a flat line; no branch run
    assert cli.main(["report", str(path), "--history", str(db.path), "--all-branches"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("- `ir_size_mb` ") and line[15:16] in "▁▂▃▄▅▆▇█")
    assert not line.startswith("- `ir_size_mb` ▄▄▄ ")             # the branch run's jump is drawn
    assert cli.main(["report", str(path), "--history", str(tmp_path / "nope.sqlite")]) == 2


@pytest.mark.slow   # real runs of the demo lanes (the `shards` fixture)
def test_merge_refuses_the_same_lane_twice(shards: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["merge", str(shards["a"]), str(shards["a"]), "--out", str(tmp_path / "m.json")]) == 2
    assert "lane 'dev_cold' is also in" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


@pytest.mark.slow   # real runs of the demo lanes (the `shards` fixture)
def test_merge_refuses_different_commits(shards: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = json.loads(shards["b"].read_text(encoding="utf-8"))
    other["provenance"]["commit"] = "0123456789abcdef0123456789abcdef01234567"
    path = write(tmp_path / "b.json", other)
    assert cli.main(["merge", str(shards["a"]), str(path), "--out", str(tmp_path / "m.json")]) == 2
    assert "shards must come from the same commit" in capsys.readouterr().err


@pytest.mark.slow   # real runs of the demo lanes (the `shards` fixture)
def test_merge_without_config_keeps_shard_verdicts(shards: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    assert cli.main(["merge", str(shards["a"]), str(shards["b"]), "--out", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    a = json.loads(shards["a"].read_text(encoding="utf-8"))
    assert [k["id"] for k in data["kpis"]][: len(a["kpis"])] == [k["id"] for k in a["kpis"]]


@pytest.mark.slow   # real runs of the demo lanes (the `shards` fixture)
def test_merge_expected_lane_without_a_shard_is_an_error(shards: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    rep = tmp_path / "report.json"
    assert cli.main(["merge", str(shards["a"]), "--expect-lanes", "dev_cold,dev_warm", "--config", "budgets.yaml",
                     "--out", str(tmp_path / "m.json"), "--report-json", str(rep)]) == 0
    r = json.loads(rep.read_text(encoding="utf-8"))
    missing = [k for k in r["kpis"] if k["lane"] == "dev_warm"]
    assert missing and all(k["status"] == "error" and "did not run" in k["reason"] for k in missing)
    assert r["verdict"]["status"] == "error" and cli.main(["report", str(rep)]) == 0     # rendered
    assert cli.main(["merge", str(shards["a"]), "--expect-lanes", "nope", "--config", "budgets.yaml",
                     "--out", str(tmp_path / "m.json")]) == 2


def test_merge_allow_empty_reports_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    rep = tmp_path / "report.json"
    assert cli.main(["merge", "--out", str(tmp_path / "m.json")]) == 2
    assert cli.main(["merge", "--allow-empty", "--out", str(tmp_path / "m.json"), "--config", "budgets.yaml",
                     "--report-json", str(rep)]) == 0
    r = json.loads(rep.read_text(encoding="utf-8"))
    from molt_budget.report.github import conclusion_for

    assert r["kpis"] == [] and r["verdict"]["counts"]["skipped"] > 0 and conclusion_for(as_report(r)) == "neutral"
    assert cli.main(["report", str(rep)]) == 0


# -- report: missing, invalid and non-finite reports never pass --------------------------


def workflow_run_env(fake: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, conclusion: str | None) -> None:
    payload = json.loads((DATA / "events" / "workflow_run.completed.json").read_text(encoding="utf-8"))
    run = payload["workflow_run"]
    run["pull_requests"][0]["head"]["sha"] = run["head_sha"]
    run["conclusion"] = conclusion
    for key, value in event_env(fake, tmp_path, "workflow_run", payload).items():
        monkeypatch.setenv(key, value)


@pytest.mark.parametrize("conclusion", ["cancelled", "action_required", "skipped", "success", None])
def test_missing_report_is_a_failure_whatever_the_run_ended(fake_github: FakeGitHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            conclusion: str | None) -> None:
    workflow_run_env(fake_github, tmp_path, monkeypatch, conclusion)
    code = cli.main(["report", str(tmp_path / "nope.json"), "--github", "--if-missing", "--config-path", "ci/budgets.yaml"])
    assert code == 3
    (run,) = fake_github.check_runs.values()
    assert run["conclusion"] == "failure" and run["output"]["title"] == "Error: no KPI was measured"
    (comment,) = fake_github.issue_comments(2)
    assert comment["body"].startswith("<!-- molt-budget:ci/budgets.yaml -->")     # the real reports' sticky comment


def test_missing_report_stand_in_is_a_valid_report(tmp_path: Path) -> None:
    from molt_budget.commands.report_cmd import missing_report

    r = missing_report(tmp_path / "r.json", {}, "x/budgets.yaml").to_dict()
    assert list(validator("report").iter_errors(r)) == [] and r["config_path"] == "x/budgets.yaml"
    assert r["verdict"]["status"] == "error"


def test_invalid_report_with_if_missing_still_posts_a_failure(fake_github: FakeGitHub, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    workflow_run_env(fake_github, tmp_path, monkeypatch, "success")
    path = write(tmp_path / "report.json", {"schema_version": 1})
    assert cli.main(["report", str(path), "--github", "--if-missing"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "not a molt-budget report" in err
    (run,) = fake_github.check_runs.values()
    assert run["conclusion"] == "failure" and "invalid report" in run["output"]["summary"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_numbers_make_a_report_invalid(tmp_path: Path, capsys: pytest.CaptureFixture[str], number: str) -> None:
    text = json.dumps(report("pass")).replace('"head": 131000', f'"head": {number}', 1)
    assert number in text
    path = tmp_path / "report.json"
    path.write_text(text, encoding="utf-8")
    assert cli.main(["report", str(path), "--markdown"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and f"{path}:1: {number} is not a number" in err


def test_html_onto_an_existing_file_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "report.json", report("pass"))
    taken = tmp_path / "page.html"
    taken.write_text("keep me", encoding="utf-8")
    assert cli.main(["report", str(path), "--html", str(taken)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(taken) in err and "internal error" not in err
    assert taken.read_text(encoding="utf-8") == "keep me"


def test_html_into_a_folder_that_cannot_be_made_is_a_write_fault(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`--html /proc/...` was an internal error (mkdir's FileNotFoundError)."""
    path = write(tmp_path / "report.json", report("pass"))
    assert cli.main(["report", str(path), "--html", "/proc/self/no-such-folder/site"]) == 3
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "internal error" not in err and "/proc/self/no-such-folder/site" in err


# -- merge of shard reports ----------------------------------------------------------------


def shard_report(ids: list[str], changes: list[dict[str, Any]], lanes: str) -> dict[str, Any]:
    r = report("fail")
    r["kpis"] = [k for k in r["kpis"] if k["id"] in ids]
    counts: dict[str, int] = {}
    for k in r["kpis"]:
        counts[k["status"]] = counts.get(k["status"], 0) + 1
    worst = "fail" if any(c["status"] == "fail" for c in changes) else "yellow" if changes else None
    if worst:
        counts[f"budget_{worst}"] = sum(1 for c in changes if c["status"] == worst)
    r["verdict"] = {"status": "fail", "counts": counts}
    r["budget_changes"] = changes
    r["reproduce"] = f"molt-budget check --config budgets.yaml --lanes {lanes} --base 9f1c2d3e4b5a"
    return r


def change(kpi: str | None, field: str, status: str, reason: str = "") -> dict[str, Any]:
    return {"kpi": kpi, "lane": "dev_cold" if kpi else None, "kind": "loosened", "field": field, "old": 1, "new": 2,
            "justification": "j", "owner": "", "status": status, "reason": reason or status, "line": 3}


def test_merge_reports_keeps_the_worst_budget_change_and_recounts() -> None:
    from molt_budget.compare.merge_reports import merge_reports

    # shard a measured ir_ops: its "far looser" check failed; shard b could only see the justification
    a = shard_report(["ir_ops", "ir_size_mb"], [change("ir_ops", "target", "fail", "far looser"),
                                                change(None, "settings.compare_on", "yellow")], "dev_cold")
    b = shard_report(["dev_warm_s"], [change("ir_ops", "target", "yellow"), change(None, "settings.compare_on", "yellow"),
                                      change("dev_warm_s", "limit", "fail")], "'dev warm'")
    merged = merge_reports([as_report(b), as_report(a)], ["b.json", "a.json"]).to_dict()
    got = [(c["kpi"], c["field"], c["status"], c["reason"]) for c in merged["budget_changes"]]
    assert got == [("ir_ops", "target", "fail", "far looser"), (None, "settings.compare_on", "yellow", "yellow"),
                   ("dev_warm_s", "limit", "fail", "fail")]
    counts = merged["verdict"]["counts"]
    assert counts["budget_fail"] == 2 and counts["budget_yellow"] == 1   # recounted as check counts them, not max(1, 1)
    assert merged["reproduce"] == "molt-budget check --config budgets.yaml --base 9f1c2d3e4b5a"


def test_reproduce_loses_only_the_lanes_token() -> None:
    from molt_budget.compare.merge_reports import without_lanes

    assert without_lanes("molt-budget check --config budgets.yaml --lanes a,b --base abc") == \
        "molt-budget check --config budgets.yaml --base abc"
    assert without_lanes("molt-budget check --lanes 'a b' --config 'my --lanes x.yaml'") == \
        "molt-budget check --config 'my --lanes x.yaml'"
    assert without_lanes("molt-budget check --config b.yaml --lanes-file x --lanes=a") == \
        "molt-budget check --config b.yaml --lanes-file x"


def test_merge_reports_without_report_json_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "r.json", report())
    out = tmp_path / "m.json"
    assert cli.main(["merge", "--allow-empty", "--reports", str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "--report-json" in err and not out.exists()


def _counts(text: str, pair: str, sep: str) -> dict[str, int]:
    """`2 pass, 1 fail` / `fail=1 pass=2` -> {"pass": 2, "fail": 1} (KPI statuses only)."""
    out: dict[str, int] = {}
    for part in text.split(sep):
        part = part.strip()
        if pair not in part:
            continue
        a, b = part.split(pair, 1)
        n, status = (a, b) if a.strip().isdigit() else (b, a)
        if status.strip() in {s.value for s in Status}:
            out[status.strip()] = int(n)
    return out


@pytest.mark.slow   # real runs of the demo lanes (the `shards` fixture)
def test_merge_report_check_run_and_history_agree_on_one_merged_file(shards: dict[str, Path], tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The bug this guards: `merge` printed `FAIL (2 pass, 4 fail)` while `report` of the same file said
    `5 fail · 1 pass`. All four readers now read one Report (or the verdicts recorded from it)."""
    from molt_budget.commands.report_cmd import load_report
    from molt_budget.report.github import conclusion_for, title_for
    from molt_budget.results.history import History
    from molt_budget.results.store import load_results

    monkeypatch.chdir(REPO)
    # a budgets file whose ir_ops limit the demo's dev_cold lane breaks: a failing KPI next to passing ones
    text = (REPO / "budgets.yaml").read_text(encoding="utf-8")
    config = tmp_path / "budgets.yaml"
    config.write_text(text, encoding="utf-8")
    cfg = load_config(config)
    ops = next(k for k in cfg.kpis.values() if k.metric == "ir.ops" and k.lane == "dev_cold")
    measured = load_results(shards["a"]).lanes["dev_cold"].measured()[0].metrics["ir.ops"]
    lines = config.read_text(encoding="utf-8").splitlines()
    for i in range(ops.line - 1, min(ops.line + 12, len(lines))):
        if lines[i].strip().startswith("limit:"):
            lines[i] = lines[i].split("limit:")[0] + f"limit: {measured - 1:g}"
        elif lines[i].strip().startswith("target:"):
            lines[i] = lines[i].split("target:")[0] + f"target: {measured - 2:g}"
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    rep, out = tmp_path / "report.json", tmp_path / "merged.json"
    capsys.readouterr()
    assert cli.main(["merge", str(shards["a"]), str(shards["b"]), "--config", str(config), "--out", str(out),
                     "--report-json", str(rep)]) == 0
    verdict_line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("verdict: "))
    word, _, rest = verdict_line.removeprefix("verdict: ").partition(" (")
    merge_counts = _counts(rest.rstrip(")"), " ", ",")

    assert cli.main(["report", str(rep), "--markdown"]) == 0          # rendered: exit 0 (the verdict is in the text)
    markdown = capsys.readouterr().out
    headline, counts_line = markdown.split("\n\n")[0], markdown.split("\n\n")[1].split(" — ")[0]

    report = load_report(rep)
    db = History(tmp_path / "history.sqlite")
    db.record(load_results(out), out)
    assert cli.main(["history", "list", "--db", str(db.path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if report.head.run_id and line.startswith(f"| {report.head.run_id}"))
    history_counts = _counts(row.rstrip(" |").rsplit("|", 1)[-1], "=", " ")

    kpi_counts = {k: v for k, v in report.verdict.counts.items() if k in {s.value for s in Status}}
    assert report.status is Status.FAIL and kpi_counts.get("fail")
    assert word == "FAIL" and headline.endswith("molt-budget: FAIL")
    assert conclusion_for(report) == "failure" and title_for(report).startswith("FAIL")
    assert merge_counts == kpi_counts == _counts(counts_line, " ", "·") == history_counts, (verdict_line, counts_line, row)


def test_merging_many_shards_gives_a_run_id_every_reader_takes(tmp_path: Path) -> None:
    """Joined by `+`, nine engine run ids (26 characters each) passed the 200 the record schema
    allows: every other runner's `history pull` refused the merged main record as invalid. Past
    the bound the id is the first shard's, a count and a digest: still unique per shard set."""
    import random

    from history_factory import make_run, write_budgets

    from molt_budget.results.model import RunResults
    from molt_budget.results.record import MainCheck, RunRecord
    from molt_budget.results.store import load_results, save_results

    config = load_config(write_budgets(tmp_path))
    template = make_run(config, 1, random.Random(1))

    def shard(i: int) -> Path:
        lane = template.lanes["dev_warm"]
        results = RunResults.from_dict({**template.to_dict(), "run_id": f"20261202T1700{i:02d}000Z-{i:06x}",
                                        "lanes": {f"lane{i}": {**lane.to_dict(), "lane": f"lane{i}"}}, "kpis": []})
        path = tmp_path / f"shard{i}.json"
        save_results(path, results)
        return path

    ids = set()
    for count in (2, 9, 10):
        files = [shard(i) for i in range(count)]
        merged = tmp_path / f"merged{count}.json"
        assert cli.main(["merge", *map(str, files), "--out", str(merged)]) in (0, 1)
        results = load_results(merged)
        record = RunRecord.from_run(results, MainCheck.unchecked("test"))
        assert RunRecord.from_json(record.to_json(), "pulled").run_id == results.run_id     # the pull's schema check
        assert [s["run_id"] for s in results.provenance["shards"]] == [load_results(f).run_id for f in files]
        ids.add(results.run_id)
    assert len(ids) == 3


@pytest.mark.parametrize("variable", ["GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"])
def test_a_job_file_that_is_a_fifo_nobody_reads_is_one_line_not_a_hang(fake_github: FakeGitHub, tmp_path: Path,
                                                                       variable: str) -> None:
    """The job summary and outputs were opened for appending as regular files: a FIFO there
    (nobody reading) blocked the open, and the posting job hung until its timeout. Now the open
    fails at once (ENXIO), the line says so, and the check run and verdict stand."""
    import os
    import subprocess

    os.mkfifo(tmp_path / "fifo")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GITHUB_")}
    env.update(event_env(fake_github, tmp_path, "pull_request"), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env[variable] = str(tmp_path / "fifo")
    path = write(tmp_path / "report.json", report("fail"))
    proc = subprocess.run([sys.executable, "-m", "molt_budget", "report", str(path), "--github"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert sum("could not write" in line for line in (proc.stdout + proc.stderr).splitlines()) == 1
    (run,) = fake_github.check_runs.values()
    assert run["conclusion"] == "failure"
