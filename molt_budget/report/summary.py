"""The first screen of every report, decided once for the terminal, Markdown and HTML.

What a reviewer must get in five seconds: the verdict, one sentence per failing KPI with its
cause (`ir_size_mb 0.207 → 25.18 MB (limit 12 MB) · 54 modules entered, 96% of the growth
from multiprocessing.* via import multiprocessing (hello.py:1)`), then a narrow table
(status first, KPI with its lane, head with its change, the budget or change limit that
decided), host and run details in one footnote. Everything else is folded below, ranked.

Renderers get `Segment`s (plain text or code) and short cell strings, and only decide how
to mark them up and escape them. Every number comes from `report.fmt`.
"""

from __future__ import annotations

from typing import Any

from molt_budget import fmt
from molt_budget.budgets.advice import budget_status_of
from molt_budget.compare.model import BY_SEVERITY, DEFAULT_TIMED_MAX_INCREASE_PCT, Report, Status
from molt_budget.structs import Struct, field

SEVERITY = {status.value: rank for rank, status in enumerate(BY_SEVERITY)}   # worst first: compare.model's one order
OFFENDING = tuple(s.value for s in BY_SEVERITY if s.offending)
HEADLINE = {"pass": "PASS", "yellow": "PASS with warnings", "fail": "FAIL", "error": "ERROR"}
STATUS_WORD = {"fail": "FAIL", "error": "ERROR", "nondeterministic": "NONDET", "yellow": "yellow",
               "not_comparable": "n/c", "pass": "pass"}
REASON_CHARS = 140


class Segment(Struct):
    text: str
    code: bool = False


class Row(Struct):
    """One KPI in the first-screen table: short strings, numbers already formatted."""

    status: str
    kpi: str
    lane: str | None          # None when the KPI id already names its lane (`dev_warm_s` on `dev_warm`)
    title: str
    head: str
    change: str
    decided: str


class FirstScreen(Struct):
    status: str
    headline: str
    counts: str
    causes: list[list[Segment]] = field(default_factory=list)
    rows: list[Row] = field(default_factory=list)
    footnote: list[Segment] = field(default_factory=list)


def as_dict(report: Report | dict[str, Any]) -> dict[str, Any]:
    """Renderers take a Report; the first screen reads its JSON form (one adapter, here)."""
    return report.to_dict() if isinstance(report, Report) else report


def sorted_kpis(report: dict[str, Any]) -> list[dict[str, Any]]:
    return sorted(report.get("kpis") or [], key=lambda k: SEVERITY.get(str(k.get("status")), 9))


BUDGET_STATUSES = ("fail", "yellow")      # budget changes that need the reviewers' eyes


def budget_counts(report: Any) -> dict[str, int]:
    """How many budget changes fail or are yellow: from the list when the report has one, else from
    the verdict's `budget_*` counts. A failure caused only by a budget edit must show in the headline."""
    changes = report.get("budget_changes")
    if isinstance(changes, list):
        found = {s: sum(1 for c in changes if isinstance(c, dict) and c.get("status") == s) for s in BUDGET_STATUSES}
    else:
        counts = (report.get("verdict") or {}).get("counts") or {}
        found = {s: counts.get(f"budget_{s}", 0) for s in BUDGET_STATUSES}
    return {s: n for s, n in found.items() if n}


def counts_text(report: Any, sep: str = " · ", skipped: bool = True) -> str:
    """`2 fail · 1 yellow · 1 budget fail`: KPI statuses, then budget changes, then skipped KPIs."""
    counts = (report.get("verdict") or {}).get("counts") or {}
    parts = [f"{counts[s]} {s}" for s in SEVERITY if counts.get(s)]
    parts += [f"{n} budget {s}" for s, n in budget_counts(report).items()]
    parts += [f"{counts['skipped']} skipped"] if skipped and counts.get("skipped") else []
    return sep.join(parts)


def first_screen(report: Report | dict[str, Any]) -> FirstScreen:
    report = as_dict(report)
    status = str((report.get("verdict") or {}).get("status") or Status.ERROR.value)
    kpis = sorted_kpis(report)
    headline = HEADLINE.get(status, status.upper()) if kpis else (
        "ERROR (no KPI was measured)" if status in ("fail", "error") else "SKIPPED (no KPI was measured)")
    explained = {e.get("kpi"): e for e in report.get("explanations") or []}
    causes = [cause_line(k, explained.get(k.get("id"))) for k in kpis if k.get("status") in OFFENDING]
    return FirstScreen(status, headline, counts_text(report), causes, [row(k) for k in kpis], footnote(report))


# -- the table -------------------------------------------------------------------------


def lane_shown(kpi: dict[str, Any]) -> str | None:
    lane, kid = str(kpi.get("lane") or ""), str(kpi.get("id") or "")
    return None if not lane or kid.startswith(lane) else lane


def row(k: dict[str, Any]) -> Row:
    unit = str(k.get("unit") or "")
    return Row(status=str(k.get("status") or "?"), kpi=str(k.get("id") or "?"), lane=lane_shown(k), title=str(k.get("title") or ""),
               head=fmt.value(k.get("head"), unit), change=fmt.change(k.get("base"), k.get("head")),
               decided=decided_text(k))


def decided_by(k: dict[str, Any]) -> str:
    """What set this KPI's status: `limit`, `target`, `change` (its change budget against the
    base), `drift`, `nondeterministic` or `error`; `` for a pass."""
    status = k.get("status")
    if status in ("error", "nondeterministic"):
        return str(status)
    if status not in ("fail", "yellow"):
        return ""
    budget = k.get("budget_status") or budget_status_of(k)
    if budget == status:
        return "limit" if status == "fail" else "target"
    if "drifted" in str(k.get("reason") or ""):
        return "drift"
    return "change"


def change_limit(k: dict[str, Any]) -> str:
    """`≤ +5%` or `≤ +3 modules`: the change budget a KPI is held to against the base."""
    unit = str(k.get("unit") or "")
    if fmt.is_number(k.get("max_increase_abs")):
        return f"≤ +{fmt.value(k['max_increase_abs'], unit)}"
    pct = k.get("max_increase_pct")
    if not fmt.is_number(pct) and k.get("class") == "timed":
        pct = DEFAULT_TIMED_MAX_INCREASE_PCT
    return f"≤ +{fmt.value(pct, '%')}" if fmt.is_number(pct) else ""


def decided_text(k: dict[str, Any]) -> str:
    unit = str(k.get("unit") or "")
    by = decided_by(k)
    if by == "limit":
        return f"limit {fmt.value(k.get('limit'), unit)}"
    if by == "target":
        return f"target {fmt.value(k.get('target'), unit)}"
    if by == "change":
        limit = change_limit(k)
        return f"change {limit}" if limit else "change"
    if by:
        return by
    bound = k.get("target") if k.get("target") is not None else k.get("limit")
    return f"≤ {fmt.value(bound, unit)}" if bound is not None else "-"


# -- one sentence per failing KPI ------------------------------------------------------------


def cause_line(k: dict[str, Any], why: dict[str, Any] | None) -> list[Segment]:
    unit = str(k.get("unit") or "")
    segs = [Segment(str(k.get("id") or "?"), code=True), Segment(" " + _values(k, unit))]
    decided = decided_text(k)
    if decided and decided != "-":
        segs.append(Segment(f" ({decided})"))
    explanation = explanation_segments(why) if why else []
    segs.append(Segment(" · "))
    if explanation:
        segs += explanation
    else:
        segs.append(Segment(short_reason(k.get("reason"))))
    return segs


def _values(k: dict[str, Any], unit: str) -> str:
    head = fmt.value(k.get("head"), unit)
    if not fmt.is_number(k.get("base")):
        return head
    base = fmt.value(k["base"], unit)
    suffix = f" {unit}" if unit and unit not in fmt.BYTE_UNITS else ""
    if suffix and base.endswith(suffix) and head.endswith(suffix):
        base = base[: -len(suffix)]
    return f"{base} → {head}"


def short_reason(reason: Any) -> str:
    text = " ".join(str(reason or "").split())
    return text if len(text) <= REASON_CHARS else text[: REASON_CHARS - 1] + "…"


def explanation_segments(why: dict[str, Any]) -> list[Segment]:
    """`54 modules entered, 96% of the growth from multiprocessing.* via import multiprocessing
    (hello.py:1)`, or the top item for changes no module explains (`98% op kind line`)."""
    items = why.get("items") or []
    delta = why.get("delta") or 0
    word = "growth" if delta >= 0 else "drop"
    segs: list[Segment] = []
    entered, left = why.get("entered") or 0, why.get("left") or 0
    moved = []
    if entered:
        moved.append(f"{fmt.plural(entered, 'module')} entered")
    if left:
        moved.append(f"{fmt.plural(left, 'module')} left")
    if moved:
        segs.append(Segment(", ".join(moved)))
    top = items[0] if items else None
    cause = why.get("cause")
    if cause and entered and (cause.get("share") or 0) >= 0.5:
        # the import explains most of it: say so first, then where most of it went
        segs += [Segment(f", {fmt.share(cause['share'], 1)} of the {word} via "), Segment(f"import {cause['module']}", code=True),
                 Segment(f" ({_where(cause)})")]
        if top is not None and top["kind"] in ("package", "package_left"):
            segs += [Segment(", most from "), Segment(top["name"], code=True), Segment(f" ({fmt.share(top['share'], 1)})")]
        return segs
    if top is not None:
        share = fmt.share(top["share"], 1)
        if segs:
            segs.append(Segment(", "))
        if top["kind"] in ("package", "package_left"):
            segs += [Segment(f"{share} of the {word} from "), Segment(top["name"], code=True)]
        elif top["kind"] == "op_kind":
            segs += [Segment(f"{share} of the {word} is op kind "), Segment(top["name"], code=True),
                     Segment(f" ({fmt.delta(top['delta'], 'ops')})")]
        elif top["kind"] == "function":
            segs += [Segment(f"{share} of the {word} in "), Segment(top["name"], code=True)]
        elif top["kind"] == "phase":
            segs += [Segment(f"{share} of the {word} in phase "), Segment(top["name"], code=True),
                     Segment(f" ({fmt.delta(top['delta'], 's')})")]
        else:
            segs += [Segment(f"{share} of the {word} in module "), Segment(top["name"], code=True)]
    if cause and entered:
        segs += [Segment(" via "), Segment(f"import {cause['module']}", code=True), Segment(f" ({_where(cause)})")]
    elif entered and why.get("measure") != "seconds":
        segs.append(Segment(" (no new import in the program: added by the compiler or runtime)"))
    return segs


def _where(cause: dict[str, Any]) -> str:
    where = str(cause.get("file") or cause.get("importer") or "?")
    return f"{where}:{cause['line']}" if cause.get("line") else where


def plain(segments: list[Segment]) -> str:
    return "".join(s.text for s in segments)


# -- footnote ---------------------------------------------------------------------------------


def short_sha(sha: Any) -> str:
    return str(sha)[:12] if sha else "unknown"


def footnote(report: dict[str, Any]) -> list[Segment]:
    """Commits, where the base came from, whether the run is authoritative, in one line."""
    head = report.get("head") or {}
    base = report.get("base")
    segs: list[Segment] = []
    if base:
        segs += [Segment("base "), Segment(short_sha(base.get("commit")), code=True)]
        ref = base.get("ref")
        if ref and base.get("commit") and str(base["commit"]).startswith(str(ref)):
            ref = None                      # `--base <sha>`: the sha is already shown
        origin = ", ".join(str(x) for x in (ref, base.get("source")) if x)
        if origin:
            segs.append(Segment(f" ({origin})"))
        segs.append(Segment(" → head "))
    else:
        segs.append(Segment("head "))
    segs.append(Segment(short_sha(head.get("commit")), code=True))
    if head.get("dirty"):
        segs.append(Segment(" (dirty)"))
    if not base:
        segs.append(Segment(" · no baseline: the budgets alone decided"))
    pairs = [k.get("pairs") for k in report.get("kpis") or [] if isinstance(k.get("pairs"), int)]
    if pairs:
        segs.append(Segment(f" · timed: {max(pairs)} pairs"))
    if report.get("authoritative") is False:
        reasons = "; ".join(str(r) for r in report.get("authoritative_reasons") or []) or "no reason recorded"
        if report.get("kpis"):
            segs.append(Segment(f" · not authoritative ({short_reason(reasons)}): timed verdicts are advisory"))
        else:
            segs.append(Segment(f" · {reasons}"))       # nothing was judged: the reason is the whole story, in full
    elif report.get("authoritative"):
        segs.append(Segment(" · quiet host"))
    return segs
