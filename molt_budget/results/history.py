"""Run history in SQLite: an index of run records (results.record.RunRecord).

SQLite because it is embedded, transactional and queryable. The layout is built so that
no query grows with the history: every run is one row (`runs`), and each KPI's values live
in a per-series table of point chunks keyed by (series, main, time), so "the last N main
points of a KPI" is one index range read. Commit lookups are a range on the indexed commit
column (never `LIKE 'sha%'`). Samples are not stored: a record keeps per-lane medians (and
minimums), the retried or failed samples, and the IR/diagnostics summaries a diff needs, so
run directories can be pruned. A record's KPI definitions are stored once per distinct set
and points a few bytes each (results.history_layout): a 120-KPI run takes ~3.7 KB.

`PRAGMA user_version` says the layout; a database written by an older molt-budget is
migrated in place on first open: user_version 0 (one row per sample) and 2 (one row per
point, a whole gzip'd record per run).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import sqlite3
import statistics
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from molt_budget.bounded import MAX_SMALL_BYTES, InputError, gunzip
from molt_budget.errors import ConfigError, corrupt_history
from molt_budget.results.history_layout import (
    CHUNK,
    Point,
    add_points,
    drop_points,
    in_batches,
    join_kpis,
    point_count,
    read_points,
    shape_digest,
    split_record,
)
from molt_budget.results.model import KpiResult, LaneResult, RunResults, Sample
from molt_budget.results.record import KpiRecord, MainCheck, RunRecord
from molt_budget.structs import Struct, fields

USER_VERSION = 3          # 0: the sample-row layout of molt-budget <= 0.x; 1 was never released; 2: a row per point

SCHEMA = """
CREATE TABLE runs (
    rid INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    t INTEGER NOT NULL,                 -- start, ms since the epoch: the sort key
    started_utc TEXT NOT NULL,
    state TEXT NOT NULL,
    source TEXT NOT NULL,
    commit_sha TEXT,
    branch TEXT,
    dirty INTEGER,
    authoritative INTEGER NOT NULL,
    main INTEGER NOT NULL,
    status TEXT NOT NULL,
    counts TEXT NOT NULL,
    why_not_main TEXT NOT NULL,
    results_path TEXT,
    digest BLOB NOT NULL,               -- of the record's canonical JSON: indexing is idempotent
    shape INTEGER NOT NULL,             -- shapes.id: its KPI definitions
    record BLOB NOT NULL                -- gzip'd RunRecord JSON without what its shape holds
);
CREATE INDEX runs_time ON runs(main, t);
CREATE INDEX runs_newest ON runs(t, run_id);
CREATE INDEX runs_commit ON runs(commit_sha);
CREATE TABLE shapes (
    id INTEGER PRIMARY KEY,
    digest BLOB NOT NULL UNIQUE,
    body BLOB NOT NULL                  -- gzip'd JSON: per KPI [id, lane, metric, class, unit, direction, target, limit, aggregate]
);
CREATE TABLE series (
    sid INTEGER PRIMARY KEY,
    kind TEXT NOT NULL,                 -- kpi | lane-median | lane-min | wall
    kpi TEXT NOT NULL,
    lane TEXT NOT NULL,
    metric TEXT NOT NULL,
    UNIQUE (kind, kpi, lane, metric)
);
CREATE TABLE chunks (
    cid INTEGER PRIMARY KEY,
    sid INTEGER NOT NULL,
    main INTEGER NOT NULL,
    t INTEGER NOT NULL,                 -- its first point's time and run: its place in the series
    rid INTEGER NOT NULL,
    n INTEGER NOT NULL,                 -- points in it (at most history_layout.CHUNK)
    data BLOB NOT NULL                  -- history_layout.encode
);
CREATE UNIQUE INDEX chunks_series ON chunks(sid, main, t, rid);
"""
FLUSH_POINTS = 200_000      # points buffered by a big index_many before they are merged into chunks
FEW_RUNS = 16               # runs deleted at once whose own series are looked up (more: every series is probed)
RUNS_REMEMBERED = 20_000    # runs' columns a History keeps for its next series reads (~4 MB at most)


class KpiPoint(Struct):
    """One KPI value of one run: what trend charts and the tracker plot."""

    run_id: str
    started_utc: str
    commit: str | None
    value: float
    authoritative: bool
    source: str
    main: bool = True


class SampleIssue(Struct):
    """A retried or failed sample, as the tracker's Run History lists it."""

    lane: str
    kind: str
    index: int                         # 0-based, as recorded
    attempts: int
    retry_reason: str | None
    error: str | None


class RunSummary(Struct):
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
    main: bool = False
    status: str = "pass"               # the run's overall verdict
    not_main_reasons: list[str] | None = None


class RunRow(Struct):
    """One `history list` row."""

    run_id: str
    started_utc: str
    state: str
    source: str
    commit: str | None
    branch: str | None
    authoritative: bool
    counts: dict[str, int]
    main: bool = False
    status: str = "pass"
    why_not_main: str = ""


# what reading a value of the wrong type or size out of a row raises (see History._db)
_FORGED_VALUE = (TypeError, ValueError, ArithmeticError, LookupError, StopIteration, EOFError, zlib.error)


class History:
    """The SQLite index; one connection per call keeps it safe across processes.

    `main_branch` only matters when migrating a database written by an older molt-budget
    (its runs carry a branch name, not a main verdict)."""

    def __init__(self, path: Path, main_branch: str = "main") -> None:
        self.path = Path(path)
        self.main_branch = main_branch
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._shapes: dict[int, list[list[Any]]] = {}
        # what every KPI's read asks again (the same newest runs, the same series ids), kept
        # while no connection commits a change (PRAGMA data_version) and this one writes nothing
        self._version: int | None = None
        self._sids: dict[tuple[str, str, str, str], int | None] = {}
        self._run_info: dict[int, tuple[Any, ...]] = {}
        self._chunks: dict[int, list[Point]] = {}

    # -- connection and migrations -------------------------------------------------------

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        """The connection, opened once per process (a lookup then costs its query, not a
        connect and a layout check); SQLite's locks keep concurrent processes safe."""
        if self._conn is None or self._pid != os.getpid():
            self._conn, self._pid = self._connect(), os.getpid()
            self._shapes, self._version = {}, None
        try:
            version = self._conn.execute("PRAGMA data_version").fetchone()[0]
            if version != self._version:
                self._forget()
                self._version = version
            yield self._conn
        except sqlite3.DatabaseError as exc:
            if type(exc) is not sqlite3.DatabaseError:
                raise                              # locked, full, read-only (the caller's to word), or a bug
            # SQLITE_CORRUPT / SQLITE_NOTADB: damage a read reached (check_history reads only the header and schema)
            raise corrupt_history(self.path, str(exc)) from None
        except _FORGED_VALUE as exc:
            # SQLite keeps whatever a column is given: a file someone else wrote (a restored CI
            # cache) may hold text where a time is, a number where a chunk's bytes are
            if os.environ.get("MOLT_BUDGET_DEBUG"):
                raise
            raise corrupt_history(self.path, f"a value of the wrong type or size in it: {type(exc).__name__}: {exc}") from None

    def _forget(self) -> None:
        """Drop what reads remembered (shapes stay: a shape id never changes its body)."""
        self._sids, self._run_info, self._chunks = {}, {}, {}

    def close(self) -> None:
        if self._conn is not None and self._pid == os.getpid():
            self._conn.close()
        self._conn = None

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            conn = sqlite3.connect(self.path, timeout=30)
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != USER_VERSION:
                self._upgrade(conn, version)
        except sqlite3.DatabaseError as exc:
            raise ConfigError(f"{self.path}: not a molt-budget history database ({exc})") from None
        return conn

    def _upgrade(self, conn: sqlite3.Connection, version: int) -> None:
        if version > USER_VERSION:
            raise ConfigError(f"{self.path}: history layout {version} is newer than this molt-budget understands "
                              f"({USER_VERSION}); upgrade molt-budget")
        conn.execute("BEGIN IMMEDIATE")             # one migrator at a time; the others wait, then see it done
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version == USER_VERSION:
                conn.execute("COMMIT")
                return
            old = _table_exists(conn, "runs")
            if old:
                for (index,) in conn.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
                    "AND tbl_name IN ('runs', 'samples', 'verdicts', 'lanes', 'series', 'points')").fetchall():
                    conn.execute(f'DROP INDEX "{index}"')     # the new layout reuses their names
                if _table_exists(conn, "samples"):
                    conn.execute("CREATE INDEX legacy_samples_run ON samples(run_id)")
                for table in ("runs", "samples", "verdicts", "lanes"):
                    if _table_exists(conn, table):
                        conn.execute(f"ALTER TABLE {table} RENAME TO legacy_{table}")
                for table in ("points", "series"):          # layout 2's points: rebuilt from its records
                    conn.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
            if old:
                writer = _Writer(conn)
                if version == 0:
                    for record, path in _legacy_records(conn, self.main_branch):
                        writer.insert(_index_rows(record), path)
                else:
                    for rows, path in _layout2_rows(conn, self.path):
                        writer.insert(rows, path)
                writer.flush()
                for table in ("samples", "verdicts", "lanes", "runs"):
                    conn.execute(f"DROP TABLE IF EXISTS legacy_{table}")
            conn.execute(f"PRAGMA user_version = {USER_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        if old:
            conn.execute("VACUUM")                  # the old rows were most of the file

    # -- writing -------------------------------------------------------------------------

    def record(self, results: RunResults, results_path: Path | None = None, source: str = "molt-budget", *,
               main: MainCheck | None = None, report: Any = None) -> RunRecord:
        """Record a run (never as main unless `main` says so); returns the record indexed."""
        check = main or MainCheck.unchecked("main not checked (recorded without a git check)")
        record = RunRecord.from_run(results, check, report, source=source)
        self.index(record, results_path)
        return record

    def index(self, record: RunRecord, results_path: Path | None = None) -> bool:
        """Index one record; True when it was new or changed, False when already there as is."""
        return self.index_many([record], results_path) == 1

    def index_many(self, records: Iterable[RunRecord], results_path: Path | None = None) -> int:
        """Index records in one transaction (idempotent by run id); returns how many were new or changed."""
        changed = 0
        with self._db() as conn, conn:
            known = dict(conn.execute("SELECT run_id, digest FROM runs").fetchall()) if not _small(records) else None
            writer = _Writer(conn)
            for record in records:
                rows = _record_rows(record)
                old = known.get(record.run_id) if known is not None else _digest_of(conn, record.run_id)
                if old == rows.digest:
                    continue
                if old is not None:
                    writer.flush()
                    self._delete(conn, [record.run_id])
                writer.insert(rows, str(results_path) if results_path else None)
                if known is not None:
                    known[record.run_id] = rows.digest
                changed += 1
            writer.flush()
            self._forget()
        return changed

    def indexed_ids(self) -> set[str]:
        """Every run id in the index (one covering scan of the unique index)."""
        with self._db() as conn:
            return {r[0] for r in conn.execute("SELECT run_id FROM runs")}

    def prune(self, keep: int) -> list[tuple[str, str | None]]:
        """Drop all but the newest `keep` runs; returns (run_id, results_path) of those dropped."""
        with self._db() as conn, conn:
            doomed = conn.execute(
                "SELECT run_id, results_path FROM runs ORDER BY t DESC, run_id DESC LIMIT -1 OFFSET ?", (keep,)
            ).fetchall()
            self._delete(conn, [run_id for run_id, _path in doomed])
            self._forget()
        return [(r, p) for r, p in doomed]

    def _delete(self, conn: sqlite3.Connection, run_ids: list[str]) -> None:
        doomed: dict[int, int] = {}
        for batch in in_batches(run_ids, 500):
            marks = ",".join("?" * len(batch))
            doomed.update(conn.execute(f"SELECT rid, t FROM runs WHERE run_id IN ({marks})", batch).fetchall())
        drop_points(conn, doomed, self._series_of(conn, list(doomed)) if len(doomed) <= FEW_RUNS else None)
        for batch in in_batches(list(doomed), 500):
            conn.execute(f"DELETE FROM runs WHERE rid IN ({','.join('?' * len(batch))})", batch)

    def _series_of(self, conn: sqlite3.Connection, rids: list[int]) -> set[tuple[int, int]]:
        """(sid, main) of every series holding a point of these runs, from their own records."""
        out: set[tuple[int, int]] = set()
        for rid in rids:
            row = conn.execute("SELECT run_id, shape, record FROM runs WHERE rid = ?", (rid,)).fetchone()
            rows = _index_rows(self._record(conn, row))
            out |= {(sid, int(rows.doc["main"])) for key, _v in rows.points if (sid := _sid(conn, *key)) is not None}
        return out

    # -- reading records -----------------------------------------------------------------

    def get(self, run_id: str) -> RunRecord | None:
        with self._db() as conn:
            row = conn.execute("SELECT run_id, shape, record FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            return self._record(conn, row) if row else None

    def results_path(self, run_id: str) -> str | None:
        with self._db() as conn:
            row = conn.execute("SELECT results_path FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def latest_main(self) -> RunRecord | None:
        """The newest main record."""
        with self._db() as conn:
            row = conn.execute("SELECT run_id, shape, record FROM runs WHERE main = 1 ORDER BY t DESC, run_id DESC LIMIT 1"
                               ).fetchone()
            return self._record(conn, row) if row else None

    def main_record_for_commit(self, commit: str) -> RunRecord | None:
        """The newest main record of `commit` (a full sha or a prefix): a baseline."""
        with self._db() as conn:
            row = self._for_commit(conn, commit, "AND main = 1", "shape, record")
            return self._record(conn, row) if row else None

    def latest_run_for_commit(self, commit: str, authoritative_only: bool = False) -> tuple[str, str | None] | None:
        """(run_id, results_path) of the newest main record at `commit` (prefix allowed).

        Only main records: a dirty tree or a partial run measured something other than the
        commit and is never a baseline. `authoritative_only` is kept for callers; a main
        record is always authoritative."""
        with self._db() as conn:
            row = self._for_commit(conn, commit, "AND main = 1", "results_path")
        return (row[0], row[1]) if row else None

    def _for_commit(self, conn: sqlite3.Connection, commit: str, where: str, columns: str) -> tuple[Any, ...] | None:
        low, high = _commit_range(commit)
        return conn.execute(
            # the commit range narrows to a handful of rows; never let `ORDER BY t` pick runs_time
            f"SELECT run_id, {columns} FROM runs INDEXED BY runs_commit WHERE commit_sha >= ? AND commit_sha < ? {where} "
            "ORDER BY t DESC, run_id DESC LIMIT 1", (low, high),
        ).fetchone()

    def _record(self, conn: sqlite3.Connection, row: tuple[Any, ...]) -> RunRecord:
        """A record from (run_id, shape id, blob): written by molt-budget itself, so parsed, not schema-checked again."""
        run_id, shape_id, blob = row
        name = f"{self.path} run {run_id}"
        own = _unzip(blob, name)
        rows = own.pop("kpis", [])
        record = RunRecord.from_dict(own)
        record.kpis = join_kpis(self._shape(conn, shape_id), rows, name)
        return record

    def _shape(self, conn: sqlite3.Connection, shape_id: int) -> list[list[Any]]:
        shape = self._shapes.get(shape_id)
        if shape is None:
            row = conn.execute("SELECT body FROM shapes WHERE id = ?", (shape_id,)).fetchone()
            if row is None:
                raise ConfigError(f"{self.path}: KPI shape {shape_id} is missing: the history index is damaged")
            shape = self._shapes[shape_id] = _unzip(row[0], f"{self.path} shape {shape_id}")
        return shape

    def runs(self, limit: int = 20, main_only: bool = False) -> list[RunRow]:
        """The newest runs, newest first (`history list`)."""
        where = "WHERE main = 1" if main_only else ""
        with self._db() as conn:
            rows = conn.execute(
                "SELECT run_id, started_utc, state, source, commit_sha, branch, authoritative, counts, main, status, "
                f"why_not_main FROM runs {where} ORDER BY t DESC, run_id DESC LIMIT ?", (limit,),
            ).fetchall()
        return [RunRow(r[0], r[1], r[2], r[3], r[4], r[5], bool(r[6]), self._counts(r[7], r[0]), bool(r[8]), r[9], r[10])
                for r in rows]

    def _counts(self, text: object, run_id: object) -> dict[str, int]:
        """A run's verdict counts as indexed: a damaged or forged column is the damaged-history
        line naming the database (what to do), not a bug."""
        try:
            counts = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            counts = None
        if not isinstance(counts, dict) or not all(isinstance(k, str) and type(v) is int for k, v in counts.items()):
            raise corrupt_history(self.path, f"run {run_id}: its verdict counts are not a JSON object of counts")
        return counts

    def show(self, run_id: str) -> RunRecord:
        record = self.get(run_id)
        if record is None:
            raise ConfigError(f"{self.path}: no run '{run_id}' in history")
        return record

    # -- series for trends, charts, the tracker, fences and estimates --------------------

    def kpi_series(
        self, kpi: str, lane: str, metric: str | None, aggregate: str = "median",
        branch: str | None = None, limit: int | None = None, main_only: bool = True,
    ) -> list[KpiPoint]:
        """One point per complete run, oldest first; main records only unless `main_only=False`.

        The run's own verdict value (what the gate judged); runs recorded without any KPI
        verdict (imported snapshots) give their lane's measured value aggregated the KPI's
        way. A verdict without a value (the lane failed) gives no point.
        """
        points = self._series_points(_kpi_kinds(kpi, lane, metric, aggregate), branch, limit, main_only)
        return [KpiPoint(run_id, started, commit, float(value), bool(auth), source, bool(main))
                for _t, run_id, started, commit, auth, source, main, value in points]

    def kpi_first_last(self, kpi: str, lane: str, metric: str | None, aggregate: str = "median",
                       branch: str | None = None, main_only: bool = True) -> tuple[KpiPoint | None, KpiPoint | None]:
        """The oldest and the newest point (the tracker's Baseline and Latest) without reading the series between."""
        kinds = _kpi_kinds(kpi, lane, metric, aggregate)
        newest = self._series_points(kinds, branch, 1, main_only)
        if not newest:
            return None, None
        first = self._series_points(kinds, branch, 1, main_only, oldest=True)
        (_t, run_id, started, commit, auth, source, main, value), = first
        latest = newest[0]
        return (KpiPoint(run_id, started, commit, float(value), bool(auth), source, bool(main)),
                KpiPoint(latest[1], latest[2], latest[3], float(latest[7]), bool(latest[4]), latest[5], bool(latest[6])))

    def metric_series(self, lane: str, metric: str, branch: str | None = None, limit: int = 50,
                      main_only: bool = True) -> list[tuple[str, str | None, float, bool]]:
        """(run_id, commit, median value, authoritative) per run, oldest first: a lane metric
        without a KPI (wall_s for progress estimates, imported snapshots)."""
        kinds = [(kind, "", lane, metric) for kind in (("wall", "lane-median") if metric == "wall_s" else ("lane-median",))]
        points = self._series_points(kinds, branch, limit, main_only)
        return [(p[1], p[3], float(p[7]), bool(p[4])) for p in points]

    def _series_points(self, kinds: list[tuple[str, str, str, str]], branch: str | None, limit: int | None,
                       main_only: bool, oldest: bool = False) -> list[tuple[Any, ...]]:
        """(t, run_id, started, commit, authoritative, source, main, value) of the series `kinds`
        (main and, unless `main_only`, other runs), oldest first: the newest `limit` (the
        oldest with `oldest`)."""
        points: list[tuple[Any, ...]] = []
        with self._db() as conn:
            for kind in kinds:
                if kind not in self._sids:
                    self._sids[kind] = _sid(conn, *kind)
                sid = self._sids[kind]
                if sid is not None:
                    for main in ((1,) if main_only else (1, 0)):
                        points += _points(conn, sid, main, branch, limit, oldest, self._run_info, self._chunks)
        points.sort(key=lambda p: (p[0], p[1]))
        if limit:
            points = points[:limit] if oldest else points[-limit:]
        return points

    def run_summaries(self, limit: int = 20, branch: str | None = None, main_only: bool = False) -> list[RunSummary]:
        """The newest `limit` runs, newest first, with lanes, verdict counts, retries and failures."""
        where, params = [], []
        if main_only:
            where.append("main = 1")
        if branch is not None:
            where.append("branch = ?")
            params.append(branch)
        sql_where = f"WHERE {' AND '.join(where)}" if where else ""
        with self._db() as conn:
            rows = conn.execute(f"SELECT run_id, shape, record FROM runs {sql_where} ORDER BY t DESC, run_id DESC LIMIT ?",
                                [*params, limit]).fetchall()
            return [_summary(self._record(conn, row)) for row in rows]

    def lane_estimate(self, lane: str, metric: str = "wall_s", runs: int = 20) -> float | None:
        """Typical seconds of one sample of `lane`: the median of its last runs' medians (None: never measured).
        Any run counts (a branch run's build takes as long as main's)."""
        series = self.metric_series(lane, metric, limit=runs, main_only=False)
        return float(statistics.median(v for _r, _c, v, _a in series)) if series else None

    def stats(self) -> dict[str, int]:
        """Runs, main records and points: what `history list` prints under the table."""
        with self._db() as conn:
            runs, main = conn.execute("SELECT COUNT(*), COALESCE(SUM(main), 0) FROM runs").fetchone()
            points = point_count(conn)
        return {"runs": runs, "main": main, "points": points}


# -- index rows ------------------------------------------------------------------------------


class _Rows(Struct):
    doc: dict[str, Any]                                       # the record as stored (RunRecord.to_dict)
    t: int
    digest: bytes
    shape: bytes                                              # history_layout.split_record
    blob: bytes
    points: list[tuple[tuple[str, str, str, str], float]]     # (series key, value)


def _index_rows(record: RunRecord, digest: bytes | None = None) -> _Rows:
    return _rows_of(record.to_dict(), digest)


def _rows_of(doc: dict[str, Any], digest: bytes | None = None) -> _Rows:
    """What indexing a record writes, from its dict; `digest`: already known (a migration)."""
    if not doc["main"]:                       # a run that can never be a base needs no IR/diagnostics summaries
        doc = {**doc, "lanes": {n: {**lane, "detail": {}} for n, lane in doc["lanes"].items()}}
    shape, own = split_record(doc)
    if digest is None:
        body = json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8")     # RunRecord.to_json
        digest = hashlib.sha256(body).digest()[:16]
    points: list[tuple[tuple[str, str, str, str], float]] = []
    if doc["state"] == "complete":
        for k in doc["kpis"]:
            if k["value"] is not None:
                points.append((("kpi", k["id"], k["lane"], k["metric"]), float(k["value"])))
        for name, lane in doc["lanes"].items():
            metrics = lane["metrics"]
            if "wall_s" in metrics:
                points.append((("wall", "", name, "wall_s"), float(metrics["wall_s"])))
            if not doc["kpis"]:                   # imported snapshots: every lane metric is a point
                for metric, value in metrics.items():
                    points.append((("lane-median", "", name, metric), float(value)))
                    points.append((("lane-min", "", name, metric), float(lane["mins"].get(metric, value))))
    return _Rows(doc, _millis(doc["started_utc"]), digest, shape, _zip(own), points)


class _Writer:
    """Inserts runs, and buffers their points per series until flush() merges them into the
    chunks: a big batch (a pull, a migration) writes each chunk once, not once per run."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.sids = {tuple(r[1:]): r[0] for r in conn.execute("SELECT sid, kind, kpi, lane, metric FROM series")}
        self.shapes: dict[bytes, int] = {}
        self.pending: dict[tuple[int, int], list[Point]] = {}
        self.buffered = 0

    def insert(self, rows: _Rows, results_path: str | None) -> None:
        r = rows.doc
        cur = self.conn.execute(
            "INSERT INTO runs (run_id, t, started_utc, state, source, commit_sha, branch, dirty, authoritative, main, "
            "status, counts, why_not_main, results_path, digest, shape, record) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            (r["run_id"], rows.t, r["started_utc"], r["state"], r["source"], (r["commit"] or None) and r["commit"].lower(),
             r["branch"], None if r["dirty"] is None else int(r["dirty"]), int(r["authoritative"]), int(r["main"]),
             r["status"], json.dumps(_whole(r["counts"]), sort_keys=True), "; ".join(r["not_main_reasons"]), results_path,
             rows.digest, self._shape(rows.shape), rows.blob),
        )
        rid = cur.lastrowid
        assert rid is not None
        for key, value in rows.points:
            self.pending.setdefault((self._sid(key), int(r["main"])), []).append((rows.t, rid, value))
        self.buffered += len(rows.points)
        if self.buffered >= FLUSH_POINTS:
            self.flush()

    def flush(self) -> None:
        for (sid, main), points in self.pending.items():
            points.sort(key=lambda p: (p[0], p[1]))
            add_points(self.conn, sid, main, points)
        self.pending, self.buffered = {}, 0

    def _sid(self, key: tuple[str, str, str, str]) -> int:
        sid = self.sids.get(key)
        if sid is None:
            sid = self.sids[key] = _sid(self.conn, *key, create=True) or 0
        return sid

    def _shape(self, shape: bytes) -> int:
        known = self.shapes.get(shape)
        if known is not None:
            return known
        digest = shape_digest(shape)
        row = self.conn.execute("SELECT id FROM shapes WHERE digest = ?", (digest,)).fetchone()
        if row is None:
            row = (self.conn.execute("INSERT INTO shapes (digest, body) VALUES (?, ?)",
                                     (digest, gzip.compress(shape, compresslevel=9, mtime=0))).lastrowid,)
        self.shapes[shape] = row[0]
        return int(row[0])


def _kpi_kinds(kpi: str, lane: str, metric: str | None, aggregate: str) -> list[tuple[str, str, str, str]]:
    """A KPI's series: its verdict values, and for imported snapshots its lane's measured values."""
    kinds = [("kpi", kpi, lane, metric or "")]
    if metric is not None:
        kinds.append(("lane-min" if aggregate == "min" else "lane-median", "", lane, metric))
    return kinds


def _sid(conn: sqlite3.Connection, kind: str, kpi: str, lane: str, metric: str, create: bool = False) -> int | None:
    row = conn.execute("SELECT sid FROM series WHERE kind = ? AND kpi = ? AND lane = ? AND metric = ?",
                       (kind, kpi, lane, metric)).fetchone()
    if row is not None or not create:
        return row[0] if row else None
    return conn.execute("INSERT INTO series (kind, kpi, lane, metric) VALUES (?,?,?,?)", (kind, kpi, lane, metric)).lastrowid


def _points(conn: sqlite3.Connection, sid: int, main: int, branch: str | None, limit: int | None,
            oldest: bool, known: dict[int, tuple[Any, ...]], decoded: dict[int, list[Point]]) -> list[tuple[Any, ...]]:
    """(t, run_id, started, commit, authoritative, source, main, value), newest `limit` (or oldest):
    the chunks are read newest first (oldest first) only as far as the limit needs. `known`:
    the runs' columns already read (by rid), added to; `decoded`: chunks already decoded."""
    out: list[tuple[Any, ...]] = []
    points = read_points(conn, sid, main, oldest, decoded)
    try:
        while limit is None or len(out) < limit:
            want = CHUNK if branch is not None or limit is None else limit - len(out)
            batch = [p for _i, p in zip(range(want), points)]
            if not batch:
                break
            _read_runs(conn, [rid for _t, rid, _v in batch if rid not in known], known)
            out += [(t, *known[rid][:5], main, value) for t, rid, value in batch
                    if rid in known and (branch is None or known[rid][5] == branch)]
    finally:
        points.close()
    return out[:limit] if limit else out


def _read_runs(conn: sqlite3.Connection, rids: list[int], known: dict[int, tuple[Any, ...]]) -> None:
    """known[rid] = (run_id, started, commit, authoritative, source, branch) for these runs."""
    if len(known) + len(rids) > RUNS_REMEMBERED:
        known.clear()
    for batch in in_batches(rids, 500):
        known.update((r[0], r[1:]) for r in conn.execute(
            "SELECT rid, run_id, started_utc, commit_sha, authoritative, source, branch FROM runs "
            f"WHERE rid IN ({','.join('?' * len(batch))})", batch))


def _record_rows(record: RunRecord) -> _Rows:
    """A record's index rows. What its own values cannot give is the record's error, not the
    database's: History._db says a wrong value read from the file is a damaged history (move it
    aside), which must never be said of a record that was only being added."""
    try:
        return _index_rows(record)
    except _FORGED_VALUE as exc:
        raise ConfigError(f"run {record.run_id}: cannot be indexed ({type(exc).__name__}: {exc})") from None


def _whole(counts: dict[str, Any]) -> dict[str, int]:
    """Counts as integers: the record schema takes 1.0 for a count (JSON has one kind of number),
    and the index's readers take only what they wrote, `1`."""
    return {k: int(v) for k, v in counts.items()}


def _digest_of(conn: sqlite3.Connection, run_id: str) -> bytes | None:
    row = conn.execute("SELECT digest FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return row[0] if row else None


def _small(records: Iterable[RunRecord]) -> bool:
    """A list of a few records looks digests up one by one; a big batch reads them all once."""
    return isinstance(records, (list, tuple)) and len(records) < 64


def _summary(r: RunRecord) -> RunSummary:
    issues = [(name, n) for name, lane in r.lanes.items() for n in lane.notes]
    as_issue = [SampleIssue(name, n.kind, n.index, n.attempts, n.retry_reason, n.error) for name, n in issues]
    return RunSummary(
        run_id=r.run_id, started_utc=r.started_utc, finished_utc=r.finished_utc, state=r.state, source=r.source,
        commit=r.commit, branch=r.branch, authoritative=r.authoritative, authoritative_reasons=list(r.authoritative_reasons),
        lanes={n: lane.status for n, lane in r.lanes.items()},
        lane_errors={n: lane.error for n, lane in r.lanes.items() if lane.error},
        counts={k: v for k, v in r.counts.items() if v and not k.startswith("budget_")},
        retries=[i for i in as_issue if i.attempts > 1],
        failures=[i for i, (_n, note) in zip(as_issue, issues) if not note.ok],
        main=r.main, status=r.status, not_main_reasons=list(r.not_main_reasons),
    )


def _zip(doc: Any) -> bytes:
    return gzip.compress(json.dumps(doc, separators=(",", ":"), allow_nan=False).encode("utf-8"), compresslevel=9, mtime=0)


def _unzip(blob: bytes, name: str) -> Any:
    """JSON this index wrote (bounded all the same: a damaged file must not become a gzip bomb)."""
    try:
        return json.loads(gunzip(blob, MAX_SMALL_BYTES))
    except InputError as exc:
        raise ConfigError(f"{name}: {exc.message}: not a history record") from None
    except (OSError, EOFError, ValueError, zlib.error) as exc:
        raise ConfigError(f"{name}: a damaged record in the history index ({exc})") from None


def _commit_range(commit: str) -> tuple[str, str]:
    """[low, high) covering every sha starting with `commit`: hex digits sort below 'g'."""
    prefix = commit.strip().lower()
    return prefix, prefix + "g"


def _millis(stamp: str) -> int:
    try:
        when = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        return 0
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return int(when.timestamp() * 1000)


def _table_exists(conn: sqlite3.Connection, name: str) -> bool:
    return conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone() is not None


# -- migrations from older layouts ------------------------------------------------------------


def _layout2_rows(conn: sqlite3.Connection, path: Path) -> Iterator[tuple[_Rows, str | None]]:
    """Every run of a layout-2 database (a whole gzip'd record per run, and the digest of that
    same JSON, which this layout keeps), oldest first, a row at a time (a big history never
    sits in memory at once)."""
    kpi_fields, top_fields = {f.name for f in fields(KpiRecord)}, {f.name for f in fields(RunRecord)}
    for run_id, digest, blob, results_path in conn.execute(
            "SELECT run_id, digest, record, results_path FROM legacy_runs ORDER BY t, rid"):
        name = f"{path} run {run_id}"
        doc = _unzip(blob, name)
        if not (isinstance(doc, dict) and top_fields <= doc.keys() and all(kpi_fields <= k.keys() for k in doc["kpis"])):
            doc = RunRecord.from_gzip(blob, name, validate=False).to_dict()     # an older record: defaults filled in
        yield _rows_of(doc, digest), results_path


def _legacy_records(conn: sqlite3.Connection, main_branch: str) -> Iterable[tuple[RunRecord, str | None]]:
    """Every run of an old database as a record. Old runs carry a branch name, not a main
    verdict: a complete, clean, authoritative run on `main_branch` with every recorded lane ok
    counts as main (first-parent history could not be checked then)."""
    cols = [d[1] for d in conn.execute("PRAGMA table_info(legacy_runs)")]
    has_lanes = _table_exists(conn, "legacy_lanes")
    for raw in conn.execute("SELECT * FROM legacy_runs ORDER BY started_utc, run_id"):
        row = dict(zip(cols, raw))
        run_id = row["run_id"]
        try:
            prov = json.loads(row.get("provenance") or "{}")
        except (json.JSONDecodeError, TypeError):
            prov = {}
        if not isinstance(prov, dict):
            prov = {}                   # a damaged legacy column: the row's own columns still say the commit
        prov.update(commit=row.get("commit_sha"), branch=row.get("branch"),
                    dirty=None if row.get("dirty") is None else bool(row["dirty"]))
        results = RunResults(
            run_id=run_id, config_path=row.get("config_path") or "", config_sha256="", started_utc=row["started_utc"],
            finished_utc=row.get("finished_utc"), state=row["state"], provenance=prov,
            authoritative=bool(row["authoritative"]), authoritative_reasons=_json_list(row.get("authoritative_reasons")),
        )
        samples: dict[tuple[str, str, int], Sample] = {}
        for lane, kind, idx, ok, attempts, retry, error, metric, value in conn.execute(
            "SELECT lane, kind, idx, ok, attempts, retry_reason, error, metric, value FROM legacy_samples "
            "WHERE run_id = ? ORDER BY rowid", (run_id,),
        ):
            s = samples.setdefault((lane, kind, idx), Sample(kind, idx, bool(ok), error, attempts, retry))
            results.lanes.setdefault(lane, LaneResult(lane, "ok"))
            if metric is not None and value is not None:
                s.metrics[metric] = float(value)
        for (lane, _k, _i), s in samples.items():
            results.lanes[lane].samples.append(s)
            if not s.ok:
                results.lanes[lane].status = "error"
        if has_lanes:
            for lane, status, error in conn.execute(
                "SELECT lane, status, error FROM legacy_lanes WHERE run_id = ? ORDER BY rowid", (run_id,)
            ):
                got = results.lanes.setdefault(lane, LaneResult(lane))
                got.status, got.error = status, error
        for kpi, lane, metric, value, target, limit, status, reason in conn.execute(
            "SELECT kpi, lane, metric, value, target, limit_value, status, reason FROM legacy_verdicts WHERE run_id = ?",
            (run_id,),
        ):
            values = [s.metrics[metric] for s in results.lanes.get(lane, LaneResult(lane)).measured() if metric in s.metrics]
            results.kpis.append(KpiResult(kpi, lane, metric, "exact", "", "lower", target, limit, "median", values,
                                          value, status, reason))
        reasons = _legacy_reasons(results, main_branch)
        check = MainCheck(not reasons, reasons, f"{main_branch} (by branch name: recorded by an older molt-budget)")
        source = row.get("source") or "molt-budget"
        record = RunRecord.from_run(results, check, None, source=source)
        yield record, row.get("results_path")


def _legacy_reasons(results: RunResults, main_branch: str) -> list[str]:
    prov = results.provenance
    reasons = []
    if results.state != "complete":
        reasons.append(f"run {results.state}")
    if prov.get("dirty") is not False:
        reasons.append("uncommitted changes in the tree" if prov.get("dirty") else "tree state unknown")
    if prov.get("branch") != main_branch:
        reasons.append(f"branch {prov.get('branch') or 'unknown'}, not {main_branch}")
    failed = [n for n, lane in results.lanes.items() if lane.status != "ok"]
    if failed:
        reasons.append(f"lanes not complete: {', '.join(failed)}")
    if not results.authoritative:
        reasons.append("host not quiet: " + ("; ".join(results.authoritative_reasons) or "not authoritative"))
    return reasons


def _json_list(text: str | None) -> list[str]:
    try:
        value = json.loads(text or "[]")
    except json.JSONDecodeError:
        return []
    return [str(v) for v in value] if isinstance(value, list) else []
