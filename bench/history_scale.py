"""History at scale: index size, baseline lookup, the history part of `check`, tracker and
sparkline queries at 10k and 100k runs, each printed next to its goal (issue 14's table).

    python3 bench/history_scale.py                 # 10k and 100k runs, 3 KPIs (molt's tracker shape)
    python3 bench/history_scale.py --sizes 10000 --shape wide    # 12 lanes x 10 KPIs
    python3 bench/history_scale.py --part pull     # H9b: data branch pull + index vs bare git fetch

Records are real RunRecords indexed through History.index_many (the path `history pull`
takes); the tracker and `report --markdown --history` are timed as real CLI processes, with
their peak RSS, and judged on their CPU time (see cli_cost). On a shared 2-core VM the figures are noisy: medians of several rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import median, print_table, tool_env

from molt_budget.results.history import History
from molt_budget.results.record import KpiRecord, LaneRecord, RunRecord, SampleNote

SHAPES = {"tracker": (2, 3), "wide": (12, 10)}      # (lanes, KPIs per lane): 3 KPIs is molt's page; wide is issue 14's


def budgets(lanes: int, kpis_per_lane: int) -> dict[str, Any]:
    doc: dict[str, Any] = {"version": 1, "settings": {"history": "history.sqlite", "quiescence": {"max_wait_s": 0}},
                           "lanes": {}, "kpis": {}}
    for li in range(lanes):
        lane = f"lane{li:02d}"
        doc["lanes"][lane] = {"command": "true", "emit_ir": True, "diagnostics": True}
        for ki in range(kpis_per_lane):
            metric = ["ir.ops", "ir.mb", "ir.functions", "ir.init_modules", "wall_s", "cpu_s", "peak_rss_mb",
                      "ir.bytes", "ir.bytes_normalized", "diag.total_sec"][ki % 10]
            doc["kpis"][f"{lane}_k{ki}"] = {"lane": lane, "metric": metric, "target": 1e9, "limit": 2e9}
    return doc


def make_records(n: int, lanes: int = 2, kpis_per_lane: int = 3, seed: int = 7) -> list[RunRecord]:
    """n realistic records: 1 in 5 on a branch, 1 in 11 noisy, 1 in 29 with a failed sample; the rest main."""
    return list(iter_records(n, lanes, kpis_per_lane, seed))


def iter_records(n: int, lanes: int = 2, kpis_per_lane: int = 3, seed: int = 7) -> Iterator[RunRecord]:
    """make_records one at a time (100k records of 120 KPIs would not fit in memory at once)."""
    rng = random.Random(seed)
    lane_names = [f"lane{li:02d}" for li in range(lanes)]
    metrics = budgets(lanes, kpis_per_lane)["kpis"]
    for i in range(n):
        t = 1_772_345_600 + 3600 * i
        started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(t))
        commit = f"{rng.getrandbits(160):040x}"
        branch = "feature" if i % 5 == 4 else "main"
        noisy = i % 11 == 3
        failed = i % 29 == 7
        lane_recs = {}
        for name in lane_names:
            wall = round(20 + rng.uniform(-1, 1), 3)
            notes = [SampleNote("measure", 2, False, 1, None, "exit code 143")] if failed and name == lane_names[-1] else []
            lane_recs[name] = LaneRecord(name, "error" if notes else "ok", "repeat 3/3 failed" if notes else None,
                                         {"wall_s": wall, "ir.ops": 409900.0 - i, "ir.mb": 40.9}, {}, 3, notes)
        kpis = []
        for kid, k in metrics.items():
            value = round(rng.uniform(1, 1000), 3)
            kpis.append(KpiRecord(kid, k["lane"], k["metric"], "exact", "", "lower", k["target"], k["limit"], "median",
                                  value, [value], "pass", "pass", f"{value:g} within target"))
        reasons = []
        if branch != "main":
            reasons.append(f"commit {commit[:12]} (branch {branch}) is not on origin/main's first-parent history")
        if noisy:
            reasons.append("host not quiet: load1 1.9 per CPU")
        if failed:
            reasons.append(f"lanes not complete: {lane_names[-1]}")
        yield RunRecord(
            run_id=f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(t))}000Z-{i:06x}", started_utc=started,
            finished_utc=started, state="complete", source="molt-budget", commit=commit, branch=branch, dirty=False,
            authoritative=not noisy, authoritative_reasons=["load1 1.9 per CPU"] if noisy else [], main=not reasons,
            not_main_reasons=reasons, status="pass", counts={"pass": len(kpis)}, lanes=lane_recs, kpis=kpis,
            provenance={"python": "3.12.3", "host": {"cpu_model": "bench"}}, tool_version="bench",
        )


def timed(fn: Callable[[], Any], rounds: int) -> float:
    """Median CPU seconds of `fn` in this process: the queries are single-threaded and read the
    page cache, so this is their quiet-host wall time, and other work on the host inflates it less."""
    values = []
    for _ in range(rounds):
        start = time.process_time()
        fn()
        values.append(time.process_time() - start)
    return median(values)


def cli_cost(argv: list[str], rounds: int) -> tuple[float, float, float]:
    """(median wall s, median CPU s, peak RSS MiB) of a real CLI process, run as an installed
    tool runs (bytecode cached: one warm-up run writes it). CPU time is what a contended host
    does not inflate, and what a quiet host's wall time comes to (the process is single-threaded
    and its files are in the page cache); the verdict is on it, the wall time is printed too."""

    probe = ("import resource, subprocess, sys, time; s = time.perf_counter(); "
             "subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL); "
             "u = resource.getrusage(resource.RUSAGE_CHILDREN); "
             "print(time.perf_counter() - s, u.ru_utime + u.ru_stime, u.ru_maxrss)")
    env = tool_env()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=env)
    walls, cpus, rss = [], [], []
    for _ in range(rounds):
        out = subprocess.run([sys.executable, "-c", probe, *argv], check=True, capture_output=True, text=True,
                             env=env).stdout.split()
        walls.append(float(out[0]))
        cpus.append(float(out[1]))
        rss.append(int(out[2]) / 1024)
    return median(walls), median(cpus), max(rss)


def report_for(config_path: Path, work: Path) -> Path:
    """A real comparison report of one run of these budgets (the input of `report --history`)."""
    from molt_budget.compare.budget import judge_kpi
    from molt_budget.compare.comparator import compare
    from molt_budget.config import load_config
    from molt_budget.results.model import LaneResult, RunResults, Sample

    config = load_config(config_path)
    run = RunResults("bench", str(config_path), "0", "2026-12-01T00:00:00Z", state="complete")
    for lane in config.lanes:
        run.lanes[lane] = LaneResult(lane, "ok", samples=[Sample("measure", 0, True, metrics={
            k.metric: 1.0 for k in config.kpis_for_lane(lane)})])
    run.kpis = [judge_kpi(k, run.lanes[k.lane]) for k in config.kpis.values()]
    path = work / "report.json"
    path.write_text(json.dumps(compare(config, run, None, None).to_dict()))
    return path


def bench_history(n: int, shape: str, rounds: int, work: Path) -> list[list[Any]]:
    import yaml

    from molt_budget.config import load_config

    lanes, per_lane = SHAPES[shape]
    folder = work / f"{shape}-{n}"
    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / "budgets.yaml"
    config_path.write_text(yaml.safe_dump(budgets(lanes, per_lane), sort_keys=False))
    config = load_config(config_path)
    db = folder / "history.sqlite"
    history = History(db)
    mains: list[str] = []

    def records() -> Iterator[RunRecord]:
        for record in iter_records(n, lanes, per_lane):
            if record.main:
                mains.append(record.commit or "")
            yield record

    start = time.perf_counter()
    history.index_many(records())
    index_s = time.perf_counter() - start
    per_run = db.stat().st_size / n
    probe = mains[len(mains) // 2]
    kpis = list(config.kpis.values())

    def check_history_part() -> None:
        """What `check` reads from history: each KPI's last 20 main points (sparklines) and, for
        counted KPIs, the last 50 (the learned fence); all KPIs asked for both here."""
        for k in kpis:
            history.kpi_series(k.id, k.lane, k.metric, k.aggregate, limit=20)
            history.kpi_series(k.id, k.lane, k.metric, k.aggregate, limit=50)

    from molt_budget.environment import check_history

    checked = timed(lambda: check_history(db), rounds)
    full_scan = timed(lambda: sqlite3.connect(db).execute("PRAGMA quick_check").fetchall(), rounds)
    baseline = timed(lambda: history.main_record_for_commit(probe), rounds * 20)
    baseline_prefix = timed(lambda: history.main_record_for_commit(probe[:12]), rounds * 20)
    part = timed(check_history_part, rounds)
    spark = timed(lambda: [history.kpi_series(k.id, k.lane, k.metric, limit=20) for k in kpis], rounds)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    os.environ.update(env)
    tracker = cli_cost([sys.executable, "-m", "molt_budget", "tracker", "--config", str(config_path), "--db", str(db),
                        "--out", str(folder / "page.md")], rounds)
    report = report_for(config_path, folder)
    markdown = cli_cost([sys.executable, "-m", "molt_budget", "report", str(report), "--markdown", "--history", str(db)], rounds)
    python = cli_cost([sys.executable, "-c", "import molt_budget.cli, jsonschema, yaml"], rounds)
    tag = f"{n // 1000}k, {len(kpis)} KPIs"
    return [
        [tag, "index (pull's path)", f"{index_s:.1f} s", f"{n / index_s:,.0f} records/s", "-"],
        [tag, "history size per run", f"{per_run / 1024:.2f} KB", "≤ 5 KB", _ok(per_run <= 5 * 1024)],
        [tag, "  of which (per run)", size_parts(db, n), "-", "-"],
        [tag, "baseline lookup (full sha)", f"{baseline * 1000:.3f} ms", "≤ 1 ms", _ok(baseline <= 0.001)],
        [tag, "baseline lookup (12-char prefix)", f"{baseline_prefix * 1000:.3f} ms", "≤ 1 ms", _ok(baseline_prefix <= 0.001)],
        [tag, "history part of check (trend + fence per KPI)", f"{part * 1000:.1f} ms", "≤ 50 ms", _ok(part <= 0.05)],
        [tag, "history checked before the lanes (header, schema, write lock)", f"{checked * 1000:.2f} ms",
         f"≤ 50 ms (PRAGMA quick_check, read before: {full_scan * 1000:.0f} ms, {full_scan / max(checked, 1e-9):,.0f}x)",
         _ok(checked <= 0.05)],
        [tag, "sparklines (last 20 per KPI)", f"{spark * 1000:.1f} ms", "-", "-"],
        [tag, "tracker --out (process)", _proc(tracker), "≤ 0.5 s, ≤ 64 MiB", _ok(tracker[1] <= 0.5 and tracker[2] <= 64)],
        [tag, "report --markdown --history (process)", _proc(markdown), "≤ 0.5 s, ≤ 64 MiB",
         _ok(markdown[1] <= 0.5 and markdown[2] <= 64)],
        [tag, "(for scale: python importing the CLI, jsonschema, yaml)", _proc(python), "-", "-"],
    ]


def size_parts(db: Path, n: int) -> str:
    """Bytes per run by table and index (SQLite's dbstat), biggest first: where the size goes."""
    import sqlite3

    with sqlite3.connect(db) as conn:
        try:
            rows = conn.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC").fetchall()
        except sqlite3.OperationalError:
            return "(this SQLite has no dbstat)"
    return ", ".join(f"{name} {size / n:,.0f} B" for name, size in rows if size / n >= 1)


def _proc(cost: tuple[float, float, float]) -> str:
    return f"{cost[0]:.3f} s wall, {cost[1]:.3f} s CPU, {cost[2]:.0f} MiB"


def _ok(flag: bool) -> str:
    return "meets" if flag else "MISSES"


# --part pull: bench/databranch_scale.py (pull + index from a data branch vs a bare git fetch, bytes per record).


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000", help="runs in history (comma-separated; default 10000,100000)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tracker",
                        help="tracker: 2 lanes x 3 KPIs (molt's page); wide: 12 lanes x 10 KPIs (issue 14's gate)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds per timing (median; default 5)")
    parser.add_argument("--part", choices=["history", "pull"], default="history")
    parser.add_argument("--keep", metavar="DIR", help="build the databases here and keep them")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    with tempfile.TemporaryDirectory(prefix="history-scale-") as tmp:
        work = Path(args.keep) if args.keep else Path(tmp)
        rows: list[list[Any]] = []
        for n in sizes:
            if args.part == "history":
                rows += bench_history(n, args.shape, args.rounds, work)
            else:
                from databranch_scale import bench_pull

                rows += bench_pull(n, make_records(n), work)
        print_table(f"history at scale ({args.part}, shape {args.shape}; medians of {args.rounds}; "
                    f"load average {os.getloadavg()[0]:.2f} at the end; "
                    f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB for the bench itself)",
                    rows, ["history", "what", "measured", "goal", "verdict"])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
