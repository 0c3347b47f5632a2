"""The lanes' noise model: `calibrate` records it, `validate` and `check` act on it before a PR pays."""

from __future__ import annotations

import json
import math
import re
import sqlite3
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from test_compare_git import commit, git, make_repo

from molt_budget.cli import main
from molt_budget.compare import sampler
from molt_budget.config import load_config
from molt_budget.results.history import History
from molt_budget.results.noise import NoiseEstimate, NoiseStore, estimate, from_main_records, pooled
from molt_budget.results.record import KpiRecord, RunRecord

# A lane whose run time varies by a factor of ~2 from run to run: no pairing cancels that.
JITTER = """\
import random, time
time.sleep(0.03 * random.lognormvariate(0, 0.6))
"""


# Every other build of the run sleeps 4x longer. The pairs alternate their order (base head,
# head base, ...), so their head/base ratios alternate 4 and 1/4: a lane as noisy as it gets
# (log-ratio SD ~1.5) whose six pairs can neither pass nor fail a 10 % budget, on any host.
# (A random sleep let a lucky draw of six pairs pass: head 40 % faster, CI upper bound < +10 %.)
ALTERNATING = """\
import os, time
from pathlib import Path
counter = Path(os.environ["JITTER_COUNTER"])
k = int(counter.read_text()) if counter.exists() else 0
counter.write_text(str(k + 1))
time.sleep(0.2 if k % 2 else 0.05)
"""


def noisy_repo(tmp_path: Path, max_pairs: int = 6) -> Path:
    return make_repo(
        tmp_path,
        {"jitter": {"command": ["${python}", "-S", "jitter.py"], "env": {"JITTER_COUNTER": str(tmp_path / "jitter-builds")}}},
        {"jitter_s": {"lane": "jitter", "metric": "wall_s", "target": 10, "max_increase_pct": 10,
                      "pairs": 6, "max_pairs": max_pairs}},
        {"jitter.py": ALTERNATING},
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


def test_reading_the_model_never_writes_the_history(tmp_path: Path) -> None:
    """A check reads the noise model of every timed lane before it measures: on a history
    without the table (a fresh one) that read must not create it, a commit and its fsyncs."""
    path = tmp_path / "h.sqlite"
    history = History(path, "main")
    assert history.runs(1) == []                  # creates the file with the runs' layout
    history.close()
    before = path.read_bytes()
    assert NoiseStore(path).model([("l", "m"), ("k", "m")]) == {}
    assert path.read_bytes() == before
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT name FROM sqlite_master WHERE name = 'lane_noise'").fetchall() == []
    NoiseStore(path).record([NoiseEstimate("l", "m", sd=0.1, lag1=None, pairs=5, source="check")])
    assert [r.sd for r in NoiseStore(path).records("l", "m")] == [0.1]


def test_store_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    bad = tmp_path / "h.sqlite"
    bad.write_text("not sqlite at all " * 100)
    with pytest.raises(Exception) as info:
        NoiseStore(bad).record([NoiseEstimate("l", "m", sd=0.1, lag1=None, pairs=5, source="check")])
    assert "not a molt-budget history database" in str(info.value)


@pytest.mark.slow
@pytest.mark.timing
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
@pytest.mark.timing
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
    assert (tmp_path / "jitter-builds").read_text() == "12"         # six pairs, nothing before them
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


# --------------------------------------------------------------------------- validate, end to end

WARNING = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): warning\[(?P<code>[a-z]+)\]: (?P<lane>[^:]+): (?P<kpi>[^:]+):")


def validate(config: Path, *args: str) -> tuple[int, list[dict[str, str]]]:
    """`python3 -m molt_budget validate` in a subprocess: (exit code, its warnings' fields)."""
    done = subprocess.run([sys.executable, "-m", "molt_budget", "validate", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=120, cwd=config.parent)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, [m.groupdict() for m in map(WARNING.match, done.stdout.splitlines()) if m]


def test_validate_names_the_lane_whose_recorded_noise_cannot_meet_its_budget(tmp_path: Path) -> None:
    """SD 6 % against a 5 % budget within 30 pairs: enough for a lane with one timed KPI, not for
    one with five (a lane waits for its slowest KPI), and far from enough at max_pairs 20."""
    kpis: dict[str, Any] = {"one_s": {"lane": "one", "metric": "wall_s", "target": 1, "max_increase_pct": 5, "max_pairs": 30},
                            "tight_s": {"lane": "tight", "metric": "wall_s", "target": 1, "max_increase_pct": 5}}
    kpis |= {f"five_{i}": {"lane": "five", "metric": "wall_s", "target": 1, "max_increase_pct": 5, "max_pairs": 30}
             for i in range(5)}
    cfg = tmp_path / "budgets.yaml"
    cfg.write_text(yaml.safe_dump({"version": 1, "settings": {"history": "h.sqlite"},
                                   "lanes": {lane: {"command": ["true"]} for lane in ("one", "five", "tight")}, "kpis": kpis},
                                  sort_keys=False))
    NoiseStore(tmp_path / "h.sqlite").record([NoiseEstimate(lane, "wall_s", sd=0.06, lag1=-0.2, pairs=150, source="calibrate")
                                              for lane in ("one", "five", "tight")])
    code, warnings = validate(cfg, "--strict")
    assert code == 1
    assert {(w["code"], w["lane"], w["kpi"]) for w in warnings} == (
        {("noise", "five", f"five_{i}") for i in range(5)} | {("noise", "tight", "tight_s")})
    lines = cfg.read_text().splitlines()
    assert all(w["file"] == "budgets.yaml" and lines[int(w["line"]) - 1].strip() == f"{w['kpi']}:" for w in warnings)
    assert validate(cfg)[0] == 0                         # a warning, not an error, unless --strict


# --------------------------------------------------------------------------- main records feed the model


def test_main_records_pairs_feed_the_noise_model_and_validate(tmp_path: Path) -> None:
    """Unit level: consecutive values of a main record are A/A pairs; a record measured once, a
    branch run and a commit the table already has from its check add nothing."""
    def record(commit: str, values: list[float], main: bool = True) -> RunRecord:
        kpi = KpiRecord(id="k", lane="l", metric="wall_s", kpi_class="timed", unit="s", direction="lower", target=1.0,
                        limit=None, aggregate="median", value=values[0], values=values, budget_status="pass",
                        status="pass", reason="")
        return RunRecord(run_id=commit, started_utc="2026-01-01T00:00:00+00:00", finished_utc=None, state="complete",
                         source="molt-budget", commit=commit, branch="main", dirty=False, authoritative=True,
                         authoritative_reasons=[], main=main, not_main_reasons=[], status="pass", counts={}, kpis=[kpi])
    pairs = [(1.0, 1.1), (2.0, 1.9), (1.5, 1.5), (1.0, 1.2)]
    records = [record("a", [v for p in pairs[:2] for v in p] + [9.0]), record("b", [v for p in pairs[2:] for v in p]),
               record("c", [5.0]), record("d", [1.0, 3.0, 1.0, 3.0], main=False), record("e", [1.0, 2.0, 1.0, 2.0])]
    found = from_main_records(records, [("l", "wall_s")], skip={("l", "wall_s"): {"e"}})
    expected = statistics.stdev([math.log(b / a) for a, b in pairs])
    assert found[("l", "wall_s")].pairs == 4 and found[("l", "wall_s")].sd == pytest.approx(expected)
    assert found[("l", "wall_s")].source == "main" and found[("l", "wall_s")].lag1 is None
    assert from_main_records(records[2:3], [("l", "wall_s")]) == {}          # one value: no pair, nothing invented
    # values at the ends of the floats (a measured value reaches ±1e300): their quotient is 0 or
    # inf, and ln(0) raised; the pair's log ratio comes from the two logs instead
    extreme = from_main_records([record("f", [1e-300, 5e299, 5e299, 1e-300, 1.0, 1.0, 2.0, 2.2])], [("l", "wall_s")])
    assert extreme[("l", "wall_s")].pairs == 4 and math.isfinite(extreme[("l", "wall_s")].sd)


@pytest.mark.slow
@pytest.mark.timing
def test_a_main_check_with_repeats_is_enough_for_validate_to_name_the_noisy_lane(tmp_path: Path) -> None:
    """End to end: `check` on main (real builds, real SQLite) records a main record; with no
    calibration and no paired check, `validate` names the jittery lane from that record's pairs,
    and not the lane measured once (a record without pairs feeds nothing)."""
    repo = make_repo(
        tmp_path,
        # 12 repeats: 6 A/A pairs; at max_pairs 20 a 1 % budget fits noise up to SD ~1 %, the
        # jitter's is 10 % or more (interpreter start-up, idle or loaded, plus a lognormal sleep)
        {"jitter": {"command": ["${python}", "-S", "jitter.py"], "repeats": 12},
         "once": {"command": ["${python}", "-S", "jitter.py"], "repeats": 1}},
        {"jitter_s": {"lane": "jitter", "metric": "wall_s", "target": 10, "max_increase_pct": 1, "max_pairs": 20},
         "once_s": {"lane": "once", "metric": "wall_s", "target": 10, "max_increase_pct": 1, "max_pairs": 20}},
        {"jitter.py": JITTER},
    )
    config = repo / "budgets.yaml"
    assert validate(config, "--strict") == (0, [])
    assert main(["check", "--config", str(config), "--quiet", "--no-quiescence", "--no-base"]) == 0
    history_path = repo.parent / "out" / "history.sqlite"
    assert NoiseStore(history_path).records("jitter", "wall_s") == []          # a one-sided run records no pairs
    history = History(history_path)
    (row,) = history.runs(main_only=True)
    record = history.get(row.run_id)
    assert record is not None and record.main
    values = next(k.values for k in record.kpis if k.id == "jitter_s")
    expected = statistics.stdev([math.log(b / a) for a, b in zip(values[0::2], values[1::2])])
    model = sampler.load_noise(load_config(str(config)), ["jitter", "once"])
    assert model == {("jitter", "wall_s"): pytest.approx(expected)}
    code, warnings = validate(config, "--strict")
    assert code == 1 and [(w["code"], w["lane"], w["kpi"]) for w in warnings] == [("noise", "jitter", "jitter_s")]
