"""Runner overhead: a lane's bare wall time vs the same command through the runner.

Side by side, interleaved, in one run: `subprocess.run` of the demo's dev no-cache build,
`run_process` (process group, tree sampling, marker) and the whole engine per sample
(templating, retries bookkeeping, collectors, atomic snapshot). Target: ≤ 2% of bare.
"""

from __future__ import annotations

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


def bare(tmp: Path) -> float:
    start = time.perf_counter()
    subprocess.run(COMMAND, cwd=tmp, env={**os.environ, "MOLT_CACHE": str(tmp / "c")}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - start


def runner(tmp: Path) -> float:
    start = time.perf_counter()
    run_process(COMMAND, env={**os.environ, "MOLT_CACHE": str(tmp / "c")}, cwd=tmp, timeout_s=60, marker=("MOLT_BUDGET_RUN_ID", "bench"),
                stdout_path=tmp / "out.log", stderr_path=tmp / "err.log")
    return time.perf_counter() - start


def main(rounds: int = 12) -> None:
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
            b.append(bare(tmp))
            r.append(runner(tmp))
            start = time.perf_counter()
            sample = engine.measure_once(lane, i)
            e.append(time.perf_counter() - start)
            w.append(sample.metrics["wall_s"])
        engine.finish_lane(lane)
        engine.close()
    mb = median(b)
    print_table(f"runner overhead ({rounds} interleaved rounds, demo release no-cache build)", [
        ["bare subprocess.run", mb, 1.0, ""],
        ["run_process", median(r), median(r) / mb, f"overhead {(median(r) / mb - 1) * 100:+.1f}%"],
        ["wall_s the KPI records (engine)", median(w), median(w) / mb,
         f"overhead {(median(w) / mb - 1) * 100:+.1f}% (target ≤ 2%)"],
        ["engine sample incl. collect + snapshot", median(e), median(e) / mb,
         f"bookkeeping {(median(e) - median(w)) * 1000:.0f} ms a sample, outside the measurement"],
    ], ["path", "median s", "ratio", "note"])


if __name__ == "__main__":
    main()
