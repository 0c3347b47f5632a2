"""One static HTML page per comparison: the KPI table, the trend charts and the last diff.

Self-contained (inline CSS, no scripts, charts referenced by relative path under
`charts/`) so the folder can be uploaded as a CI artifact and opened from disk.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from molt_budget import fmt
from molt_budget.compare.model import KpiRow, Report
from molt_budget.report.escape import html as escape
from molt_budget.report.sparkline import sparkline

STATUS_CLASS = {"pass": "pass", "yellow": "yellow", "fail": "fail", "error": "error", "nondeterministic": "fail",
                "not_comparable": "muted"}
DIFF_TITLES = {
    "modules_added": "Modules added",
    "modules_removed": "Modules removed",
    "reason_summary_deltas": "Module-inclusion reason deltas",
    "phases": "Phase deltas (s)",
    "functions_added": "Functions added",
    "functions_removed": "Functions removed",
    "top_function_op_deltas": "Largest per-function op deltas",
    "op_kind_deltas": "Op-kind deltas",
    "module_timing_deltas": "Per-module timing deltas (s)",
}
MAX_ITEMS = 200
CSS = """
body{font:14px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:72rem;padding:0 1rem;color:#1b1b1b}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}th,td{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}code{font-size:90%}
.pass{background:#e3f4e3}.yellow{background:#fff4c2}.fail{background:#fbd5d5}.error{background:#f1dcf5}
.chart img{max-width:100%;border:1px solid #eee}.muted{color:#666}
"""


def write_html(report: Report, out_dir: Path, history_path: Path | None, main_only: bool = True) -> Path:
    """Write out_dir/index.html (+ out_dir/charts/*.svg|png when history is given); returns the page.

    Charts need matplotlib (`molt-budget[charts]`) and raise ChartsUnavailable without it.
    A history path that does not exist gives a page without charts (and is not created).
    """
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
    page.write_text(_page(report, out_dir, charts, trends, note), encoding="utf-8")
    return page


def _page(report: Report, out_dir: Path, charts: dict[str, Any], trends: dict[str, list[float]], note: str) -> str:
    status = report.status.value
    head, base = report.head, report.base
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>molt-budget: {escape(status.upper())}</title><style>{CSS}</style></head><body>",
        f'<h1>molt-budget <span class="{STATUS_CLASS.get(status, "error")}">{escape(status.upper())}</span></h1>',
        "<p>" + escape(_counts(report.verdict.counts)) + "</p>",
        "<p>head <code>" + escape(str(head.commit or "unknown")[:12]) + "</code>"
        + (" (dirty)" if head.dirty else "")
        + (" against base <code>" + escape(str(base.commit or "unknown")[:12]) + "</code> from "
           + escape(base.source) if base else " (no base: budgets alone decided)") + "</p>",
    ]
    if not report.authoritative:
        reasons = "; ".join(report.authoritative_reasons) or "no reason recorded"
        parts.append(f'<p class="yellow">Not authoritative: {escape(reasons)}</p>')
    parts.append("<h2>KPIs</h2>" + _kpi_table(report.kpis, trends))
    if note:
        parts.append(f'<p class="muted">{escape(note)}</p>')
    if charts:
        parts.append("<h2>Trends</h2>")
        for kpi, files in charts.items():
            svg, png = files.svg.relative_to(out_dir).as_posix(), files.png.relative_to(out_dir).as_posix()
            parts.append(f'<figure class="chart" id="chart-{escape(kpi)}"><img src="{escape(svg)}" alt="trend of {escape(kpi)}">'
                         f'<figcaption><a href="{escape(png)}">PNG</a> · <a href="{escape(svg)}">SVG</a></figcaption></figure>')
    parts.append("<h2>Diff against the base</h2>" + _diff(report.diff.to_dict()))
    if report.reproduce:
        parts.append(f"<p>Reproduce locally: <code>{escape(report.reproduce)}</code></p>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _kpi_table(kpis: list[KpiRow], trends: dict[str, list[float]]) -> str:
    head = ["KPI", "lane", "base", "head", "delta", "delta %", "target", "limit", "status", "reason"]
    if trends:
        head.insert(9, "trend")
    rows = []
    for k in kpis:
        cells = [
            f"<td>{escape(k.shown_title)}<br><code>{escape(k.id)}</code></td>",
            f"<td>{escape(k.lane)}</td>",
            *(f'<td class="num">{_num(value, k.unit)}</td>' for value in (k.base, k.head)),
            f'<td class="num">{escape(fmt.delta(k.delta, k.unit))}</td>',
            f'<td class="num">{escape(fmt.change(k.base, k.head))}</td>',
            *(f'<td class="num">{_num(value, k.unit)}</td>' for value in (k.target, k.limit)),
            f'<td class="{STATUS_CLASS.get(k.status, "")}">{escape(k.status.value)}</td>',
            f"<td>{escape(k.reason)}</td>",
        ]
        if trends:
            cells.insert(9, f"<td>{escape(sparkline(trends.get(k.id, [])))}</td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return _table(head, rows) if rows else '<p class="muted">No KPIs in this report.</p>'


def _diff(diff: dict[str, Any]) -> str:
    sections = []
    for key in [*DIFF_TITLES, *sorted(k for k in diff if k not in DIFF_TITLES)]:
        value = diff.get(key)
        if not value:
            continue
        title = escape(DIFF_TITLES.get(key, key))
        sections.append(f"<h3>{title}</h3>" + _any(value))
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
