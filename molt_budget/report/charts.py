"""Trend charts: one per KPI over runs, as PNG (to look at) and SVG (to diff and to test).

matplotlib is an optional dependency (`molt-budget[charts]`), imported only here and only
when a chart is drawn; no pyplot, so no global backend state: an Agg canvas per figure.

Every artist that carries meaning has a gid, which becomes the id of its SVG group:
`kpi-<id>-value`, `-target`, `-limit`, `-yellow-band`, `-fail-band`, `-authoritative`,
`-nonauthoritative`. The SVG also embeds `<metadata id="molt-budget-chart">` with the data
and the affine map data → SVG user units, so a reader (or a test) can check that the
target line is drawn at the target. Paths are not simplified, so every run is a vertex.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

from molt_budget import fmt
from molt_budget.compare.model import Report
from molt_budget.errors import BudgetError
from molt_budget.results.history import History, KpiPoint
from molt_budget.structs import Struct, field

INSTALL_HINT = "pip install 'molt-budget[charts]'"
COLORS = {"value": "#1f4e79", "target": "#b8860b", "limit": "#b22222", "yellow": "#ffd54f", "fail": "#ef9a9a", "nonauth": "#7b1fa2"}


class ChartsUnavailable(BudgetError):
    """Charts were asked for but matplotlib is not installed (exit 2: a setup problem)."""


class Series(Struct):
    """A KPI's budget and its values over runs, oldest first."""

    kpi: str
    title: str
    unit: str
    direction: str
    target: float | None
    limit: float | None
    points: list[KpiPoint] = field(default_factory=list)


class ChartFiles(Struct):
    kpi: str
    png: Path
    svg: Path


def require_matplotlib() -> None:
    """Fail early, in one line, before any work is done."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ChartsUnavailable(f"charts need matplotlib, which is not installed: {INSTALL_HINT}") from None


def series_from_config(config: Any, history: History, runs: int = 100, branch: str | None = None,
                       main_only: bool = True) -> list[Series]:
    """Each KPI's last `runs` points: main records only unless `main_only=False`."""
    return [
        Series(k.id, k.title or k.id, k.unit, k.direction, k.target, k.limit,
               history.kpi_series(k.id, k.lane, k.metric, k.aggregate, branch=branch, limit=runs, main_only=main_only))
        for k in config.kpis.values()
    ]


def series_from_report(report: Report, history: History, runs: int = 100, main_only: bool = True) -> list[Series]:
    """The report's KPIs with their history (main records unless `main_only=False`)."""
    out = []
    for k in report.kpis:
        points = history.kpi_series(k.id, k.lane, k.metric or None, branch=None, limit=runs, main_only=main_only)
        out.append(Series(k.id, k.shown_title, k.unit, k.direction, k.target, k.limit, points))
    return out


def chart_stem(kpi: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", kpi)


def write_charts(series: list[Series], out_dir: Path) -> list[ChartFiles]:
    require_matplotlib()
    out_dir.mkdir(parents=True, exist_ok=True)
    return [render_chart(s, out_dir) for s in series]


def render_chart(series: Series, out_dir: Path) -> ChartFiles:
    """Draw one KPI and write `<kpi>.png` and `<kpi>.svg` into out_dir."""
    require_matplotlib()
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rc: dict[str, Any] = {"svg.hashsalt": "molt-budget", "svg.fonttype": "none", "path.simplify": False, "font.size": 9,
                          "text.parse_math": False}   # a title or unit is text the budgets file wrote: "$" is a dollar sign
    with matplotlib.rc_context(rc):  # type: ignore[arg-type]  # typed as a Literal of every rcParam name
        fig = Figure(figsize=(8.0, 3.2), dpi=72)   # 72 dpi: display units == SVG user units
        FigureCanvasAgg(fig)
        ax = fig.add_axes((0.08, 0.16, 0.68, 0.72))
        ax.set_gid(f"kpi-{series.kpi}-axes")
        _draw(ax, series)
        stem = chart_stem(series.kpi)       # `ir.mb` and `ir.ops`: never with_suffix, which eats `.mb`
        png, svg = out_dir / f"{stem}.png", out_dir / f"{stem}.svg"
        fig.savefig(png, format="png", dpi=144, metadata={"Software": None})
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None})
        meta = _metadata(fig, ax, series)
    svg.write_text(_embed(buffer.getvalue(), meta), encoding="utf-8")
    return ChartFiles(series.kpi, png, svg)


def _near(bound: float | None, low: float, high: float) -> bool:
    """A budget line is worth the axis when it is within half the data's span of the data
    (or within 50% of its size): otherwise it squeezes the data flat against zero."""
    if bound is None:
        return False
    span = max(high - low, abs(high) * 0.5, 1e-12)
    return low - span <= bound <= high + span


def y_range(s: Series) -> tuple[float, float]:
    """From the data; the target and limit widen it only when they are near."""
    ys = [p.value for p in s.points]
    if not ys:
        known = [v for v in (s.target, s.limit) if v is not None]
    else:
        low, high = min(ys), max(ys)
        known = ys + [v for v in (s.target, s.limit) if v is not None and _near(v, low, high)]
    low, high = (min(known), max(known)) if known else (0.0, 1.0)
    pad = (high - low) * 0.08 or abs(high) * 0.08 or 1.0
    return low - pad, high + pad


def _draw(ax: Any, s: Series) -> None:
    from matplotlib.ticker import FuncFormatter

    prefix = f"kpi-{s.kpi}"
    xs = list(range(len(s.points)))
    ys = [p.value for p in s.points]
    bottom, top = y_range(s)
    lower = s.direction == "lower"
    far = max(abs(top), abs(bottom), *(abs(v) for v in (s.target, s.limit) if v is not None)) * 2 + 1
    worse_edge = far if lower else -far              # the fail band reaches past the limit, whatever the axis
    unit_of = s.unit
    if s.target is not None:
        edge = s.limit if s.limit is not None else worse_edge
        ax.axhspan(min(s.target, edge), max(s.target, edge), color=COLORS["yellow"], alpha=0.35, lw=0,
                   gid=f"{prefix}-yellow-band", label="yellow (past target)")
        ax.axhline(s.target, color=COLORS["target"], ls="--", lw=1.2, gid=f"{prefix}-target",
                   label=f"target {fmt.value(s.target, unit_of)}")
    if s.limit is not None:
        ax.axhspan(min(s.limit, worse_edge), max(s.limit, worse_edge), color=COLORS["fail"], alpha=0.35, lw=0,
                   gid=f"{prefix}-fail-band", label="fail (past limit)")
        ax.axhline(s.limit, color=COLORS["limit"], ls="-", lw=1.2, gid=f"{prefix}-limit",
                   label=f"limit {fmt.value(s.limit, unit_of)}")
    off = [f"{name} {fmt.value(v, unit_of)} {'above' if v > top else 'below'}"
           for name, v in (("target", s.target), ("limit", s.limit)) if v is not None and not bottom <= v <= top]
    if off:
        ax.text(0.99, 0.97, "off the chart: " + ", ".join(off), transform=ax.transAxes, ha="right", va="top", fontsize=8,
                gid=f"{prefix}-off-chart")
    if s.points:
        ax.plot(xs, ys, color=COLORS["value"], lw=1.5, gid=f"{prefix}-value", label="value")
        auth = [(x, p.value) for x, p in zip(xs, s.points) if p.authoritative]
        other = [(x, p.value) for x, p in zip(xs, s.points) if not p.authoritative]
        if auth:
            ax.plot(*zip(*auth), ls="none", marker="o", ms=3, color=COLORS["value"], gid=f"{prefix}-authoritative")
        if other:
            ax.plot(*zip(*other), ls="none", marker="X", ms=7, color=COLORS["nonauth"], gid=f"{prefix}-nonauthoritative",
                    label="not authoritative")
    else:
        ax.text(0.5, 0.5, "no runs recorded yet", transform=ax.transAxes, ha="center", va="center")
    ax.set_ylim(bottom, top)
    ax.set_xlim(-0.5, max(len(xs) - 0.5, 0.5))
    ticks = _ticks(len(xs))
    ax.set_xticks(ticks)
    ax.set_xticklabels([_tick_label(s.points[i]) for i in ticks], rotation=0, fontsize=7)
    tick, label = fmt.axis(s.unit, max(abs(bottom), abs(top)))
    ax.yaxis.set_major_formatter(FuncFormatter(tick))          # never `8e+06`: the one number formatter
    ax.set_title(f"{s.title} ({s.kpi})" if s.title != s.kpi else s.kpi, loc="left")
    ax.set_ylabel(label)
    ax.set_xlabel("runs on main, oldest to newest (commit, UTC time)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)


def _tick_label(point: KpiPoint) -> str:
    """`a1b2c3d` over `11-26 14:59`: runs on one day differ by commit and time."""
    when = (point.started_utc or "")[5:16].replace("T", " ")
    return f"{(point.commit or '-')[:7]}\n{when}"


def _ticks(n: int, most: int = 6) -> list[int]:
    if n == 0:
        return []
    if n <= most:
        return list(range(n))
    step = (n - 1) / (most - 1)
    return sorted({round(i * step) for i in range(most)})


def _metadata(fig: Any, ax: Any, s: Series) -> dict[str, Any]:
    """The affine map data → SVG user units (y grows downwards in SVG), plus the data itself."""
    height = fig.get_figheight() * fig.dpi
    (x0, y0), (x1, y1) = ax.transData.transform([(0.0, 0.0), (1.0, 1.0)])
    return {
        "kpi": s.kpi, "title": s.title, "unit": s.unit, "direction": s.direction,
        "target": s.target, "limit": s.limit,
        "x": {"scale": float(x1 - x0), "offset": float(x0)},
        "y": {"scale": float(-(y1 - y0)), "offset": float(height - y0)},
        "points": [{"run_id": p.run_id, "started_utc": p.started_utc, "commit": p.commit, "value": p.value,
                    "authoritative": p.authoritative} for p in s.points],
    }


def _embed(svg: str, meta: dict[str, Any]) -> str:
    """Insert our metadata element right after the root <svg ...> tag."""
    element = f'<metadata id="molt-budget-chart">{escape(json.dumps(meta, sort_keys=True))}</metadata>'
    start = svg.index("<svg")
    close = svg.index(">", start) + 1
    return svg[:close] + "\n " + element + svg[close:]
