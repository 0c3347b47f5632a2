"""One comparison report from the reports of CI shards (each `check --lanes GROUP --base SHA`).

Why: a matrix job per lane group keeps timed lanes interleaved with their base on one
machine; the PR still gets one verdict. Shards must agree on head, base and budgets file.
The merged verdict is judged again from the merged rows and budget changes (the one rule in
compare.model), never taken from a shard, and is never better than any shard's verdict.
"""

from __future__ import annotations

import re
import shlex

from molt_budget.compare.attribution import merge_diffs
from molt_budget.compare.model import BudgetChange, Diff, KpiRow, Report, Status, Verdict, worst
from molt_budget.config.model import Config
from molt_budget.errors import ConfigError


def merge_reports(reports: list[Report], names: list[str]) -> Report:
    first = reports[0]
    seen: dict[str, str] = {}
    for report, name in zip(reports, names):
        for key, mine, theirs in (("head", report.head.commit, first.head.commit),
                                  ("base", _commit(report), _commit(first))):
            if mine != theirs:
                raise ConfigError(f"{name}: {key} commit {mine} differs from {theirs} in {names[0]}: not one comparison")
        if report.config_path != first.config_path:
            raise ConfigError(f"{name}: budgets file {report.config_path} differs from {first.config_path}")
        for kpi in report.kpis:
            if kpi.id in seen:
                raise ConfigError(f"{name}: KPI {kpi.id!r} is also in {seen[kpi.id]}: each lane group must be judged once")
            seen[kpi.id] = name
    kpis = [k for r in reports for k in r.kpis]
    changes = merge_budget_changes(reports)
    skipped = sum(r.verdict.counts.get("skipped", 0) for r in reports)
    verdict = Verdict.judge(kpis, changes, skipped=skipped, floor=worst(r.status for r in reports))
    extra: dict[str, object] = {}
    for r in reports:
        extra = {**r.extra, **extra}
    return Report(
        verdict=verdict,
        head=first.head,
        base=first.base,
        kpis=kpis,
        diff=Diff.from_dict(merge_diffs([r.diff.to_dict() for r in reports])),
        config_path=first.config_path,
        tool_version=first.tool_version,
        authoritative=all(r.authoritative for r in reports),
        authoritative_reasons=[reason for r in reports for reason in r.authoritative_reasons],
        reproduce=without_lanes(first.reproduce or ""),   # all lanes, same base
        results_path=first.results_path,
        budget_changes=changes,
        ratchets=first.ratchets,
        trends={k: v for r in reports for k, v in (r.trends or {}).items()},
        extra=extra,
    )


def merge_budget_changes(reports: list[Report]) -> list[BudgetChange] | None:
    """Every shard judged the same budgets edit, each with its own measurements (the "far looser"
    check sees only its lanes): one entry per (kpi, lane, field), the worst status wins."""
    if all(r.budget_changes is None for r in reports):
        return None
    merged: dict[tuple[str | None, str | None, str], BudgetChange] = {}
    for report in reports:
        for change in report.budget_changes or []:
            key = (change.kpi, change.lane, change.field)
            have = merged.get(key)
            if have is None or change.status.severity > have.status.severity:
                merged[key] = change          # a dict keeps the first position of the key
    return list(merged.values())


def missing_lane_rows(config: Config, lanes: set[str], why: str) -> list[KpiRow]:
    """A KPI whose lane was meant to run but left nothing: an error row, never a silent pass."""
    return [
        KpiRow(id=k.id, title=k.title or k.id, lane=k.lane, metric=k.metric, kpi_class=k.kpi_class, unit=k.unit,
               direction=k.direction, target=k.target, limit=k.limit, line=k.line, status=Status.ERROR,
               budget_status=Status.ERROR, reason=f"lane {k.lane}: {why}")
        for k in config.kpis.values() if k.lane in lanes
    ]


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


def _commit(report: Report) -> str | None:
    return None if report.base is None else report.base.commit
