"""Terminal conventions: NO_COLOR / FORCE_COLOR, `--report-json -` on stdout, 80 columns."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
from conftest import PY_STDLIB
from test_compare_git import make_repo

from molt_budget.cli import main
from molt_budget.report.terminal import use_color
from molt_budget.schemas import validator


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("env", "choice", "tty", "want"), [
    ({}, "auto", True, True), ({}, "auto", False, False),
    ({"NO_COLOR": "1"}, "auto", True, False), ({"FORCE_COLOR": "1"}, "auto", False, True),
    ({"NO_COLOR": "1", "FORCE_COLOR": "1"}, "auto", True, False), ({"FORCE_COLOR": "0"}, "auto", False, False),
    ({"NO_COLOR": "1"}, "always", False, True), ({"FORCE_COLOR": "1"}, "never", True, False),
])
def test_color_follows_no_color_and_force_color(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], choice: str,
                                                tty: bool, want: bool) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TERM"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert use_color(choice, Tty() if tty else io.StringIO()) is want


def test_report_json_dash_writes_the_report_to_stdout(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lanes = {"fast": {"command": [*PY_STDLIB, "-c", "print('size=50')"]}}
    kpis = {"a_rather_long_kpi_name_for_width": {"lane": "fast", "metric": r"regex:stdout:size=(\d+)", "target": 8, "limit": 10}}
    repo = make_repo(tmp_path, lanes, kpis, {})
    monkeypatch.setenv("FORCE_COLOR", "1")
    code = main(["check", "--config", str(repo / "budgets.yaml"), "--quiet", "--no-base", "--report-json", "-"])
    out, err = capsys.readouterr()
    report = json.loads(out)                        # stdout is the JSON alone
    assert list(validator("report").iter_errors(report)) == []
    assert code == 1 and report["verdict"]["status"] == "fail"
    assert "\x1b[31mFAIL\x1b[0m" in err             # FORCE_COLOR: coloured, even on a pipe
    assert max(len(re.sub(r"\x1b\[[0-9;]*m", "", line)) for line in err.splitlines()) <= 80
