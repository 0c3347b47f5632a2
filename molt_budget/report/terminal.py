"""The terminal report, shaped like molt's KPI table: KPI | lane | latest | target | limit | status."""

from __future__ import annotations

from molt_budget.report import fmt
from molt_budget.results.model import KpiResult, RunResults

STATUS_ORDER = {"fail": 0, "error": 1, "yellow": 2, "pass": 3}
COLORS = {"pass": "32", "yellow": "33", "fail": "31", "error": "35"}


def fmt_value(value: float | None, unit: str = "") -> str:
    return fmt.value(value, unit)


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


def render_report(report: dict, color: bool = False) -> str:
    """The comparison report for a terminal: the table, then why each non-pass KPI is so."""
    from tabulate import tabulate

    base = report.get("base")
    rows = []
    for k in report["kpis"]:
        status = k["status"].upper() if k["status"] != "pass" else "pass"
        if color:
            status = f"\x1b[{COLORS.get(k['status'], '0')}m{status}\x1b[0m"
        row = [k["id"], k["lane"]]
        if base is not None:
            pct = fmt.change(k.get("base"), k.get("head"))
            row += [fmt_value(k.get("base"), k.get("unit", "")), fmt_value(k.get("head"), k.get("unit", "")), pct]
        else:
            row += [fmt_value(k.get("head"), k.get("unit", ""))]
        row += [fmt_value(k.get("target"), k.get("unit", "")), fmt_value(k.get("limit"), k.get("unit", "")), status]
        rows.append(row)
    headers = ["KPI", "lane"] + (["base", "head", "Δ%"] if base is not None else ["latest"]) + ["target", "limit", "status"]
    head = report.get("head") or {}
    if base is None:
        title = f"molt-budget: commit {str(head.get('commit') or 'unknown')[:12]}: nothing to compare with, budgets alone decide"
    else:
        title = (f"molt-budget: head {str(head.get('commit') or 'unknown')[:12]}{' (dirty)' if head.get('dirty') else ''}"
                 f" vs base {str(base.get('commit') or 'unknown')[:12]} ({base.get('source')}{', ' + base['ref'] if base.get('ref') else ''})")
    lines = [title, tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True), ""]
    order = {"fail": 0, "nondeterministic": 1, "error": 2, "yellow": 3, "not_comparable": 4}
    for k in sorted((k for k in report["kpis"] if k["status"] != "pass"), key=lambda k: order.get(k["status"], 9)):
        lines.append(f"  {k['status'].upper():6} {k['id']}: {k['reason']}")
    lines += _diff_lines(report.get("diff") or {})
    changes = [c for c in report.get("budget_changes") or [] if c.get("kind") != "unchanged_note"]
    if changes:
        lines.append(f"  budget changes in {report.get('config_path', 'budgets.yaml')}:")
        for c in changes:
            what = c.get("kpi") or c.get("lane") or "budgets"
            lines.append(f"    {c['status'].upper():6} {what} {c.get('field', '')}: {_fmt_change(c)} ({c.get('reason', '')})")
    ratchets = report.get("ratchets") or []
    if ratchets:
        lines.append(f"  {len(ratchets)} budget(s) could be tightened: molt-budget ratchet (e.g. "
                     + ", ".join(f"{r['kpi']} target {fmt.number(r['old_target'])} → {fmt.number(r['new_target'])}" for r in ratchets[:3] if r.get("old_target") is not None and r.get("new_target") is not None) + ")")
    if not report.get("authoritative", True):
        lines.append("  not authoritative: " + "; ".join(report.get("authoritative_reasons", [])))
    counts = report["verdict"]["counts"]
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items(), key=lambda kv: kv[0]))
    word = {"fail": "FAIL", "error": "ERROR", "yellow": "PASS (with warnings)", "pass": "PASS"}[report["verdict"]["status"]]
    lines.append(f"verdict: {word} ({summary or 'no KPIs'})")
    return "\n".join(lines)


def _diff_lines(diff: dict) -> list[str]:
    out: list[str] = []
    if diff.get("modules_added"):
        out.append(f"  modules added ({len(diff['modules_added'])}):")
        out += [f"    + {m['module']}: {', '.join(m['reasons'])}" for m in diff["modules_added"][:20]]
        if len(diff["modules_added"]) > 20:
            out.append(f"    … {len(diff['modules_added']) - 20} more")
    if diff.get("modules_removed"):
        out.append(f"  modules removed ({len(diff['modules_removed'])}): " + ", ".join(m["module"] for m in diff["modules_removed"][:20]))
    if diff.get("reason_summary_deltas"):
        out.append("  inclusion reasons: " + ", ".join(f"{k} {v:+d}" for k, v in diff["reason_summary_deltas"].items()))
    phases = [p for p in diff.get("phases", []) if abs(p["delta"]) >= 0.001][:8]
    if phases:
        out.append("  phases (base → head, by delta):")
        out += [f"    {p.get('lane', '')}:{p['phase']}: {fmt.value(p['base'], 's')} → {fmt.value(p['head'], 's')} ({fmt.delta(p['delta'], 's')})" for p in phases]
    if diff.get("functions_added"):
        out.append(f"  functions added: {len(diff['functions_added'])}; removed: {len(diff.get('functions_removed', []))}")
    if diff.get("top_function_op_deltas"):
        out.append("  top functions by op delta: " + ", ".join(f"{d['function']} {d['delta']:+d}" for d in diff["top_function_op_deltas"][:8]))
    if diff.get("op_kind_deltas"):
        out.append("  op kinds: " + ", ".join(f"{k} {v:+d}" for k, v in list(diff["op_kind_deltas"].items())[:10]))
    return out


def report_exit_code(report: dict) -> int:
    status = report["verdict"]["status"]
    return {"fail": 1, "error": 3}.get(status, 0)


def _fmt_change(change: dict) -> str:
    old, new = change.get("old"), change.get("new")
    return f"{old if old is not None else '-'} → {new if new is not None else '-'}"
