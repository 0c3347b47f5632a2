"""A history database written by an older molt-budget is migrated in place: the sample-row
layout (no user_version: every run kept, main decided from what was recorded, samples gone)
and layout 2 (a row per point and a whole record per run: every record, series and summary
read back the same, in a smaller file)."""

from __future__ import annotations

import importlib.util
import random
import sqlite3
import subprocess
import sys
from contextlib import closing
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from history_factory import kpi_value, make_run, write_budgets

from molt_budget.config import load_config
from molt_budget.results.history import USER_VERSION, History

REPO = Path(__file__).resolve().parents[1]
OLD = "a312dea"          # the last commit with the sample-row layout
LAYOUT2 = "813459b"      # the last commit with layout 2 (a row per point, a whole record per run)


def old_history_module(tmp_path: Path, commit: str = OLD) -> ModuleType:
    """An older release's results/history.py, loaded from git as it was."""
    source = subprocess.run(["git", "show", f"{commit}:molt_budget/results/history.py"], cwd=REPO, check=True,
                            capture_output=True, text=True).stdout
    name = f"old_history_{commit}"
    path = tmp_path / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def old_db(tmp_path: Path):
    try:
        old = old_history_module(tmp_path)
    except subprocess.CalledProcessError:
        pytest.skip(f"commit {OLD} is not in this clone's history")
    config = load_config(write_budgets(tmp_path))
    rng = random.Random(3)
    runs = [make_run(config, i, rng) for i in range(60)]
    runs[10].provenance["dirty"] = True                  # the dirty experiment on main
    runs[20].state = "interrupted"
    db = tmp_path / "old.sqlite"
    history = old.History(db)
    for run in runs:
        history.record(run, Path(f"/runs/{run.run_id}/results.json"))
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 0
        samples = conn.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
    assert samples > len(runs)
    return config, db, runs, old


def legacy_main(run) -> bool:
    return (run.state == "complete" and run.provenance.get("dirty") is False and run.provenance["branch"] == "main"
            and run.authoritative and all(l.status == "ok" for l in run.lanes.values()))


def test_migration_keeps_every_run_and_decides_main(old_db) -> None:
    _config, db, runs, old = old_db
    before = old.History(db).kpi_series("dev_warm_s", "dev_warm", "wall_s")
    size_before = db.stat().st_size
    history = History(db)
    assert history.indexed_ids() == {r.run_id for r in runs}
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == USER_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "samples" not in tables and not any(t.startswith("legacy_") for t in tables)
    assert db.stat().st_size < size_before

    rows = {r.run_id: r for r in history.runs(limit=1000)}
    assert {rid for rid, r in rows.items() if r.main} == {r.run_id for r in runs if legacy_main(r)}
    assert "uncommitted changes in the tree" in rows[runs[10].run_id].why_not_main
    assert "branch feature, not main" in rows[runs[4].run_id].why_not_main
    assert "host not quiet" in rows[runs[3].run_id].why_not_main

    # the same values as the old query, for the runs that are main records
    main_ids = {r.run_id for r in runs if legacy_main(r)}
    migrated = history.kpi_series("dev_warm_s", "dev_warm", "wall_s")
    assert [(p.run_id, p.value) for p in migrated] == [(p.run_id, p.value) for p in before if p.run_id in main_ids]
    assert [p.value for p in migrated] == [kpi_value(r, "dev_warm_s") for r in runs if r.run_id in main_ids]
    everything = history.kpi_series("dev_warm_s", "dev_warm", "wall_s", main_only=False)
    assert [(p.run_id, p.value) for p in everything] == [(p.run_id, p.value) for p in before]

    # retried and failed samples, lane errors and the results path survive
    failed = runs[7]
    summary = next(s for s in history.run_summaries(limit=1000) if s.run_id == failed.run_id)
    assert summary.lanes == {"dev_cold": "ok", "dev_warm": "error"}
    assert [(i.lane, i.error) for i in summary.failures] == [
        (l.lane, s.error) for l in failed.lanes.values() for s in l.samples if not s.ok]
    assert history.results_path(failed.run_id) == f"/runs/{failed.run_id}/results.json"
    assert History(db).indexed_ids() == {r.run_id for r in runs}     # opening again migrates nothing


def test_a_newer_layout_is_refused_in_one_line(tmp_path: Path) -> None:
    db = tmp_path / "h.sqlite"
    with closing(sqlite3.connect(db)) as conn:
        conn.execute(f"PRAGMA user_version = {USER_VERSION + 1}")
    from molt_budget.errors import ConfigError

    with pytest.raises(ConfigError, match="newer than this molt-budget"):
        History(db).runs()
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(ConfigError, match="not a molt-budget history database"):
        History(tmp_path / "junk.sqlite").runs()


def test_layout_2_is_migrated_with_every_record_series_and_summary(tmp_path: Path) -> None:
    try:
        old = old_history_module(tmp_path, LAYOUT2)
    except subprocess.CalledProcessError:
        pytest.skip(f"commit {LAYOUT2} is not in this clone's history")
    from history_factory import history_record

    config = load_config(write_budgets(tmp_path))
    rng = random.Random(8)
    runs = [make_run(config, i, rng) for i in range(160)]
    runs[12].lanes["dev_cold"].detail = {"ir": {"functions": 3, "modules": ["m"]}}
    db = tmp_path / "v2.sqlite"
    before = old.History(db)
    before.index_many([history_record(r) for r in runs[:150]], Path("/runs/results.json"))
    for run in runs[150:]:
        before.index(history_record(run))
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 2
    kinds = [("dev_warm_s", "dev_warm", "wall_s"), ("ir_ops", "dev_cold", "ir.ops")]
    old_series = {k: before.kpi_series(*k, main_only=False) for k in kinds}
    old_records = {r.run_id: before.get(r.run_id).to_json() for r in runs}
    old_summaries = before.run_summaries(limit=1000)
    old_estimate = before.lane_estimate("dev_warm")
    before.close()
    size_before = db.stat().st_size

    history = History(db)
    assert history.stats()["runs"] == len(runs)
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == USER_VERSION
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "points" not in tables and not any(t.startswith("legacy_") for t in tables)
    assert db.stat().st_size < size_before
    assert {r.run_id: history.get(r.run_id).to_json() for r in runs} == old_records
    for k in kinds:
        assert [(p.run_id, p.value, p.main) for p in history.kpi_series(*k, main_only=False)] == \
            [(p.run_id, p.value, p.main) for p in old_series[k]]
    def fields_of(i: Any) -> dict[str, Any]:       # a Struct here, a dataclass in the old module
        return {name: getattr(i, name) for name in getattr(i, "__struct_fields__", None) or vars(i)}

    def summary(s: Any) -> tuple[Any, ...]:       # the old module has its own SampleIssue class
        return s.run_id, s.lanes, s.counts, [fields_of(i) for i in s.failures], [fields_of(i) for i in s.retries], s.main

    assert [summary(s) for s in history.run_summaries(limit=1000)] == [summary(s) for s in old_summaries]
    assert history.lane_estimate("dev_warm") == old_estimate
    assert history.results_path(runs[3].run_id) == "/runs/results.json"
    assert history.results_path(runs[155].run_id) is None
    assert History(db).indexed_ids() == {r.run_id for r in runs}     # opening again migrates nothing


@pytest.mark.parametrize("provenance", ["[1, 2]", "\"a string\"", "not json"])
def test_a_damaged_legacy_provenance_column_still_migrates(old_db, provenance: str) -> None:
    """The column is JSON text an older release wrote; one a disk or a hand edit damaged (valid
    JSON that is not an object included) costs that run its extra provenance, not the migration."""
    config, db, runs, _old = old_db
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("UPDATE runs SET provenance = ? WHERE run_id = ?", (provenance, runs[5].run_id))
        conn.commit()
    history = History(db, config.settings.main_branch)
    listed = {row.run_id: row for row in history.runs(limit=1000)}
    assert set(listed) == {r.run_id for r in runs}
    assert listed[runs[5].run_id].commit == runs[5].provenance["commit"]      # from the row's own column
