"""The comparison report as one typed, versioned model: what compare produces and every reporter reads.

Why one module: the status order, the verdict rule and the exit code are written once here;
terminal, Markdown, GitHub, HTML, merge and the poster all read a `Report`, never a dict
they each re-interpret. The JSON on disk is `schemas/report.schema.json` (version
`REPORT_SCHEMA_VERSION`); `Report.from_dict(d).to_dict()` keeps every key, including keys a
newer writer added that this version does not know (`extra`), so a report survives being
read and written again by an older reader.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any, TypedDict

from molt_budget import __version__
from molt_budget.errors import ConfigError

# The status rules live in molt_budget/status.py (below every stage); re-exported here.
from molt_budget.status import BY_SEVERITY as BY_SEVERITY
from molt_budget.status import VERDICT_STATUSES as VERDICT_STATUSES
from molt_budget.status import Status as Status
from molt_budget.status import exit_code as exit_code
from molt_budget.status import overall as overall
from molt_budget.status import severity_key as severity_key
from molt_budget.status import worst as worst
from molt_budget.structs import Struct, field

REPORT_SCHEMA_VERSION = 1
# A timed KPI's allowed slowdown against main when it declares none (the sampler's and every
# reader's default; here so the reporters need not import the sampler and its config stack).
DEFAULT_TIMED_MAX_INCREASE_PCT = 10.0


# -- the parts of a report ---------------------------------------------------------------


class KpiRow(Struct):
    """One KPI: its budget, base and head values, and the one status compare gave it."""

    id: str
    lane: str
    kpi_class: str                       # exact | timed | counted ("class" in JSON)
    status: Status
    reason: str
    base: float | None = None
    head: float | None = None
    delta: float | None = None
    delta_pct: float | None = None
    title: str = ""
    metric: str = ""
    unit: str = ""
    direction: str = "lower"
    target: float | None = None
    limit: float | None = None
    line: int | None = None
    budget_status: Status | None = None  # the verdict against the budget alone, before any change verdict
    p_value: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    pairs: int | None = None
    timed_kind: str | None = None        # timed: fail | slower | pass | inconclusive | unconfirmed (compare.stats.Kind)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id, "title": self.title, "lane": self.lane, "metric": self.metric, "class": self.kpi_class,
            "unit": self.unit, "direction": self.direction, "target": self.target, "limit": self.limit,
            "line": self.line, "base": self.base, "head": self.head, "delta": self.delta, "delta_pct": self.delta_pct,
            "status": self.status.value, "reason": self.reason,
            "p_value": self.p_value, "ci_low": self.ci_low, "ci_high": self.ci_high, "pairs": self.pairs,
        }
        if self.budget_status is not None:
            out["budget_status"] = self.budget_status.value
        if self.timed_kind is not None:
            out["timed_kind"] = self.timed_kind
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> KpiRow:
        where = f"kpis/{data.get('id', '?')}"
        budget = data.get("budget_status")
        return cls(
            id=str(data["id"]), lane=str(data["lane"]), kpi_class=str(data["class"]),
            status=Status.parse(data["status"], where), reason=str(data.get("reason") or ""),
            base=_num(data.get("base")), head=_num(data.get("head")), delta=_num(data.get("delta")),
            delta_pct=_num(data.get("delta_pct")), title=str(data.get("title") or ""), metric=str(data.get("metric") or ""),
            unit=str(data.get("unit") or ""), direction=str(data.get("direction") or "lower"),
            target=_num(data.get("target")), limit=_num(data.get("limit")), line=_int(data.get("line")),
            budget_status=None if budget is None else Status.parse(budget, f"{where}/budget_status"),
            p_value=_num(data.get("p_value")), ci_low=_num(data.get("ci_low")), ci_high=_num(data.get("ci_high")),
            pairs=_int(data.get("pairs")), extra=_unknown(data, _KPI_KEYS),
            timed_kind=None if data.get("timed_kind") is None else str(data["timed_kind"]),
        )

    @property
    def shown_title(self) -> str:
        return self.title or self.id


_KPI_KEYS = frozenset({
    "id", "title", "lane", "metric", "class", "unit", "direction", "target", "limit", "line", "base", "head", "delta",
    "delta_pct", "status", "budget_status", "reason", "p_value", "ci_low", "ci_high", "pairs", "timed_kind",
})


class ModuleEntry(TypedDict):
    module: str
    reasons: list[str]


class PhaseDelta(TypedDict, total=False):
    lane: str
    phase: str
    base: float | None
    head: float | None
    delta: float


class FunctionOpDelta(TypedDict):
    function: str
    base: int
    head: int
    delta: int


class ModuleTimingDelta(TypedDict, total=False):
    module: str
    base: float | None
    head: float | None
    delta: float


class Diff(Struct):
    """Why KPIs moved, from the lanes that regressed: modules, phases, functions, op kinds."""

    modules_added: list[ModuleEntry] = field(default_factory=list)
    modules_removed: list[ModuleEntry] = field(default_factory=list)
    reason_summary_deltas: dict[str, int] = field(default_factory=dict)
    phases: list[PhaseDelta] = field(default_factory=list)
    functions_added: list[str] = field(default_factory=list)
    functions_removed: list[str] = field(default_factory=list)
    top_function_op_deltas: list[FunctionOpDelta] = field(default_factory=list)
    op_kind_deltas: dict[str, int] = field(default_factory=dict)
    module_timing_deltas: list[ModuleTimingDelta] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "modules_added": [dict(m) for m in self.modules_added],
            "modules_removed": [dict(m) for m in self.modules_removed],
            "reason_summary_deltas": dict(self.reason_summary_deltas),
            "phases": [dict(p) for p in self.phases],
            "functions_added": list(self.functions_added),
            "functions_removed": list(self.functions_removed),
            "top_function_op_deltas": [dict(d) for d in self.top_function_op_deltas],
            "op_kind_deltas": dict(self.op_kind_deltas),
            "module_timing_deltas": [dict(d) for d in self.module_timing_deltas],
            **self.extra,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Diff:
        data = data or {}
        return cls(
            modules_added=list(data.get("modules_added") or []),
            modules_removed=list(data.get("modules_removed") or []),
            reason_summary_deltas=dict(data.get("reason_summary_deltas") or {}),
            phases=list(data.get("phases") or []),
            functions_added=list(data.get("functions_added") or []),
            functions_removed=list(data.get("functions_removed") or []),
            top_function_op_deltas=list(data.get("top_function_op_deltas") or []),
            op_kind_deltas=dict(data.get("op_kind_deltas") or {}),
            module_timing_deltas=list(data.get("module_timing_deltas") or []),
            extra=_unknown(data, _DIFF_KEYS),
        )

    def is_empty(self) -> bool:
        return not any(self.to_dict().values())


_DIFF_KEYS = frozenset({
    "modules_added", "modules_removed", "reason_summary_deltas", "phases", "functions_added", "functions_removed",
    "top_function_op_deltas", "op_kind_deltas", "module_timing_deltas",
})


class BudgetChange(Struct):
    """One edit of the budgets file between base and head, judged: a loosening needs a reason."""

    kpi: str | None
    lane: str | None
    kind: str              # loosened | tightened | added | removed | lane_changed | lane_removed | unchanged_note | ...
    field: str
    old: Any
    new: Any
    justification: str
    owner: str
    status: Status         # pass | yellow | fail
    reason: str
    line: int | None       # in the head file, for annotations
    unmeasured: bool = False   # a loosened bound with nothing measured to hold it against (said, never skipped silently)

    def __post_init__(self) -> None:
        self.status = Status.parse(self.status, f"budget change {self.subject}")

    @property
    def subject(self) -> str:
        return self.kpi or self.lane or "budgets"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kpi": self.kpi, "lane": self.lane, "kind": self.kind, "field": self.field, "old": self.old, "new": self.new,
            "justification": self.justification, "owner": self.owner, "status": self.status.value,
            "reason": self.reason, "line": self.line, "unmeasured": self.unmeasured,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BudgetChange:
        return cls(
            kpi=data.get("kpi"), lane=data.get("lane"), kind=str(data.get("kind") or ""), field=str(data.get("field") or ""),
            old=data.get("old"), new=data.get("new"), justification=str(data.get("justification") or ""),
            owner=str(data.get("owner") or ""), status=Status.parse(data.get("status", "pass"), "budget_changes/status"),
            reason=str(data.get("reason") or ""), line=_int(data.get("line")), unmeasured=bool(data.get("unmeasured")),
        )


class BaseInfo(Struct):
    """Where the base came from; None in a report = nothing to compare with, budgets alone decided."""

    commit: str | None
    ref: str | None
    source: str                      # worktree | history | results | same-commit
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "ref": self.ref, "source": self.source, "run_id": self.run_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BaseInfo:
        return cls(commit=data.get("commit"), ref=data.get("ref"), source=str(data.get("source") or ""),
                   run_id=data.get("run_id"))


class HeadInfo(Struct):
    commit: str | None
    ref: str | None = None
    dirty: bool | None = None
    run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"commit": self.commit, "ref": self.ref, "dirty": self.dirty, "run_id": self.run_id}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> HeadInfo:
        data = data or {}
        return cls(commit=data.get("commit"), ref=data.get("ref"), dirty=data.get("dirty"), run_id=data.get("run_id"))

    @classmethod
    def from_provenance(cls, provenance: Mapping[str, Any], run_id: str | None) -> HeadInfo:
        return cls(commit=provenance.get("commit"), ref=provenance.get("branch"), dirty=provenance.get("dirty"), run_id=run_id)


class Verdict(Struct):
    """The report's status (pass, yellow, error, fail) and how many KPIs had each status.

    `counts` also holds `budget_fail` / `budget_yellow` (budget changes with that status) and
    `skipped` (KPIs whose lanes did not run): what the headline lists.
    """

    status: Status
    counts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status.value, "counts": dict(self.counts)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verdict:
        status = Status.parse(data.get("status"), "verdict/status")
        if status not in VERDICT_STATUSES:
            raise ConfigError(f"verdict/status: {status.value!r} is a KPI status, not a verdict")
        return cls(status=status, counts={str(k): int(v) for k, v in (data.get("counts") or {}).items()})

    @classmethod
    def judge(cls, kpis: Iterable[KpiRow], budget_changes: Iterable[BudgetChange] | None = None, *,
              skipped: int = 0, floor: Status = Status.PASS) -> Verdict:
        """The one rule: the worst KPI or budget-change status decides; `floor` is a status the report
        has regardless (a stand-in for a report that never arrived is an error)."""
        rows, changes = list(kpis), list(budget_changes or [])
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.status.value] = counts.get(row.status.value, 0) + 1
        counts.update(budget_change_counts(changes))
        if skipped:
            counts["skipped"] = skipped
        status = overall([floor, *(r.status for r in rows), *(c.status for c in changes)])
        return cls(status=status, counts=counts)


def budget_change_counts(changes: Iterable[BudgetChange]) -> dict[str, int]:
    """`budget_<status>`: how many budget changes fail or are yellow (pass ones are not news)."""
    counts: dict[str, int] = {}
    for change in changes:
        if change.status in (Status.FAIL, Status.YELLOW):
            key = f"budget_{change.status.value}"
            counts[key] = counts.get(key, 0) + 1
    return counts


# -- the report --------------------------------------------------------------------------


class Report(Struct):
    """A comparison report: head against base (or against budgets alone when `base` is None)."""

    verdict: Verdict
    head: HeadInfo
    base: BaseInfo | None = None
    kpis: list[KpiRow] = field(default_factory=list)
    diff: Diff = field(default_factory=Diff)
    config_path: str | None = None
    tool_version: str | None = __version__
    authoritative: bool = True
    authoritative_reasons: list[str] = field(default_factory=list)
    reproduce: str | None = None
    results_path: str | None = None
    budget_changes: list[BudgetChange] | None = None   # None: the budget gate did not run (not "no changes")
    ratchets: list[dict[str, Any]] | None = None
    trends: dict[str, list[float]] | None = None
    schema_version: int = REPORT_SCHEMA_VERSION
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> Status:
        return self.verdict.status

    def exit_code(self) -> int:
        return exit_code(self.verdict.status)

    def rejudge(self, *, floor: Status = Status.PASS) -> None:
        """Recompute the verdict from the rows and budget changes (after adding or replacing some)."""
        self.verdict = Verdict.judge(self.kpis, self.budget_changes, skipped=self.verdict.counts.get("skipped", 0),
                                     floor=floor)

    def offending(self) -> list[KpiRow]:
        """KPIs that need a reviewer's eyes, worst first."""
        return sorted((k for k in self.kpis if k.status.offending), key=lambda k: -k.status.severity)

    def sorted_kpis(self) -> list[KpiRow]:
        """Every KPI, worst first (stable: the budgets file's order within a status)."""
        return sorted(self.kpis, key=lambda k: -k.status.severity)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": self.schema_version}
        if self.tool_version is not None:
            out["tool_version"] = self.tool_version
        if self.config_path is not None:
            out["config_path"] = self.config_path
        out.update({
            "verdict": self.verdict.to_dict(),
            "authoritative": self.authoritative,
            "authoritative_reasons": list(self.authoritative_reasons),
            "base": None if self.base is None else self.base.to_dict(),
            "head": self.head.to_dict(),
            "kpis": [k.to_dict() for k in self.kpis],
            "diff": self.diff.to_dict(),
        })
        if self.reproduce is not None:
            out["reproduce"] = self.reproduce
        out["results_path"] = self.results_path
        if self.budget_changes is not None:
            out["budget_changes"] = [c.to_dict() for c in self.budget_changes]
        if self.ratchets is not None:
            out["ratchets"] = [dict(r) for r in self.ratchets]
        if self.trends is not None:
            out["trends"] = {k: list(v) for k, v in self.trends.items()}
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Report:
        """A report from its JSON (already schema-checked by the reader; see commands.report_cmd.load_report)."""
        version = data.get("schema_version")
        if version != REPORT_SCHEMA_VERSION:
            raise ConfigError(f"schema_version: {version!r}, this molt-budget reads version {REPORT_SCHEMA_VERSION}")
        base = data.get("base")
        changes = data.get("budget_changes")
        return cls(
            verdict=Verdict.from_dict(data.get("verdict") or {}),
            head=HeadInfo.from_dict(data.get("head")),
            base=None if base is None else BaseInfo.from_dict(base),
            kpis=[KpiRow.from_dict(k) for k in data.get("kpis") or []],
            diff=Diff.from_dict(data.get("diff")),
            config_path=data.get("config_path"),
            tool_version=data.get("tool_version"),
            authoritative=bool(data.get("authoritative", True)),
            authoritative_reasons=[str(r) for r in data.get("authoritative_reasons") or []],
            reproduce=data.get("reproduce"),
            results_path=data.get("results_path"),
            budget_changes=None if changes is None else [BudgetChange.from_dict(c) for c in changes],
            ratchets=None if data.get("ratchets") is None else [dict(r) for r in data["ratchets"]],
            trends=None if data.get("trends") is None else {str(k): [float(x) for x in v] for k, v in data["trends"].items()},
            schema_version=int(version),
            extra=_unknown(data, _REPORT_KEYS),
        )

    @property
    def shown_config(self) -> str:
        return self.config_path or "budgets.yaml"


_REPORT_KEYS = frozenset({
    "schema_version", "tool_version", "config_path", "verdict", "authoritative", "authoritative_reasons", "base",
    "head", "kpis", "diff", "reproduce", "results_path", "budget_changes", "ratchets", "trends",
})


def _unknown(data: Mapping[str, Any], known: frozenset[str]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in known}


def _num(value: Any) -> float | None:
    """A JSON number as read (ints stay ints, so a round trip writes `3`, not `3.0`)."""
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return value if isinstance(value, int) or math.isfinite(value) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
