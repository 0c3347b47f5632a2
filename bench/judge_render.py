"""Judging + rendering 12 lanes × 10 KPIs, each lane with a ~1 MB diagnostics payload.

Measures, side by side in one run: reading the 12 payloads with bare `json.load`, and the
whole post-run path (collect every payload, judge 120 KPIs, render the terminal table).
Target: the whole path ≤ 0.3 s.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

from _common import median, print_table

from molt_budget.collectors.base import RunFiles, merged_detail
from molt_budget.collectors.collect import LaneCollectors
from molt_budget.compare.budget import judge_kpi
from molt_budget.config.model import Kpi, Lane
from molt_budget.report.terminal import render
from molt_budget.results.model import LaneResult, RunResults, Sample
from molt_budget.runner.process import ProcessOutcome

SHARED = Path(os.environ.get("MOLT_BUDGET_SHARED", Path(__file__).resolve().parents[2] / "shared"))
METRICS = ["wall_s", "cpu_s", "peak_rss_mb", "diag.total_sec", "diag.backend_sec", "diag.module_count",
           "diag.phase.module_graph", "diag.phase.ir_lowering", "diag.reason.core_closure", "diag.reason.entry_root"]


def make_payload(dest: Path, target_bytes: int = 1_000_000) -> None:
    """Grow a real payload to ~1 MB with per-function midend stats, as large molt builds have."""
    data = json.loads((SHARED / "molt/real/C/diagnostics.json").read_text())
    stats = data.setdefault("midend", {}).setdefault("pass_stats_by_function", {})
    i = 0
    while len(json.dumps(data, indent=2)) < target_bytes:
        for j in range(200):
            stats[f"pkg.mod{i}::fn{j}"] = {"simplify": {"attempted": 3, "accepted": 2, "rejected": 1, "degraded": 0,
                                                        "ms_total": 1.25, "ms_max": 0.5, "sample_count": 3}}
        i += 1
    dest.write_text(json.dumps(data, indent=2) + "\n")


def post_run(paths: list[Path]) -> float:
    start = time.perf_counter()
    outcome = ProcessOutcome(returncode=0, wall_s=1.0, cpu_user_s=0.8, cpu_sys_s=0.1, peak_rss_bytes=10**8, timed_out=False)
    results = RunResults(run_id="bench", config_path="budgets.yaml", config_sha256="0", started_utc="now", state="complete")
    kpis = []
    for n, path in enumerate(paths):
        lane = f"lane{n}"
        lane_kpis = [Kpi(id=f"{lane}_{m}", lane=lane, metric=m, kpi_class="timed", target=1.0, limit=2.0) for m in METRICS]
        files = RunFiles(attempt_dir=path.parent, cwd=path.parent, stdout_path=path, stderr_path=path, diagnostics_path=path)
        metrics, parts = LaneCollectors(Lane(id=lane, command=["true"], env={}, cwd=".", timeout_s=60, repeats=1, warmups=0, retries=0,
                                         retry_backoff_s=0, expect_exit=[0], lock_timeout_pattern="", diagnostics=True), lane_kpis).collect(outcome, files)
        detail = merged_detail(parts)
        results.lanes[lane] = LaneResult(lane=lane, status="ok", samples=[Sample(kind="measure", index=0, ok=True, metrics=metrics)], detail=detail)
        kpis += lane_kpis
    results.kpis = [judge_kpi(k, results.lanes[k.lane]) for k in kpis]
    text = render(results)
    assert text.count("\n") > 120
    return time.perf_counter() - start


def bare_load(paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        with path.open() as fh:
            json.load(fh)
    return time.perf_counter() - start


def main(rounds: int = 7) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for n in range(12):
            path = Path(tmp) / f"diag{n}.json"
            make_payload(path)
            paths.append(path)
        size = sum(p.stat().st_size for p in paths) / len(paths)
        bare, whole = [], []
        for _ in range(rounds):
            bare.append(bare_load(paths))
            whole.append(post_run(paths))
    print_table(f"judge + render: 12 lanes x 10 KPIs, payload {size / 1e6:.2f} MB each", [
        ["bare json.load x12", median(bare), 1.0, ""],
        ["collect + judge + render", median(whole), median(whole) / median(bare),
         "≤ 0.3 s: " + ("met" if median(whole) <= 0.3 else "MISSED")],
    ], ["path", "median s", "ratio", "target"])


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    main()
