"""Hundreds of realistic runs for the tracker, chart and history tests.

Runs are built with the real results model and judged with the real comparator, then
recorded through History.record into a real SQLite file: the same path `check` takes.
The generator also returns the runs, so tests can compute expectations without History.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import yaml

from molt_budget.compare.budget import judge_kpi
from molt_budget.config import load_config
from molt_budget.config.model import Config
from molt_budget.results.history import History
from molt_budget.results.model import LaneResult, RunResults, Sample
from molt_budget.results.record import MainCheck

START = datetime(2026, 3, 1, 6, 0, tzinfo=timezone.utc)


def write_budgets(tmp: Path) -> Path:
    doc = {
        "version": 1,
        "defaults": {"timeout_s": 20, "repeats": 3, "retries": 1, "retry_backoff_s": 0.01},
        "settings": {"output_root": "out", "history": "out/history.sqlite", "quiescence": {"max_wait_s": 0}},
        "lanes": {
            "dev_cold": {"command": "python3 -c pass", "emit_ir": True, "repeats": 1},
            "dev_warm": {"command": "python3 -c pass"},
        },
        "kpis": {
            "ir_ops": {"title": "IR ops", "lane": "dev_cold", "metric": "ir.ops", "target": 100000, "limit": 120000,
                       "seeded_from": {"value": 409900, "date": "2026-02-09"}},
            "ir_size_mb": {"title": "IR size (MB)", "lane": "dev_cold", "metric": "ir.mb", "unit": "MB", "target": 10, "limit": 12},
            "dev_warm_s": {"title": "dev warm cache-hit (s)", "lane": "dev_warm", "metric": "wall_s", "target": 3.0, "limit": 3.6},
        },
    }
    path = tmp / "budgets.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def make_run(config: Config, i: int, rng: random.Random, *, when: datetime | None = None) -> RunResults:
    """Run i: IR shrinks over time, dev_warm drifts; some runs retry, fail, are noisy or on a branch."""
    started = when or START + timedelta(hours=6 * i)
    ops = max(40000, 409900 - 1300 * i + rng.randint(-500, 500))
    warm = [round(2.2 + 0.004 * i + rng.uniform(-0.2, 0.2), 3) for _ in range(3)]
    results = RunResults(
        run_id=f"{started:%Y%m%dT%H%M%SZ}-{i:04x}", config_path="budgets.yaml", config_sha256="0" * 64,
        started_utc=started.isoformat(timespec="seconds"),
        finished_utc=(started + timedelta(minutes=4)).isoformat(timespec="seconds"), state="complete",
        provenance={"commit": f"{i:04x}{'c0ffee' * 6}"[:40], "branch": "feature" if i % 5 == 4 else "main", "dirty": False},
    )
    if i % 11 == 3:
        results.authoritative = False
        results.authoritative_reasons = [f"lane dev_warm: host not quiet after 0s: load1 {1.5 + i % 3:.1f} per CPU"]
    cold = Sample(kind="measure", index=0, ok=True, metrics={"ir.ops": float(ops), "ir.mb": round(ops * 100 / 1e6, 3), "wall_s": 40.0})
    results.lanes["dev_cold"] = LaneResult("dev_cold", "ok", samples=[cold])
    warm_lane = LaneResult("dev_warm", "ok")
    for idx, value in enumerate(warm):
        sample = Sample(kind="measure", index=idx, ok=True, metrics={"wall_s": value})
        if i % 17 == 5 and idx == 1:
            sample.attempts, sample.retry_reason = 2, "timeout"
        warm_lane.samples.append(sample)
    if i % 29 == 7:
        bad = warm_lane.samples[2]
        bad.ok, bad.metrics = False, {}
        bad.error = f"lane dev_warm: exit code 143 (expected 0): killed | run {i}"
        warm_lane.status, warm_lane.error = "error", f"repeat 3/3: {bad.error}"
    results.lanes["dev_warm"] = warm_lane
    results.kpis = [judge_kpi(k, results.lanes.get(k.lane)) for k in config.kpis.values()]
    return results


def populate(tmp: Path, n: int = 300, seed: int = 7) -> tuple[Config, History, list[RunResults]]:
    config = load_config(write_budgets(tmp))
    history = History(config.resolve(config.settings.history))
    rng = random.Random(seed)
    runs = [make_run(config, i, rng) for i in range(n)]
    history.index_many([history_record(run) for run in runs])
    return config, history, runs


def main_check(run: RunResults) -> MainCheck:
    """The factory's stand-in for mainline.classify (there is no git repository here): runs on
    main, complete, every lane ok and quiet are main records."""
    reasons = []
    if run.provenance.get("branch") != "main":
        reasons.append(f"commit {run.provenance['commit'][:12]} is not on origin/main's first-parent history")
    reasons += [f"lanes not complete: {n}" for n, lane in run.lanes.items() if lane.status != "ok"]
    if not run.authoritative:
        reasons.append("host not quiet: " + "; ".join(run.authoritative_reasons))
    return MainCheck(not reasons, reasons, "origin/main")


def history_record(run: RunResults) -> Any:
    from molt_budget.results.record import RunRecord

    return RunRecord.from_run(run, main_check(run))


def is_main(run: RunResults) -> bool:
    return main_check(run).main


def kpi_value(run: RunResults, kpi: str) -> Any:
    return next((k.value for k in run.kpis if k.id == kpi), None)
