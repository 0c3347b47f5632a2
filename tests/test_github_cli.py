"""`molt-budget report` and `molt-budget merge` end to end (in-process CLI, real demo shards)."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any, Iterator

import pytest

from github_fake import DATA, FakeGitHub, event_env
from github_fake import fake_github, github_server  # noqa: F401 (fixtures)
from molt_budget import cli
from molt_budget.schemas import validator

REPO = Path(__file__).resolve().parents[1]
MINE = ("molt_budget.commands.report_cmd", "molt_budget.commands.merge_cmd")


@pytest.fixture(autouse=True)
def extensions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Register the commands whether or not cli.EXTENSIONS lists them yet."""
    monkeypatch.setattr(cli, "EXTENSIONS", tuple(dict.fromkeys(cli.EXTENSIONS + MINE)))


def write(path: Path, data: Any) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def report(status: str = "fail") -> dict[str, Any]:
    r = json.loads((DATA / "report_fail.json").read_text(encoding="utf-8"))
    r["verdict"]["status"] = status
    return r


# -- report ----------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code"), [("pass", 0), ("yellow", 0), ("fail", 1), ("error", 3)])
def test_markdown_and_exit_code_follow_the_verdict(tmp_path: Path, capsys: pytest.CaptureFixture[str], status: str, code: int) -> None:
    path = write(tmp_path / "report.json", report(status))
    assert cli.main(["report", str(path), "--markdown", "--max-chars", "3000"]) == code
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
    module.write_html = lambda r, out_dir, history_path: calls.append((r["verdict"]["status"], out_dir, history_path))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "molt_budget.report.html", module)
    path = write(tmp_path / "report.json", report("fail"))
    assert cli.main(["report", str(path), "--html", str(tmp_path / "html")]) == 1
    assert calls == [("fail", tmp_path / "html", None)]


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
    assert cli.main(["report", str(rep), "--markdown"]) == 1


def test_history_adds_a_trend_column(shards: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from molt_budget.results.history import History
    from molt_budget.results.store import load_results

    db = History(tmp_path / "history.sqlite")
    for i in range(3):
        results = load_results(shards["a"])
        results.run_id, results.started_utc = f"run-{i}", f"2026-11-2{i}T00:00:00Z"
        db.record(results)
    r = report("pass")
    r["kpis"] = [dict(k, metric="ir.mb", lane="dev_cold") if k["id"] == "ir_size_mb" else k for k in r["kpis"]]
    path = write(tmp_path / "report.json", r)
    assert cli.main(["report", str(path), "--history", str(db.path)]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| `ir_size_mb`"))
    assert row.endswith("| ▄▄▄ |")                               # three equal values: a flat line
    assert cli.main(["report", str(path), "--history", str(tmp_path / "nope.sqlite")]) == 2


def test_merge_refuses_the_same_lane_twice(shards: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["merge", str(shards["a"]), str(shards["a"]), "--out", str(tmp_path / "m.json")]) == 2
    assert "lane 'dev_cold' is also in" in capsys.readouterr().err
    assert not (tmp_path / "m.json").exists()


def test_merge_refuses_different_commits(shards: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = json.loads(shards["b"].read_text(encoding="utf-8"))
    other["provenance"]["commit"] = "0123456789abcdef0123456789abcdef01234567"
    path = write(tmp_path / "b.json", other)
    assert cli.main(["merge", str(shards["a"]), str(path), "--out", str(tmp_path / "m.json")]) == 2
    assert "shards must come from the same commit" in capsys.readouterr().err


def test_merge_without_config_keeps_shard_verdicts(shards: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "m.json"
    assert cli.main(["merge", str(shards["a"]), str(shards["b"]), "--out", str(out)]) == 0
    data = json.loads(out.read_text(encoding="utf-8"))
    a = json.loads(shards["a"].read_text(encoding="utf-8"))
    assert [k["id"] for k in data["kpis"]][: len(a["kpis"])] == [k["id"] for k in a["kpis"]]


def test_merge_expected_lane_without_a_shard_is_an_error(shards: dict[str, Path], tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    rep = tmp_path / "report.json"
    assert cli.main(["merge", str(shards["a"]), "--expect-lanes", "dev_cold,dev_warm", "--config", "budgets.yaml",
                     "--out", str(tmp_path / "m.json"), "--report-json", str(rep)]) == 0
    r = json.loads(rep.read_text(encoding="utf-8"))
    missing = [k for k in r["kpis"] if k["lane"] == "dev_warm"]
    assert missing and all(k["status"] == "error" and "did not run" in k["reason"] for k in missing)
    assert r["verdict"]["status"] == "error" and cli.main(["report", str(rep)]) == 3
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

    assert r["kpis"] == [] and r["verdict"]["counts"]["skipped"] > 0 and conclusion_for(r) == "neutral"
    assert cli.main(["report", str(rep)]) == 0
