"""The report model: one severity order, one verdict rule, one exit code, lossless JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import assert_report_round_trips

from molt_budget.compare.model import (
    BY_SEVERITY,
    REPORT_SCHEMA_VERSION,
    BudgetChange,
    KpiRow,
    Report,
    Status,
    Verdict,
    exit_code,
    overall,
)
from molt_budget.errors import EXIT_FAIL, EXIT_MEASUREMENT, EXIT_PASS, ConfigError
from molt_budget.schemas import validator

DATA = Path(__file__).parent / "github_data"


def row(kpi: str, status: str, **kw: object) -> KpiRow:
    return KpiRow(id=kpi, lane="lane", kpi_class="exact", status=Status(status), reason=status, **kw)  # type: ignore[arg-type]


def test_one_severity_order_worst_first() -> None:
    assert [s.value for s in BY_SEVERITY] == ["fail", "nondeterministic", "error", "yellow", "not_comparable", "pass"]


@pytest.mark.parametrize(("statuses", "verdict", "code"), [
    ([], "pass", EXIT_PASS),
    (["pass", "not_comparable"], "pass", EXIT_PASS),
    (["pass", "yellow"], "yellow", EXIT_PASS),
    (["yellow", "error"], "error", EXIT_MEASUREMENT),
    (["error", "nondeterministic"], "fail", EXIT_FAIL),
    (["error", "fail", "yellow"], "fail", EXIT_FAIL),
])
def test_overall_and_exit_code(statuses: list[str], verdict: str, code: int) -> None:
    assert overall(statuses) == Status(verdict)
    assert exit_code(overall(statuses)) == code


def test_unknown_status_is_a_clear_error_not_a_pass() -> None:
    with pytest.raises(ConfigError, match="unknown status 'grey'"):
        exit_code("grey")
    with pytest.raises(ConfigError, match="verdict/status"):
        Verdict.from_dict({"status": "nondeterministic", "counts": {}})


def test_verdict_counts_kpis_and_budget_changes() -> None:
    change = BudgetChange("a", "lane", "loosened", "target", 1, 2, "", "", "fail", "no reason", 3)  # type: ignore[arg-type]
    verdict = Verdict.judge([row("a", "pass"), row("b", "yellow")], [change], skipped=2)
    assert verdict.status is Status.FAIL
    assert verdict.counts == {"pass": 1, "yellow": 1, "budget_fail": 1, "skipped": 2}
    assert Verdict.judge([], floor=Status.ERROR).status is Status.ERROR


@pytest.mark.parametrize("name", ["report_fail.json", "report_demo_regression.json"])
def test_fixture_reports_round_trip(name: str) -> None:
    data = json.loads((DATA / name).read_text())
    assert_report_round_trips(data)
    report = Report.from_dict(data)
    assert validator("report").is_valid(report.to_dict())
    assert report.exit_code() == exit_code(data["verdict"]["status"])


def test_keys_a_newer_writer_added_are_kept() -> None:
    data = json.loads((DATA / "report_fail.json").read_text())
    data["from_the_future"] = {"x": 1}
    data["kpis"][0]["attribution"] = ["mod"]
    data["diff"]["new_section"] = [1, 2]
    out = Report.from_dict(data).to_dict()
    assert out["from_the_future"] == {"x": 1}
    assert out["kpis"][0]["attribution"] == ["mod"]
    assert out["diff"]["new_section"] == [1, 2]


def test_a_report_of_another_version_is_refused() -> None:
    data = json.loads((DATA / "report_fail.json").read_text())
    data["schema_version"] = REPORT_SCHEMA_VERSION + 1
    with pytest.raises(ConfigError, match="schema_version"):
        Report.from_dict(data)


def test_rejudge_after_adding_rows() -> None:
    data = json.loads((DATA / "report_fail.json").read_text())
    report = Report.from_dict(data)
    report.kpis = [row("a", "pass")]
    report.budget_changes = None
    report.rejudge()
    assert report.status is Status.PASS and report.exit_code() == EXIT_PASS
    report.kpis.append(row("b", "error"))
    report.rejudge()
    assert report.status is Status.ERROR and report.verdict.counts == {"pass": 1, "error": 1}
