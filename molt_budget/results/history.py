"""Run history in SQLite: every run with its commit, provenance, samples and verdicts.

SQLite because it is embedded, transactional and queryable; the trend and baseline
features read it back by commit.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from molt_budget.errors import ConfigError
from molt_budget.results.model import RunResults

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    started_utc TEXT NOT NULL,
    finished_utc TEXT,
    state TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'molt-budget',
    commit_sha TEXT,
    branch TEXT,
    dirty INTEGER,
    authoritative INTEGER NOT NULL,
    authoritative_reasons TEXT NOT NULL DEFAULT '[]',
    config_path TEXT,
    results_path TEXT,
    provenance TEXT NOT NULL DEFAULT '{}'
);
CREATE TABLE IF NOT EXISTS samples (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    lane TEXT NOT NULL,
    kind TEXT NOT NULL,
    idx INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    retry_reason TEXT,
    error TEXT,
    metric TEXT,
    value REAL
);
CREATE TABLE IF NOT EXISTS verdicts (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    kpi TEXT NOT NULL,
    lane TEXT NOT NULL,
    metric TEXT NOT NULL,
    value REAL,
    target REAL,
    limit_value REAL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS lanes (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE,
    lane TEXT NOT NULL,
    status TEXT NOT NULL,
    error TEXT
);
CREATE INDEX IF NOT EXISTS samples_run ON samples(run_id);
CREATE INDEX IF NOT EXISTS lanes_run ON lanes(run_id);
CREATE INDEX IF NOT EXISTS verdicts_run ON verdicts(run_id);
CREATE INDEX IF NOT EXISTS runs_commit ON runs(commit_sha);
"""


@dataclass
class KpiPoint:
    """One KPI value of one run: what trend charts and the tracker plot."""

    run_id: str
    started_utc: str
    commit: str | None
    value: float
    authoritative: bool
    source: str


@dataclass
class SampleIssue:
    """A retried or failed sample, as the tracker's Run History lists it."""

    lane: str
    kind: str
    index: int                         # 0-based, as recorded
    attempts: int
    retry_reason: str | None
    error: str | None


@dataclass
class RunSummary:
    """Everything one Run History row needs, read in bulk."""

    run_id: str
    started_utc: str
    finished_utc: str | None
    state: str
    source: str
    commit: str | None
    branch: str | None
    authoritative: bool
    authoritative_reasons: list[str]
    lanes: dict[str, str]              # lane -> ok | error | pending, in recorded order
    lane_errors: dict[str, str]        # lane -> its error message
    counts: dict[str, int]             # verdict status -> count
    retries: list[SampleIssue]
    failures: list[SampleIssue]


@dataclass
class RunRow:
    run_id: str
    started_utc: str
    state: str
    source: str
    commit: str | None
    branch: str | None
    authoritative: bool
    counts: dict[str, int]


class History:
    """A thin store; one connection per call keeps it safe across processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=30)
            conn.execute("PRAGMA foreign_keys = ON")
            conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: not a molt-budget history database ({exc})") from None
        return conn

    def record(self, results: RunResults, results_path: Path | None = None, source: str = "molt-budget") -> None:
        prov = results.provenance
        with closing(self._connect()) as conn, conn:
            conn.execute("DELETE FROM runs WHERE run_id = ?", (results.run_id,))
            conn.execute(
                "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    results.run_id, results.started_utc, results.finished_utc, results.state, source,
                    prov.get("commit"), prov.get("branch"), _bool(prov.get("dirty")),
                    int(results.authoritative), json.dumps(results.authoritative_reasons),
                    results.config_path, str(results_path) if results_path else None, json.dumps(prov),
                ),
            )
            rows: list[tuple[Any, ...]] = []
            for lane in results.lanes.values():
                for s in lane.samples:
                    base = (results.run_id, lane.lane, s.kind, s.index, int(s.ok), s.attempts, s.retry_reason, s.error)
                    if s.metrics:
                        rows += [base + (m, v) for m, v in s.metrics.items()]
                    else:
                        rows.append(base + (None, None))
            conn.executemany("INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
            conn.executemany(
                "INSERT INTO lanes VALUES (?,?,?,?)",
                [(results.run_id, lane.lane, lane.status, lane.error) for lane in results.lanes.values()],
            )
            conn.executemany(
                "INSERT INTO verdicts VALUES (?,?,?,?,?,?,?,?,?)",
                [(results.run_id, k.id, k.lane, k.metric, k.value, k.target, k.limit, k.status, k.reason) for k in results.kpis],
            )

    def runs(self, limit: int = 20) -> list[RunRow]:
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT run_id, started_utc, state, source, commit_sha, branch, authoritative FROM runs "
                "ORDER BY started_utc DESC, run_id DESC LIMIT ?",
                (limit,),
            ).fetchall()
            out = []
            for run_id, started, state, source, commit, branch, auth in rows:
                counts = dict(conn.execute("SELECT status, COUNT(*) FROM verdicts WHERE run_id = ? GROUP BY status", (run_id,)).fetchall())
                out.append(RunRow(run_id, started, state, source, commit, branch, bool(auth), counts))
            return out

    def show(self, run_id: str) -> dict[str, Any]:
        with closing(self._connect()) as conn:
            run = conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if run is None:
                raise ConfigError(f"{self.path}: no run '{run_id}' in history")
            cols = [d[0] for d in conn.execute("SELECT * FROM runs LIMIT 0").description]
            verdicts = conn.execute(
                "SELECT kpi, lane, metric, value, target, limit_value, status, reason FROM verdicts WHERE run_id = ? ORDER BY kpi",
                (run_id,),
            ).fetchall()
            samples = conn.execute(
                "SELECT lane, kind, idx, ok, attempts, retry_reason, error, metric, value FROM samples WHERE run_id = ?",
                (run_id,),
            ).fetchall()
        return {"run": dict(zip(cols, run)), "verdicts": verdicts, "samples": samples}

    def latest_run_for_commit(self, commit: str, authoritative_only: bool = False) -> tuple[str, str | None] | None:
        """(run_id, results_path) of the newest complete run at `commit` (prefix allowed)."""
        # a run of a dirty tree measured something other than the commit: never a baseline
        query = "SELECT run_id, results_path FROM runs WHERE commit_sha LIKE ? AND state = 'complete' AND dirty = 0"
        if authoritative_only:
            query += " AND authoritative = 1"
        with closing(self._connect()) as conn:
            row = conn.execute(query + " ORDER BY started_utc DESC, run_id DESC LIMIT 1", (commit + "%",)).fetchone()
        return (row[0], row[1]) if row else None

    def metric_series(self, lane: str, metric: str, branch: str | None = None, limit: int = 50) -> list[tuple[str, str | None, float, bool]]:
        """(run_id, commit, median value, authoritative) per run, oldest first: trends and learned thresholds."""
        query = (
            "SELECT r.run_id, r.commit_sha, s.value, r.authoritative, r.started_utc FROM samples s JOIN runs r USING (run_id) "
            "WHERE s.lane = ? AND s.metric = ? AND s.kind = 'measure' AND s.ok = 1 AND r.state = 'complete'"
        )
        params: list[Any] = [lane, metric]
        if branch is not None:
            query += " AND r.branch = ?"
            params.append(branch)
        with closing(self._connect()) as conn:
            rows = conn.execute(query + " ORDER BY r.started_utc, r.run_id", params).fetchall()
        grouped: dict[str, tuple[str | None, list[float], bool]] = {}
        for run_id, commit, value, auth, _ in rows:
            grouped.setdefault(run_id, (commit, [], bool(auth)))[1].append(value)
        import statistics

        series = [(rid, c, float(statistics.median(vals)), a) for rid, (c, vals, a) in grouped.items()]
        return series[-limit:]

    def prune(self, keep: int) -> int:
        with closing(self._connect()) as conn, conn:
            doomed = [r[0] for r in conn.execute(
                "SELECT run_id FROM runs ORDER BY started_utc DESC, run_id DESC LIMIT -1 OFFSET ?", (keep,)
            ).fetchall()]
            conn.executemany("DELETE FROM runs WHERE run_id = ?", [(r,) for r in doomed])
        return len(doomed)

    # -- queries for the tracker, charts and progress estimates --------------------------

    def kpi_series(
        self, kpi: str, lane: str, metric: str | None, aggregate: str = "median",
        branch: str | None = None, limit: int | None = None,
    ) -> list[KpiPoint]:
        """One point per complete run, oldest first.

        The run's own verdict value wins (what the gate judged); runs without a verdict for
        this KPI (imported snapshots, KPIs added later) fall back to the aggregate of their
        measured samples. A verdict without a value (the lane failed) gives no point.
        """
        where, params = "r.state = 'complete'", []
        if branch is not None:
            where += " AND r.branch = ?"
            params.append(branch)
        with closing(self._connect()) as conn:
            runs = conn.execute(
                f"SELECT r.run_id, r.started_utc, r.commit_sha, r.authoritative, r.source FROM runs r WHERE {where} "
                "ORDER BY r.started_utc, r.run_id", params,
            ).fetchall()
            verdicts = {
                run_id: value for run_id, value, v_lane, v_metric in conn.execute(
                    "SELECT run_id, value, lane, metric FROM verdicts WHERE kpi = ?", (kpi,)
                ).fetchall()
                if v_lane == lane and (metric is None or v_metric == metric)
            }
            samples: dict[str, list[float]] = {}
            if metric is not None:
                for run_id, value in conn.execute(
                    "SELECT run_id, value FROM samples WHERE lane = ? AND metric = ? AND kind = 'measure' AND ok = 1 "
                    "AND value IS NOT NULL", (lane, metric),
                ).fetchall():
                    samples.setdefault(run_id, []).append(float(value))
        points = []
        for run_id, started, commit, auth, source in runs:
            if run_id in verdicts:
                value = verdicts[run_id]
            elif run_id in samples:
                value = _aggregate(samples[run_id], aggregate)
            else:
                continue
            if value is not None:
                points.append(KpiPoint(run_id, started, commit, float(value), bool(auth), source))
        return points[-limit:] if limit else points

    def run_summaries(self, limit: int = 20, branch: str | None = None) -> list[RunSummary]:
        """The newest `limit` runs, newest first, with lanes, verdict counts, retries and failures."""
        where, params = "", []
        if branch is not None:
            where, params = "WHERE branch = ?", [branch]
        with closing(self._connect()) as conn:
            runs = conn.execute(
                "SELECT run_id, started_utc, finished_utc, state, source, commit_sha, branch, authoritative, "
                f"authoritative_reasons FROM runs {where} ORDER BY started_utc DESC, run_id DESC LIMIT ?",
                [*params, limit],
            ).fetchall()
            ids = [r[0] for r in runs]
            marks = ",".join("?" * len(ids))
            counts: dict[str, dict[str, int]] = {}
            lanes: dict[str, list[tuple[str, str, str | None]]] = {}
            samples: dict[str, list[tuple]] = {}
            if ids:
                for run_id, status, n in conn.execute(
                    f"SELECT run_id, status, COUNT(*) FROM verdicts WHERE run_id IN ({marks}) GROUP BY run_id, status", ids
                ).fetchall():
                    counts.setdefault(run_id, {})[status] = n
                for run_id, lane, status, error in conn.execute(
                    f"SELECT run_id, lane, status, error FROM lanes WHERE run_id IN ({marks}) ORDER BY rowid", ids
                ).fetchall():
                    lanes.setdefault(run_id, []).append((lane, status, error))
                for row in conn.execute(
                    "SELECT DISTINCT run_id, lane, kind, idx, ok, attempts, retry_reason, error FROM samples "
                    f"WHERE run_id IN ({marks}) ORDER BY rowid", ids
                ).fetchall():
                    samples.setdefault(row[0], []).append(row[1:])
        out = []
        for run_id, started, finished, state, source, commit, branch_, auth, reasons in runs:
            rows = samples.get(run_id, [])
            issues = [SampleIssue(l, k, i, a, rr, e) for l, k, i, ok, a, rr, e in rows]
            lane_rows = lanes.get(run_id)
            if lane_rows is None:   # recorded before the lanes table existed: derive from samples
                derived: dict[str, str] = {}
                for l, _k, _i, ok, _a, _rr, _e in rows:
                    derived[l] = "error" if not ok or derived.get(l) == "error" else "ok"
                lane_rows = [(l, st, None) for l, st in derived.items()]
            out.append(RunSummary(
                run_id=run_id, started_utc=started, finished_utc=finished, state=state, source=source,
                commit=commit, branch=branch_, authoritative=bool(auth), authoritative_reasons=_json_list(reasons),
                lanes={l: st for l, st, _e in lane_rows}, lane_errors={l: e for l, _st, e in lane_rows if e},
                counts=counts.get(run_id, {}),
                retries=[i for i in issues if i.attempts > 1],
                failures=[i for i, (_l, _k, _ix, ok, *_rest) in zip(issues, rows) if not ok],
            ))
        return out

    def lane_estimate(self, lane: str, metric: str = "wall_s", runs: int = 20) -> float | None:
        """Typical seconds of one sample of `lane`: the median of its last runs' medians (None: never measured)."""
        import statistics

        series = self.metric_series(lane, metric, limit=runs)
        return float(statistics.median(v for _r, _c, v, _a in series)) if series else None


def _bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))


def _aggregate(values: list[float], how: str) -> float:
    import statistics

    return min(values) if how == "min" else float(statistics.median(values))


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []
