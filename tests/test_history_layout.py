"""The compact history layout (user_version 3): records come back exactly, points survive any
order of indexing, re-indexing and pruning, and KPI definitions are stored once per set.

Everything goes through History on a real SQLite file; expectations come from the runs
themselves (tests/history_factory.py), never from the index.
"""

from __future__ import annotations

import math
import random
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from history_factory import history_record, is_main, kpi_value, make_run, write_budgets
from hypothesis import example, given, settings
from hypothesis import strategies as st

from molt_budget.config import load_config
from molt_budget.results.history import SCHEMA, History
from molt_budget.results.history_layout import CHUNK, add_points, decode, encode, read_points
from molt_budget.results.model import KpiResult, Sample
from molt_budget.results.record import MainCheck, RunRecord
from molt_budget.structs import replace


def expected_points(runs, kpi: str) -> list[tuple[str, float]]:
    return sorted((r.run_id, kpi_value(r, kpi)) for r in runs if kpi_value(r, kpi) is not None)


def series(history: History, kpi: str, lane: str, metric: str) -> list[tuple[str, float]]:
    return sorted((p.run_id, p.value) for p in history.kpi_series(kpi, lane, metric, main_only=False))


def test_points_survive_any_order_of_indexing_reindexing_and_pruning(tmp_path: Path) -> None:
    config = load_config(write_budgets(tmp_path))
    rng = random.Random(11)
    runs = [make_run(config, i, rng) for i in range(3 * CHUNK + 40)]
    shuffled = runs[:]
    rng.shuffle(shuffled)
    history = History(tmp_path / "h.sqlite")
    history.index_many([history_record(r) for r in shuffled[:200]])            # a big batch, out of order
    for run in shuffled[200:260]:
        history.index(history_record(run))                                     # one at a time, into the middle
    history.index_many(history_record(r) for r in shuffled[260:])             # a generator: the pull's path
    assert history.indexed_ids() == {r.run_id for r in runs}
    for kpi, lane, metric in (("dev_warm_s", "dev_warm", "wall_s"), ("ir_ops", "dev_cold", "ir.ops")):
        assert series(history, kpi, lane, metric) == expected_points(runs, kpi)
    main_series = history.kpi_series("dev_warm_s", "dev_warm", "wall_s")
    assert [p.run_id for p in main_series] == [r.run_id for r in runs if is_main(r) and kpi_value(r, "dev_warm_s") is not None]
    assert history.kpi_series("dev_warm_s", "dev_warm", "wall_s", limit=50) == main_series[-50:]
    first, latest = history.kpi_first_last("dev_warm_s", "dev_warm", "wall_s")
    assert (first, latest) == (main_series[0], main_series[-1])

    changed = history_record(runs[150])                                        # re-indexed with a new value
    changed.kpis = [replace(k, value=9.875, values=[9.875]) if k.id == "dev_warm_s" else k for k in changed.kpis]
    assert history.index(changed) is True
    got = dict(series(history, "dev_warm_s", "dev_warm", "wall_s"))
    assert got[runs[150].run_id] == 9.875 and len(got) == len(expected_points(runs, "dev_warm_s"))

    dropped = history.prune(100)
    kept = runs[-100:]
    assert {r for r, _p in dropped} == {r.run_id for r in runs[:-100]}
    assert series(history, "ir_ops", "dev_cold", "ir.ops") == expected_points(kept, "ir_ops")
    assert history.stats()["points"] == sum(
        sum(k.value is not None for k in r.kpis) + sum("wall_s" in lane.metrics for lane in history_record(r).lanes.values())
        for r in kept)


def test_a_record_comes_back_exactly_as_it_was_indexed(tmp_path: Path) -> None:
    config = load_config(write_budgets(tmp_path))
    rng = random.Random(5)
    run = make_run(config, 0, rng)
    run.lanes["dev_cold"].detail = {"ir": {"functions": 12, "modules": ["a", "b"]}}
    run.kpis.append(KpiResult("gone", "dev_warm", "wall_s", "timed", "s", "lower", 3, None, "median", [], None, "error", "lane failed"))
    run.kpis.append(KpiResult("ints", "dev_cold", "ir.ops", "exact", "ops", "lower", 7, 8.5, "min", [3], 3, "pass", "ok"))
    run.kpis.append(KpiResult("same", "dev_cold", "ir.ops", "exact", "ops", "lower", 7, 8, "median", [3.0], 3, "pass", "ok"))
    main = RunRecord.from_run(run, MainCheck(True, [], "origin/main"))
    other_run = make_run(config, 1, rng)
    other_run.lanes["dev_warm"].samples.append(Sample("measure", 3, False, "killed", 2, "timeout"))
    other_run.lanes["dev_cold"].detail = {"ir": {"functions": 1}}
    other = RunRecord.from_run(other_run, MainCheck(False, ["branch feature"], "origin/main"))
    history = History(tmp_path / "h.sqlite")
    history.index_many([main, other])
    assert history.get(main.run_id).to_json() == main.to_json()
    assert history.main_record_for_commit(main.commit or "").to_json() == main.to_json()
    assert history.get(other.run_id).to_json() == other.without_detail().to_json()      # never a base: no detail
    assert History(tmp_path / "h.sqlite").latest_main().to_json() == main.to_json()       # a new process reads it too
    assert history.index_many([main, other]) == 0                                          # the same digest: unchanged


def test_kpi_definitions_are_stored_once_per_budgets_version(tmp_path: Path) -> None:
    config = load_config(write_budgets(tmp_path))
    rng = random.Random(3)
    history = History(tmp_path / "h.sqlite")
    first = [make_run(config, i, rng) for i in range(30)]
    history.index_many([history_record(r) for r in first])
    for r in first[10:]:
        for k in r.kpis:
            k.target = (k.target or 0) + 1                      # a reviewed target change: a second set
    history.index_many([history_record(r) for r in first[10:]])
    with closing(sqlite3.connect(tmp_path / "h.sqlite")) as conn:
        assert conn.execute("SELECT COUNT(*) FROM shapes").fetchone()[0] == 2
        assert conn.execute("SELECT COUNT(DISTINCT shape) FROM runs").fetchone()[0] == 2
    assert [k.target for k in history.get(first[20].run_id).kpis] == [k.target for k in first[20].kpis]
    assert [k.target for k in history.get(first[5].run_id).kpis] == [k.target for k in first[5].kpis]


FLOATS = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 1e-300, 2.0 ** 62, 20.123456, 0.1 + 0.2])


@pytest.mark.slow   # a 300-example property sweep, as the others of that size
@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10 ** 7), st.integers(-(2 ** 40), 2 ** 40), FLOATS), min_size=1, max_size=CHUNK))
def test_a_chunk_gives_back_every_point_exactly(raw: list[tuple[int, int, float]]) -> None:
    start = 1_772_345_600_000
    points = sorted({(start + dt, rid, v) for dt, rid, v in raw}, key=lambda p: (p[0], p[1]))
    got = decode(points[0][0], points[0][1], len(points), encode(points))
    assert [(t, r, math.copysign(1, v), v) for t, r, v in got] == [(t, r, math.copysign(1, v), v) for t, r, v in points]
    assert all(type(v) is float for _t, _r, v in got)


@pytest.mark.slow   # a 200-example property sweep
@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10 ** 11), st.integers(1, 2 ** 33), FLOATS), min_size=1, max_size=3 * CHUNK),
       st.integers(1, 5))
@example([(3_600_000, 1, 20.5 + i / 1000) for i in range(3 * CHUNK)], 1)          # in place, chunk after chunk
@example([(1, 1, 1.0), (1, 1, 1.7976931348623157e308), (1, 1, 2.0)], 1)              # too big to scale: doubles
@example([(3_600_000 * (1 + i % 7) ** 9, 1 + i % 3, round(i * 0.37, i % 8)) for i in range(2 * CHUNK)], 2)
def test_points_appended_one_run_at_a_time_read_back_exactly(steps: list[tuple[int, int, float]], batch: int) -> None:
    """A new run's points are spliced onto the newest chunk in place when they fit its widths
    and scale, and re-encoded when not (a wider gap, a finer value, -0.0): either way the series
    reads back every point exactly, in order."""
    conn = sqlite3.connect(":memory:")
    for statement in SCHEMA.split(";"):
        if statement.strip():
            conn.execute(statement)
    points, t, rid = [], 1_772_345_600_000, 0
    for dt, drid, value in steps:
        t, rid = t + dt, rid + drid
        points.append((t, rid, value))
    for i in range(0, len(points), batch):
        add_points(conn, 1, 1, points[i:i + batch])
    got = list(read_points(conn, 1, 1, oldest=True))
    assert [(a, b, math.copysign(1, v), v) for a, b, v in got] == [(a, b, math.copysign(1, v), v) for a, b, v in points]
    assert max(n for (n,) in conn.execute("SELECT n FROM chunks")) <= CHUNK


def test_a_damaged_index_is_one_line_naming_the_file(tmp_path: Path, capsys) -> None:
    """A chunk or a record cut short (a disk fault, a hand edit) is exit 2 and one line with the
    database's path, from the tracker and from `history show`: never a traceback."""
    from molt_budget import cli
    from molt_budget.errors import EXIT_CONFIG

    config_path = write_budgets(tmp_path)
    config = load_config(config_path)
    rng = random.Random(2)
    runs = [make_run(config, i, rng) for i in range(20)]
    db = tmp_path / "h.sqlite"
    History(db).index_many([history_record(r) for r in runs])
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE chunks SET data = substr(data, 1, 6)")
    assert cli.main(["tracker", "--config", str(config_path), "--db", str(db), "--out", str(tmp_path / "page.md")]) == EXIT_CONFIG
    assert str(db) in capsys.readouterr().err
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE runs SET record = substr(record, 1, 9) WHERE run_id = ?", (runs[3].run_id,))
    assert cli.main(["history", "show", runs[3].run_id, "--db", str(db)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert str(db) in err and "Traceback" not in err
    assert not (tmp_path / "page.md").exists()


def test_reads_see_every_write_of_this_and_other_connections(tmp_path: Path) -> None:
    """Series reads remember run columns and series ids between calls; a write by this History
    or by another connection (another process: PRAGMA data_version) is seen by the next read,
    even when the re-indexed run gets the row id its old row had."""
    config = load_config(write_budgets(tmp_path))
    rng = random.Random(4)
    runs = [make_run(config, i, rng) for i in range(12)]
    db = tmp_path / "h.sqlite"
    reader, writer = History(db), History(db)
    writer.index_many([history_record(r) for r in runs[:10]])

    def newest() -> tuple[str, str | None, float]:
        (p,) = reader.kpi_series("ir_ops", "dev_cold", "ir.ops", limit=1, main_only=False)
        return p.run_id, p.commit, p.value

    def rid_of(run_id: str) -> int:
        with closing(sqlite3.connect(db)) as conn:
            return conn.execute("SELECT rid FROM runs WHERE run_id = ?", (run_id,)).fetchone()[0]

    assert newest() == (runs[9].run_id, runs[9].provenance["commit"], kpi_value(runs[9], "ir_ops"))
    writer.index(history_record(runs[10]))            # another connection: the reader must notice
    assert newest()[0] == runs[10].run_id
    rid = rid_of(runs[10].run_id)
    for who, commit in ((writer, "d" * 40), (reader, "e" * 40)):   # re-indexed with another commit
        changed = history_record(runs[10])
        changed.commit = commit
        assert who.index(changed) is True
        assert rid_of(runs[10].run_id) == rid          # the same row id as the row it replaced
        assert newest() == (runs[10].run_id, commit, kpi_value(runs[10], "ir_ops"))
    reader.prune(1)
    assert [p.run_id for p in reader.kpi_series("ir_ops", "dev_cold", "ir.ops", main_only=False)] == [runs[10].run_id]
