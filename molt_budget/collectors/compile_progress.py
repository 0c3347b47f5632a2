"""molt's `tools/compile_progress.py` snapshot (`compile_progress.json`, formats.md §3).

Read so molt's existing snapshots can be imported into history. The file has no schema
version, so every field is feature-detected: only `name` is required per case; other
absent fields get the value molt itself would write for "nothing happened". A field
that is present with the wrong type is an error naming the case, because importing a
wrong number into history is worse than refusing it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from molt_budget.collectors.generic import load_json
from molt_budget.errors import CollectorError
from molt_budget.structs import Struct, field


class CaseResult(Struct):
    name: str
    profile: str | None = None                 # "dev" | "release"
    cache_mode: str | None = None              # "cache-report" | "no-cache"
    daemon: bool | None = None
    release_cargo_profile: str | None = None
    command: list[str] = field(default_factory=list)
    returncode: int | None = None
    elapsed_sec: float | None = None           # wall of the whole `uv run ...`, not diagnostics total
    timed_out: bool = False
    cache_state: str = "n/a"
    stdout_tail: str = ""
    stderr_tail: str = ""
    diagnostics_path: str | None = None
    diagnostics_total_sec: float | None = None
    diagnostics_phase_sec: dict[str, float] | None = None
    attempts: int = 1
    warmup_runs: int = 0
    retry_reason: str | None = None


class CompileProgress(Struct):
    meta: dict[str, Any]
    results: list[CaseResult]


class _Case:
    """Typed field access for one results[i] entry, with errors that say which case."""

    def __init__(self, path: Path, index: int, raw: dict[str, Any]) -> None:
        self.path, self.index, self.raw = path, index, raw
        name = raw.get("name")
        self.label = f"results[{index}]" + (f" ({name})" if isinstance(name, str) else "")

    def fail(self, key: str, expected: str) -> CollectorError:
        value = self.raw[key]
        return CollectorError(self.path, f"{self.label}: '{key}' is {value!r}, expected {expected}")

    def opt_str(self, key: str) -> str | None:
        value = self.raw.get(key)
        if value is not None and not isinstance(value, str):
            raise self.fail(key, "a string or null")
        return value

    def opt_bool(self, key: str) -> bool | None:
        value = self.raw.get(key)
        if value is not None and not isinstance(value, bool):
            raise self.fail(key, "true/false")
        return value

    def opt_int(self, key: str) -> int | None:
        value = self.raw.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise self.fail(key, "an integer")
        return value

    def opt_seconds(self, key: str) -> float | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise self.fail(key, "finite seconds >= 0")
        return float(value)

    def phases(self, key: str) -> dict[str, float] | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self.fail(key, "an object of phase -> seconds")
        out: dict[str, float] = {}
        for phase, sec in value.items():
            if isinstance(sec, bool) or not isinstance(sec, (int, float)) or not math.isfinite(sec) or sec < 0:
                raise CollectorError(self.path, f"{self.label}: '{key}.{phase}' is {sec!r}, expected finite seconds >= 0")
            out[phase] = float(sec)
        return out

    def str_list(self, key: str) -> list[str]:
        value = self.raw.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.fail(key, "a list of strings")
        return list(value)

    def build(self) -> CaseResult:
        name = self.raw.get("name")
        if not isinstance(name, str) or not name:
            raise CollectorError(self.path, f"{self.label}: missing case 'name'")
        attempts = self.opt_int("attempts")
        warmups = self.opt_int("warmup_runs")
        return CaseResult(
            name=name,
            profile=self.opt_str("profile"),
            cache_mode=self.opt_str("cache_mode"),
            daemon=self.opt_bool("daemon"),
            release_cargo_profile=self.opt_str("release_cargo_profile"),
            command=self.str_list("command"),
            returncode=self.opt_int("returncode"),
            elapsed_sec=self.opt_seconds("elapsed_sec"),
            timed_out=bool(self.opt_bool("timed_out")),
            cache_state=self.opt_str("cache_state") or "n/a",
            stdout_tail=self.opt_str("stdout_tail") or "",
            stderr_tail=self.opt_str("stderr_tail") or "",
            diagnostics_path=self.opt_str("diagnostics_path"),
            diagnostics_total_sec=self.opt_seconds("diagnostics_total_sec"),
            diagnostics_phase_sec=self.phases("diagnostics_phase_sec"),
            attempts=1 if attempts is None else attempts,
            warmup_runs=0 if warmups is None else warmups,
            retry_reason=self.opt_str("retry_reason"),
        )


def load_compile_progress(path: Path) -> CompileProgress:
    """Raises CollectorError naming the file (and the case index) when it is not a snapshot."""
    path = Path(path)
    doc = load_json(path)
    if not isinstance(doc, dict):
        raise CollectorError(path, f"expected a JSON object, found a {type(doc).__name__}")
    if "meta" not in doc and "results" not in doc:
        raise CollectorError(path, "no 'meta' or 'results': not a compile_progress.json snapshot")
    meta = doc.get("meta", {})
    if not isinstance(meta, dict):
        raise CollectorError(path, f"'meta' is a {type(meta).__name__}, expected an object")
    raw_results = doc.get("results", [])
    if not isinstance(raw_results, list):
        raise CollectorError(path, f"'results' is a {type(raw_results).__name__}, expected a list")
    results = []
    for i, raw in enumerate(raw_results):
        if not isinstance(raw, dict):
            raise CollectorError(path, f"results[{i}] is a {type(raw).__name__}, expected an object")
        results.append(_Case(path, i, raw).build())
    return CompileProgress(meta=dict(meta), results=results)
