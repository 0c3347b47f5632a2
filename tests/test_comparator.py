"""compare() on in-memory RunResults: each rule of the comparator in milliseconds, no build, no git.

The end-to-end runs in test_compare_git.py show the same rules on real repositories; these
pin each branch of the decision (budget band, change band, A/A, no base, not comparable,
drift) with values chosen on both sides of every bound.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from molt_budget.compare.comparator import compare
from molt_budget.compare.model import BaseInfo, Report, Status
from molt_budget.config import load_config
from molt_budget.config.model import Config
from molt_budget.results.model import LaneResult, RunResults, Sample


def config(tmp_path: Path, kpis: dict[str, Any], **settings: Any) -> Config:
    doc = {
        "version": 1,
        "settings": {"output_root": "out", "history": "out/h.sqlite", **settings},
        "lanes": {"dev": {"command": ["true"], "emit_ir": True, "diagnostics": True}},
        "kpis": kpis,
    }
    path = tmp_path / "budgets.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")
    return load_config(path)


def results(values: dict[str, list[float]], provenance: dict[str, Any] | None = None, status: str = "ok") -> RunResults:
    count = max((len(v) for v in values.values()), default=0)
    samples = [Sample(kind="measure", index=i, ok=True, metrics={m: v[i] for m, v in values.items() if i < len(v)})
               for i in range(count)]
    lane = LaneResult(lane="dev", status=status, samples=samples, error="it broke" if status == "error" else None)
    return RunResults(run_id="r", config_path="budgets.yaml", config_sha256="", started_utc="2026-12-01T00:00:00Z",
                      state="complete", provenance=provenance or {"commit": "h" * 40}, lanes={"dev": lane})


BASE = BaseInfo(commit="b" * 40, ref="main", source="worktree")


def one(report: Report) -> tuple[Status, str]:
    (row,) = report.kpis
    return row.status, row.reason


EXACT = {"ops": {"lane": "dev", "metric": "ir.ops", "target": 1000, "limit": 2000, "max_increase_pct": 10}}


@pytest.mark.parametrize(("base", "head", "status"), [
    (500, 500, Status.PASS),        # no change
    (500, 520, Status.PASS),        # +4%: within half (yellow_fraction 0.5) of the 10% allowed
    (500, 530, Status.YELLOW),      # +6%: past half of the allowed change, within it
    (500, 550, Status.YELLOW),      # +10% exactly: at the bound is still allowed
    (500, 560, Status.FAIL),        # +12%: past the allowed change
    (500, 400, Status.PASS),        # smaller is never a regression
])
def test_exact_change_band(tmp_path: Path, base: float, head: float, status: Status) -> None:
    report = compare(config(tmp_path, EXACT), results({"ir.ops": [head]}), results({"ir.ops": [base]}), BASE)
    assert one(report)[0] is status
    assert report.kpis[0].budget_status is Status.PASS and report.kpis[0].base == base and report.kpis[0].delta == head - base


@pytest.mark.parametrize(("head", "status"), [(999, Status.PASS), (1500, Status.YELLOW), (2001, Status.FAIL)])
def test_budget_band_without_a_base(tmp_path: Path, head: float, status: Status) -> None:
    report = compare(config(tmp_path, EXACT), results({"ir.ops": [head]}), None, None)
    assert one(report)[0] is status and report.base is None
    assert report.verdict.status is status.verdict and report.verdict.counts == {status.value: 1}


def test_exact_yellow_fraction_and_absolute_bound(tmp_path: Path) -> None:
    kpis = {"mods": {"lane": "dev", "metric": "diag.module_count", "target": 100, "max_increase_abs": 4, "yellow_fraction": 0.25}}
    cfg = config(tmp_path, kpis)
    statuses = [one(compare(cfg, results({"diag.module_count": [10 + d]}), results({"diag.module_count": [10]}), BASE))[0]
                for d in (1, 2, 4, 5)]
    assert statuses == [Status.PASS, Status.YELLOW, Status.YELLOW, Status.FAIL]


def test_aa_difference_is_nondeterministic_and_fails_the_verdict(tmp_path: Path) -> None:
    cfg = config(tmp_path, EXACT)
    report = compare(cfg, results({"ir.ops": [500, 501]}), results({"ir.ops": [500, 500]}), BASE, aa=True)
    assert one(report)[0] is Status.NONDETERMINISTIC and report.status is Status.FAIL and report.exit_code() == 1
    same = compare(cfg, results({"ir.ops": [500, 500]}), results({"ir.ops": [500, 500]}), BASE, aa=True)
    assert one(same)[0] is Status.PASS


def test_no_base_value_keeps_the_budget_verdict(tmp_path: Path) -> None:
    report = compare(config(tmp_path, EXACT), results({"ir.ops": [1500]}), results({}, status="error"), BASE)
    status, reason = one(report)
    assert status is Status.YELLOW and "no change verdict" in reason and report.kpis[0].base is None


def test_a_failed_head_lane_is_an_error_never_a_pass(tmp_path: Path) -> None:
    report = compare(config(tmp_path, EXACT), results({}, status="error"), results({"ir.ops": [500]}), BASE)
    assert one(report)[0] is Status.ERROR and report.status is Status.ERROR and report.exit_code() == 3


def test_different_provenance_is_not_comparable(tmp_path: Path) -> None:
    cfg = config(tmp_path, EXACT, compare_on=["tools.molt"])
    head = results({"ir.ops": [900]}, {"commit": "h", "tools": {"molt": "molt 2"}})
    base = results({"ir.ops": [500]}, {"commit": "b", "tools": {"molt": "molt 1"}})
    status, reason = one(compare(cfg, head, base, BASE))
    assert status is Status.NOT_COMPARABLE and "tools.molt differs" in reason


def test_drift_past_the_seeded_value_fails(tmp_path: Path) -> None:
    kpis = {"ops": {**EXACT["ops"], "max_drift_pct": 5, "seeded_from": {"value": 500, "commit": "c", "date": "2026-11-01"}}}
    cfg = config(tmp_path, kpis)
    assert one(compare(cfg, results({"ir.ops": [520]}), None, None))[0] is Status.PASS
    assert one(compare(cfg, results({"ir.ops": [530]}), None, None))[0] is Status.FAIL


def test_the_report_round_trips_and_validates(tmp_path: Path) -> None:
    from molt_budget.schemas import validator

    report = compare(config(tmp_path, EXACT), results({"ir.ops": [560]}), results({"ir.ops": [500]}), BASE)
    data = report.to_dict()
    assert validator("report").is_valid(data)
    assert Report.from_dict(data).to_dict() == data


@pytest.mark.parametrize(("kpi_class", "head", "base", "status"), [
    ("timed", 5e299, 1e-300, Status.FAIL),     # head/base is inf as a quotient: from the two logs instead
    ("timed", 1e-300, 5e299, Status.PASS),     # and 0 the other way
    ("exact", 5e299, 1e-300, Status.FAIL),     # the loosening a change budget would need is past the floats
    ("counted", 3e9, 0.0, Status.PASS),        # no relative change from a count of 0: the budget decides
    ("timed", 5e-324, 5e-324, Status.YELLOW),  # over its 0 target; the advice's loosened budget is past rounding
])
def test_values_at_the_ends_of_the_floats_are_judged(tmp_path: Path, kpi_class: str, head: float, base: float,
                                                     status: Status) -> None:
    """Measured values may reach ±1e300 (bounded.check_number): their ratio left the floats, and
    the timed decision died on it (inf in the log ratios, then statistics' stdev), as did the
    budget advice's ceil(inf): an internal error instead of a verdict."""
    from molt_budget.report.github import check_annotations, workflow_commands
    from molt_budget.report.html import write_html
    from molt_budget.report.markdown import render_markdown
    from molt_budget.report.terminal import render_report
    from molt_budget.schemas import validator

    metric = {"timed": "wall_s", "exact": "diag.total_sec", "counted": "instructions"}[kpi_class]
    target = 0 if head == 5e-324 else 1e300
    kpis = {"t": {"lane": "dev", "metric": metric, "class": kpi_class, "target": target, "max_increase_pct": 10}}
    jitter = [1 + 0.01 * (i % 3) for i in range(8)] if kpi_class == "timed" and head != 5e-324 else [1.0] * 8
    report = compare(config(tmp_path, kpis), results({metric: [head * j for j in jitter]}),
                     results({metric: [base * j for j in jitter]}), BASE)
    assert one(report)[0] == status
    assert validator("report").is_valid(report.to_dict())
    json.dumps(report.to_dict(), allow_nan=False)            # every number a JSON number
    assert len(report.kpis[0].reason) < 400                  # no value written out in 300 digits
    assert render_report(report) and render_markdown(report, max_chars=65536)
    assert write_html(report, tmp_path / "html", None).is_file()
    assert len(check_annotations(report)) == (status != Status.PASS) and workflow_commands(report) is not None
