"""Fuzzed molt files (and budgets files): 0 internal errors, every error names file:line.

In-process and seeded: ≥ 500 diagnostics payloads and ≥ 500 IR files, half text mutations
(cuts, flips, junk bytes, UTF-16, Latin-1, BOM, CRLF), half structure-aware (a value deep
inside replaced by a 401-digit or 5,002-digit integer, 1e400, NaN, a wrong type, 200,000
levels of nesting, 100,000 items, a duplicated key). The contract: the collector returns a
summary or raises a CollectorError whose one line starts with the file and a line number.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import MOLT, needs_shared
from fuzz_inputs import json_cases

from molt_budget.collectors.molt_diagnostics import summarize_diagnostics
from molt_budget.collectors.molt_ir import summarize_ir
from molt_budget.errors import CollectorError

pytestmark = pytest.mark.slow   # thousands of hostile inputs: `pytest -m "not slow"` skips the sweep


def synthetic_ir(functions: int = 12) -> dict[str, Any]:
    """An IR document shaped like molt's (functions of ops, init modules, a registry blob)."""
    kinds = ["line", "const", "const_str", "print", "check_exception", "ret_void", "label", "call_bind"]
    return {"functions": [
        {"name": ("molt_init_mod" if i % 4 == 0 else "f") + f"_{i}", "params": ["a"],
         "ops": [{"kind": kinds[(i + j) % len(kinds)], "value": j, "source_line": j} for j in range(i % 7 + 1)]}
        for i in range(functions)
    ], "registry": {"blob": [104, 101, 108, 108, 111]}}


def run_cases(tmp_path: Path, cases: Any, summarize: Callable[[Path], Any], name: str) -> dict[str, int]:
    target = tmp_path / name
    failures: list[str] = []
    seen = {"ok": 0, "error": 0}
    for label, data in cases:
        target.write_bytes(data)
        try:
            summarize(target)
            seen["ok"] += 1
        except CollectorError as exc:
            seen["error"] += 1
            text = str(exc)
            if "\n" in text or not re.match(re.escape(str(target)) + r"(:\d+)?: ", text) or not _has_line(text, target):
                failures.append(f"{label}: error without file:line: {text[:200]}")
        except Exception as exc:
            failures.append(f"{label}: internal error {type(exc).__name__}: {str(exc)[:200]}")
    assert not failures, f"{len(failures)} bad case(s):\n" + "\n".join(failures[:20])
    return seen


def _has_line(text: str, target: Path) -> bool:
    """`FILE:LINE: …`, or a message that gives the line (`(line N)`)."""
    return bool(re.match(re.escape(str(target)) + r":\d+: ", text) or re.search(r"\bline \d+\b", text))


@pytest.fixture(scope="module")
def diagnostics_cases() -> list[tuple[str, bytes]]:
    """The 520 fuzzed diagnostics payloads, made once (~1.5 CPU-s) for the two tests that read them."""
    seeds = [(MOLT / "examples/diagnostics_dev_warm.json").read_bytes(),
             (MOLT / "real/A/diagnostics.json").read_bytes(),
             (MOLT / "real/C/diagnostics.json").read_bytes()]
    return list(json_cases(seeds, 520, seed=12))


@needs_shared
def test_fuzzed_diagnostics_payloads(tmp_path: Path, diagnostics_cases: list[tuple[str, bytes]]) -> None:
    seen = run_cases(tmp_path, diagnostics_cases, summarize_diagnostics, "diagnostics.json")
    assert seen["ok"] > 20 and seen["error"] > 100          # both outcomes exercised


@needs_shared
def test_fuzzed_ir_files(tmp_path: Path, shared: Path) -> None:
    seeds = [(shared / "molt/examples/ir_excerpt.json").read_bytes(),
             json.dumps(synthetic_ir(), indent=2).encode()]
    seen = run_cases(tmp_path, json_cases(seeds, 520, seed=13), lambda p: summarize_ir(p, ["/home/user"]), "ir.json")
    assert seen["ok"] > 20 and seen["error"] > 100


COMPACT_BUDGETS = """\
version: 1
defaults: {timeout_s: 60, repeats: 2, retries: 1, env: {PYTHONHASHSEED: "0"}}
settings: {output_root: .molt-budget, quiescence: {max_wait_s: 5}}
lanes:
  dev:
    command: [python3, build.py, --emit-ir, "${emit_ir}"]
    emit_ir: true
    diagnostics: true
  warm: {command: "python3 build.py --warm", cache_state: warm, prime: dev, pre_push: true}
kpis:
  ir_ops: {lane: dev, metric: ir.ops, target: 120000, limit: 130000, owner: compiler}
  wall: {lane: warm, metric: wall_s, target: 4.5, limit: 6, class: timed}
  ratio: {lane: dev, metric: "regex:stdout:ratio=([0-9.]+)", target: 1, direction: higher}
"""


def test_fuzzed_budgets_files(tmp_path: Path) -> None:
    """≥ 2,000 budgets files through the loader every command uses (bytes → Config), in-process:
    most mutate a compact file (fast), one in fifteen the shipped ones."""
    from fuzz_inputs import yaml_cases

    from molt_budget.config.loader import parse_bytes
    from molt_budget.errors import ConfigError

    repo = Path(__file__).resolve().parents[1]
    shipped = [(repo / "budgets.yaml").read_text(encoding="utf-8"), (repo / "examples/molt/budgets.yaml").read_text(encoding="utf-8")]
    cases = [*yaml_cases([COMPACT_BUDGETS], 1_900, seed=12), *yaml_cases(shipped, 140, seed=21)]
    target = tmp_path / "budgets.yaml"
    failures: list[str] = []
    seen = {"ok": 0, "error": 0}
    for label, data in cases:
        try:
            parse_bytes(target, data)
            seen["ok"] += 1
        except ConfigError as exc:
            seen["error"] += 1
            text = str(exc)
            if "\n" in text or not re.match(r"(/\S*)?budgets\.yaml:\d+(:\d+)?: ", text):
                failures.append(f"{label}: error without file:line: {text[:200]}")
        except Exception as exc:
            failures.append(f"{label}: internal error {type(exc).__name__}: {str(exc)[:200]}")
    assert len(cases) >= 2_000
    assert not failures, f"{len(failures)} bad case(s):\n" + "\n".join(failures[:25])
    assert seen["ok"] > 100 and seen["error"] > 500


def _outcome(path: Path, fast: bool) -> Any:
    """What a reading of the payload gives: its summary, or the error's one line."""
    try:
        return summarize_diagnostics(path, fast=fast)
    except CollectorError as exc:
        return ("error", str(exc))


@needs_shared
def test_the_fast_reading_and_the_checked_one_agree_on_every_fuzzed_payload(
        tmp_path: Path, diagnostics_cases: list[tuple[str, bytes]]) -> None:
    """The fast (msgspec) reading only ever speeds up what the checked one would give: the same
    summary, or the same error worded by the checked reading."""
    target = tmp_path / "diagnostics.json"
    differ, outcomes = [], {"ok": 0, "error": 0}
    for label, data in diagnostics_cases:
        target.write_bytes(data)
        fast, checked = _outcome(target, True), _outcome(target, False)
        outcomes["error" if isinstance(checked, tuple) else "ok"] += 1
        if fast != checked:
            differ.append(f"{label}: fast {str(fast)[:120]} / checked {str(checked)[:120]}")
    assert not differ, f"{len(differ)} payload(s) read differently:\n" + "\n".join(differ[:10])
    assert outcomes["ok"] > 20 and outcomes["error"] > 100
