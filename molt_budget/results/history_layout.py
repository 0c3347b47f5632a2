"""How the history index stores a run in a few KB: KPI definitions once, points in chunks.

Two things made a 120-KPI run cost 8 KB (issue 14), and both are stored once now:

- A run record repeats every KPI's definition (id, lane, metric, class, unit, direction,
  target, limit, aggregate: ~85% of its JSON). They change only with a reviewed budgets
  edit, so they live once per distinct set in `shapes`, and a run keeps its own part alone:
  per KPI the value, the verdicts, the reason (and the sample values when they are not just
  the value). `split_record` / `join_kpis` are exact inverses: the index gives back the
  record it was given, byte for byte in its JSON.
- One SQLite row per (series, run) spent ~30 B a point, two thirds of it on the key. Points
  are kept in chunks of up to CHUNK consecutive points of one series (a `chunks` row keyed
  by its first point's time and run), as three little-endian arrays: time deltas, run-id
  deltas and values, each in the narrowest width that holds it (a count fits 4 bytes, a
  timing 8). "The last N points of a series" is still one index range read, newest chunk
  first, so no query grows with history.
"""

from __future__ import annotations

import array
import hashlib
import json
import math
import sqlite3
import sys
from collections.abc import Generator, Iterable, Iterator, Sequence
from itertools import accumulate
from typing import Any

from molt_budget.errors import ConfigError
from molt_budget.results.record import KpiRecord
from molt_budget.structs import fields

CHUNK = 128                 # points per chunk: the newest 20 or 50 are one or two rows away
CHUNKS_REMEMBERED = 512     # decoded chunks a reader keeps between series reads (~64k points)
Point = tuple[int, int, float]          # (t ms, rid, value): sorted by (t, rid) within a series

# KpiRecord's definition fields (id, lane, metric, class, unit, direction, target, limit,
# aggregate); its other five (value, values, budget_status, status, reason) are the run's own
_KPI_SHAPE = tuple(f.name for f in fields(KpiRecord))[:9]
_WIDTHS = ("b", "h", "i", "q")
_LIMITS = {code: 1 << (8 * array.array(code).itemsize - 1) for code in _WIDTHS}


# -- records: KPI definitions once per shape ---------------------------------------------------


def split_record(doc: dict[str, Any]) -> tuple[bytes, dict[str, Any]]:
    """(the shape's canonical JSON, the run's own part) of a record's dict (RunRecord.to_dict)."""
    kpis = doc.get("kpis") or []
    shape = json.dumps([[k[f] for f in _KPI_SHAPE] for k in kpis], separators=(",", ":"), allow_nan=False).encode()
    own = []
    for k in kpis:
        row = [k["value"], k["budget_status"], k["status"], k["reason"]]
        if not _only(k["values"], k["value"]):
            row.append(k["values"])
        own.append(row)
    return shape, {**doc, "kpis": own}


def join_kpis(shape: Sequence[Sequence[Any]], rows: Sequence[Sequence[Any]], name: str) -> list[KpiRecord]:
    """A record's KPIs again from its shape and its own rows (split_record's inverse)."""
    if len(rows) != len(shape):
        raise ConfigError(f"{name}: {len(rows)} KPI values for a shape of {len(shape)} KPIs: the history index is damaged")
    try:
        return [KpiRecord(**dict(zip(_KPI_SHAPE, fixed)), value=row[0],
                          values=row[4] if len(row) > 4 else ([] if row[0] is None else [row[0]]),
                          budget_status=row[1], status=row[2], reason=row[3]) for fixed, row in zip(shape, rows)]
    except (TypeError, IndexError):
        raise ConfigError(f"{name}: a damaged record in the history index") from None


def shape_digest(shape: bytes) -> bytes:
    return hashlib.sha256(shape).digest()[:16]


def _only(values: Any, value: Any) -> bool:
    """Whether `values` is exactly [value] (same JSON: 1 and 1.0 differ), or [] for no value."""
    if value is None:
        return values == []
    return isinstance(values, list) and len(values) == 1 and type(values[0]) is type(value) and values[0] == value


# -- points: chunks of one series --------------------------------------------------------------


def encode(points: Sequence[Point]) -> bytes:
    """A 4-byte header (the widths of the three columns, the values' decimal scale), the first
    value when the values are scaled integers, then the columns: time deltas, run-id deltas,
    and value deltas in units of 10**-scale (a count moves by a few ops, a timing rounded to
    the microsecond fits 4 bytes) or, when no scale holds them exactly, the values as doubles."""
    times = [p[0] for p in points]
    runs = [p[1] for p in points]
    values = [p[2] for p in points]
    scale, scaled = _scaled(values)
    columns: list[tuple[str, Sequence[float]]] = [_deltas(times), _deltas(runs)]
    first = b""
    if scaled is None:
        columns.append(("d", values))
    else:
        first = array.array("q", scaled[:1]).tobytes()
        columns.append(_deltas(scaled))
    out = bytearray([*(ord(code) for code, _ in columns), scale])
    out += first if sys.byteorder == "little" else first[::-1]
    for code, column in columns:
        arr = array.array(code, column)
        if sys.byteorder != "little":
            arr.byteswap()
        out += arr.tobytes()
    return bytes(out)


def decode(t0: int, r0: int, n: int, data: bytes, name: str = "history") -> list[Point]:
    """The points of a chunk, oldest first (encode's inverse)."""
    try:
        codes, scale = [chr(c) for c in data[:3]], data[3]
        at, first = 4, None
        if codes[2] != "d":
            first = int.from_bytes(data[4:12], "little", signed=True)
            at = 12
        arrays = []
        for code in codes:
            arr = array.array(code)
            size = arr.itemsize * n
            arr.frombytes(data[at:at + size])
            if len(arr) != n or scale > MAX_SCALE:
                raise ValueError("short chunk")
            if sys.byteorder != "little":
                arr.byteswap()
            arrays.append(arr)
            at += size
    except (ValueError, TypeError, IndexError):
        raise ConfigError(f"{name}: a damaged chunk of points in the history index") from None
    ts = list(accumulate(arrays[0], initial=t0))[1:]
    rs = list(accumulate(arrays[1], initial=r0))[1:]
    if first is None:
        values = list(arrays[2])
    else:
        unit = 10 ** scale
        values = [m / unit for m in accumulate(arrays[2], initial=first)][1:]
    return list(zip(ts, rs, values))


MAX_SCALE = 6               # decimals tried: the runner rounds timings to the microsecond


def _scaled(values: list[float]) -> tuple[int, list[int] | None]:
    """(scale, the values as integers of 10**-scale) for the smallest scale that gives every
    value back exactly (m / 10**scale == v, and -0.0 stays a double); (0, None) when none does."""
    if any(v == 0 and math.copysign(1, v) < 0 for v in values) or not all(map(math.isfinite, values)):
        return 0, None
    biggest = max(map(abs, values))
    scale = 0
    for v in values:                         # the smallest scale that holds each value, largest over all
        while scale <= MAX_SCALE and round(v * 10 ** scale) / 10 ** scale != v:
            scale += 1
        if scale > MAX_SCALE or biggest * 10 ** scale >= 2 ** 62:
            return 0, None
    unit = 10 ** scale
    scaled = [round(v * unit) for v in values]
    return (scale, scaled) if all(m / unit == v for m, v in zip(scaled, values)) else (0, None)


def _deltas(column: list[int]) -> tuple[str, list[int]]:
    """The column as differences from its previous entry (the first is 0), in the narrowest width."""
    deltas = [0, *(b - a for a, b in zip(column, column[1:]))]
    low, high = min(deltas), max(deltas)
    return next(code for code in _WIDTHS if -_LIMITS[code] <= low and high < _LIMITS[code]), deltas


def _decode(conn: sqlite3.Connection, t0: int, r0: int, n: int, data: bytes) -> list[Point]:
    """decode, with a damaged chunk named by its database file (looked up only then)."""
    try:
        return decode(t0, r0, n, data)
    except ConfigError:
        files = [row[2] for row in conn.execute("PRAGMA database_list") if row[1] == "main"]
        raise ConfigError(f"{files[0] if files and files[0] else 'history'}: a damaged chunk of points in the "
                          "history index (restore it from a backup, or rebuild it from the data branch with `history pull`)") from None


def _write(conn: sqlite3.Connection, sid: int, main: int, points: Sequence[Point]) -> None:
    conn.execute("INSERT INTO chunks (sid, main, t, rid, n, data) VALUES (?,?,?,?,?,?)",
                 (sid, main, points[0][0], points[0][1], len(points), encode(points)))


def _pieces(points: list[Point], last: bool) -> Iterator[list[Point]]:
    """A series' points cut into chunks: the newest end filled to CHUNK (appends are the common
    case), a chunk in the middle split evenly (room for the next insert in the past)."""
    if last:
        for i in range(0, len(points), CHUNK):
            yield points[i:i + CHUNK]
        return
    parts = -(-len(points) // CHUNK)
    size = -(-len(points) // parts)
    for i in range(0, len(points), size):
        yield points[i:i + size]


_TARGET = ("SELECT cid, t, rid, n, data FROM chunks WHERE sid = ? AND main = ? AND (t, rid) <= (?, ?) "
           "ORDER BY t DESC, rid DESC LIMIT 1")
_FIRST = "SELECT cid, t, rid, n, data FROM chunks WHERE sid = ? AND main = ? ORDER BY t, rid LIMIT 1"
_LAST = "SELECT cid, t, rid, n, data FROM chunks WHERE sid = ? AND main = ? ORDER BY t DESC, rid DESC LIMIT 1"
_NEXT = "SELECT t, rid FROM chunks WHERE sid = ? AND main = ? AND (t, rid) > (?, ?) ORDER BY t, rid LIMIT 1"


def add_points(conn: sqlite3.Connection, sid: int, main: int, new: list[Point]) -> None:
    """Merge points (sorted by (t, rid); a point of a run already there replaces it) into a series."""
    newest = conn.execute(_LAST, (sid, main)).fetchone()
    if newest is not None and _appended(conn, newest[0], newest[1], newest[2], newest[3], newest[4], new):
        return                                      # the common case: a new run's points at the end
    i = 0
    while i < len(new):
        t, rid, _v = new[i]
        row = conn.execute(_TARGET, (sid, main, t, rid)).fetchone() or conn.execute(_FIRST, (sid, main)).fetchone()
        if row is None:
            for piece in _pieces(new, last=True):
                _write(conn, sid, main, piece)
            return
        cid, t0, r0, n, data = row
        after = conn.execute(_NEXT, (sid, main, t0, r0)).fetchone()
        j = i
        while j < len(new) and (after is None or (new[j][0], new[j][1]) < after):
            j += 1
        old = _decode(conn, t0, r0, n, data)
        if after is None and n >= CHUNK and (new[i][0], new[i][1]) > (old[-1][0], old[-1][1]):
            for piece in _pieces(new[i:j], last=True):      # a full newest chunk stays as it is
                _write(conn, sid, main, piece)
        else:
            merged = {(p[0], p[1]): p for p in old}
            merged.update(((p[0], p[1]), p) for p in new[i:j])
            conn.execute("DELETE FROM chunks WHERE cid = ?", (cid,))
            for piece in _pieces([merged[k] for k in sorted(merged)], last=after is None):
                _write(conn, sid, main, piece)
        i = j


def _appended(conn: sqlite3.Connection, cid: int, t0: int, r0: int, n: int, data: bytes, new: list[Point]) -> bool:
    """Append points after the last one of the newest chunk in place (its bytes spliced, nothing
    re-encoded) when they fit its widths and scale; False (nothing written) when they do not."""
    if n + len(new) > CHUNK or sys.byteorder != "little" or len(data) < 4:
        return False
    codes, scale = [chr(c) for c in data[:3]], data[3]
    try:
        widths = [array.array(code).itemsize for code in codes]
    except ValueError:
        return False
    at = 12 if codes[2] != "d" else 4
    bounds = [at, at + widths[0] * n, at + (widths[0] + widths[1]) * n, at + sum(widths) * n]
    if bounds[3] != len(data):
        return False
    columns = [array.array(code, data[a:b]) for code, a, b in zip(codes, bounds, bounds[1:])]
    last_t, last_r = t0 + sum(columns[0]), r0 + sum(columns[1])
    if (new[0][0], new[0][1]) <= (last_t, last_r):
        return False
    unit = 10 ** scale
    if codes[2] == "d":
        last_v: float | int = 0
        values: list[float] | list[int] = [p[2] for p in new]
    else:
        last_v = int.from_bytes(data[4:12], "little", signed=True) + sum(columns[2])
        ms = [round(p[2] * unit) if math.isfinite(p[2]) and abs(p[2]) * unit < 2 ** 62 else None for p in new]
        if any(m is None or m / unit != p[2] or (p[2] == 0 and math.copysign(1, p[2]) < 0) for m, p in zip(ms, new)):
            return False
        values = [m for m in ms if m is not None]
    added = []
    for code, column, previous in zip(codes, ([p[0] for p in new], [p[1] for p in new], values), (last_t, last_r, last_v)):
        if code == "d":
            added.append(array.array("d", column).tobytes())
            continue
        deltas = [b - a for a, b in zip((previous, *column), column)]
        if not all(-_LIMITS[code] <= d < _LIMITS[code] for d in deltas):
            return False
        added.append(array.array(code, deltas).tobytes())
    parts = [data[:at]]
    for a, b, extra in zip(bounds, bounds[1:], added):
        parts += [data[a:b], extra]
    conn.execute("UPDATE chunks SET n = ?, data = ? WHERE cid = ?", (n + len(new), b"".join(parts), cid))
    return True


def drop_points(conn: sqlite3.Connection, doomed: dict[int, int], series: Iterable[tuple[int, int]] | None = None) -> None:
    """Remove every point of the runs `doomed` ({rid: t}) from `series` ((sid, main) pairs;
    default every series): only the chunks between the one holding the oldest doomed point and
    the newest doomed time are read."""
    if not doomed:
        return
    low = min((t, rid) for rid, t in doomed.items())
    t_max = max(doomed.values())
    if series is None:
        series = [(sid, main) for (sid,) in conn.execute("SELECT sid FROM series").fetchall() for main in (1, 0)]
    for sid, main in series:                 # one index probe per series (not a scan of every chunk)
        start = conn.execute(_TARGET, (sid, main, *low)).fetchone() or conn.execute(_FIRST, (sid, main)).fetchone()
        if start is None:
            continue
        rows = conn.execute("SELECT cid, t, rid, n, data FROM chunks WHERE sid = ? AND main = ? AND (t, rid) >= (?, ?) "
                            "AND t <= ? ORDER BY t, rid", (sid, main, start[1], start[2], t_max)).fetchall()
        for cid, t0, r0, n, data in rows:
            points = _decode(conn, t0, r0, n, data)
            kept = [p for p in points if p[1] not in doomed]
            if len(kept) == len(points):
                continue
            conn.execute("DELETE FROM chunks WHERE cid = ?", (cid,))
            if kept:
                _write(conn, sid, main, kept)


def read_points(conn: sqlite3.Connection, sid: int, main: int, oldest: bool = False,
                decoded: dict[int, list[Point]] | None = None) -> Generator[Point, None, None]:
    """A series' points newest first (or oldest first), read a chunk at a time as they are
    consumed. `decoded`: chunks already decoded, by chunk id (the caller drops it on any write)."""
    order = "ASC" if oldest else "DESC"
    cursor = conn.execute(f"SELECT cid, t, rid, n, data FROM chunks WHERE sid = ? AND main = ? "
                          f"ORDER BY t {order}, rid {order}", (sid, main))
    try:
        for cid, t0, r0, n, data in cursor:
            points = decoded.get(cid) if decoded is not None else None
            if points is None:
                points = _decode(conn, t0, r0, n, data)
                if decoded is not None:
                    if len(decoded) >= CHUNKS_REMEMBERED:
                        decoded.clear()
                    decoded[cid] = points
            yield from (points if oldest else reversed(points))
    finally:
        cursor.close()


def point_count(conn: sqlite3.Connection) -> int:
    return int(conn.execute("SELECT COALESCE(SUM(n), 0) FROM chunks").fetchone()[0])


def in_batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
