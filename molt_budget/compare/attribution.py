"""Why a KPI moved: phases, modules (with inclusion reasons), functions and op kinds, base vs head.

Modules come from the IR alone (every function is grouped under its module's `molt_init_*`,
see collectors.molt_ir), so a frontend-only build without a diagnostics payload still names
the modules that entered and what each costs; diagnostics add their inclusion reasons.
Every explanation is ranked by the share of the KPI's change it accounts for.
"""

from __future__ import annotations

import statistics
from typing import Any

from molt_budget.results.model import LaneResult

TOP_N = 15
EXPLAIN_ITEMS = 8
# which per-module quantity explains a KPI's metric
MEASURE = {
    "ir.ops": "ops", "ir.functions": "functions", "ir.mb": "bytes_normalized", "ir.bytes_normalized": "bytes_normalized",
    "ir.bytes": "bytes", "ir.raw_mb": "bytes", "ir.init_modules": "modules", "diag.module_count": "modules",
}
MEASURE_UNIT = {"ops": "ops", "functions": "functions", "bytes": "bytes", "bytes_normalized": "bytes", "modules": "modules", "seconds": "s"}
RUNTIME_MODULE = "(runtime)"


def lane_diff(lane: str, base: LaneResult | None, head: LaneResult | None) -> dict[str, Any]:
    """Structured diff of one lane; empty parts where a side lacks the data (feature-detect)."""
    out: dict[str, Any] = {
        "modules_added": [], "modules_removed": [], "reason_summary_deltas": {}, "phases": [],
        "functions_added": [], "functions_removed": [], "top_function_op_deltas": [], "op_kind_deltas": {},
        "module_timing_deltas": [], "modules": {},
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
        out["modules"] = module_diff(b_ir, h_ir, b_diag, h_diag)
        out["modules_added"], out["modules_removed"] = _ranked_added(out, b_diag, h_diag)
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
        "module_timing_deltas": [], "modules": {},
    }
    for part in parts:
        merged["phases"] += part.get("phases") or []
        for key in ("modules_added", "modules_removed", "functions_added", "functions_removed",
                    "top_function_op_deltas", "module_timing_deltas", "modules"):
            if not merged[key]:
                merged[key] = part.get(key) or merged[key]
        for key in ("reason_summary_deltas", "op_kind_deltas"):
            if not merged[key]:
                merged[key] = part.get(key) or merged[key]
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


# -- modules from the IR ------------------------------------------------------------------


def module_diff(b_ir: dict[str, Any], h_ir: dict[str, Any], b_diag: dict[str, Any], h_diag: dict[str, Any]) -> dict[str, Any]:
    """Modules entered, left and changed (ops, functions, bytes each), and the import
    statements that brought the entered ones in; {} when a side's IR has no module data."""
    b_mods, h_mods = b_ir.get("modules") or {}, h_ir.get("modules") or {}
    if not b_mods or not h_mods:
        return {}
    reasons = {**(b_diag.get("module_reasons") or {}), **(h_diag.get("module_reasons") or {})}
    entered = [_module_row(m, h_mods[m], reasons.get(m)) for m in h_mods if m not in b_mods]
    left = [_module_row(m, b_mods[m], reasons.get(m)) for m in b_mods if m not in h_mods]
    changed = []
    for m in h_mods:
        if m in b_mods:
            row = {"module": m, **{q: int(h_mods[m].get(q, 0)) - int(b_mods[m].get(q, 0)) for q in _QUANTITIES}}
            if any(row[q] for q in _QUANTITIES):
                changed.append(row)
    for rows in (entered, left, changed):
        rows.sort(key=lambda r: (-abs(r["ops"]), -abs(r["bytes_normalized"]), r["module"]))
    return {"entered": entered, "left": left, "changed": changed,
            "causes": _causes(b_ir, h_ir, {r["module"]: r for r in entered})}


_QUANTITIES = ("ops", "functions", "bytes", "bytes_normalized")


def _module_row(name: str, stats: dict[str, Any], reasons: list[str] | None) -> dict[str, Any]:
    return {"module": name, **{q: int(stats.get(q, 0)) for q in _QUANTITIES}, "file": str(stats.get("file") or ""),
            "reasons": list(reasons or [])}


def _causes(b_ir: dict[str, Any], h_ir: dict[str, Any], entered: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """New import statements in modules that are not themselves pulled in by another import
    (the program, or a module already there): the lines to look at, with what each brings in."""
    h_mods = h_ir.get("modules") or {}
    base_sites = {(s[0], s[1]) for s in b_ir.get("imports") or [] if len(s) >= 2}
    sites = [s for s in h_ir.get("imports") or [] if len(s) >= 2]
    imported = {s[1] for s in sites if s[0] != s[1]}
    graph: dict[str, set[str]] = {}
    for s in sites:
        graph.setdefault(s[0], set()).add(s[1])
    entry = h_ir.get("entry")
    out = []
    for importer, name, *rest in sites:
        if (importer, name) in base_sites or importer == name or importer == RUNTIME_MODULE:
            continue
        if importer in entered and importer in imported:
            continue                    # brought in itself: not where the change starts
        reached = _reach(name, graph, entered)
        if not reached:
            continue
        line = rest[0] if rest and isinstance(rest[0], int) else None
        out.append({"importer": importer, "module": name, "file": str((h_mods.get(importer) or {}).get("file") or ""),
                    "line": line, "entered": len(reached), **{q: sum(entered[m][q] for m in reached) for q in _QUANTITIES}})
    # the program (molt's __main__) or a module that was already there first: an entered module no
    # import statement reaches was brought in by the compiler or runtime, which says less
    out.sort(key=lambda c: (c["importer"] != entry and c["importer"] in entered, -c["ops"], -c["entered"], c["importer"], c["module"]))
    return out[:TOP_N]


def _reach(start: str, graph: dict[str, set[str]], entered: dict[str, Any]) -> set[str]:
    """Entered modules reachable from `start` by imports (a package brings its submodules)."""
    seen: set[str] = set()
    todo = [start]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        todo += graph.get(name, ())
        todo += [m for m in entered if m.startswith(name + ".") and m not in seen]
    return {m for m in seen if m in entered}


def _ranked_added(diff: dict[str, Any], b_diag: dict[str, Any], h_diag: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """`modules_added/removed`, by their IR contribution (largest first) and with reasons where
    diagnostics give them; from the IR alone when there are no diagnostics."""
    mods = diff.get("modules") or {}
    if not mods:
        return diff["modules_added"], diff["modules_removed"]
    reasons = {**(b_diag.get("module_reasons") or {}), **(h_diag.get("module_reasons") or {})}
    def listed(rows: list[dict[str, Any]], fallback: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [r["module"] for r in rows if r["module"] != RUNTIME_MODULE]
        names += [m["module"] for m in fallback if m["module"] not in names]   # diagnostics-only modules last
        return [{"module": m, "reasons": list(reasons.get(m) or [])} for m in names]
    return listed(mods["entered"], diff["modules_added"]), listed(mods["left"], diff["modules_removed"])


# -- per-KPI explanations -----------------------------------------------------------------


def explain(row: dict[str, Any], diff: dict[str, Any]) -> dict[str, Any] | None:
    """Why this KPI moved, ranked by the share of its change each item accounts for.

    Items are grouped in dimensions (packages of entered modules, changed modules, modules
    left, op kinds, functions, phases); the dimension whose top item explains the most comes
    first, so a line-marker regression leads with `op kind line`, an import with the package
    it brought in. None when the diff has nothing to say about this KPI's metric.
    """
    metric = str(row.get("metric") or "")
    measure = MEASURE.get(metric)
    if measure is None:
        return _explain_phases(row, diff) if row.get("class") == "timed" or metric.startswith("diag.") else None
    mods = diff.get("modules") or {}
    dims: list[list[dict[str, Any]]] = []
    total = 0.0
    if mods:
        value = (lambda r: 1) if measure == "modules" else (lambda r: r[measure])
        entered = [r for r in mods.get("entered", []) if r["module"] != RUNTIME_MODULE]
        left = [r for r in mods.get("left", []) if r["module"] != RUNTIME_MODULE]
        changed = [] if measure == "modules" else mods.get("changed", [])
        total = sum(value(r) for r in entered) - sum(value(r) for r in left) + sum(value(r) for r in changed)
        dims.append(_packages(entered, value, "package"))
        dims.append([{"kind": "module", "name": r["module"], "delta": value(r)} for r in changed
                     if value(r) and r["module"] != RUNTIME_MODULE])
        dims.append([dict(item, delta=-item["delta"]) for item in _packages(left, value, "package_left")])
    if measure == "ops":
        kinds = diff.get("op_kind_deltas") or {}
        if not total:
            total = float(sum(kinds.values()))
        dims.append([{"kind": "op_kind", "name": k, "delta": v} for k, v in kinds.items()])
        dims.append([{"kind": "function", "name": f["function"], "delta": f["delta"]} for f in diff.get("top_function_op_deltas") or []])
    if not total:
        return None
    ranked = _rank(dims, total)
    cause = (mods.get("causes") or [None])[0] if mods else None
    return {
        "kpi": row.get("id"), "measure": measure, "unit": MEASURE_UNIT[measure], "delta": total,
        "entered": len([r for r in mods.get("entered", []) if r["module"] != RUNTIME_MODULE]) if mods else None,
        "left": len([r for r in mods.get("left", []) if r["module"] != RUNTIME_MODULE]) if mods else None,
        "cause": None if cause is None else {**{k: cause[k] for k in ("importer", "module", "file", "line", "entered")},
                                             "share": (cause["entered"] if measure == "modules" else cause[measure]) / total},
        "items": ranked,
    }


def _packages(rows: list[dict[str, Any]], value: Any, kind: str) -> list[dict[str, Any]]:
    """Entered (or left) modules by top-level package: `multiprocessing.*` is one item."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["module"].split(".")[0], []).append(r)
    items = []
    for top, members in groups.items():
        name = f"{top}.*" if len(members) > 1 or members[0]["module"] != top else top
        reasons = sorted({x for r in members for x in r.get("reasons") or []})
        items.append({"kind": kind, "name": name, "modules": len(members), "delta": sum(value(r) for r in members),
                      "reasons": reasons})
    return items


def _rank(dims: list[list[dict[str, Any]]], total: float) -> list[dict[str, Any]]:
    """Items with their share of `total`; dimensions ordered by their best item, items within by size."""
    scored = []
    for dim in dims:
        items = [dict(i, share=i["delta"] / total) for i in dim if i["delta"]]
        items.sort(key=lambda i: (-i["share"], i["name"]))
        if items:
            scored.append(items)
    scored.sort(key=lambda d: -d[0]["share"])
    out: list[dict[str, Any]] = []
    for items in scored:
        out += items[:EXPLAIN_ITEMS]
    return out


def _explain_phases(row: dict[str, Any], diff: dict[str, Any]) -> dict[str, Any] | None:
    phases = [p for p in diff.get("phases") or [] if p.get("lane") == row.get("lane") and p.get("delta")]
    total = sum(p["delta"] for p in phases if p["delta"] > 0)
    if not total:
        return None
    items = [{"kind": "phase", "name": p["phase"], "delta": p["delta"]} for p in phases]
    return {"kpi": row.get("id"), "measure": "seconds", "unit": "s", "delta": total, "entered": None, "left": None,
            "cause": None, "items": _rank([items], total)}
