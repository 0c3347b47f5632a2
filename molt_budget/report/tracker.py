"""The Compile Progress Tracker page as a product of history, not of hand edits.

Only the text between marker comments is ours; everything else on the page (scope,
workflow, caveats, the work board) is the team's and is kept byte for byte. The output
depends only on the budgets file and the history database (no "generated at" stamp),
so regenerating an unchanged history changes nothing.

Baseline: the KPI's `seeded_from` value (and its date) when the budgets file declares
one, otherwise the oldest value recorded in history. `seeded_from` wins because it is a
reviewed statement; the oldest history value moves when history is pruned.
Status: the latest value judged against the *current* target and limit (the ones the
table shows), so the colour and the Target column always agree.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from molt_budget.config.model import Config, Kpi
from molt_budget.environment import writing
from molt_budget.errors import ConfigError
from molt_budget.report import escape
from molt_budget.report.markdown import cell
from molt_budget.results.history import History, KpiPoint, RunSummary, SampleIssue
from molt_budget.results.store import write_bytes_atomic
from molt_budget.structs import Struct

KPI_BLOCK = "kpi-table"
HISTORY_BLOCK = "run-history"
STATUS = {"pass": "🟢 green", "yellow": "🟡 yellow", "fail": "🔴 red", None: "⚪ no data"}
MAX_CELL = 200
COUNT_UNITS = {"ops", "functions", "modules", "bytes", "instructions"}


def marker(block: str, end: bool = False) -> str:
    return f"<!-- molt-budget:{block}:{'end' if end else 'start'} -->"


# -- data ----------------------------------------------------------------------------------


class KpiRow(Struct):
    kpi: Kpi
    baseline: float | None
    baseline_note: str                 # date, "seeded" or a commit
    latest: KpiPoint | None
    status: str | None                 # pass | yellow | fail | None (no data)


def kpi_rows(config: Config, history: History, branch: str | None = None, main_only: bool = True) -> list[KpiRow]:
    """Baseline and Latest per KPI: main records only unless `main_only=False` (two index reads
    per KPI, never the whole series)."""
    from molt_budget.compare.budget import judge

    rows = []
    for kpi in config.kpis.values():
        first, latest = history.kpi_first_last(kpi.id, kpi.lane, kpi.metric, kpi.aggregate, branch=branch, main_only=main_only)
        baseline, note = _baseline(kpi, first)
        status = judge(latest.value, kpi)[0] if latest else None
        rows.append(KpiRow(kpi, baseline, note, latest, status))
    return rows


def _baseline(kpi: Kpi, first: KpiPoint | None) -> tuple[float | None, str]:
    seed = kpi.seeded_from or {}
    if isinstance(seed.get("value"), (int, float)):
        note = str(seed.get("date") or "") or (f"seeded at {str(seed['commit'])[:12]}" if seed.get("commit") else "seeded")
        return float(seed["value"]), note
    if first is not None:
        return first.value, first.started_utc[:10]
    return None, ""


# -- rendering -----------------------------------------------------------------------------


def render_kpi_table(rows: list[KpiRow]) -> str:
    lines = ["| KPI | Baseline (date) | Target | Latest | Status |", "| --- | ---: | ---: | ---: | --- |"]
    flagged = False
    for row in rows:
        k = row.kpi
        fmt = _formatter(k, row)
        baseline = _cell(f"{fmt(row.baseline)} ({row.baseline_note})") if row.baseline is not None else "n/a"
        sign = "<=" if k.direction == "lower" else ">="
        target = f"{sign} {fmt(k.target)}" if k.target is not None else (f"{sign} {fmt(k.limit)} (limit)" if k.limit is not None else "n/a")
        latest = "n/a"
        if row.latest is not None:
            latest = fmt(row.latest.value)
            if not row.latest.authoritative:
                latest += "\\*"
                flagged = True
        lines.append(f"| {_cell(k.title or k.id)} | {baseline} | {target} | {latest} | {STATUS[row.status]} |")
    lines.append("")
    lines.append("Baseline: the KPI's `seeded_from` in the budgets file when declared, else the oldest value in history. "
                 "Status: the latest value against today's target (🟡 past it) and limit (🔴 past it).")
    if flagged:
        lines.append("")
        lines.append("\\* from a run that was not authoritative (host not quiet, or an imported snapshot).")
    return "\n".join(lines)


def render_run_history(runs: list[RunSummary]) -> str:
    if not runs:
        return "_No runs recorded yet._"
    lines = [
        # the date heads the run's cell, and retries and failures share one: eight columns did not
        # fit the 830 px GitHub shows a page in
        "| Run (date UTC, id) | Commit | Lanes | Verdicts | Retries and failures | Authoritative |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for run in runs:
        lanes = ", ".join(l if st == "ok" else f"{l} ({st})" for l, st in run.lanes.items()) or "-"
        counts = ", ".join(f"{run.counts[s]} {s}" for s in ("pass", "yellow", "fail", "error") if run.counts.get(s)) or "-"
        if run.state != "complete":
            counts += f" ({run.state})"
        retries = [_issue(i) + f": {i.attempts} attempts ({i.retry_reason or 'no reason recorded'})" for i in run.retries]
        failures = [f"{_issue(i)}: {i.error or 'failed'}" for i in run.failures]
        failures += [f"{lane}: {err}" for lane, err in run.lane_errors.items() if not any(i.lane == lane for i in run.failures)]
        auth = "yes" if run.authoritative else "no" + (f": {'; '.join(run.authoritative_reasons)}" if run.authoritative_reasons else "")
        if run.authoritative and not run.main:
            auth = "yes; not main: " + "; ".join(run.not_main_reasons or [])
        commit = _code_cell(run.commit[:12]) if run.commit else "-"
        lines.append(
            f"| {_cell(run.started_utc[:10])} {_code_cell(run.run_id)} | {commit} | {_cell(lanes)} | {_cell(counts)} | "
            f"{_cell('; '.join(retries + failures) or '-')} | {_cell(auth)} |"
        )
    return "\n".join(lines)


def _issue(i: SampleIssue) -> str:
    word = {"measure": "repeat"}.get(i.kind, i.kind)
    return f"{i.lane} {word} {i.index + 1}"


def _formatter(kpi: Kpi, row: KpiRow) -> Callable[[float | None], str]:
    """Counts stay integers (ops, modules) as in the seed page; anything else gets 3 decimals."""
    from molt_budget.config.metrics import parse_metric

    info = parse_metric(kpi.metric)
    if info is not None and info.unit:
        integral = info.unit in COUNT_UNITS
    else:   # json:/regex: metrics have no unit: integers if every known number is one
        known = [v for v in (kpi.target, kpi.limit, row.baseline, row.latest.value if row.latest else None) if v is not None]
        integral = all(float(v).is_integer() for v in known)

    def fmt(value: float | None) -> str:
        if value is None:
            return "n/a"
        return str(int(value)) if integral and float(value).is_integer() else f"{value:.3f}"

    return fmt


def _cell(text: str) -> str:
    """One Markdown table cell of untrusted text (a KPI title, a lane's error, a case name from
    an imported snapshot): inert, one line, pipes escaped, long reasons cut. The page is
    spliced between hidden-comment markers, so a name holding one must not end up as one."""
    return cell(escape.markdown(text, MAX_CELL))


def _code_cell(text: str) -> str:
    """A run id or commit as a literal code span, whatever backticks it holds."""
    return cell(escape.markdown_code(text, MAX_CELL))


# -- the page ------------------------------------------------------------------------------


def splice(page: str, block: str, body: str, heading: str, name: str = "page") -> str:
    """Replace the text between `block`'s markers, or append heading + markers when absent."""
    start, end = marker(block), marker(block, end=True)
    nl = "\r\n" if "\r\n" in page else "\n"
    body = body.replace("\n", nl)
    i, j = page.find(start), page.find(end)
    if i == -1 and j == -1:
        prefix = "" if not page or page.endswith(nl) else nl
        sep = nl if page else ""
        return f"{page}{prefix}{sep}{heading}{nl}{nl}{start}{nl}{body}{nl}{end}{nl}"
    if i == -1 or j == -1 or j < i or page.count(start) > 1 or page.count(end) > 1:
        line = page[: (i if i != -1 else j)].count("\n") + 1
        raise ConfigError(f"{name}:{line}: markers {start} ... {end} must appear once each, start before end")
    inner_start = i + len(start)
    return page[:inner_start] + nl + body + nl + page[j:]


def render_page(page: str, config: Config, history: History, runs: int = 20, branch: str | None = None,
                name: str = "page", main_only: bool = True) -> str:
    page = splice(page, KPI_BLOCK, render_kpi_table(kpi_rows(config, history, branch, main_only)), "## KPIs", name)
    summaries = history.run_summaries(runs, branch, main_only=main_only)
    return splice(page, HISTORY_BLOCK, render_run_history(summaries), "## Run History", name)


def update_tracker(out: Path, config: Config, history: History, runs: int = 20, branch: str | None = None,
                   check: bool = False, main_only: bool = True) -> bool:
    """Regenerate the blocks in `out` (created if missing); True if the file changed (or would)."""
    out = Path(out)
    old = _old_page(out)
    base = old if old is not None else "# Compile Progress Tracker\n"
    new = render_page(base, config, history, runs, branch, name=str(out), main_only=main_only)
    if new == old:
        return False
    if not check:
        with writing(out, "the tracker page"):
            write_bytes_atomic(out, new.encode("utf-8", "surrogateescape"))
    return True


def _old_page(out: Path) -> str | None:
    """The page as it is, or None when there is none yet. Read bounded: a folder, FIFO or device
    at `--out` is one line (`/dev/full` read zeros until the process was killed). Bytes that are
    not UTF-8 outside the markers survive untouched (surrogateescape)."""
    from molt_budget.bounded import MAX_SMALL_BYTES, InputError, open_regular
    from molt_budget.environment import fault

    try:
        with open_regular(out) as fh:
            data = fh.read(MAX_SMALL_BYTES + 1)
    except FileNotFoundError:
        return None
    except InputError as exc:
        raise ConfigError(f"{out}: {exc.message} (the tracker page)") from None
    except OSError as exc:
        raise fault(exc, out, "read the tracker page") from None
    if len(data) > MAX_SMALL_BYTES:
        raise ConfigError(f"{out}: the tracker page is over {MAX_SMALL_BYTES >> 20} MB: not a page to update")
    return data.decode("utf-8", "surrogateescape")
