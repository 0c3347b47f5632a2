"""The gate's own cost: `check --no-base` wall minus the lanes' own wall, side by side.

Each lane copies a ~1 MB molt diagnostics payload (made from the shared example, scaled
to many modules) into ${diagnostics_file}: the build itself costs almost nothing, so what
is left is the gate (start-up, budgets parsing, quiet-host checks, process-table scans,
snapshots, collectors, judging, history recording, reporting). KPIs are spread over the
lanes: one timed `wall_s` per lane (so every lane gets the quiet-host check and the
default 3 repeats), the rest exact diagnostics counts.

Interleaved in one run (this tree, then `--compare TREE` if given, round after round),
medians; prints overhead per configuration (wall, and CPU: the check's user+sys with its
children's minus the lanes' own, which holds up on a host other work shares), the ratio to the compared tree, the cost per
lane and per KPI, and the growth exponent (slope of log overhead against log lanes).

    python bench/gate_overhead.py --compare /tmp/old-tree        # all of 1/12/48 lanes x 10/100/1000 KPIs
    python bench/gate_overhead.py --lanes 12 --kpis 10 --rounds 7

`--instructions` also counts the check's own user-space instructions under valgrind's
callgrind (one run per tree and configuration; the lanes' `cp` runs natively, uncounted):
a figure that does not move with the host's speed, as rustc-perf's `instructions:u` does
not. On this 2-core VM the same check's wall time drifts by up to 2x within minutes, so
the wall figures above are of their moment; the instruction counts are comparable across
moments, trees and machines of one architecture.

    python bench/gate_overhead.py --lanes 1,12 --kpis 10 --instructions --compare /tmp/old-tree

The interpreter's own start-up is part of every figure, and of `python -c pass`, the floor
printed below; in a development environment it carries whatever `.pth` files the
site-packages hold: an editable install's import finder (~15 ms a process) and any hooks of
the host (this VM's adds a certifi hook, ~12 ms). `--python` runs the checks under another
interpreter, e.g. a venv with molt-budget installed as a user installs it (`pip install .`:
the tree under test still comes first on PYTHONPATH):

    python -m venv /tmp/v && /tmp/v/bin/pip install . && python bench/gate_overhead.py --python /tmp/v/bin/python

On an ext4 without a journal (this VM's disk), a file created within a minute of deleting
others is slow (see set_aside_output): `--scratch DIR` puts the projects on another file
system, such as a journaled ext4 like a CI runner's.

History at 1k/10k/100k runs is the history issue's part (its own bench). Every run here
records into a fresh, empty history, which it creates first (a few fsyncs); 12 x 10 is also
measured with a history that already holds one run (`history: kept`), as every check after a
project's first meets it: CI restores the history before checking. Every run but one shares one
cache folder, so the budgets file is parsed and validated by the first check only, as on a
developer's machine; `fresh, cold cache` gives each check an empty one, as a fresh CI runner
has unless it restores `~/.cache/molt-budget`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, print_table, tool_env

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = Path(os.environ.get("MOLT_BUDGET_SHARED", REPO.parent / "shared")) / "molt" / "examples" / "diagnostics_dev_warm.json"
PYTHON = [sys.executable]      # the interpreter the checks run under (--python)
COLD = "fresh, cold cache"     # a fresh history and an empty cache folder: a fresh CI runner's first check
EXACT_METRICS = ("diag.module_count", "diag.backend_sec", "diag.reason.core_closure", "diag.reason.entry_root",
                 "diag.phase.module_graph", "diag.phase.ir_lowering", "diag.reason.core_required", "diag.total_sec")


def diagnostics_payload(target_bytes: int) -> dict:
    """The shared example with its per-module tables repeated until the file is ~target_bytes."""
    doc = json.loads(EXAMPLE.read_text(encoding="utf-8"))
    rows = doc.get("frontend_module_timings") or []
    reasons = dict(doc.get("module_reasons") or {})
    timings = list(rows)
    i = 0
    while len(json.dumps(doc)) < target_bytes:
        for _ in range(200):
            row = dict(rows[i % len(rows)])
            row["module"] = f"pkg{i}.{row['module']}"
            timings.append(row)
            reasons[row["module"]] = ["core_closure"]
            i += 1
        doc["frontend_module_timings"] = timings
        doc["module_reasons"] = reasons
        doc["module_count"] = len(reasons)
        doc["module_reason_summary"] = {**doc.get("module_reason_summary", {}), "core_closure": len(reasons)}
    return doc


def make_project(root: Path, lanes: int, kpis: int, payload: Path, quiescence: bool) -> Path:
    lane_ids = [f"lane{i:02d}" for i in range(lanes)]
    doc: dict = {
        "version": 1,
        "defaults": {"timeout_s": 60, "retries": 0},
        "settings": {"output_root": "out", "history": "out/history.sqlite",
                     "quiescence": {"max_wait_s": 0, "competitors": ["cargo", "rustc", "molt"]}},
        "lanes": {lid: {"command": ["/bin/cp", str(payload), "${diagnostics_file}"], "diagnostics": True} for lid in lane_ids},
        "kpis": {},
    }
    for i in range(kpis):
        lid = lane_ids[i % lanes]
        if i < lanes:
            doc["kpis"][f"k{i}_wall"] = {"lane": lid, "metric": "wall_s", "target": 10}
        else:
            metric = EXACT_METRICS[(i // lanes) % len(EXACT_METRICS)]
            doc["kpis"][f"k{i}"] = {"lane": lid, "metric": metric, "class": "exact", "target": 1e9}
    root.mkdir(parents=True, exist_ok=True)
    (root / "budgets.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    return root / "budgets.yaml"


def lanes_own(output_root: Path) -> tuple[float, float]:
    """(wall, CPU) of every attempt as the runner measured them (the builds' own cost)."""
    results = next((output_root / "runs").glob("*/results.json"))
    data = json.loads(results.read_text())
    samples = [s for lane in data["lanes"].values() for s in lane["samples"]]
    wall = sum(a["wall_s"] for s in samples for a in s["attempt_log"])
    return wall, sum(s["metrics"].get("cpu_s", 0.0) for s in samples)


def set_aside_output(config: Path) -> None:
    """Make room for a fresh output root without deleting the last one: moved aside, deleted
    with the bench's folder at its end. On an ext4 without a journal (this VM's disk) every
    inode freed in the last 30 s is skipped over, by reading its inode-table block, each time
    a file or folder is created (the kernel's `recently_deleted`): right after 600 files were
    deleted, a create took 0.73 ms instead of 0.02 ms. The folders a check makes count in its
    overhead, the logs and payloads of its builds in their own time; either way a cost of the
    bench's deleting, not of the gate."""
    out = config.parent / "out"
    if out.exists():
        spent = config.parent.parent / "spent"
        spent.mkdir(exist_ok=True)
        out.rename(spent / f"{config.parent.name}-{time.monotonic_ns()}")


def one_check(tree: Path, config: Path, quiescence: bool, history: Path | None = None, cold: bool = False) -> tuple[float, float, float]:
    """(whole check wall, wall overhead, CPU overhead) for one run with a fresh output root and
    a fresh history, or a copy of `history` (one made by the same tree: its layout). `cold`: an
    empty cache folder, as a fresh CI runner's first check meets it (the budgets file parsed and
    validated, not remembered)."""
    set_aside_output(config)
    if history is not None:
        (config.parent / "out").mkdir()
        shutil.copyfile(history, config.parent / "out" / "history.sqlite")
    argv = check_argv(config, quiescence)
    env = {**tool_env(), "PYTHONPATH": str(tree)}
    if cold:
        env["XDG_CACHE_HOME"] = tempfile.mkdtemp(dir=config.parent.parent)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, env=env, cwd=config.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"check failed ({proc.returncode}) with {tree}: {proc.stderr.strip()[-500:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    own_wall, own_cpu = lanes_own(config.parent / "out")
    return wall, wall - own_wall, cpu - own_cpu


def seeded_history(tree: Path, config: Path, quiescence: bool, name: str) -> Path:
    """A history holding one earlier run of this project, made by `tree` (untimed)."""
    one_check(tree, config, quiescence)
    kept = config.parent / f"history-{name.replace(' ', '-')}.sqlite"
    shutil.copyfile(config.parent / "out" / "history.sqlite", kept)
    return kept


def check_argv(config: Path, quiescence: bool) -> list[str]:
    argv = [PYTHON[0], "-m", "molt_budget", "check", "--config", str(config), "--no-base", "--quiet"]
    return argv if quiescence else [*argv, "--no-quiescence"]


def instructions(tree: Path, config: Path, quiescence: bool) -> int:
    """User-space instructions of one check's own process (fresh output root and history),
    counted by callgrind: children (the lanes' builds) run natively and are not counted.
    PYTHONHASHSEED=0 keeps dict and set layouts, and so the count, the same from run to run."""
    set_aside_output(config)
    env = {**tool_env(), "PYTHONPATH": str(tree), "PYTHONHASHSEED": "0"}
    argv = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *check_argv(config, quiescence)]
    proc = subprocess.run(argv, env=env, cwd=config.parent, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    found = re.search(r"Collected : (\d+)", proc.stderr)
    if proc.returncode not in (0, 1) or found is None:
        raise SystemExit(f"check under callgrind failed ({proc.returncode}) with {tree}: {proc.stderr.strip()[-500:]}")
    return int(found.group(1))


def instruction_rows(trees: list[tuple[str, Path]], projects: dict[tuple[int, int], Path], quiescence: bool) -> list[list[object]]:
    """Per tree and KPI count: instructions at each lane count, the marginal per lane and
    the fixed part (the fewest lanes' count minus that many marginals)."""
    rows: list[list[object]] = []
    lanes_list = sorted({lanes for lanes, _ in projects})
    for kpis in sorted({k for _, k in projects}):
        for name, tree in trees:
            counts = [instructions(tree, projects[(lanes, kpis)], quiescence) for lanes in lanes_list]
            per_lane = (counts[-1] - counts[0]) / (lanes_list[-1] - lanes_list[0]) if len(counts) > 1 else float("nan")
            fixed = counts[0] - lanes_list[0] * per_lane if len(counts) > 1 else float("nan")
            rows.append([name, kpis, *[c / 1e6 for c in counts], per_lane / 1e6, fixed / 1e6])
    return rows


def startup_wall() -> float:
    """The floor under any Python tool's overhead here: the interpreter and its site start-up."""
    start = time.perf_counter()
    subprocess.run([PYTHON[0], "-c", "pass"], env=tool_env(), check=True)
    return time.perf_counter() - start




def slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of log y on log x: 1 is linear, 2 quadratic."""
    lx, ly = [math.log(x) for x in xs], [math.log(max(y, 1e-6)) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    return sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sum((a - mx) ** 2 for a in lx)


def growth_row(tree: str, axis: str, at: str, quiet: bool, xs: list[int], ys: list[float]) -> list[object]:
    """Exponent of overhead ~ n^k along one axis, and the marginal ms per lane or KPI."""
    marginal = (ys[-1] - ys[0]) / (xs[-1] - xs[0]) * 1000
    return [tree, axis, at, "on" if quiet else "off", slope(xs, ys), marginal]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lanes", default="1,12,48")
    parser.add_argument("--kpis", default="10,100,1000")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per configuration (12x10 gets at least 7)")
    parser.add_argument("--diag-mb", type=float, default=1.0)
    parser.add_argument("--compare", metavar="TREE", help="another checkout of molt-budget to run side by side")
    parser.add_argument("--no-quiescence-too", action="store_true", help="also measure with --no-quiescence")
    parser.add_argument("--scratch", metavar="DIR", help="where the projects and their outputs go (default: the system's temp "
                        "folder); a file system other than that temp folder's, e.g. a journaled ext4 like a CI runner's")
    parser.add_argument("--python", metavar="EXE", help="the interpreter that runs the checks (default: this one), e.g. a "
                        "venv's with molt-budget installed as a user installs it; see the module doc")
    parser.add_argument("--instructions", action="store_true",
                        help="also count each check's own instructions under valgrind (callgrind; ~50x slower, one run each)")
    args = parser.parse_args()
    if args.python:
        PYTHON[0] = args.python
    if args.instructions and shutil.which("valgrind") is None:
        parser.error("--instructions needs valgrind on PATH (Debian: apt-get install valgrind)")
    trees = [("this tree", REPO)] + ([("compared", Path(args.compare).resolve())] if args.compare else [])
    lanes_list = [int(x) for x in args.lanes.split(",")]
    kpis_list = [int(x) for x in args.kpis.split(",")]
    modes = [True, False] if args.no_quiescence_too else [True]
    rows, overheads = [], {}
    counted: list[list[object]] = []
    with tempfile.TemporaryDirectory(dir=args.scratch) as tmp:
        payload = Path(tmp) / "diagnostics.json"
        payload.write_text(json.dumps(diagnostics_payload(int(args.diag_mb * 1e6))))
        size = payload.stat().st_size
        runs = [(lanes, kpis, quiet, "fresh") for lanes in lanes_list for kpis in kpis_list for quiet in modes]
        runs += [(12, 10, quiet, state) for quiet in modes for state in ("kept", COLD) if 12 in lanes_list and 10 in kpis_list]
        floors: list[float] = []
        for lanes, kpis, quiet, history in runs:
            config = make_project(Path(tmp) / f"p{lanes}x{kpis}", lanes, kpis, payload, quiet)
            kept = {name: seeded_history(tree, config, quiet, name) for name, tree in trees} if history == "kept" else {}
            rounds = max(args.rounds, 7) if (lanes, kpis) == (12, 10) else args.rounds
            got: dict[str, list[float]] = {name: [] for name, _ in trees}
            walls: dict[str, list[float]] = {name: [] for name, _ in trees}
            cpus: dict[str, list[float]] = {name: [] for name, _ in trees}
            for _ in range(rounds):
                floors.append(startup_wall())        # the host's moment, measured between the checks
                for name, tree in trees:
                    wall, over, cpu = one_check(tree, config, quiet, kept.get(name), cold=history == COLD)
                    got[name].append(over)
                    walls[name].append(wall)
                    cpus[name].append(cpu)
            for name, _ in trees:
                overheads[(name, lanes, kpis, quiet, history)] = median(got[name])
            this = median(got["this tree"])
            cpu = median(cpus["this tree"])
            row = [lanes, kpis, "on" if quiet else "off", history, median(walls["this tree"]), this, cpu, this / lanes * 1000]
            if args.compare:
                then, then_cpu = median(got["compared"]), median(cpus["compared"])
                row += [then, then / this if this > 0 else float("inf"), then_cpu, then_cpu / cpu if cpu > 0 else float("inf")]
            rows.append(row)
            print(f"... {lanes} lanes x {kpis} KPIs (quiescence {'on' if quiet else 'off'}, {history} history): {this:.3f} s",
                  file=sys.stderr)
        if args.instructions:
            projects = {(lanes, kpis): Path(tmp) / f"p{lanes}x{kpis}" / "budgets.yaml" for lanes in lanes_list for kpis in kpis_list}
            counted = instruction_rows(trees, projects, quiescence=True)
    headers = ["lanes", "KPIs", "quiet check", "history", "check wall s", "overhead s", "overhead CPU s", "ms per lane"]
    if args.compare:
        headers += ["compared overhead s", "compared / this", "compared CPU s", "CPU compared / this"]
    print_table(f"gate overhead, check --no-base minus the lanes' own wall (diagnostics {size / 1e6:.2f} MB a lane; "
                f"medians, interleaved)", rows, headers)
    growth = []
    for name, _ in trees:
        for quiet in modes:
            if len(lanes_list) > 1:
                growth += [growth_row(name, "lanes", f"{kpis} KPIs", quiet, lanes_list,
                                      [overheads[(name, lanes, kpis, quiet, "fresh")] for lanes in lanes_list]) for kpis in kpis_list]
            if len(kpis_list) > 1:
                growth += [growth_row(name, "KPIs", f"{lanes} lanes", quiet, kpis_list,
                                      [overheads[(name, lanes, kpis, quiet, "fresh")] for kpis in kpis_list]) for lanes in lanes_list]
    if growth:
        print_table("growth (exponent of overhead ~ n^k; 1 = linear) and marginal cost", growth,
                    ["tree", "n", "at", "quiet check", "exponent k", "ms per lane / per KPI"])
    if counted:
        print_table("the check's own instructions (millions; callgrind, one run each, quiet check on)", counted,
                    ["tree", "KPIs", *[f"{lanes} lanes" for lanes in lanes_list], "per lane", "fixed"])
    floor = median(floors)
    print(f"\ninterpreter start-up in the same environment (`python -c pass`, site and .pth files included; "
          f"median of {len(floors)}, one before each round): {floor:.3f} s of every overhead above")
    for history in ("fresh", "kept", COLD):
        goal = overheads.get(("this tree", 12, 10, True, history))
        if goal is not None:
            # in multiples of the floor too: on a shared VM the seconds move with the host's moment
            print(f"\n12 lanes x 10 KPIs, {history} history: {goal:.3f} s overhead, {goal / floor:.1f}x `python -c pass` "
                  f"(goal <= 0.3 s: {'met' if goal <= 0.3 else 'MISSED'})")


if __name__ == "__main__":
    main()
