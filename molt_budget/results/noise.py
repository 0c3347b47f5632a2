"""Each lane's timing noise, remembered: the per-pair log-ratio SD and lag-1 autocorrelation
of its timed metrics, in the history database (table `lane_noise`, created here).

Three sources feed it:
- `molt-budget calibrate LANE`: interleaved A/A pairs (the same commit on both sides, so every
  difference is noise), recorded in the table;
- every interleaved `check`: its per-pair log ratios around their own mean are that run's
  noise (a real slowdown shifts the mean, not the spread), recorded in the table;
- main's records (results.record, local or pulled from the data branch), read when the model
  is built (`from_main_records`): a main record keeps each timed KPI's measured values in
  sample order, and two consecutive builds of one commit in one run are an A/A pair, so
  values 1 & 2, 3 & 4, ... give floor(n/2) pairs per record (a 3-repeat lane: one).

What main records do not carry, and so never feed: the base side of a paired check (its own
run; the pairs were already recorded by that check, so a record whose commit the table has
from a check is skipped, not counted twice), lanes measured once (`repeats: 1`, exact-only
lanes, imports), and anything but the values (no per-sample times or hosts: pairs from
different records are pooled, never ordered, so they give no autocorrelation).

The model a run uses is the pooled SD of the lane's latest table records and its main-record
pairs: it tunes the sequential test and lets `validate` / `check` say up front when a lane is
too noisy for its budget (compare.stats.noise_limit). The table is this module's alone,
created with CREATE TABLE IF NOT EXISTS, so the runs tables' migrations never need to know
about it.
"""

from __future__ import annotations

import math
import sqlite3
import statistics
from collections.abc import Iterable, Sequence
from contextlib import closing
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from molt_budget.bounded import log_ratio
from molt_budget.errors import ConfigError
from molt_budget.results.record import RunRecord
from molt_budget.structs import Struct

NOISE_SCHEMA = """
CREATE TABLE IF NOT EXISTS lane_noise (
    lane TEXT NOT NULL,
    metric TEXT NOT NULL,
    recorded_utc TEXT NOT NULL,
    source TEXT NOT NULL,              -- calibrate (A/A pairs) | check (residuals of a paired run)
    pairs INTEGER NOT NULL,
    log_ratio_sd REAL NOT NULL,
    lag1_autocorr REAL,
    commit_sha TEXT,
    host TEXT
);
CREATE INDEX IF NOT EXISTS lane_noise_key ON lane_noise(lane, metric, recorded_utc);
"""
POOL_RECORDS = 5          # the model pools the lane's latest records: recent hosts, enough pairs
MAIN_RECORDS = 10         # ... and the pairs in main's latest records
MIN_PAIRS = 4             # fewer pairs say nothing about a spread


class NoiseEstimate(Struct, frozen=True):
    """One measurement of a lane metric's noise."""

    lane: str
    metric: str
    sd: float                   # SD of ln(head/base) per interleaved pair, around the mean
    lag1: float | None          # lag-1 autocorrelation of those log ratios (host phases: > 0)
    pairs: int
    source: str                 # calibrate | check
    recorded_utc: str = ""
    commit: str | None = None
    host: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"lane": self.lane, "metric": self.metric, "sd": self.sd, "lag1": self.lag1, "pairs": self.pairs,
                "source": self.source, "recorded_utc": self.recorded_utc, "commit": self.commit, "host": self.host}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NoiseEstimate:
        return cls(lane=str(data["lane"]), metric=str(data["metric"]), sd=float(data["sd"]),
                   lag1=None if data.get("lag1") is None else float(data["lag1"]), pairs=int(data["pairs"]),
                   source=str(data["source"]), recorded_utc=str(data.get("recorded_utc") or ""),
                   commit=data.get("commit"), host=data.get("host"))


def estimate(lane: str, metric: str, log_ratios: Sequence[float], source: str,
             commit: str | None = None, host: str | None = None) -> NoiseEstimate | None:
    """The noise in a series of per-pair log ratios (in run order); None when too short to say."""
    x = [float(v) for v in log_ratios if math.isfinite(v)]
    if len(x) < MIN_PAIRS:
        return None
    mean = statistics.fmean(x)
    sd = statistics.stdev(x)
    squares = sum((v - mean) ** 2 for v in x)
    lag1 = sum((a - mean) * (b - mean) for a, b in zip(x, x[1:])) / squares if squares > 0 else None
    return NoiseEstimate(lane=lane, metric=metric, sd=sd, lag1=lag1, pairs=len(x), source=source,
                         recorded_utc=datetime.now(timezone.utc).isoformat(timespec="seconds"), commit=commit, host=host)


def from_main_records(records: Iterable[RunRecord], keys: Iterable[tuple[str, str]],
                      skip: dict[tuple[str, str], set[str]] | None = None) -> dict[tuple[str, str], NoiseEstimate]:
    """(lane, metric) -> the noise in the A/A pairs of main records: consecutive measured values
    of a timed KPI (1st & 2nd, 3rd & 4th, ...) in each complete main record, pooled over the
    records. `skip`: per key, commits whose noise the table already has (from their check)."""
    wanted = set(keys)
    ratios: dict[tuple[str, str], list[float]] = {}
    for record in records:
        if not record.main or record.state != "complete":
            continue
        seen: set[tuple[str, str]] = set()
        for kpi in record.kpis:
            key = (kpi.lane, kpi.metric)
            if kpi.kpi_class != "timed" or key not in wanted or key in seen:
                continue
            seen.add(key)
            if record.commit is not None and record.commit in (skip or {}).get(key, set()):
                continue
            values = kpi.values
            ratios.setdefault(key, []).extend(
                log_ratio(b, a) for a, b in zip(values[0::2], values[1::2])
                if a > 0 and b > 0 and math.isfinite(a) and math.isfinite(b))
    out = {}
    for (lane, metric), x in ratios.items():
        found = estimate(lane, metric, x, "main")
        if found is not None:
            out[(lane, metric)] = NoiseEstimate(**{**found.to_dict(), "lag1": None})
    return out


def pooled(records: Iterable[NoiseEstimate]) -> float | None:
    """The pooled SD of several records (each weighted by its degrees of freedom)."""
    items = [r for r in records if r.pairs > 1]
    dof = sum(r.pairs - 1 for r in items)
    if not dof:
        return None
    return math.sqrt(sum((r.pairs - 1) * r.sd ** 2 for r in items) / dof)


class NoiseStore:
    """The `lane_noise` table of one history database file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            return sqlite3.connect(self.path, timeout=30)
        except sqlite3.DatabaseError as exc:
            raise self._not_history(exc) from None

    def _not_history(self, exc: sqlite3.DatabaseError) -> ConfigError:
        return ConfigError(f"{self.path}: not a molt-budget history database ({exc})")

    def record(self, estimates: Iterable[NoiseEstimate]) -> int:
        """Append `estimates`: the table is created in the same transaction (one commit, one
        round of fsyncs, where a separate CREATE would cost another)."""
        rows = [(e.lane, e.metric, e.recorded_utc or datetime.now(timezone.utc).isoformat(timespec="seconds"), e.source,
                 e.pairs, e.sd, e.lag1, e.commit, e.host) for e in estimates]
        if not rows:
            return 0
        with closing(self._connect()) as conn:
            try:
                conn.execute("BEGIN IMMEDIATE")
                for statement in NOISE_SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.executemany("INSERT INTO lane_noise VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
                conn.execute("COMMIT")
            except sqlite3.DatabaseError as exc:
                raise self._not_history(exc) from None
        return len(rows)

    def records(self, lane: str, metric: str, limit: int = POOL_RECORDS) -> list[NoiseEstimate]:
        """The latest records of one lane metric, newest first."""
        return self._records([(lane, metric)], limit)[(lane, metric)]

    def _records(self, keys: Sequence[tuple[str, str]], limit: int = POOL_RECORDS) -> dict[tuple[str, str], list[NoiseEstimate]]:
        """Each key's latest records, newest first, over one connection; reading never writes
        (a history without the table has no records yet: nothing is created for a read)."""
        out: dict[tuple[str, str], list[NoiseEstimate]] = {key: [] for key in keys}
        if not keys or not self.path.exists():
            return out
        with closing(self._connect()) as conn:
            try:
                if conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lane_noise'").fetchone() is None:
                    return out
                for lane, metric in keys:
                    rows = conn.execute(
                        "SELECT lane, metric, log_ratio_sd, lag1_autocorr, pairs, source, recorded_utc, commit_sha, host "
                        "FROM lane_noise WHERE lane = ? AND metric = ? ORDER BY recorded_utc DESC, rowid DESC LIMIT ?",
                        (lane, metric, limit)).fetchall()
                    out[(lane, metric)] = [
                        NoiseEstimate(lane=r[0], metric=r[1], sd=r[2], lag1=r[3], pairs=r[4], source=r[5],
                                      recorded_utc=r[6], commit=r[7], host=r[8]) for r in rows]
            except sqlite3.DatabaseError as exc:
                raise self._not_history(exc) from None
        return out

    def model(self, keys: Iterable[tuple[str, str]], main_records: Sequence[RunRecord] = ()) -> dict[tuple[str, str], float]:
        """(lane, metric) -> the pooled SD of its latest records and of the pairs in
        `main_records` (from_main_records), for the keys that have any."""
        wanted = set(keys)
        recorded = self._records(sorted(wanted))
        skip = {key: {r.commit for r in rows if r.commit} for key, rows in recorded.items()}
        mains = from_main_records(main_records, wanted, skip)
        out: dict[tuple[str, str], float] = {}
        for key in wanted:
            sd = pooled(recorded[key] + ([mains[key]] if key in mains else []))
            if sd is not None and sd > 0:
                out[key] = sd
        return out
