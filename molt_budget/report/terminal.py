"""The terminal report, shaped like molt's KPI table: KPI | lane | latest | target | limit | status."""

from __future__ import annotations

from molt_budget.results.model import KpiResult, RunResults

STATUS_ORDER = {"fail": 0, "error": 1, "yellow": 2, "pass": 3}
COLORS = {"pass": "32", "yellow": "33", "fail": "31", "error": "35"}


def fmt_value(value: float | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if float(value).is_integer() and abs(value) >= 1:
        text = f"{int(value):,}"
    else:
        text = f"{value:.3f}"
    return f"{text} {unit}".strip() if unit and unit not in ("bytes", "ops", "functions", "modules") else text


def verdict_word(counts: dict[str, int]) -> str:
    if counts.get("fail"):
        return "FAIL"
    if counts.get("error"):
        return "ERROR"
    if counts.get("yellow"):
        return "PASS (with warnings)"
    return "PASS"


def render(results: RunResults, color: bool = False) -> str:
    from tabulate import tabulate

    rows = []
    for k in results.kpis:
        status = k.status.upper() if k.status != "pass" else "pass"
        if color:
            status = f"\x1b[{COLORS.get(k.status, '0')}m{status}\x1b[0m"
        rows.append([k.id, k.lane, fmt_value(k.value, k.unit), fmt_value(k.target, k.unit), fmt_value(k.limit, k.unit), status])
    table = tabulate(rows, headers=["KPI", "lane", "latest", "target", "limit", "status"], tablefmt="github", disable_numparse=True)
    counts = results.counts()
    lines = [
        f"molt-budget run {results.run_id} ({results.state}) commit {str(results.provenance.get('commit') or 'unknown')[:12]}"
        + (" (dirty)" if results.provenance.get("dirty") else ""),
        table,
        "",
    ]
    notes = sorted((k for k in results.kpis if k.status != "pass"), key=lambda k: STATUS_ORDER.get(k.status, 9))
    for k in notes:
        lines.append(f"  {k.status.upper():6} {k.id}: {k.reason}")
    retried = [(lane, s) for lane in results.lanes.values() for s in lane.samples if s.attempts > 1]
    for lane, s in retried:
        lines.append(f"  retry  {lane.lane} {s.kind} {s.index + 1}: {s.attempts} attempts ({s.retry_reason})")
    if not results.authoritative:
        lines.append("  not authoritative: " + "; ".join(results.authoritative_reasons))
    summary = ", ".join(f"{counts[s]} {s}" for s in ("pass", "yellow", "fail", "error") if counts.get(s))
    lines.append(f"verdict: {verdict_word(counts)} ({summary or 'no KPIs'})")
    return "\n".join(lines)


def exit_code(kpis: list[KpiResult]) -> int:
    """1 on any fail (a definite regression), else 3 on any error (the gate could not judge), else 0."""
    statuses = {k.status for k in kpis}
    if "fail" in statuses:
        return 1
    if "error" in statuses:
        return 3
    return 0
