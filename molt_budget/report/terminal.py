"""The terminal report: summary.first_screen at 80 columns, then the ranked details.

After a regression the table stays on a 40-line screen: the verdict, one line per failing
KPI with its cause, the table and the commits come first; module lists come after.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
from typing import Any

from molt_budget import fmt
from molt_budget.compare.model import Report, Status, overall, severity_key
from molt_budget.compare.model import exit_code as status_exit_code
from molt_budget.report import summary
from molt_budget.report.escape import terminal as t
from molt_budget.results.model import KpiResult, RunResults

WIDTH = 80
COLORS: dict[str, str] = {Status.PASS: "32", Status.YELLOW: "33", Status.FAIL: "31", Status.ERROR: "35",
                          Status.NONDETERMINISTIC: "31", Status.NOT_COMPARABLE: "36"}
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def fmt_value(value: float | None, unit: str = "") -> str:
    return fmt.value(value, t(unit, 40) if unit else "")   # a unit is any string a budgets file says


VERDICT_WORDS = {Status.PASS: "PASS", Status.YELLOW: "PASS (with warnings)", Status.ERROR: "ERROR", Status.FAIL: "FAIL"}


def verdict_word(status: Status) -> str:
    return VERDICT_WORDS[status.verdict]


def use_color(choice: str = "auto", stream: Any = None) -> bool:
    """`--color always|never|auto`; auto follows NO_COLOR and FORCE_COLOR (no-color.org,
    force-color.org), then whether the stream is a terminal."""
    if choice in ("always", "never"):
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    force = os.environ.get("FORCE_COLOR")
    if force is not None and force.lower() not in ("", "0", "false"):
        return True
    stream = stream if stream is not None else sys.stdout
    try:
        return bool(stream.isatty()) and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False

def _status(status: str, color: bool) -> str:
    word = summary.STATUS_WORD.get(status, t(status).upper())
    return f"\x1b[{COLORS.get(status, '0')}m{word}\x1b[0m" if color else word


def _visible(text: str) -> int:
    return len(_ANSI.sub("", text))


def fit_table(headers: list[str], rows: list[list[str]], right: set[int], shrink: int, width: int = WIDTH) -> list[str]:
    """A plain table no wider than `width`: column `shrink` gives way (cut with `…`), the
    columns in `right` are right-aligned; colour codes do not count as width."""
    widths = [max([_visible(h)] + [_visible(r[i]) for r in rows]) for i, h in enumerate(headers)]
    over = sum(widths) + 2 * (len(widths) - 1) - width
    if over > 0:
        widths[shrink] = max(8, widths[shrink] - over)

    def cell(i: int, text: str) -> str:
        if _visible(text) > widths[i]:
            text = text[: widths[i] - 1] + "…"
        pad = " " * (widths[i] - _visible(text))
        return pad + text if i in right else text + pad

    return ["  ".join(cell(i, c) for i, c in enumerate(r)).rstrip() for r in [headers, *rows]]


def wrap(text: str, indent: str = "  ", more: str = "    ", width: int = WIDTH) -> list[str]:
    return textwrap.wrap(text, width=width, initial_indent=indent, subsequent_indent=more, break_on_hyphens=False) or [indent]


def _kpi_cell(kpi: str, lane: str | None) -> str:
    """Untrusted names, escaped here (report/escape.py) so every caller gets them clean."""
    return t(kpi) + (f" · {t(lane)}" if lane else "")


def render(results: RunResults, color: bool = False) -> str:
    """Saved results judged against the budgets alone (`verdict`, `merge`), within 80 columns."""
    rows = [[_status(k.status, color), _kpi_cell(k.id, None if k.id.startswith(k.lane) else k.lane),
             fmt_value(k.value, k.unit), fmt_value(k.target, k.unit), fmt_value(k.limit, k.unit)] for k in results.kpis]
    counts = results.counts()
    lines = [
        f"molt-budget run {t(results.run_id)} ({results.state}) commit {t(str(results.provenance.get('commit') or 'unknown')[:12])}"
        + (" (dirty)" if results.provenance.get("dirty") else ""),
        *fit_table(["status", "KPI · lane", "latest", "target", "limit"], rows, {2, 3, 4}, 1),
        "",
    ]
    for k in sorted((k for k in results.kpis if k.status != "pass"), key=lambda k: severity_key(k.status)):
        lines += wrap(f"{k.status.upper():6} {t(k.id)}: {t(k.reason)}")
    for lane in results.lanes.values():
        for s in lane.samples:
            if s.attempts > 1:
                lines += wrap(f"retry  {t(lane.lane)} {s.kind} {s.index + 1}: {s.attempts} attempts ({t(s.retry_reason)})")
    if not results.authoritative:
        lines += wrap("not authoritative: " + "; ".join(t(r) for r in results.authoritative_reasons))
    shown = ", ".join(f"{counts[s]} {s}" for s in ("pass", "yellow", "fail", "error") if counts.get(s))
    lines.append(f"verdict: {verdict_word(overall(k.status for k in results.kpis))} ({shown or 'no KPIs'})")
    return "\n".join(lines)


def exit_code(kpis: list[KpiResult]) -> int:
    """The verdict's exit code of budget-only results (`verdict`, `merge`)."""
    return status_exit_code(overall(k.status for k in kpis))


def render_report(report: Report | dict[str, Any], color: bool = False, width: int = WIDTH) -> str:
    """The comparison report for a terminal, first screen first: the verdict, one line per
    failing KPI with its cause, the table, the commits; then the ranked details. Every
    string the report carries passes through report/escape.py's `terminal`."""
    report = summary.as_dict(report)
    screen = summary.first_screen(report)
    counts = summary.counts_text(report, ", ")
    lines = [f"molt-budget: {t(screen.headline)}" + (f" ({t(counts)})" if counts else "")]
    for cause in screen.causes:
        lines += wrap(t(summary.plain(cause)), width=width)
    rows = [[_status(r.status, color), _kpi_cell(r.kpi, r.lane), t(r.head), t(r.change), t(r.decided)] for r in screen.rows]
    lines += fit_table(["status", "KPI · lane", "head", "Δ", "decided by"], rows, {2, 3}, 1, width)
    lines += wrap(t(summary.plain(screen.footnote)), indent="", more="  ", width=width)
    lines += _details(report, width)
    lines.append(f"verdict: {verdict_word(Status.parse(screen.status))} ({t(counts) or 'no KPIs'})")
    return "\n".join(lines)


def _details(report: dict[str, Any], width: int) -> list[str]:
    """Below the first screen, ranked: why each KPI moved, the modules that entered, the full
    reasons, the bump that accepts each failure, budget changes with their justification."""
    from molt_budget.budgets.advice import advise

    out: list[str] = [""]
    for why in report.get("explanations") or []:
        items = ", ".join(f"{t(i['name'])} {fmt.share(i['share'], 1)}" for i in (why.get("items") or [])[:6])
        out += wrap(f"why {t(why['kpi'])} moved ({t(fmt.delta(why.get('delta'), why.get('unit', '')))}): {items}", width=width)
    diff = report.get("diff") or {}
    added = diff.get("modules_added") or []
    if added:
        sizes = {m["module"]: m for m in (diff.get("modules") or {}).get("entered") or []}
        names = [t(m["module"]) + (f" {fmt.value(sizes[m['module']]['ops'], 'ops')}" if m["module"] in sizes else "")
                 + (f" [{', '.join(t(r) for r in m.get('reasons') or [])}]" if m.get("reasons") else "") for m in added[:10]]
        more = f"; … {len(added) - 10} more" if len(added) > 10 else ""
        out += wrap(f"modules entered ({len(added)}, largest first): " + "; ".join(names) + more, width=width)
    if diff.get("modules_removed"):
        out += wrap(f"modules left ({len(diff['modules_removed'])}): " + ", ".join(t(m["module"]) for m in diff["modules_removed"][:10]),
                    width=width)
    phases = [p for p in diff.get("phases", []) if abs(p.get("delta") or 0) >= 0.001][:5]
    if phases:
        out += wrap("phases: " + ", ".join(f"{t(p.get('lane', ''))}:{t(p['phase'])} {fmt.delta(p['delta'], 's')}" for p in phases),
                    width=width)
    for k in summary.sorted_kpis(report):
        if k.get("status") in summary.OFFENDING:
            out += wrap(f"{summary.STATUS_WORD.get(k['status'], t(k['status']))} {t(k['id'])}: {t(k.get('reason', ''))}", width=width)
    commands = [a.command(split=True) for a in (advise(k, report.get("results_path")) for k in summary.sorted_kpis(report)) if a]
    if commands:
        out.append("accept a change with a reviewed budget edit (replace the TODO first):")
        for c in commands:
            out += _shell_lines(c, width)
    changes = [c for c in report.get("budget_changes") or [] if c.get("kind") != "unchanged_note"]
    if changes:
        out.append(f"budget changes in {t(report.get('config_path', 'budgets.yaml'))}:")
        for c in changes:
            what = t(c.get("kpi") or c.get("lane") or "budgets")
            why = f"; justification: {t(c['justification'])}" if c.get("justification") else "; no justification"
            out += wrap(f"{t(c.get('status', '')).upper():6} {what} {t(c.get('field', ''))}: {_fmt_change(c)}{why}"
                        + (f" ({t(c['reason'])})" if c.get("reason") else ""), width=width)
    ratchets = [r for r in report.get("ratchets") or [] if r.get("old_target") is not None and r.get("new_target") is not None]
    if ratchets:
        out += wrap(f"{len(ratchets)} budget(s) could be tightened: molt-budget ratchet (e.g. "
                    + ", ".join(f"{t(r['kpi'])} target {t(fmt.number(r['old_target']))} → {t(fmt.number(r['new_target']))}"
                                for r in ratchets[:3]) + ")", indent="", width=width)
    if not report.get("authoritative", True):
        out += wrap("not authoritative: " + "; ".join(t(r) for r in report.get("authoritative_reasons", [])), indent="", width=width)
    return out if len(out) > 1 else []


def _shell_lines(command: str, width: int) -> list[str]:
    """A shell command in lines of at most `width`, continued with ` \\` before a `--flag`."""
    words = t(command.replace(" \\\n    ", " ")).split(" --")
    lines, current = [], "  " + words[0]
    for word in words[1:]:
        if len(current) + len(word) + 3 + 2 > width:
            lines.append(current + " \\")
            current = "      --" + word
        else:
            current += " --" + word
    return lines + [current]


def _fmt_change(change: dict[str, Any]) -> str:
    old, new = change.get("old"), change.get("new")
    return f"{t(old) if old is not None else '-'} → {t(new) if new is not None else '-'}"
