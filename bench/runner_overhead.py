"""Runner overhead: a lane's bare wall time vs the same command through the runner.

Side by side, interleaved, in one run: `subprocess.run` of the demo's release no-cache build,
`run_process` (process group, tree sampling, marker) and the whole engine per sample
(templating, retries bookkeeping, collectors, atomic snapshot). Target: ≤ 2% of bare.

The build itself varies by a few percent from run to run on a shared host, more than the
target, so each round's three runs are compared with each other (paired ratios, the order
reversed every other round so a drifting host favours no path), and the median ratio is
given with a distribution-free 95% interval (order statistics of the paired ratios).

    python bench/runner_overhead.py --rounds 24
"""

from __future__ import annotations

import argparse
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import yaml
from _common import median, print_table

from molt_budget.config import load_config
from molt_budget.runner.engine import Engine, RunOptions
from molt_budget.runner.process import run_process

REPO = Path(__file__).resolve().parents[1]
COMMAND = [sys.executable, str(REPO / "examples/demo/moltdemo.py"), "build", str(REPO / "examples/demo/hello.py"),
           "--build-profile", "release", "--no-cache"]


def build_env(tmp: Path, name: str) -> dict[str, str]:
    """What the engine gives the lane (its `diagnostics: true` makes the build write its payload
    too), so the three paths run the same build."""
    return {**os.environ, "MOLT_CACHE": str(tmp / "c"), "MOLT_BUILD_DIAGNOSTICS": "1",
            "MOLT_BUILD_DIAGNOSTICS_FILE": str(tmp / f"{name}-diagnostics.json")}


def bare(tmp: Path) -> float:
    start = time.perf_counter()
    subprocess.run(COMMAND, cwd=tmp, env=build_env(tmp, "bare"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def runner(tmp: Path) -> float:
    start = time.perf_counter()
    run_process(COMMAND, env=build_env(tmp, "runner"), cwd=tmp, timeout_s=60, marker=("MOLT_BUDGET_RUN_ID", "bench"),
                stdout_path=tmp / "out.log", stderr_path=tmp / "err.log")
    return time.perf_counter() - start


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float]:
    """Distribution-free interval for the median (the sign test's): [x_(d), x_(n+1-d)], 1-based,
    with d the largest count that leaves at most 1 - level of Binomial(n, 1/2) outside; the
    whole range when n is too small for any."""
    xs, n = sorted(values), len(values)
    d = 0
    while 2 * sum(math.comb(n, i) for i in range(d + 1)) / 2 ** n <= 1 - level:   # 2 P(B <= d)
        d += 1
    return xs[max(d - 1, 0)], xs[n - max(d, 1)]


def overhead_row(name: str, ratios: list[float], seconds: list[float]) -> list[object]:
    low, high = median_interval(ratios)
    return [name, median(seconds), median(ratios), f"{(median(ratios) - 1) * 100:+.1f}% (95%: {(low - 1) * 100:+.1f} … {(high - 1) * 100:+.1f}%)"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=16, help="interleaved rounds (each: bare, run_process, engine)")
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        doc = {"version": 1, "settings": {"output_root": str(tmp / "root"), "history": str(tmp / "h.sqlite"), "quiescence": {"max_wait_s": 0}},
               "lanes": {"lane": {"command": COMMAND, "env": {"MOLT_CACHE": "${cache_dir}"}, "repeats": 1, "retries": 0, "diagnostics": True}},
               "kpis": {"wall": {"lane": "lane", "metric": "wall_s", "target": 100}}}
        (tmp / "budgets.yaml").write_text(yaml.safe_dump(doc))
        config = load_config(tmp / "budgets.yaml")
        engine = Engine(config, RunOptions(output_root=tmp / "root", quiescence=False))
        engine.open()
        lane = config.lanes["lane"]
        engine.prepare_lane(lane)
        bare(tmp)  # warm the OS caches once for everyone
        b, r, e, w = [], [], [], []
        for i in range(rounds):
            def one_sample(i: int = i) -> None:
                start = time.perf_counter()
                sample = engine.measure_once(lane, i)
                e.append(time.perf_counter() - start)
                w.append(sample.metrics["wall_s"])
            steps = [lambda: b.append(bare(tmp)), lambda: r.append(runner(tmp)), one_sample]
            for step in steps if i % 2 == 0 else reversed(steps):
                step()
        engine.finish_lane(lane)
        engine.close()
    mb = median(b)
    print_table(f"runner overhead ({rounds} interleaved rounds, demo release no-cache build; ratios paired within a round)", [
        ["bare subprocess.run", mb, 1.0, ""],
        overhead_row("run_process", [x / y for x, y in zip(r, b)], r),
        overhead_row("wall_s the KPI records (engine), target ≤ 2%", [x / y for x, y in zip(w, b)], w),
        ["engine sample incl. collect + snapshot", median(e), median([x / y for x, y in zip(e, b)]),
         f"bookkeeping {(median(e) - median(w)) * 1000:.0f} ms a sample, outside the measurement"],
    ], ["path", "median s", "median ratio to bare", "overhead"])


if __name__ == "__main__":
    main()
