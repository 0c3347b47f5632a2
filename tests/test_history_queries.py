"""History queries behind the tracker, charts and progress estimates; compile_progress import."""

from __future__ import annotations

import html
import json
import re
import statistics
from pathlib import Path

import pytest
from history_factory import history_record, is_main, kpi_value, populate

from molt_budget import cli
from molt_budget.config import load_config
from molt_budget.report.tracker import HISTORY_BLOCK, marker, update_tracker
from molt_budget.results.history import History
from molt_budget.results.importer import import_compile_progress
from molt_budget.results.model import LaneResult, RunResults, Sample
from molt_budget.results.record import MainCheck


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    return populate(tmp_path_factory.mktemp("history"), n=200)


def test_kpi_series_prefers_the_verdict_and_skips_failed_lanes(world) -> None:
    config, history, runs = world
    k = config.kpis["dev_warm_s"]
    everything = history.kpi_series(k.id, k.lane, k.metric, k.aggregate, main_only=False)
    expected = [(r.run_id, kpi_value(r, k.id)) for r in runs if kpi_value(r, k.id) is not None]
    assert [(p.run_id, p.value) for p in everything] == expected
    assert len(everything) < len(runs)                         # runs whose lane failed give no point
    assert [p.authoritative for p in everything] == [r.authoritative for r in runs if kpi_value(r, k.id) is not None]
    assert [p.main for p in everything] == [is_main(r) for r in runs if kpi_value(r, k.id) is not None]
    assert history.kpi_series(k.id, k.lane, k.metric, limit=7, main_only=False) == everything[-7:]
    feature = history.kpi_series(k.id, k.lane, k.metric, branch="feature", main_only=False)
    assert {p.run_id for p in feature} == {r.run_id for r in runs if r.provenance["branch"] == "feature" and kpi_value(r, k.id) is not None}


def test_series_default_to_main_records(world) -> None:
    """Branch runs, noisy runs and failed lanes are recorded but never trend points."""
    config, history, runs = world
    k = config.kpis["dev_warm_s"]
    main = history.kpi_series(k.id, k.lane, k.metric, k.aggregate)
    expected = [(r.run_id, kpi_value(r, k.id)) for r in runs if is_main(r)]
    assert [(p.run_id, p.value) for p in main] == expected
    assert all(p.main and p.authoritative for p in main)
    assert history.kpi_series(k.id, k.lane, k.metric, limit=5) == main[-5:]
    first, last = history.kpi_first_last(k.id, k.lane, k.metric)
    assert (first, last) == (main[0], main[-1])
    assert history.kpi_series(k.id, k.lane, k.metric, branch="feature") == []
    newest_main = max((r for r in runs if is_main(r)), key=lambda r: r.started_utc)
    assert history.latest_main().run_id == newest_main.run_id


def test_kpi_series_falls_back_to_lane_values_without_a_verdict(tmp_path: Path) -> None:
    history = History(tmp_path / "h.sqlite")
    run = RunResults(run_id="r1", config_path="-", config_sha256="-", started_utc="2026-01-01T00:00:00+00:00", state="complete")
    run.lanes["warm"] = LaneResult("warm", "ok", samples=[
        Sample("measure", i, True, metrics={"wall_s": v}) for i, v in enumerate([3.0, 1.0, 2.0])
    ] + [Sample("warmup", 0, True, metrics={"wall_s": 99.0})])
    history.record(run, main=MainCheck(True))
    assert [p.value for p in history.kpi_series("k", "warm", "wall_s")] == [2.0]
    assert [p.value for p in history.kpi_series("k", "warm", "wall_s", aggregate="min")] == [1.0]
    assert history.kpi_series("k", "warm", "cpu_s") == []
    run.state, run.run_id = "interrupted", "r2"
    history.record(run, main=MainCheck(True))
    assert len(history.kpi_series("k", "warm", "wall_s")) == 1   # only complete runs
    run.state, run.run_id = "complete", "r3"
    history.record(run)                                           # recorded without a main check: not main
    assert len(history.kpi_series("k", "warm", "wall_s")) == 1
    assert len(history.kpi_series("k", "warm", "wall_s", main_only=False)) == 2
    assert history.get("r3").not_main_reasons


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
        assert s.main == is_main(r)
    mains = history.run_summaries(limit=60, main_only=True)
    assert [s.run_id for s in mains] == [r.run_id for r in sorted(runs, key=lambda r: r.started_utc, reverse=True) if is_main(r)][:60]


def test_indexing_is_idempotent_and_incremental(tmp_path: Path) -> None:
    _config, history, runs = populate(tmp_path, n=30)
    records = [history_record(r) for r in runs]
    assert history.index_many(records) == 0                       # all known: nothing new
    assert history.index(records[3]) is False
    assert history.indexed_ids() == {r.run_id for r in runs}
    changed = history_record(runs[3])
    changed.status = "yellow" if changed.status != "yellow" else "pass"
    assert history.index(changed) is True and history.get(runs[3].run_id).status == changed.status
    assert history.stats()["runs"] == 30
    k = "dev_warm_s"
    before = history.kpi_series(k, "dev_warm", "wall_s", main_only=False)
    assert len({p.run_id for p in before}) == len(before)         # re-indexing never duplicates a point


def test_prune_drops_runs_and_their_points(tmp_path: Path) -> None:
    _config, history, runs = populate(tmp_path, n=50)
    before = history.kpi_series("dev_warm_s", "dev_warm", "wall_s", main_only=False)
    dropped = history.prune(10)
    assert len(dropped) == 40 and {r for r, _p in dropped} == {r.run_id for r in runs[:40]}
    after = history.kpi_series("dev_warm_s", "dev_warm", "wall_s", main_only=False)
    assert after == [p for p in before if p.run_id in {r.run_id for r in runs[-10:]}]
    assert history.stats()["points"] == sum(
        sum(k.value is not None for k in r.kpis) + sum("wall_s" in l.metrics for l in history_record(r).lanes.values())
        for r in runs[-10:])
    newest_main = next(r for r in reversed(runs) if is_main(r))
    assert history.latest_run_for_commit(newest_main.provenance["commit"][:8])[0] == newest_main.run_id
    branch_run = next(r for r in reversed(runs) if not is_main(r))
    assert history.latest_run_for_commit(branch_run.provenance["commit"]) is None   # never a baseline


def test_lane_estimate_is_the_median_of_recent_runs(world) -> None:
    _config, history, _runs = world
    series = history.metric_series("dev_warm", "wall_s", limit=20, main_only=False)
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
    assert shown.started_utc == raw["meta"]["timestamp_utc"]
    assert shown.finished_utc == raw["meta"]["timestamp_utc"]
    assert shown.source == "compile_progress" and not shown.authoritative and not shown.main
    notes = {name: [(n.kind, n.index, n.attempts, n.retry_reason) for n in lane.notes] for name, lane in shown.lanes.items()}
    assert notes == {c["name"]: [("measure", 0, c["attempts"], c["retry_reason"])] if c["attempts"] > 1 else [] for c in raw["results"]}
    assert notes["dev_cold"] == [("measure", 0, 2, "timeout")]

    (summary,) = history.run_summaries()
    assert [(i.lane, i.attempts, i.retry_reason) for i in summary.retries] == [
        (c["name"], c["attempts"], c["retry_reason"]) for c in raw["results"] if c["attempts"] > 1
    ]
    elapsed = {c["name"]: c["elapsed_sec"] for c in raw["results"]}
    assert {lane: history.kpi_series("k", lane, "wall_s", main_only=False)[0].value for lane in elapsed} == elapsed
    assert history.kpi_series("k", "dev_cold", "wall_s", main_only=False)[0].started_utc == raw["meta"]["timestamp_utc"]
    assert history.kpi_series("k", "dev_cold", "wall_s") == []          # an imported snapshot is not a main record


def imported_into_a_dev_warm_project(raw: dict, tmp_path: Path) -> str:
    """A project with one timed dev_warm KPI whose history holds `raw`, imported: its config's path."""
    snapshot = tmp_path / "cp.json"
    snapshot.write_text(json.dumps(raw))
    (tmp_path / "budgets.yaml").write_text(
        "version: 1\nsettings: {history: h.sqlite}\nlanes:\n  dev_warm: {command: 'true'}\n"
        "kpis:\n  dev_warm_s: {lane: dev_warm, metric: wall_s, target: 3.0, limit: 3.6}\n"
    )
    config = str(tmp_path / "budgets.yaml")
    assert cli.main(["import-compile-progress", "--config", config, str(snapshot)]) == 0
    return config


def test_imported_failures_reach_the_tracker(shared: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = json.loads((shared / "molt/examples/compile_progress.json").read_text())
    raw["meta"]["timestamp_utc"] = "2026-02-10T05:20:42.000000+00:00"
    bad = raw["results"][1]
    bad.update(returncode=143, retry_reason="sigterm", attempts=3)
    config = imported_into_a_dev_warm_project(raw, tmp_path)
    page = tmp_path / "page.md"
    assert cli.main(["tracker", "--config", config, "--out", str(page)]) == 0
    assert "compile-progress-" not in page.read_text(encoding="utf-8")     # not a main record: not by default
    assert cli.main(["tracker", "--config", config, "--out", str(page), "--all-branches"]) == 0
    text = page.read_text(encoding="utf-8")
    row = next(l for l in text.split(HISTORY_BLOCK)[1].splitlines() if "compile-progress-" in l)
    assert row.startswith("| 2026-02-10 `compile-progress-20260210T052042-")
    assert "` | - | dev_cold, dev_warm (error)," in row
    assert "dev_cold repeat 1: 2 attempts (timeout); dev_warm repeat 1: 3 attempts (sigterm)" in row
    assert "dev_warm repeat 1: returncode 143" in row
    assert "| no: imported from molt's compile_progress.json" in row
    # the failed case gives no dev_warm value: the KPI has no data yet
    assert "| dev_warm_s | n/a | <= 3.000 | n/a | ⚪ no data |" in text
    assert update_tracker(page, load_config(config), History(tmp_path / "h.sqlite"), main_only=False) is False


@pytest.mark.slow
def test_a_hostile_case_name_is_inert_text_on_the_tracker_page(shared: Path, tmp_path: Path) -> None:
    """A snapshot's case name lands in the run-history table: one naming the page's own end
    marker would cut the block short, and the next update would splice at the wrong place."""
    raw = json.loads((shared / "molt/examples/compile_progress.json").read_text())
    end = marker(HISTORY_BLOCK, end=True)
    raw["results"][0]["name"] = f"{end} <b>x</b> [l](https://e.test) @team"
    raw["results"][1].update(returncode=1, attempts=2, retry_reason=f"{end}|<img src=x>")
    config = imported_into_a_dev_warm_project(raw, tmp_path)
    page = tmp_path / "page.md"
    for _ in range(2):      # the second update splices into the page the first one wrote
        assert cli.main(["tracker", "--config", config, "--out", str(page), "--all-branches"]) == 0
        text = page.read_text(encoding="utf-8")
        assert text.count(end) == 1 and text.count(marker(HISTORY_BLOCK)) == 1
    rendered = html.unescape(re.sub(r"\\(.)", r"\1", text)).replace("\u200b", "")
    assert end in rendered and "<img src=x>" in rendered        # the reader still sees what the file said
    assert "<b>" not in text and "<img" not in text and "](https://" not in text and "@team" not in text


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
    assert history.show(results.run_id).started_utc == "2026-02-10T05:20:42Z"
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


@pytest.mark.slow      # GitHub's Markdown renderer in a real browser
def test_the_tracker_page_of_molts_snapshot_fits_the_width_github_shows_it_in(shared: Path, tmp_path: Path) -> None:
    """Eight Run History columns of molt's own snapshot (its lane names, a retry, the imported
    snapshot's authority note) rendered 899 px wide in 830 px: a reader scrolled sideways to see
    whether a run was authoritative. The date now heads the run's cell, and retries and
    failures share one."""
    from rendering import render_comment

    config = imported_into_a_dev_warm_project(json.loads((shared / "molt/examples/compile_progress.json").read_text()), tmp_path)
    page = tmp_path / "page.md"
    assert cli.main(["tracker", "--config", config, "--out", str(page), "--all-branches"]) == 0
    rendered = render_comment(page.read_text(encoding="utf-8"))
    assert rendered["widest_table"] <= rendered["body_width"] <= 830, rendered
    assert "Authoritative" in rendered["first_screen_text"]
