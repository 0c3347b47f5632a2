"""The terminal report, shaped like molt's KPI table: KPI | lane | latest | target | limit | status."""

from __future__ import annotations

from typing import Any

from molt_budget import fmt
from molt_budget.compare.model import Diff, Report, Status, overall, severity_key
from molt_budget.compare.model import exit_code as status_exit_code
from molt_budget.report.escape import terminal as t
from molt_budget.results.model import KpiResult, RunResults

COLORS: dict[str, str] = {Status.PASS: "32", Status.YELLOW: "33", Status.FAIL: "31", Status.ERROR: "35",
                          Status.NONDETERMINISTIC: "31", Status.NOT_COMPARABLE: "36"}


def fmt_value(value: float | None, unit: str = "") -> str:
    return fmt.value(value, t(unit, 40) if unit else "")   # a unit is any string a budgets file says


VERDICT_WORDS = {Status.PASS: "PASS", Status.YELLOW: "PASS (with warnings)", Status.ERROR: "ERROR", Status.FAIL: "FAIL"}


def verdict_word(status: Status) -> str:
    return VERDICT_WORDS[status.verdict]


def render(results: RunResults, color: bool = False) -> str:
    from tabulate import tabulate

    rows = []
    for k in results.kpis:
        status = k.status.upper() if k.status != "pass" else "pass"
        if color:
            status = f"\x1b[{COLORS.get(k.status, '0')}m{status}\x1b[0m"
        rows.append([t(k.id), t(k.lane), fmt_value(k.value, k.unit), fmt_value(k.target, k.unit), fmt_value(k.limit, k.unit), status])
    table = tabulate(rows, headers=["KPI", "lane", "latest", "target", "limit", "status"], tablefmt="github", disable_numparse=True)
    counts = results.counts()
    lines = [
        f"molt-budget run {results.run_id} ({results.state}) commit {str(results.provenance.get('commit') or 'unknown')[:12]}"
        + (" (dirty)" if results.provenance.get("dirty") else ""),
        table,
        "",
    ]
    notes = sorted((k for k in results.kpis if k.status != "pass"), key=lambda k: severity_key(k.status))
    for k in notes:
        lines.append(f"  {k.status.upper():6} {t(k.id)}: {t(k.reason)}")
    retried = [(lane, s) for lane in results.lanes.values() for s in lane.samples if s.attempts > 1]
    for lane, s in retried:
        lines.append(f"  retry  {t(lane.lane)} {s.kind} {s.index + 1}: {s.attempts} attempts ({t(s.retry_reason)})")
    if not results.authoritative:
        lines.append("  not authoritative: " + "; ".join(t(r) for r in results.authoritative_reasons))
    summary = ", ".join(f"{counts[s]} {s}" for s in ("pass", "yellow", "fail", "error") if counts.get(s))
    lines.append(f"verdict: {verdict_word(overall(k.status for k in results.kpis))} ({summary or 'no KPIs'})")
    return "\n".join(lines)


def exit_code(kpis: list[KpiResult]) -> int:
    """The verdict's exit code of budget-only results (`verdict`, `merge`)."""
    return status_exit_code(overall(k.status for k in kpis))


def render_report(report: Report, color: bool = False) -> str:
    """The comparison report for a terminal: the table, then why each non-pass KPI is so."""
    from tabulate import tabulate

    base = report.base
    rows = []
    for k in report.kpis:
        status = k.status.upper() if k.status is not Status.PASS else "pass"
        if color:
            status = f"\x1b[{COLORS.get(k.status, '0')}m{status}\x1b[0m"
        row = [t(k.id), t(k.lane)]
        if base is not None:
            pct = fmt.change(k.base, k.head)
            row += [fmt_value(k.base, k.unit), fmt_value(k.head, k.unit), pct]
        else:
            row += [fmt_value(k.head, k.unit)]
        row += [fmt_value(k.target, k.unit), fmt_value(k.limit, k.unit), status]
        rows.append(row)
    headers = ["KPI", "lane"] + (["base", "head", "Δ%"] if base is not None else ["latest"]) + ["target", "limit", "status"]
    head = report.head
    if base is None:
        title = f"molt-budget: commit {str(head.commit or 'unknown')[:12]}: nothing to compare with, budgets alone decide"
    else:
        title = (f"molt-budget: head {str(head.commit or 'unknown')[:12]}{' (dirty)' if head.dirty else ''}"
                 f" vs base {str(base.commit or 'unknown')[:12]} ({t(base.source)}{', ' + t(base.ref) if base.ref else ''})")
    lines = [title, tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    for k in report.sorted_kpis():
        if k.status is not Status.PASS:
            lines.append(f"  {k.status.upper():6} {t(k.id)}: {t(k.reason)}")
    lines += _diff_lines(report.diff)
    changes = [c for c in report.budget_changes or [] if c.kind != "unchanged_note"]
    if changes:
        lines.append(f"  budget changes in {t(report.shown_config)}:")
        for c in changes:
            what = t(c.kpi or c.lane or "budgets")
            lines.append(f"    {c.status.upper():6} {what} {t(c.field)}: {_fmt_change(c.old, c.new)} ({t(c.reason)})")
    ratchets = report.ratchets or []
    if ratchets:
        examples = [f"{t(r['kpi'])} target {fmt.number(r['old_target'])} → {fmt.number(r['new_target'])}" for r in ratchets[:3]
                    if r.get("old_target") is not None and r.get("new_target") is not None]
        lines.append(f"  {len(ratchets)} budget(s) could be tightened: molt-budget ratchet (e.g. " + ", ".join(examples) + ")")
    if not report.authoritative:
        lines.append("  not authoritative: " + "; ".join(t(r) for r in report.authoritative_reasons))
    counts = report.verdict.counts
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: kv[0]))
    lines.append(f"verdict: {verdict_word(report.status)} ({summary or 'no KPIs'})")
    return "\n".join(lines)


def _diff_lines(diff: Diff) -> list[str]:
    out: list[str] = []
    if diff.modules_added:
        out.append(f"  modules added ({len(diff.modules_added)}):")
        out += [f"    + {t(m['module'])}: {t(', '.join(map(str, m['reasons'])))}" for m in diff.modules_added[:20]]
        if len(diff.modules_added) > 20:
            out.append(f"    … {len(diff.modules_added) - 20} more")
    if diff.modules_removed:
        out.append(f"  modules removed ({len(diff.modules_removed)}): " + ", ".join(t(m["module"]) for m in diff.modules_removed[:20]))
    if diff.reason_summary_deltas:
        out.append("  inclusion reasons: " + ", ".join(f"{t(k)} {v:+d}" for k, v in diff.reason_summary_deltas.items()))
    phases = [p for p in diff.phases if abs(p["delta"]) >= 0.001][:8]
    if phases:
        out.append("  phases (base → head, by delta):")
        out += [f"    {t(p.get('lane', ''))}:{t(p['phase'])}: {fmt.value(p['base'], 's')} → {fmt.value(p['head'], 's')} ({fmt.delta(p['delta'], 's')})" for p in phases]
    if diff.functions_added:
        out.append(f"  functions added: {len(diff.functions_added)}; removed: {len(diff.functions_removed)}")
    if diff.top_function_op_deltas:
        out.append("  top functions by op delta: " + ", ".join(f"{t(d['function'])} {d['delta']:+d}" for d in diff.top_function_op_deltas[:8]))
    if diff.op_kind_deltas:
        out.append("  op kinds: " + ", ".join(f"{t(k)} {v:+d}" for k, v in list(diff.op_kind_deltas.items())[:10]))
    return out


def _fmt_change(old: Any, new: Any) -> str:
    return f"{t(old) if old is not None else '-'} → {t(new) if new is not None else '-'}"
