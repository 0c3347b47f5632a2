"""The quiet-host check's own cost per timed lane, in real `check --no-base` runs, side by side.

Issue 14's row: a look at a quiet host costs ≤ 5 ms (it was ~204 ms: `psutil.cpu_percent(
interval=0.2)` slept on every call). Each check here runs gate_overhead's project (12 lanes,
10 KPIs, one timed `wall_s` on 10 of the lanes, ~1 MB diagnostics each) with
`wait_for_quiescence` wrapped by a `sitecustomize` that prints each look's wall time; nothing
else changes. The run's first look is shown apart: it may top up the window that starts
with the command to 50 ms (100 ms when a short reading cannot decide, see
runner/quiescence.py), once a run. Every later look reads the window since the previous one.

Interleaved in one run (this tree, then `--compare TREE`), medians over the rounds:

    python bench/quiet_look.py --rounds 9 [--compare /tmp/old-tree]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import median, print_table, tool_env
from gate_overhead import diagnostics_payload, make_project

REPO = Path(__file__).resolve().parents[1]
GOAL_MS = 5.0
WRAPPER = '''\
import sys, time
import molt_budget.runner.quiescence as q
_orig = q.wait_for_quiescence
def _timed(*a, **k):
    t = time.perf_counter()
    try:
        return _orig(*a, **k)
    finally:
        sys.stderr.write(f"QUIET-LOOK-MS {(time.perf_counter() - t) * 1000:.3f}\\n")
q.wait_for_quiescence = _timed
'''


def looks(tree: Path, config: Path, hook: Path) -> list[float]:
    """Each look's milliseconds in one check of `config` by `tree`, in order."""
    shutil.rmtree(config.parent / "out", ignore_errors=True)
    env = {**tool_env(), "PYTHONPATH": os.pathsep.join([str(hook), str(tree)])}
    proc = subprocess.run([sys.executable, "-m", "molt_budget", "check", "--no-base", "--config", str(config), "--quiet"],
                          env=env, capture_output=True, text=True)
    if proc.returncode not in (0, 1):
        raise SystemExit(f"check failed ({proc.returncode}) with {tree}: {proc.stderr.strip()[-500:]}")
    return [float(line.split()[1]) for line in proc.stderr.splitlines() if line.startswith("QUIET-LOOK-MS ")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--compare", metavar="TREE", help="another checkout of molt-budget to run side by side")
    args = parser.parse_args()
    trees = [("this tree", REPO)] + ([("compared", Path(args.compare).resolve())] if args.compare else [])
    firsts: dict[str, list[float]] = {name: [] for name, _ in trees}
    laters: dict[str, list[float]] = {name: [] for name, _ in trees}
    with tempfile.TemporaryDirectory() as tmp:
        hook = Path(tmp) / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(WRAPPER)
        payload = Path(tmp) / "diagnostics.json"
        payload.write_text(json.dumps(diagnostics_payload(1_000_000)))
        config = make_project(Path(tmp) / "p12x10", 12, 10, payload, True)
        for _ in range(args.rounds):
            for name, tree in trees:
                seen = looks(tree, config, hook)
                if not seen:
                    raise SystemExit(f"{tree}: no quiet-host look was timed (is the wrapper's module path right?)")
                firsts[name].append(seen[0])
                laters[name] += seen[1:]
    rows = []
    for name, _ in trees:
        later = median(laters[name])
        rows.append([name, len(laters[name]) // args.rounds + 1, median(firsts[name]), max(firsts[name]), later,
                     max(laters[name]), f"{later / GOAL_MS:.2f} of {GOAL_MS:g} ms: " + ("met" if later <= GOAL_MS else "MISSED")])
    print_table(f"quiet-host look per timed lane, 12 lanes x 10 KPIs ({args.rounds} checks each, interleaved; ms)", rows,
                ["tree", "looks a check", "first: median", "first: max", "later: median", "later: max", "goal"])


if __name__ == "__main__":
    main()
