"""load_compile_progress against molt's example snapshot (JSON, cross-checked with its .md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import MOLT, needs_shared

from molt_budget.collectors.compile_progress import CaseResult, load_compile_progress
from molt_budget.errors import CollectorError
from molt_budget.structs import fields

EXAMPLES = MOLT / "examples"


def _write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "compile_progress.json"
    path.write_text(json.dumps(doc, indent=2))
    return path


def _error(path: Path) -> str:
    with pytest.raises(CollectorError) as info:
        load_compile_progress(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": ") and "\n" not in message
    return message


@needs_shared
def test_example_round_trips_every_field() -> None:
    path = EXAMPLES / "compile_progress.json"
    raw = json.loads(path.read_text())
    progress = load_compile_progress(path)
    assert progress.meta == raw["meta"]
    assert [r.name for r in progress.results] == raw["meta"]["completed_cases"]
    names = [f.name for f in fields(CaseResult)]
    for result, raw_case in zip(progress.results, raw["results"]):
        assert set(raw_case) == set(names)  # formats.md §3 field list == our dataclass
        assert {n: getattr(result, n) for n in names} == raw_case


@needs_shared
def test_example_agrees_with_molts_markdown() -> None:
    """compile_progress.md was rendered by molt from the same run: an independent view."""
    rows = [
        [c.strip() for c in line.strip().strip("|").split("|")]
        for line in (EXAMPLES / "compile_progress.md").read_text().splitlines()
        if line.startswith("| ") and not line.startswith("| case") and not line.startswith("| ---")
    ]
    results = load_compile_progress(EXAMPLES / "compile_progress.json").results
    assert len(rows) == len(results)
    for row, r in zip(rows, results):
        case, profile, cargo, cache_mode, daemon, warmups, attempts, elapsed, diag, rc, timed_out, retry, state = row
        assert (case, profile, cache_mode, state) == (r.name, r.profile, r.cache_mode, r.cache_state)
        assert cargo == (r.release_cargo_profile or "-") and retry == (r.retry_reason or "-")
        assert daemon == ("on" if r.daemon else "off") and timed_out == ("yes" if r.timed_out else "no")
        assert (int(warmups), int(attempts), int(rc)) == (r.warmup_runs, r.attempts, r.returncode)
        assert elapsed == f"{r.elapsed_sec:.3f}"
        assert diag == ("n/a" if r.diagnostics_total_sec is None else f"{r.diagnostics_total_sec:.3f}")


def test_missing_optional_fields_get_defaults(tmp_path: Path) -> None:
    progress = load_compile_progress(_write(tmp_path, {"results": [{"name": "dev_cold"}]}))
    assert progress.meta == {}
    assert progress.results == [CaseResult(name="dev_cold")]
    r = progress.results[0]
    assert (r.attempts, r.warmup_runs, r.cache_state, r.timed_out, r.command) == (1, 0, "n/a", False, [])
    assert load_compile_progress(_write(tmp_path, {"meta": {"script": "x.py"}})).results == []


def test_integral_seconds_become_floats(tmp_path: Path) -> None:
    doc = {"results": [{"name": "a", "elapsed_sec": 7, "diagnostics_phase_sec": {"ir_lowering": 1}}]}
    r = load_compile_progress(_write(tmp_path, doc)).results[0]
    assert (r.elapsed_sec, r.diagnostics_phase_sec) == (7.0, {"ir_lowering": 1.0})
    assert isinstance(r.elapsed_sec, float)


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        ([], "expected a JSON object, found a list"),
        ({"cases": []}, "not a compile_progress.json snapshot"),
        ({"meta": [], "results": []}, "'meta' is a list"),
        ({"results": {}}, "'results' is a dict"),
        ({"results": [{"name": "a"}, 3]}, "results[1] is a int"),
        ({"results": [{"name": "a"}, {"profile": "dev"}]}, "results[1]: missing case 'name'"),
        ({"results": [{"name": "a", "returncode": "0"}]}, "results[0] (a): 'returncode' is '0'"),
        ({"results": [{"name": "a", "returncode": True}]}, "'returncode' is True"),
        ({"results": [{"name": "a", "daemon": "on"}]}, "'daemon' is 'on'"),
        ({"results": [{"name": "a", "elapsed_sec": -1.0}]}, "'elapsed_sec' is -1.0"),
        ({"results": [{"name": "a", "command": "molt build"}]}, "'command' is 'molt build'"),
        ({"results": [{"name": "a", "diagnostics_phase_sec": {"x": "1"}}]}, "'diagnostics_phase_sec.x' is '1'"),
        ({"results": [{"name": "a", "diagnostics_phase_sec": [1]}]}, "'diagnostics_phase_sec' is [1]"),
        ({"results": [{"name": "a", "retry_reason": 3}]}, "'retry_reason' is 3"),
    ],
)
def test_malformed_snapshot(tmp_path: Path, doc: Any, expected: str) -> None:
    assert expected in _error(_write(tmp_path, doc))


def test_nan_seconds_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "compile_progress.json"
    path.write_text('{"results": [{"name": "a", "elapsed_sec": NaN}]}')
    assert "results[0] (a): 'elapsed_sec' is nan" in _error(path)


@needs_shared
@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.99])
def test_truncated_snapshot(tmp_path: Path, fraction: float) -> None:
    data = (EXAMPLES / "compile_progress.json").read_bytes()
    path = tmp_path / "compile_progress.json"
    path.write_bytes(data[: int(len(data) * fraction)])
    assert ("empty file" if fraction == 0 else "truncated JSON") in _error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in _error(tmp_path / "compile_progress.json")
