"""Budget verdicts: pass (within target), yellow (past target, within limit), fail (past limit)."""

from __future__ import annotations

import statistics

from molt_budget import fmt
from molt_budget.config.model import Config, Kpi
from molt_budget.results.model import KpiResult, LaneResult, RunResults


def aggregate(values: list[float], how: str) -> float:
    return min(values) if how == "min" else float(statistics.median(values))


def _fmt(value: float, unit: str) -> str:
    return fmt.value(value, unit)


def judge(value: float, kpi: Kpi) -> tuple[str, str]:
    """Status and a one-line reason, for either direction."""
    def worse(a: float, b: float) -> bool:
        return a > b if kpi.direction == "lower" else a < b

    word = "above" if kpi.direction == "lower" else "below"
    shown = _fmt(value, kpi.unit)
    if kpi.limit is not None and worse(value, kpi.limit):
        return "fail", f"{shown} is {word} the limit {_fmt(kpi.limit, kpi.unit)}"
    if kpi.target is not None and worse(value, kpi.target):
        bound = f" (limit {_fmt(kpi.limit, kpi.unit)})" if kpi.limit is not None else ""
        return "yellow", f"{shown} is {word} the target {_fmt(kpi.target, kpi.unit)}{bound}"
    within = kpi.target if kpi.target is not None else kpi.limit
    return "pass", f"{shown} within {_fmt(within, kpi.unit)}" if within is not None else shown


def judge_results(config: Config, results: RunResults, lanes: set[str]) -> list[KpiResult]:
    """Every KPI of `lanes` against its budget: the verdicts a results file records."""
    return [judge_kpi(k, results.lanes.get(k.lane)) for k in config.kpis.values() if k.lane in lanes]


def judge_kpi(kpi: Kpi, lane: LaneResult | None) -> KpiResult:
    """One KPI against its budget; a lane failure or a missing metric is an `error`, never a pass."""
    def result(values: list[float], value: float | None, status: str, reason: str) -> KpiResult:
        return KpiResult(
            id=kpi.id, lane=kpi.lane, metric=kpi.metric, kpi_class=kpi.kpi_class, unit=kpi.unit,
            direction=kpi.direction, target=kpi.target, limit=kpi.limit, aggregate=kpi.aggregate,
            values=values, value=value, status=status, reason=reason,
        )

    if lane is None or lane.status == "pending":
        return result([], None, "error", f"lane {kpi.lane} did not run")
    if lane.status == "error":
        return result([], None, "error", f"lane {kpi.lane} failed: {lane.error}")
    values = [s.metrics[kpi.metric] for s in lane.measured() if kpi.metric in s.metrics]
    if not values:
        return result([], None, "error", f"metric {kpi.metric} was not measured on lane {kpi.lane}")
    value = aggregate(values, kpi.aggregate)
    status, reason = judge(value, kpi)
    if kpi.kpi_class == "exact" and len(set(values)) > 1:
        reason += f"; samples differ ({_fmt(min(values), kpi.unit)}..{_fmt(max(values), kpi.unit)}): the build is not deterministic"
    return result(values, value, status, reason)
