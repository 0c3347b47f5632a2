"""One Markdown rendering of a comparison report for the PR comment, check run and job summary.

Why one renderer: reviewers see the same verdict, table and diff wherever they look.
Why a character budget: GitHub rejects a comment over 65,536 characters and a check-run
summary over 65,535, so the least important sections are cut first and the reader is told
where the full report is. Everything that can come from the code under review (module,
function and phase names, reasons) is escaped so it cannot inject HTML, fake the sticky
marker, break a table or @-mention people.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from molt_budget import fmt
from molt_budget.compare.model import BY_SEVERITY, BudgetChange, KpiRow, Report
from molt_budget.report import escape, summary
from molt_budget.report.sparkline import sparkline
from molt_budget.structs import Struct

STATUS_ICON = {
    "pass": "✅", "yellow": "🟡", "fail": "❌", "error": "⛔", "not_comparable": "➖", "nondeterministic": "🎲",
}
SEVERITY = {status.value: rank for rank, status in enumerate(BY_SEVERITY)}   # worst first: compare.model's one order
HEADLINE = summary.HEADLINE
OFFENDING = summary.OFFENDING
BUDGET_STATUSES = ("fail", "yellow")      # budget changes that need the reviewers' eyes
DEFAULT_HINT = "the `report.json` artifact of this run (`molt-budget report report.json --markdown`)"
ITEM_LIMITS = (50, 20, 8, 3)
KEEP_ROWS = 20         # the worst rows kept before the reasons, commits and reproduce command are dropped
ROWS_PRIORITY = 55      # passing KPI rows are cut after the diff details, before budget changes and the rest


# -- escaping ------------------------------------------------------------------------


esc = escape.markdown          # free text: inert, one line (see report/escape.py)
code = escape.markdown_code   # names and paths: a literal code span


def cell(text: str) -> str:
    """Table cells: a pipe would end the cell even inside a code span (GFM)."""
    return text.replace("|", "\\|")


def code_block(text: str, lang: str = "sh") -> str:
    longest = max((len(m) for m in re.findall(r"`{3,}", text)), default=2)
    fence = "`" * (longest + 1)
    return f"{fence}{lang}\n{text}\n{fence}"


def table(headers: list[str], rows: list[list[str]], right: tuple[int, ...] = ()) -> str:
    """GFM table; columns in `right` (numbers) are right-aligned."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("--:" if i in right else "---" for i in range(len(headers))) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def details(summary: str, body: str) -> str:
    return f"<details><summary>{summary}</summary>\n\n{body}\n\n</details>"


# -- numbers -------------------------------------------------------------------------


def num(value: Any, unit: str = "") -> str:
    """fmt.value with the unit escaped: a unit is any string a PR's budgets.yaml says."""
    return fmt.value(value, esc(unit, 40) if unit else "")


def signed(value: Any, unit: str = "") -> str:
    return fmt.delta(value, esc(unit, 40) if unit else "")


pct = fmt.change_from_pct
plain = fmt.plain


def short(sha: Any) -> str:
    return str(sha)[:12] if sha else "unknown"


# -- sections ------------------------------------------------------------------------


class Section(Struct):
    """A block of the report; `priority` None = never dropped, lower numbers go first."""

    name: str
    text: str
    priority: int | None = None
    truncated: bool = False


def _sorted_kpis(report: Report) -> list[KpiRow]:
    return report.sorted_kpis()


def budget_counts(report: Report) -> dict[str, int]:
    """How many budget changes fail or are yellow: from the list when the report has one, else from
    the verdict's `budget_*` counts. A failure caused only by a budget edit must show in the headline."""
    if report.budget_changes is not None:
        found = {s: sum(1 for c in report.budget_changes if c.status == s) for s in BUDGET_STATUSES}
    else:
        found = {s: report.verdict.counts.get(f"budget_{s}", 0) for s in BUDGET_STATUSES}
    return {s: n for s, n in found.items() if n}


def counts_text(report: Report, sep: str, skipped: bool = True) -> str:
    """`2 fail · 1 yellow · 1 budget fail`: KPI statuses, then budget changes, then skipped KPIs."""
    counts = report.verdict.counts
    parts = [f"{counts[s]} {s}" for s in SEVERITY if counts.get(s)]
    parts += [f"{n} budget {s}" for s, n in budget_counts(report).items()]
    parts += [f"{counts['skipped']} skipped"] if skipped and counts.get("skipped") else []
    return sep.join(parts)


def segments(parts: list[summary.Segment]) -> str:
    return "".join(code(p.text) if p.code else _spaced(p.text) for p in parts)


def _spaced(text: str) -> str:
    """esc() that keeps one space at either end: segments are joined without separators."""
    lead = " " if text[:1].isspace() else ""
    trail = " " if text[-1:].isspace() and text.strip() else ""
    return lead + esc(text) + trail


def _headline(report: dict[str, Any], screen: summary.FirstScreen) -> str:
    judged = bool(report.get("kpis"))
    icon = STATUS_ICON.get(screen.status, "❔") if judged else (STATUS_ICON["error"] if screen.status in ("fail", "error") else "➖")
    config = report.get("config_path")
    line2 = " — ".join(x for x in (screen.counts, f"budgets {code(config)}" if config else "") if x)
    return f"## {icon} molt-budget: {screen.headline}\n\n{line2}".rstrip()


def _causes(screen: summary.FirstScreen, limit: int) -> tuple[str, bool]:
    """One sentence per failing KPI, with its cause: the first thing a reviewer reads."""
    if not screen.causes:
        return "", False
    shown = screen.causes[:limit]
    lines = [f"- {segments(c)}" for c in shown]
    more = len(screen.causes) - len(shown)
    if more > 0:
        lines.append(f"- … {more} more (see the table)")
    return "\n".join(lines), more > 0


def _footnote(screen: summary.FirstScreen) -> str:
    return f"<sub>{segments(screen.footnote)}</sub>"


def _kpi_lines(screen: summary.FirstScreen) -> list[str]:
    """Header, rule and one line per KPI (worst first); narrow enough for a PR's 830 px:
    status, KPI with its lane, head, its change, the budget or change limit that decided."""
    rows = screen.rows
    lines = ["|  | KPI · lane | head | Δ | decided by |", "|---|---|--:|--:|--:|"]
    for r in rows:
        kpi = code(r.kpi) + (f" · {code(r.lane)}" if r.lane else "")
        cells = [STATUS_ICON.get(r.status, "❔"), kpi, esc(r.head), esc(r.change), esc(r.decided)]
        lines.append("| " + " | ".join(cell(c) for c in cells) + " |")
    return lines


def _kpi_table(lines: list[str], max_rows: int | None) -> tuple[str, bool]:
    total = len(lines) - 2
    if total <= 0:
        return "_No KPI was judged (every lane was skipped)._", False
    shown = total if max_rows is None else min(max_rows, total)
    text = "\n".join(lines[: 2 + shown])
    hidden = total - shown
    if hidden:
        text += f"\n\n_… {hidden} more KPI row(s) not shown (the least severe)._"
    return text, bool(hidden)


def _notes(report: dict[str, Any], limit: int) -> tuple[str, bool]:
    """The gate's full reason for every KPI that is not a pass, folded."""
    offending = [k for k in summary.sorted_kpis(report) if k.get("status") in OFFENDING]
    if not offending:
        return "", False
    lines = []
    for k in offending[:limit]:
        stats = []
        if fmt.is_number(k.get("p_value")):
            stats.append(fmt.p_value(k["p_value"]))
        if fmt.is_number(k.get("ci_low")) and fmt.is_number(k.get("ci_high")):
            stats.append(f"head/base 95% CI {fmt.ratio(k['ci_low'])}–{fmt.ratio(k['ci_high'])}")
        if isinstance(k.get("pairs"), int):
            stats.append(f"{k['pairs']} pairs")
        # timed reasons already carry ratio, CI, p and pairs: do not say it twice
        extra = f" ({', '.join(stats)})" if stats and "CI" not in str(k.get("reason", "")) else ""
        budget = k.get("budget_status")
        budget_text = f" Budget: {esc(budget)}." if budget and budget != k.get("status") else ""
        lines.append(f"- {STATUS_ICON.get(k['status'], '')} {code(k.get('id', '?'))} on {code(k.get('lane', '?'))}: "
                     f"{esc(k.get('reason', ''))}{extra}{budget_text}")
    more = len(offending) - limit
    if more > 0:
        lines.append(f"- … {more} more")
    return details(f"Reasons ({len(offending)})", "\n".join(lines)), more > 0


def _explanations(report: dict[str, Any], limit: int) -> tuple[str, bool]:
    """Per regressing KPI, what its change is made of, ranked by share (folded)."""
    blocks, cut = [], False
    for why in report.get("explanations") or []:
        items = why.get("items") or []
        if not items:
            continue
        unit = str(why.get("unit") or "")
        rows = [[esc(i["kind"].replace("_", " ")), code(i["name"]), esc(fmt.delta(i["delta"], unit)), esc(fmt.share(i["share"], 1))]
                for i in items[:limit]]
        cut = cut or len(items) > limit
        body = table(["what", "name", "Δ", "share"], rows, right=(2, 3))
        title = f"Why {code(why.get('kpi', '?'))} moved: {esc(fmt.delta(why.get('delta'), unit))}, ranked by share"
        blocks.append(details(title, body))
    return "\n\n".join(blocks), cut


def _trends(report: dict[str, Any], sparklines: dict[str, list[float]] | None) -> str:
    if not sparklines:
        return ""
    lines = [f"- {code(k['id'])} {sparkline(list(sparklines[k['id']]))} {esc(fmt.value(sparklines[k['id']][-1], k.get('unit', '')))}"
             for k in summary.sorted_kpis(report) if sparklines.get(k.get("id", ""))]
    return details(f"Trends on main ({len(lines)})", "\n".join(lines)) if lines else ""


def _listing(title: str, items: list[Any], limit: int, headers: list[str], row: Callable[[Any], list[str]]) -> tuple[str, bool]:
    if not items:
        return "", False
    body = table(headers, [row(i) for i in items[:limit]])
    more = len(items) - limit
    if more > 0:
        body += f"\n\n_… {more} more not shown._"
    return details(f"{title} ({len(items)})", body), more > 0


def _by_abs(items: list[dict[str, Any]], key: str = "delta") -> list[dict[str, Any]]:
    return sorted(items, key=lambda x: -abs(x.get(key) or 0))


def _mapping_rows(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    return _by_abs([{"name": k, "delta": v} for k, v in (mapping or {}).items() if v])


def _entered(diff: dict[str, Any]) -> list[dict[str, Any]]:
    """modules_added with the IR's ops and bytes per module when the diff has them."""
    sizes = {m["module"]: m for m in (diff.get("modules") or {}).get("entered") or []}
    return [{**sizes.get(m.get("module"), {}), **m} for m in diff.get("modules_added") or []]


def _diff_sections(report: dict[str, Any], limit: int) -> list[Section]:
    diff = report.get("diff") or {}
    specs: list[tuple[str, int, str, list[Any], list[str], Callable[[Any], list[str]]]] = [
        ("modules_added", 45, "Modules added, largest first", _entered(diff), ["module", "ops", "IR size", "why it is included"],
         lambda m: [code(m.get("module", "?")), esc(fmt.value(m.get("ops"), "ops")), esc(fmt.value(m.get("bytes_normalized"), "bytes")),
                    ", ".join(esc(r) for r in m.get("reasons") or []) or "-"]),
        ("phases", 40, "Phase time deltas", _by_abs(diff.get("phases") or []), ["lane", "phase", "base", "head", "Δ"],
         lambda p: [code(p.get("lane", "-")), code(p.get("phase", "?")), num(p.get("base"), "s"), num(p.get("head"), "s"), signed(p.get("delta"), "s")]),
        ("top_function_op_deltas", 35, "Top function op-count deltas", _by_abs(diff.get("top_function_op_deltas") or []),
         ["function", "base ops", "head ops", "Δ ops"],
         lambda f: [code(f.get("function", "?")), num(f.get("base")), num(f.get("head")), signed(f.get("delta"))]),
        ("op_kind_deltas", 30, "Op-kind deltas", _mapping_rows(diff.get("op_kind_deltas") or {}), ["op kind", "Δ count"],
         lambda r: [code(r["name"]), signed(r["delta"])]),
        ("module_timing_deltas", 25, "Module timing deltas", _by_abs(diff.get("module_timing_deltas") or []),
         ["module", "base", "head", "Δ"],
         lambda m: [code(m.get("module", "?")), num(m.get("base"), "s"), num(m.get("head"), "s"), signed(m.get("delta"), "s")]),
        ("modules_removed", 20, "Modules removed", diff.get("modules_removed") or [], ["module", "reasons"],
         lambda m: [code(m.get("module", "?")), ", ".join(esc(r) for r in m.get("reasons") or []) or "-"]),
        ("reason_summary_deltas", 15, "Import-reason deltas", _mapping_rows(diff.get("reason_summary_deltas") or {}),
         ["reason", "Δ modules"], lambda r: [code(r["name"]), signed(r["delta"])]),
        ("functions_added", 10, "Functions added", diff.get("functions_added") or [], ["function"], lambda f: [code(f)]),
        ("functions_removed", 5, "Functions removed", diff.get("functions_removed") or [], ["function"], lambda f: [code(f)]),
    ]
    out = []
    for _key, priority, title, items, headers, row in specs:
        text, cut = _listing(title, items, limit, headers, row)
        if text:
            out.append(Section(title.lower(), text, priority, cut))
    return out


def offending_changes(report: Report) -> list[BudgetChange]:
    """Budget changes that fail or need a look, fails first."""
    return sorted((c for c in report.budget_changes or [] if c.status in BUDGET_STATUSES), key=lambda c: -c.status.severity)


def change_subject(change: BudgetChange) -> str:
    """`ops target`, `lane cold command`, `settings.max_headroom_pct`: what was edited."""
    what = change.kpi or (f"lane {change.lane}" if change.lane else "")
    return " ".join(x for x in (what, change.field) if x) or "budgets file"


def _value(value: Any) -> str:
    text = "none" if value is None else json.dumps(value, default=str) if not isinstance(value, str) else value
    return text if len(text) <= 80 else text[:77] + "..."


def _clip(text: Any, most: int = 500) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= most else text[: most - 1] + "…"


def _change_line(ch: BudgetChange, config: str | None) -> str:
    """Status, what, old → new, the justification and the gate's reason, where in the file."""
    icon = STATUS_ICON.get(ch.status, "•")
    field = code(ch.field) if ch.field else ""
    if ch.kpi:
        subject = f"{code(ch.kpi)} {field}".strip()
    elif ch.lane:
        subject = f"lane {code(ch.lane)} {field}".strip()
    else:
        subject = field or "budgets file"
    text = f"- {icon} {subject}: {esc(_value(ch.old))} → {esc(_value(ch.new))}"
    text += f" — justification: {esc(_clip(ch.justification))}" if ch.justification else " — no justification"
    if ch.reason:
        text += f" — {esc(_clip(ch.reason))}"
    if config and ch.line is not None and ch.line > 0:
        text += f" ({code(f'{config}:{ch.line}')})"
    return text


def _budget_findings(report: Report) -> str:
    """Failing and yellow budget changes: always shown in full, never cut when the text is shortened."""
    found = offending_changes(report)
    if not found:
        return ""
    lines = [_change_line(ch, report.config_path) for ch in found]
    return f"**Budget changes that need review ({len(found)}):**\n\n" + "\n".join(lines)


def _budget_changes(report: Report, limit: int) -> tuple[str, bool]:
    """The other budget changes (tightened, added, notes), folded."""
    changes = [c for c in report.budget_changes or [] if c.status not in BUDGET_STATUSES]
    if not changes:
        return "", False
    lines = [_change_line(ch, report.config_path) for ch in changes[:limit]]
    more = len(changes) - limit
    if more > 0:
        lines.append(f"- … {more} more")
    return details(f"Other budget changes in this PR ({len(changes)})", "\n".join(lines)), more > 0


def _reproduce(report: Report) -> str:
    command = report.reproduce
    if not command:
        return ""
    return "**Reproduce locally:**\n\n" + code_block(str(command))


def _bump(report: dict[str, Any]) -> str:
    """For each failing or yellow KPI, the one bump that makes this PR pass (see budgets.advice)."""
    from molt_budget.budgets.advice import advise

    commands = [a.command() for a in (advise(k, report.get("results_path")) for k in summary.sorted_kpis(report)) if a is not None]
    if not commands:
        return ""
    body = ("Each command makes its KPI pass; replace the `TODO` justification (bump refuses it as is) "
            "and commit the edit for review.\n\n" + code_block("\n".join(escape.plain(c) for c in commands)))
    return details(f"Accepting the change? ({len(commands)} bump command{'s' if len(commands) > 1 else ''})", body)


def _ratchets(report: dict[str, Any], limit: int) -> tuple[str, bool]:
    ratchets = report.get("ratchets")
    if not ratchets:
        return "", False
    lines = [f"- {code(r.get('kpi', '?'))} target {esc(fmt.number(r.get('old_target')))} → {esc(fmt.number(r.get('new_target')))}"
             + (f" (measured {esc(fmt.number(r['measured']))})" if fmt.is_number(r.get("measured")) else "")
             for r in ratchets[:limit]]
    more = len(ratchets) - limit
    if more > 0:
        lines.append(f"- … {more} more")
    return details(f"Ratchet suggestions ({len(ratchets)})", "\n".join(lines)), more > 0


def _sections(report: Report, data: dict[str, Any], screen: summary.FirstScreen, limit: int, kpi_lines: list[str],
              sparklines: dict[str, list[float]] | None = None) -> list[Section]:
    """In display order; priorities say what goes first when the text is too long.

    The first screen: headline, one sentence per failing KPI with its cause, the narrow
    table, one footnote line (commits, host). Everything after it is folded, ranked.
    `data` is the report's JSON form (the first-screen helpers read it) and `screen` its first
    screen: both the same at every item limit, so render_markdown builds them once."""
    out = [Section("headline", _headline(data, screen))]
    causes, cut = _causes(screen, max(limit, 3))
    if causes:
        out.append(Section("causes", causes, 95, cut))
    kpi_text, kpi_cut = _kpi_table(kpi_lines, None)
    out.append(Section("KPI table", kpi_text, None, kpi_cut))
    out.append(Section("commits", _footnote(screen), 80))
    findings = _budget_findings(report)
    if findings:
        out.append(Section("budget findings", findings))          # never dropped: it may be the whole failure
    for name, priority, (text, cut) in (("explanations", 47, _explanations(data, limit)), ("reasons", 90, _notes(data, limit))):
        if text:
            out.append(Section(name, text, priority, cut))
    bump = _bump(data)
    if bump:
        out.append(Section("bump how-to", bump, 50))
    diff = _diff_sections(data, limit)
    if diff:
        out.append(Section("diff heading", "### Regression diff", 46))   # goes after every diff section
        out += diff
    for name, priority, (text, cut) in (
        ("budget changes", 60, _budget_changes(report, limit)),
        ("ratchet suggestions", 12, _ratchets(data, limit)),
    ):
        if text:
            out.append(Section(name, text, priority, cut))
    trends = _trends(data, sparklines)
    if trends:
        out.append(Section("trends", trends, 14))
    reproduce = _reproduce(report)
    if reproduce:
        out.append(Section("reproduce command", reproduce, 75))
    return out


def _footer(report: Report, max_chars: int, omitted: list[str], truncated: bool, hint: str) -> str:
    version = report.tool_version
    where = f" · full report: {hint}" if hint != DEFAULT_HINT and not (omitted or truncated) else ""
    sig = f"<sub>molt-budget{' ' + esc(version) if version else ''}{where}</sub>"
    if not omitted and not truncated:
        return sig
    what = f"omitted {', '.join(omitted)}" if omitted else "long lists shortened"
    return f"> [!NOTE]\n> Cut to fit {fmt.number(max_chars)} characters ({what}). Full report: {hint}.\n\n{sig}"


def _assemble(marker: str | None, sections: list[Section], footer: str) -> str:
    parts = ([marker] if marker else []) + [s.text for s in sections] + [footer]
    return "\n\n".join(parts) + "\n"


def render_markdown(
    report: Report | dict[str, Any],
    *,
    max_chars: int,
    marker: str | None = None,
    full_report_hint: str | None = None,
    sparklines: dict[str, list[float]] | None = None,
) -> str:
    """The report as GitHub-flavoured Markdown of at most `max_chars` characters.

    Shrinks in this order: long lists inside sections; whole diff sections from the least
    important (function lists, op kinds, ... modules added last) and the bump how-to; KPI rows
    beyond the 20 worst; the passing budget changes, the reproduce command, commits, the
    authoritative note and the reasons; the remaining KPI rows. Failing and yellow budget
    changes are never dropped (they may be the whole failure). Only a report whose headline
    and those findings do not fit is cut mid-text. `marker` (the hidden sticky-comment marker) always stays first, and
    the text says what was cut and where the full report is.
    """
    hint = full_report_hint or DEFAULT_HINT
    if isinstance(report, dict):             # a report read from JSON by a caller that did not type it
        report = Report.from_dict(report)
    data = report.to_dict()
    screen = summary.first_screen(data)
    kpi_lines = _kpi_lines(screen)
    for limit in ITEM_LIMITS:
        sections = _sections(report, data, screen, limit, kpi_lines, sparklines)
        truncated = any(s.truncated for s in sections)
        text = _assemble(marker, sections, _footer(report, max_chars, [], truncated, hint))
        if len(text) <= max_chars:
            return text
    omitted: list[str] = []
    rows_tried = False
    droppable = sorted((s for s in sections if s.priority is not None), key=lambda s: s.priority)  # type: ignore[arg-type,return-value]
    for victim in droppable:
        if not rows_tried and (victim.priority or 0) >= ROWS_PRIORITY:
            rows_tried = True                 # passing KPI rows go before the reasons, commits and reproduce command
            offending = len(report.offending())
            fitted = _fit_rows(report, marker, sections, omitted, kpi_lines, min(offending, KEEP_ROWS), max_chars, hint)
            if fitted is not None:
                return fitted
        sections = [s for s in sections if s is not victim]
        if victim.name != "diff heading":
            omitted.append(victim.name)
        text = _assemble(marker, sections, _footer(report, max_chars, omitted, True, hint))
        if len(text) <= max_chars:
            return text
    fitted = _fit_rows(report, marker, sections, omitted, kpi_lines, 0, max_chars, hint)
    return fitted if fitted is not None else _hard_cut(_assemble(marker, sections, ""), max_chars, hint)


def _fit_rows(report: Report, marker: str | None, sections: list[Section], omitted: list[str],
              kpi_lines: list[str], min_rows: int, max_chars: int, hint: str) -> str | None:
    """The most KPI rows (at least `min_rows`, worst first) that fit, or None."""
    def build(rows: int) -> str:
        table_text, _ = _kpi_table(kpi_lines, rows)
        kept = [Section(s.name, table_text if s.name == "KPI table" else s.text, s.priority) for s in sections]
        return _assemble(marker, kept, _footer(report, max_chars, omitted + ["KPI rows"], True, hint))

    low, high = min_rows, max(0, len(kpi_lines) - 2)
    best = None
    while low <= high:
        mid = (low + high) // 2
        text = build(mid)
        if len(text) <= max_chars:
            best, low = text, mid + 1
        else:
            high = mid - 1
    return best


def _hard_cut(text: str, max_chars: int, hint: str) -> str:
    """Last resort: cut at a line boundary and say so; never over `max_chars`."""
    tail = f"\n\n… cut to fit {fmt.number(max_chars)} characters. Full report: {hint}.\n"
    if len(tail) >= max_chars:
        return text[:max_chars]
    head = text[: max_chars - len(tail)]
    if "\n" in head:
        head = head[: head.rindex("\n")]
    return head + tail
