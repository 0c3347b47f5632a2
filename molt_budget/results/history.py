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
CREATE INDEX IF NOT EXISTS samples_run ON samples(run_id);
CREATE INDEX IF NOT EXISTS verdicts_run ON verdicts(run_id);
CREATE INDEX IF NOT EXISTS runs_commit ON runs(commit_sha);
"""


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
            rows = []
            for lane in results.lanes.values():
                for s in lane.samples:
                    base = (results.run_id, lane.lane, s.kind, s.index, int(s.ok), s.attempts, s.retry_reason, s.error)
                    if s.metrics:
                        rows += [base + (m, v) for m, v in s.metrics.items()]
                    else:
                        rows.append(base + (None, None))
            conn.executemany("INSERT INTO samples VALUES (?,?,?,?,?,?,?,?,?,?)", rows)
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
        query = "SELECT run_id, results_path FROM runs WHERE commit_sha LIKE ? AND state = 'complete'"
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


def _bool(value: Any) -> int | None:
    return None if value is None else int(bool(value))
