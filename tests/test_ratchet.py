"""`molt-budget ratchet`: an improvement on main becomes the new, tighter budget."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from molt_budget import cli
from molt_budget.budgets.ratchet import Ratchet, apply_ratchets, latest_main_measurements, propose_ratchets
from molt_budget.compare.budget_changes import diff_budgets
from molt_budget.config import load_config
from molt_budget.errors import ConfigError
from molt_budget.results.history import History
from molt_budget.results.model import LaneResult, RunResults, Sample
from molt_budget.results.record import MainCheck
from molt_budget.results.store import save_results

TODAY = date(2026, 11, 26)

BUDGETS = """\
version: 1
settings:
  history: hist/history.sqlite   # relative to this file
lanes:
  cold: {command: [echo, cold], emit_ir: true}
  warm:
    command: [echo, warm]
kpis:
  ops:            # counts: integers stay integers
    lane: cold
    metric: ir.ops
    target: 100
    limit: 120
    owner: frontend
    justification: tracker target
  wall:
    lane: warm
    metric: wall_s
    target: 3.0
    limit: 3.6
    expires: "2027-01-01"
  score:
    lane: warm
    metric: "json:out.json#/score"
    direction: higher
    target: 50
    limit: 40
  rss:
    lane: warm
    metric: peak_rss_mb
    limit: 900
"""


def write(tmp_path: Path) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(BUDGETS)
    return path


def record(history: History, run: RunResults) -> None:
    """As `check` records it: the main runs here are on main and quiet (git is tested in test_mainline)."""
    main = run.provenance["branch"] == "main" and run.authoritative
    history.record(run, main=MainCheck(main, [] if main else ["not on main, or noisy"]))


def run_results(run_id: str, branch: str, metrics: dict[str, dict[str, float]], *, authoritative: bool = True,
                started: str = "2026-11-25T10:00:00Z") -> RunResults:
    lanes = {lane: LaneResult(lane=lane, status="ok", samples=[Sample(kind="measure", index=i, ok=True, metrics=m) for i in range(3)])
             for lane, m in metrics.items()}
    return RunResults(run_id=run_id, config_path="budgets.yaml", config_sha256="0", started_utc=started, state="complete",
                      provenance={"commit": "c0ffee" + run_id, "branch": branch}, authoritative=authoritative, lanes=lanes)


def test_proposals_keep_the_limit_ratio_in_both_directions(tmp_path: Path) -> None:
    config = load_config(write(tmp_path))
    got = {r.kpi: r for r in propose_ratchets(config, {"ops": 50, "wall": 1.234, "score": 70, "rss": 500}, 10)}
    assert got["ops"] == Ratchet("ops", 100, 55, 120, 66, 50)
    assert (got["wall"].new_target, got["wall"].new_limit) == (1.358, 1.63)    # rounded toward the looser side
    assert (got["score"].new_target, got["score"].new_limit) == (63, 50)      # higher is better: 70 - 10%
    assert (got["rss"].new_target, got["rss"].new_limit) == (None, 550)       # limit-only KPI


def test_no_proposal_within_the_margin(tmp_path: Path) -> None:
    config = load_config(write(tmp_path))
    assert propose_ratchets(config, {"ops": 95, "wall": 2.8, "score": 54, "rss": 850, "unknown": 1}, 10) == []
    assert propose_ratchets(config, {"ops": 95}, 4) != []


def test_write_touches_only_the_ratcheted_kpis_and_passes_the_gate(tmp_path: Path) -> None:
    path = write(tmp_path)
    config = load_config(path)
    ratchets = propose_ratchets(config, {"ops": 50, "wall": 1.234}, 10)
    diff = apply_ratchets(path, ratchets, margin_pct=10, today=TODAY, source="run r1 on main", commit="abcdef1234567890", write=False)
    assert path.read_text() == BUDGETS                                       # a proposal only
    assert "-    target: 100\n-    limit: 120\n+    target: 55\n+    limit: 66\n" in diff
    apply_ratchets(path, ratchets, margin_pct=10, today=TODAY, source="run r1 on main", commit="abcdef1234567890", write=True)
    new = path.read_text()
    start = BUDGETS.index("  score:")
    assert new.endswith(BUDGETS[start:]) and new.startswith(BUDGETS[: BUDGETS.index("  ops:")])
    assert "  ops:            # counts: integers stay integers\n" in new
    wall = load_config(path).kpis["wall"]
    assert (wall.target, wall.limit, wall.expires) == (1.358, 1.63, None)   # the ratchet closes the waiver
    assert wall.seeded_from == {"value": 1.234, "commit": "abcdef123456", "date": "2026-11-26", "headroom_pct": 10}
    assert wall.basis == "ratcheted to measured 1.234 s + 10% margin (run r1 on main)"
    changes = diff_budgets(BUDGETS, new, measured={}, today=TODAY, max_headroom_pct=50, path_name="budgets.yaml")
    assert {c.status for c in changes} == {"pass"}
    assert {(c.kpi, c.field, c.kind) for c in changes} >= {("wall", "expires", "tightened"), ("ops", "target", "tightened")}


def test_measurements_from_history_newest_authoritative_main_run(tmp_path: Path) -> None:
    path = write(tmp_path)
    config = load_config(path)
    history = History(tmp_path / "hist" / "history.sqlite")
    record(history, run_results("a", "main", {"cold": {"ir.ops": 80}}, started="2026-11-20T00:00:00Z"))
    record(history, run_results("b", "main", {"cold": {"ir.ops": 50}, "warm": {"wall_s": 1.0}}, started="2026-11-24T00:00:00Z"))
    record(history, run_results("c", "feature", {"cold": {"ir.ops": 10}}, started="2026-11-25T00:00:00Z"))
    record(history, run_results("d", "main", {"cold": {"ir.ops": 5}}, authoritative=False, started="2026-11-26T00:00:00Z"))
    latest = latest_main_measurements(config)
    assert latest.run_id == "b" and latest.values == {"ops": 50, "wall": 1.0}
    assert latest.source == "run b on main @ c0ffeeb"


def test_ratchet_command_from_history_and_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    code = cli.main(["ratchet", "--config", str(path)])
    assert code == 2 and "no history at" in capsys.readouterr().err
    record(History(tmp_path / "hist" / "history.sqlite"), run_results("b", "main", {"cold": {"ir.ops": 50}}))
    assert cli.main(["ratchet", "--config", str(path), "--margin", "10%", "--today", "2026-11-26"]) == 0
    out = capsys.readouterr()
    assert "| ops   | 50         | 100 -> 55 | 120 -> 66 |" in out.out and "+    target: 55" in out.out
    assert "pass --write" in out.err and path.read_text() == BUDGETS
    assert cli.main(["ratchet", "--config", str(path), "--write", "--today", "2026-11-26"]) == 0
    assert load_config(path).kpis["ops"].target == 55
    capsys.readouterr()
    results = tmp_path / "results.json"
    save_results(results, run_results("r", "feature", {"cold": {"ir.ops": 54}}))
    assert cli.main(["ratchet", "--config", str(path), "--results", str(results)]) == 0
    assert "no ratchets" in capsys.readouterr().out


def test_no_main_run_is_a_clear_error(tmp_path: Path) -> None:
    path = write(tmp_path)
    record(History(tmp_path / "hist" / "history.sqlite"), run_results("c", "feature", {"cold": {"ir.ops": 10}}))
    with pytest.raises(ConfigError, match="no main record"):
        latest_main_measurements(load_config(path))


def test_bad_margin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["ratchet", "--config", str(write(tmp_path)), "--margin", "ten"]) == 2
    assert "is not a percentage" in capsys.readouterr().err


def test_a_noisy_results_file_never_ratchets_a_timed_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path)
    results = tmp_path / "results.json"
    measured = {"cold": {"ir.ops": 50}, "warm": {"wall_s": 1.0}}
    save_results(results, run_results("n", "main", measured, authoritative=False))
    assert cli.main(["ratchet", "--config", str(path), "--results", str(results)]) == 0
    out, err = capsys.readouterr()
    assert "| ops " in out and "| wall " not in out and "no ratchet for timed KPIs (wall)" in err
    save_results(results, run_results("q", "main", measured))
    assert cli.main(["ratchet", "--config", str(path), "--results", str(results)]) == 0
    assert "| wall " in capsys.readouterr().out
