"""The lanes' noise model: `calibrate` records it, `validate` and `check` act on it before a PR pays."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import yaml
from test_compare_git import commit, git, make_repo

from molt_budget.cli import main
from molt_budget.compare import sampler
from molt_budget.config import load_config
from molt_budget.results.noise import NoiseEstimate, NoiseStore, estimate, pooled

# A lane whose run time varies by a factor of ~2 from run to run: no pairing cancels that.
JITTER = """\
import random, time
time.sleep(0.03 * random.lognormvariate(0, 0.6))
"""


def noisy_repo(tmp_path: Path, max_pairs: int = 6) -> Path:
    return make_repo(
        tmp_path,
        {"jitter": {"command": ["${python}", "jitter.py"]}},
        {"jitter_s": {"lane": "jitter", "metric": "wall_s", "target": 10, "max_increase_pct": 10,
                      "pairs": 6, "max_pairs": max_pairs}},
        {"jitter.py": JITTER},
    )


def test_estimate_and_pooling() -> None:
    assert estimate("l", "wall_s", [0.1, -0.1, 0.0], "calibrate") is None          # too few pairs to say
    e = estimate("l", "wall_s", [0.1, -0.1, 0.1, -0.1, 0.0], "calibrate")
    assert e is not None and e.pairs == 5 and e.sd == pytest.approx(0.1)
    assert e.lag1 is not None and e.lag1 < 0                                       # alternating: negative
    assert NoiseEstimate.from_dict(e.to_dict()) == e
    a = NoiseEstimate("l", "m", sd=0.1, lag1=None, pairs=11, source="check")
    b = NoiseEstimate("l", "m", sd=0.2, lag1=None, pairs=21, source="calibrate")
    assert pooled([a, b]) == pytest.approx(((10 * 0.01 + 20 * 0.04) / 30) ** 0.5)
    assert pooled([]) is None


def test_store_keeps_the_latest_records_per_lane_metric(tmp_path: Path) -> None:
    store = NoiseStore(tmp_path / "h.sqlite")
    assert store.model([("l", "m")]) == {}
    store.record([NoiseEstimate("l", "m", sd=0.5, lag1=0.1, pairs=20, source="calibrate", recorded_utc="2026-01-01T00:00:00+00:00")])
    store.record([NoiseEstimate("l", "m", sd=0.05, lag1=0.0, pairs=20, source="check", recorded_utc=f"2026-02-0{i}T00:00:00+00:00")
                  for i in range(1, 6)])
    store.record([NoiseEstimate("other", "m", sd=0.3, lag1=None, pairs=8, source="check")])
    assert [r.sd for r in store.records("l", "m")] == [0.05] * 5                   # the old calibration aged out
    assert store.model([("l", "m"), ("l", "x")]) == {("l", "m"): pytest.approx(0.05)}


def test_store_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "h.sqlite"
    bad.write_text("not sqlite at all " * 100)
    with pytest.raises(Exception) as info:
        NoiseStore(bad).record([NoiseEstimate("l", "m", sd=0.1, lag1=None, pairs=5, source="check")])
    assert "not a molt-budget history database" in str(info.value)


@pytest.mark.slow
def test_calibrate_then_validate_names_the_lane_too_noisy_for_its_budget(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = noisy_repo(tmp_path)
    config = str(repo / "budgets.yaml")
    assert main(["validate", "--config", config, "--strict"]) == 0                 # nothing recorded yet: nothing to say
    capsys.readouterr()
    assert main(["calibrate", "jitter", "--config", config, "--pairs", "6", "--quiet", "--no-quiescence"]) == 0
    out = capsys.readouterr().out
    assert "jitter_s" in out
    history = repo.parent / "out" / "history.sqlite"
    rows = sqlite3.connect(history).execute("SELECT lane, metric, source, pairs, log_ratio_sd FROM lane_noise").fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [("jitter", "wall_s", "calibrate", 6)]
    assert rows[0][4] > 0.1
    # validate now names the KPI before any PR pays for its pairs, with the line of the KPI
    assert main(["validate", "--config", config]) == 0
    out = capsys.readouterr().out
    warned = [line for line in out.splitlines() if "warning[noise]" in line]
    assert len(warned) == 1 and warned[0].startswith("budgets.yaml:") and "jitter_s" in warned[0]
    assert main(["validate", "--config", config, "--strict"]) == 1
    warnings = sampler.noise_warnings(load_config(config), ["jitter"], sampler.load_noise(load_config(config), ["jitter"]))
    assert [(w.kpi, w.lane) for w in warnings] == [("jitter_s", "jitter")]
    assert warnings[0].needed > warnings[0].max_pairs


@pytest.mark.slow
def test_check_warns_up_front_gives_up_as_inconclusive_and_records_the_run_noise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = noisy_repo(tmp_path)
    config = str(repo / "budgets.yaml")
    store = NoiseStore(repo.parent / "out" / "history.sqlite")
    store.record([NoiseEstimate("jitter", "wall_s", sd=0.6, lag1=0.0, pairs=30, source="calibrate")])
    git(repo, "checkout", "-qb", "feature")
    commit(repo, {"README": "docs only\n"})
    report = repo.parent / "report.json"
    code = main(["check", "--config", config, "--report-json", str(report), "--no-quiescence"])
    err = capsys.readouterr().err
    assert any("lane=jitter" in line and "jitter_s" in line and "max_pairs" in line for line in err.splitlines())
    kpi = json.loads(report.read_text())["kpis"][0]
    assert code == 0
    assert (kpi["status"], kpi["timed_kind"], kpi["pairs"]) == ("yellow", "inconclusive", 6)
    sources = [r.source for r in store.records("jitter", "wall_s")]
    assert sources[0] == "check" and "calibrate" in sources


def test_validate_is_quiet_when_the_noise_fits(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "budgets.yaml"
    cfg.write_text(yaml.safe_dump({
        "version": 1, "settings": {"history": "h.sqlite"},
        "lanes": {"l": {"command": ["true"]}},
        "kpis": {"k": {"lane": "l", "metric": "wall_s", "target": 1, "max_increase_pct": 10}},
    }))
    NoiseStore(tmp_path / "h.sqlite").record([NoiseEstimate("l", "wall_s", sd=0.02, lag1=None, pairs=20, source="calibrate")])
    assert main(["validate", "--config", str(cfg), "--strict"]) == 0
    assert "warning" not in capsys.readouterr().out


def test_calibrate_rejects_an_unknown_lane(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    repo = noisy_repo(tmp_path)
    assert main(["calibrate", "nope", "--config", str(repo / "budgets.yaml")]) == 2
    assert "no lane nope" in capsys.readouterr().err
