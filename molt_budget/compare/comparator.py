"""Head against base, KPI by KPI: budget verdict plus change verdict, by class.

- exact (counts): one build a side is enough, any difference is real; `max_increase_*`
  bounds the change, and in an A/A run any difference is `nondeterministic`.
- timed (seconds): paired samples, the sampler's sequential t on per-pair log ratios with
  Holm inside (see compare.sampler and compare.stats).
- counted (instructions): minimum of N runs a side against a noise threshold.
A difference in declared provenance makes the change verdict `not_comparable`, never `fail`.
"""

from __future__ import annotations

import math
from typing import Any

from molt_budget import fmt
from molt_budget.compare import sampler, stats
from molt_budget.compare.attribution import explain, lane_diff, merge_diffs
from molt_budget.compare.budget import aggregate, judge_kpi
from molt_budget.compare.model import BaseInfo, Diff, HeadInfo, KpiRow, Report, Status, Verdict
from molt_budget.config.model import Config, Kpi
from molt_budget.results.model import KpiResult, LaneResult, RunResults

__all__ = ["BaseInfo", "compare"]


def compare(config: Config, head: RunResults, base: RunResults | None, base_info: BaseInfo | None, *,
            aa: bool = False, paired: bool = True, reproduce: str = "",
            history_fences: dict[str, float | None] | None = None,
            noise: sampler.Noise | None = None) -> Report:
    """The comparison report: every KPI judged once, here. `paired=False` (a saved baseline):
    the two sides were not interleaved, so timed KPIs get no change verdict. Timed verdicts
    are the sampler's own (replayed on the stored pairs with the same `noise` model)."""
    selected = [k for k in config.kpis.values() if k.lane in head.lanes]
    rows: list[KpiRow] = []
    timed: dict[str, stats.TimedDecision] = {}
    if base is not None and paired and _comparable(config, base, head) is None:
        timed = sampler.replay(config, list(head.lanes), base, head, noise)
    for kpi in selected:
        budget = judge_kpi(kpi, head.lanes.get(kpi.lane))
        row = kpi_row(kpi, budget)
        if base is not None:
            _change(config, kpi, row, budget, base, head, aa, paired, timed.get(kpi.id), (history_fences or {}).get(kpi.id))
        _drift(kpi, row)
        rows.append(row)
    regressed = sorted({r.lane for r in rows if r.status in (Status.YELLOW, Status.FAIL, Status.NONDETERMINISTIC)})
    lane_diffs = {lane: lane_diff(lane, base.lanes.get(lane), head.lanes.get(lane)) for lane in regressed} if base is not None else {}
    diff = merge_diffs(list(lane_diffs.values()))
    explanations = [e for e in (explain(r.to_dict(), lane_diffs[r.lane]) for r in rows if r.lane in lane_diffs
                                and r.status in (Status.YELLOW, Status.FAIL, Status.NONDETERMINISTIC)) if e is not None]
    return Report(
        verdict=Verdict.judge(rows),
        config_path=_rel_config(config),
        authoritative=head.authoritative and (base.authoritative if base is not None else True),
        authoritative_reasons=head.authoritative_reasons + ([f"base: {r}" for r in base.authoritative_reasons] if base else []),
        base=base_info,
        head=HeadInfo.from_provenance(head.provenance, head.run_id),
        kpis=rows,
        diff=Diff.from_dict(diff),
        reproduce=reproduce,
        extra={"explanations": explanations},
    )


def kpi_row(kpi: Kpi, budget: KpiResult) -> KpiRow:
    """A report row with the budget verdict alone (compare adds the change verdict)."""
    status = Status.parse(budget.status, f"KPI {kpi.id}")
    return KpiRow(
        id=kpi.id, title=kpi.title, lane=kpi.lane, metric=kpi.metric, kpi_class=kpi.kpi_class,
        unit=kpi.unit, direction=kpi.direction, target=kpi.target, limit=kpi.limit, line=kpi.line,
        head=budget.value, status=status, budget_status=status, reason=budget.reason,
        extra={"max_increase_pct": kpi.max_increase_pct if kpi.max_increase_pct is not None or kpi.kpi_class != "timed"
               else sampler.DEFAULT_TIMED_MAX_INCREASE_PCT, "max_increase_abs": kpi.max_increase_abs},
    )


def _worse(kpi: Kpi, delta: float) -> float:
    """The change in the bad direction (positive = worse)."""
    return delta if kpi.direction == "lower" else -delta


def _change(config: Config, kpi: Kpi, row: KpiRow, budget: KpiResult, base: RunResults, head: RunResults,
            aa: bool, paired: bool, timed: stats.TimedDecision | None, fence: float | None) -> None:
    b_lane, h_lane = base.lanes.get(kpi.lane), head.lanes.get(kpi.lane)
    b_values = _lane_values(b_lane, kpi.metric)
    if not b_values:
        # No base value (a PR that fixes a broken main, a metric new in this change): the budget
        # verdict stands on its own; there is just no change verdict.
        why = b_lane.error if b_lane is not None and b_lane.error else f"metric {kpi.metric} was not measured on the base"
        row.reason += f"; no change verdict, base: {why}"
        return
    b_value = aggregate(b_values, kpi.aggregate)
    row.base = b_value
    h_value = budget.value
    if h_value is None:
        return
    row.delta = h_value - b_value
    delta_pct = (h_value - b_value) / b_value * 100 if b_value else None
    row.delta_pct = delta_pct if delta_pct is None or math.isfinite(delta_pct) else None   # past the floats: not a JSON number
    mismatch = _comparable(config, base, head)
    if mismatch is not None:
        if budget.status == Status.PASS:
            row.status, row.reason = Status.NOT_COMPARABLE, f"not comparable with the base: {mismatch}"
        else:
            row.reason += f"; not comparable with the base: {mismatch}"
        return
    if kpi.kpi_class == "exact":
        _exact(kpi, row, b_values, _lane_values(h_lane, kpi.metric), aa)
    elif kpi.kpi_class == "timed" and not paired:
        row.reason += "; the saved baseline was not measured interleaved with this run: no timed change verdict"
    elif kpi.kpi_class == "timed":
        _timed(kpi, row, base, head, timed)
    else:
        _counted(kpi, row, b_values, _lane_values(h_lane, kpi.metric), fence)


def _exact(kpi: Kpi, row: KpiRow, b_values: list[float], h_values: list[float], aa: bool) -> None:
    b, h = row.base, row.head
    assert b is not None and h is not None
    if aa:
        if len(set(b_values)) > 1 or len(set(h_values)) > 1 or b != h:
            seen = sorted(set(b_values) | set(h_values))
            shown = ", ".join(fmt.value(v, kpi.unit) for v in seen)
            _escalate(row, Status.NONDETERMINISTIC, f"same commit built twice gave different values {shown}: the build is not deterministic")
        return
    worse = _worse(kpi, h - b)
    limits = []
    if kpi.max_increase_abs is not None:
        limits.append((kpi.max_increase_abs, worse, fmt.delta(worse, kpi.unit), fmt.value(kpi.max_increase_abs, kpi.unit)))
    if kpi.max_increase_pct is not None and b:
        limits.append((kpi.max_increase_pct, worse / abs(b) * 100, fmt.pct(worse / abs(b) * 100), fmt.value(kpi.max_increase_pct, "%")))
    for allowed, change, shown, allowed_shown in limits:
        if change > allowed:
            _escalate(row, Status.FAIL, f"changed by {shown} against the base (allowed: {allowed_shown} per change)")
            return
    for allowed, change, shown, allowed_shown in limits:
        if change > allowed * kpi.yellow_fraction:
            _escalate(row, Status.YELLOW, f"changed by {shown} against the base (over {fmt.number(kpi.yellow_fraction)} of the {allowed_shown} allowed)")
            return
    if worse > 0 and not limits and row.status is Status.PASS:
        row.reason += f"; {fmt.delta(worse, kpi.unit)} against the base"


def _timed(kpi: Kpi, row: KpiRow, base: RunResults, head: RunResults, decision: stats.TimedDecision | None) -> None:
    b, h = sampler.timed_values(kpi, base, head)
    row.pairs = len(b)
    if not sampler.ratio_testable(b, h) or decision is None:
        row.reason += "; no change verdict (fewer than 2 pairs, or zero values)"
        return
    row.p_value, row.pairs, row.timed_kind = decision.p_value, decision.pairs, decision.kind
    row.ci_low = decision.ci_low if math.isfinite(decision.ci_low) and decision.ci_low > 0 else None
    row.ci_high = decision.ci_high if math.isfinite(decision.ci_high) else None
    if decision.status != "pass":
        _escalate(row, Status.parse(decision.status), decision.reason)
    else:
        row.reason += f"; {decision.reason}"


def _counted(kpi: Kpi, row: KpiRow, b_values: list[float], h_values: list[float], fence: float | None) -> None:
    b, h = min(b_values), min(h_values)
    if kpi.direction == "higher":
        b, h = h, b
    row.base, row.head = min(b_values), min(h_values)
    if not b > 0:
        # a count of zero (or an absurd negative one) on the side the change is measured from
        row.reason += "; no change verdict (the count it would be relative to is not positive)"
        return
    decision = stats.decide_counted(h, b, floor_pct=kpi.noise_floor_pct if kpi.noise_floor_pct is not None else 0.5, fence=fence,
                                    max_increase_pct=kpi.max_increase_pct, yellow_fraction=kpi.yellow_fraction)
    if decision.status != "pass":
        _escalate(row, Status.parse(decision.status), decision.reason)
    else:
        row.reason += f"; {decision.reason}"


def _drift(kpi: Kpi, row: KpiRow) -> None:
    seeded = (kpi.seeded_from or {}).get("value") if isinstance(kpi.seeded_from, dict) else None
    if seeded is None or kpi.max_drift_pct is None or row.head is None or not seeded:
        return
    drift = _worse(kpi, row.head - seeded) / abs(seeded) * 100
    if drift > kpi.max_drift_pct:
        _escalate(row, Status.FAIL, f"drifted {fmt.pct(drift)} since the budget was set at {fmt.value(seeded, kpi.unit)} (max {fmt.value(kpi.max_drift_pct, '%')})")


def _escalate(row: KpiRow, status: Status, reason: str) -> None:
    if status.severity >= row.status.severity:
        row.status, row.reason = status, reason + (f" ({row.reason})" if row.reason else "")
    else:
        row.reason += f"; {reason}"


def _lane_values(lane: LaneResult | None, metric: str) -> list[float]:
    if lane is None:
        return []
    return [s.metrics[metric] for s in lane.measured() if metric in s.metrics]


def _comparable(config: Config, base: RunResults, head: RunResults) -> str | None:
    """The first declared provenance key that differs between the two sides, or None."""
    for key in config.settings.compare_on:
        b, h = _dig(base.provenance, key), _dig(head.provenance, key)
        if b is not None and h is not None and b != h:
            return f"{key} differs ({_short(b)} vs {_short(h)})"
    return None


def _dig(data: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(data, dict) or part not in data:
            return None
        data = data[part]
    return data


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _rel_config(config: Config) -> str:
    from molt_budget.gitutil import toplevel

    top = toplevel(config.root)
    try:
        return str(config.path.relative_to(top)) if top else config.path.name
    except ValueError:
        return config.path.name
