"""Start-up of both entry points and of `validate`, against `python -c pass`, interleaved in one run.

Target (issue 14): `python -m molt_budget --help` and the `molt-budget` console script
each ≤ 4× `python -c pass`. `validate` on the bundled budgets.yaml is shown beside them
(it parses and checks the file: twice, so the second run shows the validated-once cache).

    python bench/startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

from _common import median, print_table

REPO = Path(__file__).resolve().parents[1]
GOAL = 4.0


def run(argv: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=REPO)
    return time.perf_counter() - start


def console_script() -> str | None:
    """The script pip wrote beside this interpreter, else the first on PATH: a version
    manager's shim (pyenv's is a shell script that runs `pyenv exec`, ~60 ms) comes first on
    PATH and is not molt-budget's start-up."""
    beside = Path(sysconfig.get_path("scripts")) / "molt-budget"
    return str(beside) if beside.is_file() else shutil.which("molt-budget")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        # bytecode cached, as an installed package has it (some CI images set PYTHONDONTWRITEBYTECODE)
        env = {**{k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"},
               "PYTHONPATH": str(REPO), "XDG_CACHE_HOME": cache}
        commands = {"python -c pass": [sys.executable, "-c", "pass"],
                    "python -m molt_budget --help": [sys.executable, "-m", "molt_budget", "--help"]}
        script = console_script()
        if script:
            commands["molt-budget --help (console script)"] = [script, "--help"]
        commands["molt-budget validate (budgets.yaml)"] = [sys.executable, "-m", "molt_budget", "validate", "--config",
                                                          str(REPO / "budgets.yaml")]
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(args.rounds):
            for name, argv in commands.items():
                times[name].append(run(argv, env))
    bare = median(times["python -c pass"])
    rows = []
    for name in commands:
        ratio = median(times[name]) / bare
        target = "" if name == "python -c pass" or "validate" in name else f"≤ {GOAL:g}x: " + ("met" if ratio <= GOAL else "MISSED")
        rows.append([name, median(times[name]), ratio, target])
    print_table(f"start-up (medians of {args.rounds}, interleaved)", rows, ["command", "median s", "ratio", "target"])
    if not script:
        print("\n(no molt-budget console script on PATH: `pip install -e .` to measure it)")


if __name__ == "__main__":
    main()
