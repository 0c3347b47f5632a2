"""Typed records that flow from the runner to the comparator and reporters (msgspec Structs).

They serialise to the results JSON (schemas/results.schema.json) and back without loss.
"""

from __future__ import annotations

from typing import Any

from molt_budget.structs import Struct, field, fields

SCHEMA_VERSION = 2          # 2: a table several lanes' details share is written once, under "tables"
READABLE_VERSIONS = (1, 2)  # 1: every table in every detail


class Attempt(Struct):
    attempt: int
    returncode: int | None
    wall_s: float
    timed_out: bool
    retry_reason: str | None = None   # set when this attempt was retried
    stdout_log: str = ""
    stderr_log: str = ""


class Sample(Struct):
    kind: str                          # prime | warmup | measure
    index: int
    ok: bool
    error: str | None = None
    attempts: int = 1
    retry_reason: str | None = None    # last retryable reason seen, as molt's compile_progress
    attempt_log: list[Attempt] = field(default_factory=list)
    returncode: int | None = None
    timed_out: bool = False
    cache_state: str | None = None     # hit | miss | n/a
    metrics: dict[str, float] = field(default_factory=dict)
    stdout_tail: str = ""
    stderr_tail: str = ""

    def to_dict(self) -> dict[str, Any]:
        """As a dataclass asdict (same keys, same order) without its deep copy of every value:
        a sample is flat but for its attempts and metrics, and it is written once a sample."""
        out = {name: getattr(self, name) for name in _SAMPLE_FIELDS}
        out["attempt_log"] = [{name: getattr(a, name) for name in _ATTEMPT_FIELDS} for a in self.attempt_log]
        out["metrics"] = dict(self.metrics)
        return out


class LaneResult(Struct):
    lane: str
    status: str = "pending"            # pending | ok | error
    error: str | None = None
    samples: list[Sample] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)   # IR / diagnostics detail for diffs

    def measured(self) -> list[Sample]:
        return [s for s in self.samples if s.kind == "measure" and s.ok]

    def to_dict(self) -> dict[str, Any]:
        """The detail is shared, not copied: it is plain JSON data already, and a deep copy of
        a big build's module tables cost more than writing them (read it, never mutate it)."""
        return {"lane": self.lane, "status": self.status, "error": self.error,
                "samples": [s.to_dict() for s in self.samples], "detail": self.detail}


class KpiResult(Struct):
    id: str
    lane: str
    metric: str
    kpi_class: str
    unit: str
    direction: str
    target: float | None
    limit: float | None
    aggregate: str
    values: list[float]
    value: float | None
    status: str                        # pass | yellow | fail | error
    reason: str


class RunResults(Struct):
    run_id: str
    config_path: str
    config_sha256: str
    started_utc: str
    finished_utc: str | None = None
    state: str = "running"             # running | complete | interrupted
    provenance: dict[str, Any] = field(default_factory=dict)
    authoritative: bool = True
    authoritative_reasons: list[str] = field(default_factory=list)
    lanes: dict[str, LaneResult] = field(default_factory=dict)
    kpis: list[KpiResult] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        out = {name: getattr(self, name) for name in _RUN_FIELDS}
        out["schema_version"] = SCHEMA_VERSION      # written in this version's layout, whatever it was read from
        out["provenance"] = dict(self.provenance)
        out["authoritative_reasons"] = list(self.authoritative_reasons)
        out["lanes"] = {name: lane.to_dict() for name, lane in self.lanes.items()}
        out["kpis"] = [{**{name: getattr(k, name) for name in _KPI_FIELDS}, "values": list(k.values)} for k in self.kpis]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResults:
        lanes = {}
        for name, raw in data.get("lanes", {}).items():
            samples = [
                Sample(**{**_pick(Sample, s), "attempt_log": [Attempt(**_pick(Attempt, a)) for a in s.get("attempt_log", [])]})
                for s in raw.get("samples", [])
            ]
            lanes[name] = LaneResult(**{**_pick(LaneResult, raw), "samples": samples})
        kpis = [KpiResult(**_pick(KpiResult, k)) for k in data.get("kpis", [])]
        return cls(**{**_pick(cls, data), "lanes": lanes, "kpis": kpis})

    def counts(self) -> dict[str, int]:
        out = {"pass": 0, "yellow": 0, "fail": 0, "error": 0}
        for k in self.kpis:
            out[k.status] = out.get(k.status, 0) + 1
        return out


_RUN_FIELDS = tuple(f.name for f in fields(RunResults))
_SAMPLE_FIELDS = tuple(f.name for f in fields(Sample))
_ATTEMPT_FIELDS = tuple(f.name for f in fields(Attempt))
_KPI_FIELDS = tuple(f.name for f in fields(KpiResult))     # flat but `values`: asdict's deep copy is needless


def _pick(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}
