"""Why a KPI moved: phases, modules (with inclusion reasons), functions and op kinds, base vs head."""

from __future__ import annotations

import statistics
from typing import Any

from molt_budget.results.model import LaneResult

TOP_N = 15


def lane_diff(lane: str, base: LaneResult | None, head: LaneResult | None) -> dict[str, Any]:
    """Structured diff of one lane; empty parts where a side lacks the data (feature-detect)."""
    out: dict[str, Any] = {
        "modules_added": [], "modules_removed": [], "reason_summary_deltas": {}, "phases": [],
        "functions_added": [], "functions_removed": [], "top_function_op_deltas": [], "op_kind_deltas": {},
        "module_timing_deltas": [],
    }
    if base is None or head is None:
        return out
    b_diag, h_diag = base.detail.get("diagnostics") or {}, head.detail.get("diagnostics") or {}
    if b_diag and h_diag:
        b_mods, h_mods = b_diag.get("module_reasons") or {}, h_diag.get("module_reasons") or {}
        added = sorted(set(h_mods) - set(b_mods), key=lambda m: (not _direct(h_mods[m]), m))
        out["modules_added"] = [{"module": m, "reasons": list(h_mods[m])} for m in added]
        out["modules_removed"] = [{"module": m, "reasons": list(b_mods[m])} for m in sorted(set(b_mods) - set(h_mods))]
        out["reason_summary_deltas"] = _count_deltas(b_diag.get("reason_summary") or {}, h_diag.get("reason_summary") or {})
        out["module_timing_deltas"] = _value_deltas(b_diag.get("module_timings") or {}, h_diag.get("module_timings") or {}, "module")[:TOP_N]
    out["phases"] = [{"lane": lane, **row} for row in _value_deltas(_phase_medians(base), _phase_medians(head), "phase")]
    b_ir, h_ir = base.detail.get("ir") or {}, head.detail.get("ir") or {}
    if b_ir and h_ir:
        b_fn, h_fn = b_ir.get("function_ops") or {}, h_ir.get("function_ops") or {}
        out["functions_added"] = sorted(set(h_fn) - set(b_fn))
        out["functions_removed"] = sorted(set(b_fn) - set(h_fn))
        deltas = [
            {"function": f, "base": int(b_fn.get(f, 0)), "head": int(h_fn.get(f, 0)), "delta": int(h_fn.get(f, 0)) - int(b_fn.get(f, 0))}
            for f in set(b_fn) | set(h_fn)
        ]
        deltas = [d for d in deltas if d["delta"]]
        deltas.sort(key=lambda d: (-abs(d["delta"]), d["function"]))
        out["top_function_op_deltas"] = deltas[:TOP_N]
        out["op_kind_deltas"] = _count_deltas(b_ir.get("op_kinds") or {}, h_ir.get("op_kinds") or {})
    return out


def merge_diffs(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """One report-level diff from the lanes that explain a regression (first lane wins for sets)."""
    merged: dict[str, Any] = {
        "modules_added": [], "modules_removed": [], "reason_summary_deltas": {}, "phases": [],
        "functions_added": [], "functions_removed": [], "top_function_op_deltas": [], "op_kind_deltas": {},
        "module_timing_deltas": [],
    }
    for part in parts:
        merged["phases"] += part["phases"]
        for key in ("modules_added", "modules_removed", "functions_added", "functions_removed",
                    "top_function_op_deltas", "module_timing_deltas"):
            if not merged[key]:
                merged[key] = part[key]
        for key in ("reason_summary_deltas", "op_kind_deltas"):
            if not merged[key]:
                merged[key] = part[key]
    merged["phases"].sort(key=lambda r: -abs(r["delta"]))
    return merged


def _phase_medians(lane: LaneResult) -> dict[str, float]:
    values: dict[str, list[float]] = {}
    for sample in lane.measured():
        for metric, value in sample.metrics.items():
            if metric.startswith("diag.phase."):
                values.setdefault(metric[len("diag.phase."):], []).append(value)
    return {k: float(statistics.median(v)) for k, v in values.items()}


def _count_deltas(base: dict[str, Any], head: dict[str, Any]) -> dict[str, int]:
    deltas = {k: int(head.get(k, 0)) - int(base.get(k, 0)) for k in set(base) | set(head)}
    return dict(sorted(((k, v) for k, v in deltas.items() if v), key=lambda kv: (-abs(kv[1]), kv[0])))


def _value_deltas(base: dict[str, float], head: dict[str, float], key: str) -> list[dict[str, Any]]:
    deltas = {name: round(float(head.get(name) or 0.0) - float(base.get(name) or 0.0), 6)
              for name in dict.fromkeys([*base, *head])}
    names = sorted(deltas, key=lambda name: -abs(deltas[name]))
    return [{key: name, "base": base.get(name), "head": head.get(name), "delta": deltas[name]} for name in names]


def _direct(reasons: list[str]) -> bool:
    """Imported by the program itself (listed first: that is the line to look at)."""
    return any(r in ("entry_root", "entry_closure") for r in reasons)
