"""One static HTML page per comparison: the summary first (as in the PR comment), then the
folded explanations, diff and trend charts.

Self-contained (inline CSS, no scripts, charts referenced by relative path under
`charts/`) so the folder can be uploaded as a CI artifact and opened from disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from molt_budget import fmt
from molt_budget.compare.model import Report
from molt_budget.report import summary
from molt_budget.report.escape import html as escape
from molt_budget.report.sparkline import sparkline

STATUS_CLASS = {"pass": "pass", "yellow": "yellow", "fail": "fail", "error": "error", "nondeterministic": "fail",
                "not_comparable": "muted"}
DIFF_TITLES = {
    "modules_added": "Modules added, largest first",
    "modules_removed": "Modules removed",
    "reason_summary_deltas": "Module-inclusion reason deltas",
    "phases": "Phase deltas",
    "functions_added": "Functions added",
    "functions_removed": "Functions removed",
    "top_function_op_deltas": "Largest per-function op deltas",
    "op_kind_deltas": "Op-kind deltas",
    "module_timing_deltas": "Per-module timing deltas",
}
MAX_ITEMS = 200
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:1rem auto;max-width:50rem;padding:0 1rem;color:#1b1b1b}
details{margin:.4rem 0}summary{cursor:pointer;font-weight:600}ul.causes li{margin:.2rem 0}
pre{white-space:pre-wrap;overflow-wrap:anywhere}td code,li code{overflow-wrap:anywhere}
table{display:block;max-width:100%;overflow-x:auto}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:90%}
.pass{background:#e3f4e3}.yellow{background:#fff4c2}.fail{background:#fbd5d5}.error{background:#f1dcf5}
.chart img{max-width:100%;border:1px solid #eee}.muted{color:#666}
"""


def write_html(report: Report | dict[str, Any], out_dir: Path, history_path: Path | None, main_only: bool = True) -> Path:
    """Write out_dir/index.html (+ out_dir/charts/*.svg|png when history is given); returns the page.

    Charts need matplotlib (`molt-budget[charts]`) and raise ChartsUnavailable without it.
    A history path that does not exist gives a page without charts (and is not created).
    """
    if isinstance(report, dict):
        report = Report.from_dict(report)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    charts: dict[str, Any] = {}
    trends: dict[str, list[float]] = {}
    note = ""
    if history_path is not None:
        if Path(history_path).is_file():
            from molt_budget.report.charts import require_matplotlib, series_from_report, write_charts
            from molt_budget.results.history import History

            require_matplotlib()
            series = series_from_report(report, History(Path(history_path)), main_only=main_only)
            charts = {c.kpi: c for c in write_charts(series, out_dir / "charts")}
            trends = {s.kpi: [p.value for p in s.points[-20:]] for s in series}
        else:
            note = f"No history at {history_path}: no trend charts."
    page = out_dir / "index.html"
    page.write_text(_page(report.to_dict(), out_dir, charts, trends, note), encoding="utf-8")
    return page


def _segments(parts: list[summary.Segment]) -> str:
    return "".join(f"<code>{escape(p.text)}</code>" if p.code else escape(p.text) for p in parts)


def _page(typed: Report | dict[str, Any], out_dir: Path, charts: dict[str, Any], trends: dict[str, list[float]], note: str) -> str:
    """Summary first (headline, one cause line per failing KPI, the narrow table, the commits),
    then everything else folded: why each KPI moved, reasons, the diff, trend charts."""
    report = summary.as_dict(typed)
    screen = summary.first_screen(report)
    status = screen.status
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">',
        f"<title>molt-budget: {escape(screen.headline)}</title><style>{CSS}</style></head><body>",
        f'<h1>molt-budget <span class="{STATUS_CLASS.get(status, "error")}">{escape(screen.headline)}</span></h1>',
        f"<p>{escape(screen.counts or 'no KPIs judged')}</p>",
    ]
    if screen.causes:
        parts.append('<ul class="causes">' + "".join(f"<li>{_segments(c)}</li>" for c in screen.causes) + "</ul>")
    parts.append(_kpi_table(screen.rows, trends))
    parts.append(f'<p class="muted">{_segments(screen.footnote)}</p>')
    if note:
        parts.append(f'<p class="muted">{escape(note)}</p>')
    parts += _folded(report)
    diff = _diff(report.get("diff") or {})
    parts.append(f"<details><summary>Diff against the base</summary>{diff}</details>")
    if charts:
        figures = []
        for kpi, files in charts.items():
            svg, png = files.svg.relative_to(out_dir).as_posix(), files.png.relative_to(out_dir).as_posix()
            figures.append(f'<figure class="chart" id="chart-{escape(kpi)}"><img src="{escape(svg)}" alt="trend of {escape(kpi)}">'
                           f'<figcaption><a href="{escape(png)}">PNG</a> · <a href="{escape(svg)}">SVG</a></figcaption></figure>')
        parts.append(f"<details><summary>Trends ({len(figures)} charts)</summary>{''.join(figures)}</details>")
    if report.get("reproduce"):
        parts.append(f"<p>Reproduce locally: <code>{escape(report['reproduce'])}</code></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _folded(report: dict[str, Any]) -> list[str]:
    from molt_budget.budgets.advice import advise

    out = []
    for why in report.get("explanations") or []:
        unit = str(why.get("unit") or "")
        rows = [f"<tr><td>{escape(i['kind'].replace('_', ' '))}</td><td><code>{escape(i['name'])}</code></td>"
                f'<td class="num">{escape(fmt.delta(i["delta"], unit))}</td><td class="num">{escape(fmt.share(i["share"], 1))}</td></tr>'
                for i in (why.get("items") or [])[:MAX_ITEMS]]
        title = f"Why <code>{escape(str(why.get('kpi')))}</code> moved: {escape(fmt.delta(why.get('delta'), unit))}, ranked by share"
        out.append(f"<details><summary>{title}</summary>{_table(['what', 'name', 'Δ', 'share'], rows)}</details>")
    offending = [k for k in summary.sorted_kpis(report) if k.get("status") in summary.OFFENDING]
    if offending:
        items = "".join(f"<li><code>{escape(k['id'])}</code> on <code>{escape(str(k.get('lane')))}</code>: {escape(str(k.get('reason', '')))}</li>"
                        for k in offending)
        out.append(f"<details><summary>Reasons ({len(offending)})</summary><ul>{items}</ul></details>")
    commands = [a.command() for a in (advise(k, report.get("results_path")) for k in summary.sorted_kpis(report)) if a]
    if commands:
        out.append(f"<details><summary>Accepting the change? ({len(commands)} bump commands)</summary>"
                   f"<p>Replace the TODO justification (bump refuses it as is) and commit the edit for review.</p>"
                   "<pre>" + "\n".join(escape(c) for c in commands) + "</pre></details>")
    changes = [c for c in report.get("budget_changes") or [] if c.get("kind") != "unchanged_note"]
    if changes:
        items = "".join(f"<li>{escape(str(c.get('status', '')))}: <code>{escape(str(c.get('kpi') or c.get('lane') or 'budgets'))}</code> "
                        f"{escape(str(c.get('field') or ''))} {escape(str(c.get('old')))} → {escape(str(c.get('new')))}; "
                        f"justification: {escape(str(c.get('justification') or 'none'))}</li>" for c in changes)
        out.append(f"<details><summary>Budget changes ({len(changes)})</summary><ul>{items}</ul></details>")
    return out


def _kpi_table(rows: list[summary.Row], trends: dict[str, list[float]]) -> str:
    head = ["", "KPI · lane", "head", "Δ", "decided by"] + (["trend"] if trends else [])
    out = []
    for r in rows:
        kpi = f"<code>{escape(r.kpi)}</code>" + (f" · <code>{escape(r.lane)}</code>" if r.lane else "")
        kpi += f'<br><span class="muted">{escape(r.title)}</span>' if r.title and r.title != r.kpi else ""
        cells = [f'<td class="{STATUS_CLASS.get(r.status, "")}">{escape(summary.STATUS_WORD.get(r.status, r.status))}</td>',
                 f"<td>{kpi}</td>", f'<td class="num">{escape(r.head)}</td>', f'<td class="num">{escape(r.change)}</td>',
                 f'<td class="num">{escape(r.decided)}</td>']
        if trends:
            cells.append(f"<td>{escape(sparkline(trends.get(r.kpi, [])))}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return _table(head, out) if out else '<p class="muted">No KPIs in this report.</p>'


def _diff(diff: dict[str, Any]) -> str:
    """Each part of the diff folded on its own, with units and signed deltas."""
    sizes = {m["module"]: m for m in (diff.get("modules") or {}).get("entered") or []}
    s_, ops = "s", "ops"

    def signed(unit: str) -> Any:
        return lambda v: escape(fmt.delta(v, unit))

    def value(unit: str) -> Any:
        return lambda v: escape(fmt.value(v, unit))

    specs: dict[str, tuple[list[str], Any]] = {
        "modules_added": (["module", "ops", "IR size", "reasons"], lambda m: [
            f"<code>{escape(m['module'])}</code>", value(ops)((sizes.get(m["module"]) or {}).get("ops")),
            value("bytes")((sizes.get(m["module"]) or {}).get("bytes_normalized")), escape(", ".join(m.get("reasons") or []))]),
        "modules_removed": (["module", "reasons"], lambda m: [f"<code>{escape(m['module'])}</code>", escape(", ".join(m.get("reasons") or []))]),
        "phases": (["lane", "phase", "base", "head", "Δ"], lambda p: [escape(str(p.get("lane", ""))), f"<code>{escape(p['phase'])}</code>",
                   value(s_)(p.get("base")), value(s_)(p.get("head")), signed(s_)(p.get("delta"))]),
        "top_function_op_deltas": (["function", "base", "head", "Δ"], lambda f: [f"<code>{escape(f['function'])}</code>",
                                   value(ops)(f.get("base")), value(ops)(f.get("head")), signed(ops)(f.get("delta"))]),
        "module_timing_deltas": (["module", "base", "head", "Δ"], lambda m: [f"<code>{escape(m['module'])}</code>",
                                 value(s_)(m.get("base")), value(s_)(m.get("head")), signed(s_)(m.get("delta"))]),
    }
    counts = {"op_kind_deltas": ("op kind", ops), "reason_summary_deltas": ("reason", "modules")}
    sections = []
    for key in [*DIFF_TITLES, *sorted(k for k in diff if k not in DIFF_TITLES and k != "modules")]:
        items = diff.get(key)
        if not items:
            continue
        title = escape(DIFF_TITLES.get(key, key))
        if key in specs:
            head, row = specs[key]
            rows = ["<tr>" + "".join(f'<td class="num">{c}</td>' if i else f"<td>{c}</td>" for i, c in enumerate(row(x))) + "</tr>"
                    for x in items[:MAX_ITEMS]]
            body = _table(head, rows) + _more(len(items))
        elif key in counts:
            name, unit = counts[key]
            rows = [f'<tr><td><code>{escape(str(k))}</code></td><td class="num">{escape(fmt.delta(v, unit))}</td></tr>'
                    for k, v in list(items.items())[:MAX_ITEMS]]
            body = _table([name, "Δ"], rows) + _more(len(items))
        else:
            body = _any(items)
        sections.append(f"<details><summary>{title} ({len(items)})</summary>{body}</details>")
    return "\n".join(sections) or '<p class="muted">No differences recorded.</p>'


def _any(value: Any) -> str:
    """Lists of records → table, lists of names → list, mappings → two columns."""
    if isinstance(value, dict):
        rows = [f"<tr><td>{escape(str(k))}</td><td class=\"num\">{_num(v)}</td></tr>" for k, v in list(value.items())[:MAX_ITEMS]]
        return _table(["name", "delta"], rows) + _more(len(value))
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        cols = list(dict.fromkeys(c for v in value for c in v))
        rows = ["<tr>" + "".join(f"<td>{_cell(v.get(c))}</td>" for c in cols) + "</tr>" for v in value[:MAX_ITEMS]]
        return _table(cols, rows) + _more(len(value))
    if isinstance(value, list):
        return "<ul>" + "".join(f"<li><code>{escape(str(v))}</code></li>" for v in value[:MAX_ITEMS]) + "</ul>" + _more(len(value))
    return f"<p>{escape(str(value))}</p>"


def _more(n: int) -> str:
    return f'<p class="muted">… and {n - MAX_ITEMS} more</p>' if n > MAX_ITEMS else ""


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return escape(", ".join(map(str, value)))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return _num(value)
    return escape("" if value is None else str(value))


def _table(head: list[str], rows: list[str]) -> str:
    return "<table><thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"


def _num(value: Any, unit: str = "") -> str:
    if value is None or isinstance(value, (int, float)):
        return escape(fmt.value(value, unit))
    return escape(str(value))


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no KPIs judged"
