"""One comparison report from the reports of CI shards (each `check --lanes GROUP --base SHA`).

Why: a matrix job per lane group keeps timed lanes interleaved with their base on one
machine; the PR still gets one verdict. Shards must agree on head, base and budgets file.
"""

from __future__ import annotations

import re
from typing import Any

from molt_budget.compare.attribution import merge_diffs
from molt_budget.errors import ConfigError

VERDICT_ORDER = ["pass", "yellow", "error", "fail"]
EMPTY_DIFF = merge_diffs([])


def merge_reports(reports: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    first = reports[0]
    seen: dict[str, str] = {}
    for report, name in zip(reports, names):
        for key in ("head", "base"):
            mine, theirs = _commit(report.get(key)), _commit(first.get(key))
            if mine != theirs:
                raise ConfigError(f"{name}: {key} commit {mine} differs from {theirs} in {names[0]}: not one comparison")
        if report.get("config_path") != first.get("config_path"):
            raise ConfigError(f"{name}: budgets file {report.get('config_path')} differs from {first.get('config_path')}")
        for kpi in report["kpis"]:
            if kpi["id"] in seen:
                raise ConfigError(f"{name}: KPI {kpi['id']!r} is also in {seen[kpi['id']]}: each lane group must be judged once")
            seen[kpi["id"]] = name
    kpis = [k for r in reports for k in r["kpis"]]
    counts: dict[str, int] = {}
    for report in reports:
        for status, n in report["verdict"]["counts"].items():
            if status.startswith("budget_"):
                counts[status] = max(counts.get(status, 0), n)    # the same budgets file: not additive
            else:
                counts[status] = counts.get(status, 0) + n
    status = max((r["verdict"]["status"] for r in reports), key=VERDICT_ORDER.index)
    diffs = [r.get("diff") or EMPTY_DIFF for r in reports]
    merged_diff = merge_diffs([{**EMPTY_DIFF, **d} for d in diffs])
    return {
        **first,
        "verdict": {"status": status, "counts": counts},
        "authoritative": all(r.get("authoritative", True) for r in reports),
        "authoritative_reasons": [reason for r in reports for reason in r.get("authoritative_reasons", [])],
        "kpis": kpis,
        "diff": merged_diff,
        "trends": {k: v for r in reports for k, v in (r.get("trends") or {}).items()},
        "reproduce": re.sub(r" --lanes \S+", "", first.get("reproduce", "")),   # all lanes, same base
    }


def _commit(side: dict[str, Any] | None) -> str | None:
    return None if side is None else side.get("commit")
