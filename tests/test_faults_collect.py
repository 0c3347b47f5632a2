"""Collection faults: what a build leaves behind can be hostile, and one bad lane never stops the others."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import fake_build
from test_engine import latest_results, write_budgets

from molt_budget.cli import main

GOOD = {"good": {"command": fake_build(), "repeats": 1}}
GOOD_KPI = {"g": {"lane": "good", "metric": "wall_s", "target": 10}}


def run(tmp_path: Path, lanes: dict, kpis: dict, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """One run; a read that blocks (a FIFO, a backtracking regex) never returns: the suite's
    timeout (pyproject) turns that into a failure, the lane's error says what was refused."""
    config = write_budgets(tmp_path, {**lanes, **GOOD}, {**kpis, **GOOD_KPI})
    code = main(["run", "--config", str(config), "--quiet", "--no-history"])
    return code, capsys.readouterr().out


def test_a_fifo_at_the_diagnostics_path_is_refused_without_waiting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lanes = {"fifo": {"command": 'mkfifo "$MOLT_BUILD_DIAGNOSTICS_FILE"', "diagnostics": True, "repeats": 1, "retries": 0}}
    code, _ = run(tmp_path, lanes, {"d": {"lane": "fifo", "metric": "diag.total_sec", "target": 10}}, capsys)
    assert code == 3
    lane = latest_results(tmp_path).lanes["fifo"]
    assert lane.status == "error" and "FIFO" in (lane.error or "") and "diagnostics.json" in (lane.error or "")
    assert latest_results(tmp_path).lanes["good"].status == "ok"


def test_a_fifo_at_the_ir_path_is_refused_without_waiting(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lanes = {"fifo": {"command": "mkfifo ${emit_ir}", "emit_ir": True, "repeats": 1, "retries": 0}}
    code, _ = run(tmp_path, lanes, {"o": {"lane": "fifo", "metric": "ir.ops", "target": 10}}, capsys)
    assert code == 3
    lane = latest_results(tmp_path).lanes["fifo"]
    assert lane.status == "error" and "FIFO" in (lane.error or "") and "lane fifo" in (lane.error or "")


def test_a_catastrophic_regex_metric_does_not_hang(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    command = [sys.executable, "-c", "print('a' * 5000 + '!')"]
    lanes = {"re": {"command": command, "repeats": 1, "retries": 0}}
    code, _ = run(tmp_path, lanes, {"r": {"lane": "re", "metric": "regex:stdout:^(a+)+$", "target": 10}}, capsys)
    assert code == 3                        # Python's re would backtrack for longer than the universe
    lane = latest_results(tmp_path).lanes["re"]
    assert "no match for regex" in (lane.error or "")


def test_a_backreference_regex_is_a_config_error_with_its_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_budgets(tmp_path, GOOD, {"r": {"lane": "good", "metric": r"regex:stdout:(a)\1", "target": 10}})
    assert main(["validate", "--config", str(config)]) == 2
    err = capsys.readouterr().err
    assert re.search(r"budgets\.yaml:\d+: ", err) and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("value", ["1" + "0" * 400, "1e400", "1" + "0" * 5001, "NaN", "-Infinity"],
                         ids=lambda v: v if len(v) < 20 else f"{len(v)}-digit")    # not a 5,002-character test id
def test_an_absurd_number_in_diagnostics_fails_that_lane_only(tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text('{"enabled": true, "total_sec": ' + value + ', "phase_sec": {}}', encoding="utf-8")
    lanes = {"diag": {"command": fake_build("--diag", str(payload)), "diagnostics": True, "repeats": 1, "retries": 0}}
    code, _ = run(tmp_path, lanes, {"t": {"lane": "diag", "metric": "diag.total_sec", "target": 10}}, capsys)
    assert code == 3
    results = latest_results(tmp_path)
    error = results.lanes["diag"].error or ""
    assert "lane diag" in error and "diagnostics.json" in error and "Overflow" not in error, error
    assert results.lanes["good"].status == "ok"              # the next lane ran


def test_nan_in_a_results_file_names_the_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_budgets(tmp_path, GOOD, GOOD_KPI)
    assert main(["run", "--config", str(config), "--quiet", "--no-history"]) == 0
    results = sorted((tmp_path / "out" / "runs").iterdir())[-1] / "results.json"
    text = results.read_text(encoding="utf-8")
    data = json.loads(text)
    wall = data["lanes"]["good"]["samples"][0]["metrics"]["wall_s"]
    results.write_text(text.replace(f'"wall_s": {wall}', '"wall_s": NaN', 1), encoding="utf-8")
    capsys.readouterr()
    assert main(["verdict", str(results), "--config", str(config)]) == 2
    err = capsys.readouterr().err
    line = next(i for i, x in enumerate(results.read_text().splitlines(), 1) if "NaN" in x)
    assert f"{results}:{line}: NaN" in err and len(err.strip().splitlines()) == 1
