"""One comparison report from the reports of CI shards (each `check --lanes GROUP --base SHA`).

Why: a matrix job per lane group keeps timed lanes interleaved with their base on one
machine; the PR still gets one verdict. Shards must agree on head, base and budgets file.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

from molt_budget.compare.attribution import merge_diffs
from molt_budget.errors import ConfigError

VERDICT_ORDER = ["pass", "yellow", "error", "fail"]
BUDGET_ORDER = ["pass", "yellow", "fail"]
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
            if not status.startswith("budget_"):
                counts[status] = counts.get(status, 0) + n
    changes = merge_budget_changes(reports)
    if changes is not None:
        counts.update(budget_counts(changes))
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
        "reproduce": without_lanes(first.get("reproduce", "")),   # all lanes, same base
        **({"budget_changes": changes} if changes is not None else {}),
    }


def merge_budget_changes(reports: list[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """Every shard judged the same budgets edit, each with its own measurements (the "far looser"
    check sees only its lanes): one entry per (kpi, lane, field), the worst status wins."""
    if not any("budget_changes" in r for r in reports):
        return None
    merged: dict[tuple[Any, Any, Any], dict[str, Any]] = {}
    for report in reports:
        for change in report.get("budget_changes") or []:
            key = (change.get("kpi"), change.get("lane"), change.get("field"))
            have = merged.get(key)
            if have is None or _rank(change) > _rank(have):
                merged[key] = change          # a dict keeps the first position of the key
    return list(merged.values())


def budget_counts(changes: list[dict[str, Any]]) -> dict[str, int]:
    """As the gate counts them: `budget_<worst status>` = how many changes have it (nothing when all pass)."""
    worst = max((c.get("status") for c in changes), key=lambda s: BUDGET_ORDER.index(s) if s in BUDGET_ORDER else 0,
                default="pass")
    if worst not in ("yellow", "fail"):
        return {}
    return {f"budget_{worst}": sum(1 for c in changes if c.get("status") == worst)}


def _rank(change: dict[str, Any]) -> int:
    status = change.get("status")
    return BUDGET_ORDER.index(status) if status in BUDGET_ORDER else 0


def without_lanes(command: str) -> str:
    """The shard's reproduce command without its `--lanes GROUP` (one token pair, quoted or not)."""
    try:
        parts = shlex.split(command)
    except ValueError:
        return re.sub(r"(?<!\S)--lanes(?:=\S+|\s+\S+)", "", command).strip()
    out: list[str] = []
    skip = False
    for part in parts:
        if skip:
            skip = False
        elif part == "--lanes":
            skip = True
        elif not part.startswith("--lanes="):
            out.append(part)
    return shlex.join(out)


def _commit(side: dict[str, Any] | None) -> str | None:
    return None if side is None else side.get("commit")
