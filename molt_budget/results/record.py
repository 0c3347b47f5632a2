"""One run as history keeps it: the record the local index and the git data branch share.

A record is what is left of a run once its raw files may go: per lane the median of every
metric over the measured samples, the IR/diagnostics summaries the diff needs (never raw
IR), the retried and failed samples, every KPI's budget and change verdict, the overall
status and whether it is a *main record* (and if not, why). The SQLite index
(results.history) and the data branch (one gzip'd JSON file per main record) both hold
exactly this model (schemas/record.schema.json), so `history list`, the tracker and the
report read the same verdict.
"""

from __future__ import annotations

import gzip
import json
import statistics
import zlib
from functools import cache
from typing import Any

from molt_budget.errors import ConfigError
from molt_budget.results.model import KpiResult, LaneResult, RunResults, Sample
from molt_budget.status import overall
from molt_budget.structs import Struct, field, fields

RECORD_SCHEMA_VERSION = 1


class MainCheck(Struct):
    """Whether a run may stand for main: baseline, trend point, ratchet and noise basis."""

    main: bool
    reasons: list[str] = field(default_factory=list)    # why not (empty when main)
    main_ref: str | None = None                          # the ref whose first-parent history was asked

    @classmethod
    def unchecked(cls, reason: str) -> MainCheck:
        return cls(False, [reason])


class SampleNote(Struct):
    """A retried or failed sample (the tracker's Run History lists them)."""

    kind: str
    index: int
    ok: bool
    attempts: int = 1
    retry_reason: str | None = None
    error: str | None = None


class LaneRecord(Struct):
    lane: str
    status: str                                          # ok | error | pending
    error: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)   # median over the measured samples
    mins: dict[str, float] = field(default_factory=dict)      # minimum, where it differs from the median
    measured: int = 0                                    # measured samples that succeeded
    notes: list[SampleNote] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)      # IR / diagnostics summaries for diffs


class KpiRecord(Struct):
    id: str
    lane: str
    metric: str
    kpi_class: str
    unit: str
    direction: str
    target: float | None
    limit: float | None
    aggregate: str
    value: float | None
    values: list[float]
    budget_status: str                                   # pass | yellow | fail | error
    status: str                                          # the KPI's final verdict (change verdict when compared)
    reason: str


class RunRecord(Struct):
    run_id: str
    started_utc: str
    finished_utc: str | None
    state: str                                           # complete | interrupted | running
    source: str                                          # molt-budget | compile_progress | merge
    commit: str | None
    branch: str | None
    dirty: bool | None
    authoritative: bool
    authoritative_reasons: list[str]
    main: bool
    not_main_reasons: list[str]
    status: str                                          # overall verdict: pass | yellow | fail | error
    counts: dict[str, int]                               # report verdict counts (budget_* included)
    config_path: str = ""
    config_sha256: str = ""
    main_ref: str | None = None
    base_commit: str | None = None
    lanes: dict[str, LaneRecord] = field(default_factory=dict)
    kpis: list[KpiRecord] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    tool_version: str = ""
    schema_version: int = RECORD_SCHEMA_VERSION

    # -- building ------------------------------------------------------------------------

    @classmethod
    def from_run(cls, results: RunResults, main: MainCheck, report: Any = None,
                 source: str = "molt-budget") -> RunRecord:
        """The record of a finished run; `report` (compare()'s Report, or its dict) adds change
        verdicts and the overall status, without it the budget verdicts decide."""
        from molt_budget import __version__

        if report is not None and not isinstance(report, dict):
            report = report.to_dict()

        prov = results.provenance
        by_id = {k["id"]: k for k in (report or {}).get("kpis", [])}
        kpis = []
        for k in results.kpis:
            row = by_id.get(k.id, {})
            kpis.append(KpiRecord(
                id=k.id, lane=k.lane, metric=k.metric, kpi_class=k.kpi_class, unit=k.unit, direction=k.direction,
                target=k.target, limit=k.limit, aggregate=k.aggregate, value=k.value, values=list(k.values),
                budget_status=row.get("budget_status", k.status), status=row.get("status", k.status),
                reason=row.get("reason", k.reason),
            ))
        if report is not None:
            status = report["verdict"]["status"]
            counts = dict(report["verdict"]["counts"])
        else:
            counts = results.counts()
            status = worst([k.status for k in results.kpis]) if results.kpis else "pass"
        base = (report or {}).get("base") or {}
        return cls(
            run_id=results.run_id, started_utc=results.started_utc, finished_utc=results.finished_utc,
            state=results.state, source=source, commit=prov.get("commit"), branch=prov.get("branch"),
            dirty=prov.get("dirty"), authoritative=results.authoritative,
            authoritative_reasons=list(results.authoritative_reasons), main=main.main,
            not_main_reasons=list(main.reasons), status=status, counts={k: v for k, v in counts.items() if v},
            config_path=results.config_path, config_sha256=results.config_sha256, main_ref=main.main_ref,
            base_commit=base.get("commit"), lanes={n: _lane_record(l) for n, l in results.lanes.items()},
            kpis=kpis, provenance=_small_provenance(prov), tool_version=__version__,
        )

    def lane_value(self, lane: str, metric: str, aggregate: str = "median") -> float | None:
        """A lane metric aggregated as a KPI asks (min or median over the measured samples)."""
        rec = self.lanes.get(lane)
        if rec is None or metric not in rec.metrics:
            return None
        return rec.mins.get(metric, rec.metrics[metric]) if aggregate == "min" else rec.metrics[metric]

    def to_results(self) -> RunResults:
        """A RunResults standing for this record (one measured sample per lane holding the
        medians): what an exact-only base from history needs."""
        results = RunResults(
            run_id=self.run_id, config_path=self.config_path, config_sha256=self.config_sha256,
            started_utc=self.started_utc, finished_utc=self.finished_utc, state=self.state,
            provenance={**self.provenance, "commit": self.commit, "branch": self.branch, "dirty": self.dirty},
            authoritative=self.authoritative, authoritative_reasons=list(self.authoritative_reasons),
        )
        for name, lane in self.lanes.items():
            samples = [Sample("measure", 0, True, metrics=dict(lane.metrics))] if lane.metrics else []
            results.lanes[name] = LaneResult(name, lane.status, lane.error, samples, dict(lane.detail))
        results.kpis = [KpiResult(
            id=k.id, lane=k.lane, metric=k.metric, kpi_class=k.kpi_class, unit=k.unit, direction=k.direction,
            target=k.target, limit=k.limit, aggregate=k.aggregate, values=list(k.values), value=k.value,
            status=k.budget_status, reason=k.reason,
        ) for k in self.kpis]
        return results

    def without_detail(self) -> RunRecord:
        """The same record minus the IR/diagnostics summaries (a run that can never be a base)."""
        lanes = {n: LaneRecord(**{**_shallow(l), "detail": {}}) for n, l in self.lanes.items()}
        return RunRecord(**{**_shallow(self), "lanes": lanes})

    # -- serialising ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """As a dataclass asdict, without its deep copies (indexing 100k records spends its time here)."""
        out = _shallow(self)
        out["lanes"] = {name: {**_shallow(lane), "notes": [_shallow(n) for n in lane.notes]}
                        for name, lane in self.lanes.items()}
        out["kpis"] = [_shallow(k) for k in self.kpis]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunRecord:
        lanes = {
            name: LaneRecord(**{**_pick(LaneRecord, raw), "notes": [SampleNote(**_pick(SampleNote, n)) for n in raw.get("notes", [])]})
            for name, raw in data.get("lanes", {}).items()
        }
        kpis = [KpiRecord(**_pick(KpiRecord, k)) for k in data.get("kpis", [])]
        return cls(**{**_pick(cls, data), "lanes": lanes, "kpis": kpis})

    def to_json(self) -> bytes:
        """Compact JSON in field order (lanes in recorded order): the same record always gives the same bytes."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode("utf-8")

    def to_gzip(self) -> bytes:
        """The data branch's file content (mtime 0: byte-identical for the same record)."""
        return gzip.compress(self.to_json(), compresslevel=9, mtime=0)

    @classmethod
    def from_json(cls, data: bytes, name: str = "record", validate: bool = True) -> RunRecord:
        """Parse and schema-check one record; any problem is one ConfigError naming `name`.
        `validate=False` only for records this molt-budget wrote itself (its own index)."""
        from molt_budget.bounded import InputError, refuse_lone_surrogates

        try:
            text = data.decode("utf-8")
            refuse_lone_surrogates(text)        # its strings go into SQLite, which cannot store them
            doc = json.loads(text)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ConfigError(f"{name}: not a molt-budget history record ({exc})") from None
        except InputError as exc:
            raise ConfigError(f"{exc.where(name)}: not a molt-budget history record") from None
        if not validate and isinstance(doc, dict) and doc.get("schema_version") == RECORD_SCHEMA_VERSION:
            return cls.from_dict(doc)
        if not isinstance(doc, dict) or "schema_version" not in doc:
            raise ConfigError(f"{name}: not a molt-budget history record (no schema_version)")
        if doc["schema_version"] != RECORD_SCHEMA_VERSION:
            raise ConfigError(f"{name}: record schema_version {doc['schema_version']!r} is not supported "
                              f"(expected {RECORD_SCHEMA_VERSION}); upgrade molt-budget")
        from molt_budget.schemas import first_error

        error = first_error("record", doc)
        if error is not None:
            where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
            raise ConfigError(f"{name}: invalid history record at {where}: {error.message}")
        return cls.from_dict(doc)

    @classmethod
    def from_gzip(cls, data: bytes, name: str = "record", validate: bool = True) -> RunRecord:
        from molt_budget.bounded import MAX_SMALL_BYTES, InputError, gunzip

        try:
            raw = gunzip(data, MAX_SMALL_BYTES)        # a forged record may be a gzip bomb
        except InputError as exc:
            raise ConfigError(f"{name}: {exc.message}: not a history record") from None
        except (OSError, EOFError, ValueError, zlib.error) as exc:
            raise ConfigError(f"{name}: not a gzip'd history record ({exc})") from None
        return cls.from_json(raw, name, validate)


def worst(statuses: list[str]) -> str:
    """The overall status of several verdicts, by the report model's one severity order."""
    return overall(statuses).value


def _lane_record(lane: LaneResult) -> LaneRecord:
    values: dict[str, list[float]] = {}
    for s in lane.measured():
        for metric, value in s.metrics.items():
            values.setdefault(metric, []).append(float(value))
    notes = [SampleNote(s.kind, s.index, s.ok, s.attempts, s.retry_reason, s.error)
             for s in lane.samples if s.attempts > 1 or not s.ok]
    medians = {m: float(statistics.median(v)) for m, v in values.items()}
    return LaneRecord(
        lane=lane.lane, status=lane.status, error=lane.error, metrics=medians,
        mins={m: min(v) for m, v in values.items() if min(v) != medians[m]},
        measured=len(lane.measured()), notes=notes, detail=lane.detail,
    )


def _small_provenance(prov: dict[str, Any]) -> dict[str, Any]:
    """What comparability needs (host, python, tools) without bulky or private fields."""
    keep = ("commit", "branch", "dirty", "host", "python", "tools", "platform", "timestamp_source")
    return {k: prov[k] for k in keep if k in prov}


def _pick(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = _field_names(cls)
    return {k: v for k, v in data.items() if k in names}


def _shallow(obj: Any) -> dict[str, Any]:
    cls: type = type(obj)
    return {name: getattr(obj, name) for name in _field_names(cls)}


@cache
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))
