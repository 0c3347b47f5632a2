"""History queries behind the tracker, charts and progress estimates; compile_progress import."""

from __future__ import annotations

import json
import sqlite3
import statistics
from contextlib import closing
from pathlib import Path

import pytest
from history_factory import kpi_value, populate

from molt_budget import cli
from molt_budget.config import load_config
from molt_budget.report.tracker import HISTORY_BLOCK, update_tracker
from molt_budget.results.history import History
from molt_budget.results.importer import import_compile_progress
from molt_budget.results.model import LaneResult, RunResults, Sample


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    return populate(tmp_path_factory.mktemp("history"), n=200)


def test_kpi_series_prefers_the_verdict_and_skips_failed_lanes(world) -> None:
    config, history, runs = world
    k = config.kpis["dev_warm_s"]
    series = history.kpi_series(k.id, k.lane, k.metric, k.aggregate)
    expected = [(r.run_id, kpi_value(r, k.id)) for r in runs if kpi_value(r, k.id) is not None]
    assert [(p.run_id, p.value) for p in series] == expected
    assert len(series) < len(runs)                             # runs whose lane failed give no point
    assert [p.authoritative for p in series] == [r.authoritative for r in runs if kpi_value(r, k.id) is not None]
    assert history.kpi_series(k.id, k.lane, k.metric, limit=7) == series[-7:]
    feature = history.kpi_series(k.id, k.lane, k.metric, branch="feature")
    assert {p.run_id for p in feature} == {r.run_id for r in runs if r.provenance["branch"] == "feature" and kpi_value(r, k.id) is not None}


def test_kpi_series_falls_back_to_samples_without_a_verdict(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite")
    run = RunResults(run_id="r1", config_path="-", config_sha256="-", started_utc="2026-01-01T00:00:00+00:00", state="complete")
    run.lanes["warm"] = LaneResult("warm", "ok", samples=[
        Sample("measure", i, True, metrics={"wall_s": v}) for i, v in enumerate([3.0, 1.0, 2.0])
    ] + [Sample("warmup", 0, True, metrics={"wall_s": 99.0})])
    history.record(run)
    assert [p.value for p in history.kpi_series("k", "warm", "wall_s")] == [2.0]
    assert [p.value for p in history.kpi_series("k", "warm", "wall_s", aggregate="min")] == [1.0]
    assert history.kpi_series("k", "warm", "cpu_s") == []
    run.state, run.run_id = "interrupted", "r2"
    history.record(run)
    assert len(history.kpi_series("k", "warm", "wall_s")) == 1   # only complete runs


def test_run_summaries_match_the_runs(world) -> None:
    _config, history, runs = world
    summaries = history.run_summaries(limit=60)
    newest = sorted(runs, key=lambda r: r.started_utc, reverse=True)[:60]
    assert [s.run_id for s in summaries] == [r.run_id for r in newest]
    for s, r in zip(summaries, newest):
        assert s.counts == {k: v for k, v in r.counts().items() if v}
        assert s.lanes == {name: lane.status for name, lane in r.lanes.items()}
        assert s.authoritative == r.authoritative and s.authoritative_reasons == r.authoritative_reasons
        assert [(i.lane, i.index, i.attempts, i.retry_reason) for i in s.retries] == [
            (l.lane, x.index, x.attempts, x.retry_reason) for l in r.lanes.values() for x in l.samples if x.attempts > 1
        ]
        assert [(i.lane, i.error) for i in s.failures] == [(l.lane, x.error) for l in r.lanes.values() for x in l.samples if not x.ok]
        assert s.commit == r.provenance["commit"] and s.branch == r.provenance["branch"]


def test_run_summaries_on_a_database_without_lane_rows(tmp_path: Path) -> None:
    """Databases written before the lanes table: lanes are derived from the samples."""
    _config, history, runs = populate(tmp_path, n=40)
    with closing(sqlite3.connect(history.path)) as conn, conn:
        conn.execute("DELETE FROM lanes")
    failed = next(r for r in runs if r.lanes["dev_warm"].status == "error")
    summary = next(s for s in history.run_summaries(limit=40) if s.run_id == failed.run_id)
    assert summary.lanes == {"dev_cold": "ok", "dev_warm": "error"}
    assert summary.lane_errors == {}


def test_prune_removes_lane_rows_and_old_queries_still_work(tmp_path: Path) -> None:
    _config, history, runs = populate(tmp_path, n=50)
    before = history.metric_series("dev_warm", "wall_s", limit=1000)
    assert history.prune(10) == 40
    with closing(sqlite3.connect(history.path)) as conn:
        assert conn.execute("SELECT COUNT(DISTINCT run_id) FROM lanes").fetchone()[0] == 10
    after = history.metric_series("dev_warm", "wall_s", limit=1000)
    assert after == [row for row in before if row[0] in {r.run_id for r in runs[-10:]}]
    assert history.latest_run_for_commit(runs[-1].provenance["commit"][:8])[0] == runs[-1].run_id


def test_lane_estimate_is_the_median_of_recent_runs(world) -> None:
    _config, history, _runs = world
    series = history.metric_series("dev_warm", "wall_s", limit=20)
    assert history.lane_estimate("dev_warm") == pytest.approx(statistics.median(v for *_x, v, _a in series))
    assert history.lane_estimate("nope") is None


# -- import-compile-progress keeps timestamps and retry data -----------------------------------


def test_import_keeps_timestamps_and_retries(shared: Path, tmp_path: Path) -> None:
    path = shared / "molt/examples/compile_progress.json"
    raw = json.loads(path.read_text())
    history = History(tmp_path / "h.sqlite")
    results = import_compile_progress(path)
    history.record(results, path, source="compile_progress")

    shown = history.show(results.run_id)
    assert shown["run"]["started_utc"] == raw["meta"]["timestamp_utc"]
    assert shown["run"]["finished_utc"] == raw["meta"]["timestamp_utc"]
    assert shown["run"]["source"] == "compile_progress" and shown["run"]["authoritative"] == 0
    per_lane = {}
    for lane, kind, idx, ok, attempts, reason, *_ in shown["samples"]:
        per_lane.setdefault(lane, set()).add((kind, idx, ok, attempts, reason))
    assert per_lane == {c["name"]: {("measure", 0, 1, c["attempts"], c["retry_reason"])} for c in raw["results"]}
    assert per_lane["dev_cold"] == {("measure", 0, 1, 2, "timeout")}

    (summary,) = history.run_summaries()
    assert [(i.lane, i.attempts, i.retry_reason) for i in summary.retries] == [
        (c["name"], c["attempts"], c["retry_reason"]) for c in raw["results"] if c["attempts"] > 1
    ]
    elapsed = {c["name"]: c["elapsed_sec"] for c in raw["results"]}
    assert {lane: history.kpi_series("k", lane, "wall_s")[0].value for lane in elapsed} == elapsed
    assert history.kpi_series("k", "dev_cold", "wall_s")[0].started_utc == raw["meta"]["timestamp_utc"]


def test_imported_failures_reach_the_tracker(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.loads((shared / "molt/examples/compile_progress.json").read_text())
    raw["meta"]["timestamp_utc"] = "2026-02-10T05:20:42.000000+00:00"
    bad = raw["results"][1]
    bad.update(returncode=143, retry_reason="sigterm", attempts=3)
    snapshot = tmp_path / "cp.json"
    snapshot.write_text(json.dumps(raw))
    (tmp_path / "budgets.yaml").write_text(
        "version: 1\nsettings: {history: h.sqlite}\nlanes:\n  dev_warm: {command: 'true'}\n"
        "kpis:\n  dev_warm_s: {lane: dev_warm, metric: wall_s, target: 3.0, limit: 3.6}\n"
    )
    config = str(tmp_path / "budgets.yaml")
    assert cli.main(["import-compile-progress", "--config", config, str(snapshot)]) == 0
    page = tmp_path / "page.md"
    assert cli.main(["tracker", "--config", config, "--out", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    row = next(l for l in text.split(HISTORY_BLOCK)[1].splitlines() if "compile-progress-" in l)
    assert row.startswith("| 2026-02-10 | `compile-progress-20260210T052042-")
    assert "` | - | dev_cold, dev_warm (error)," in row
    assert "dev_cold repeat 1: 2 attempts (timeout); dev_warm repeat 1: 3 attempts (sigterm)" in row
    assert "dev_warm repeat 1: returncode 143" in row
    assert "| no: imported from molt's compile_progress.json" in row
    # the failed case gives no dev_warm value: the KPI has no data yet
    assert "| dev_warm_s | n/a | <= 3.000 | n/a | ⚪ no data |" in text
    assert update_tracker(page, load_config(config), History(tmp_path / "h.sqlite")) is False


def test_undated_snapshot_is_dated_by_its_mtime(shared: Path, tmp_path: Path) -> None:
    import os

    raw = json.loads((shared / "molt/examples/compile_progress.json").read_text())
    raw["meta"].pop("timestamp_utc", None)
    snapshot = tmp_path / "cp.json"
    snapshot.write_text(json.dumps(raw))
    os.utime(snapshot, (1_770_700_842, 1_770_700_842))          # 2026-02-10T05:20:42Z
    results = import_compile_progress(snapshot)
    assert results.started_utc == results.finished_utc == "2026-02-10T05:20:42Z"
    assert results.provenance["timestamp_source"].startswith("file mtime")
    assert results.run_id.startswith("compile-progress-20260210T052042-")
    history = History(tmp_path / "h.sqlite")
    history.record(results, snapshot, source="compile_progress")
    assert history.show(results.run_id)["run"]["started_utc"] == "2026-02-10T05:20:42Z"
    dated = import_compile_progress(shared / "molt/examples/compile_progress.json")
    assert "timestamp_source" not in dated.provenance


def test_duplicate_case_names_are_one_line_exit_2(shared: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    raw = json.loads((shared / "molt/examples/compile_progress.json").read_text())
    raw["results"].append(dict(raw["results"][0]))
    snapshot = tmp_path / "cp.json"
    snapshot.write_text(json.dumps(raw))
    (tmp_path / "budgets.yaml").write_text("version: 1\nlanes:\n  a: {command: 'true'}\nkpis:\n  k: {lane: a, metric: wall_s, target: 1}\n")
    code = cli.main(["import-compile-progress", str(snapshot), "--config", str(tmp_path / "budgets.yaml"),
                     "--db", str(tmp_path / "h.sqlite")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert str(snapshot) in err and repr(raw["results"][0]["name"]) in err and "appears twice" in err
