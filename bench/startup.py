"""`molt-budget --help` start-up vs `python -c pass`, interleaved in one run.

Target: ≤ 5× (pyperf measured 8.7×, asv 19.7×). Heavy imports load lazily.
"""

from __future__ import annotations

import subprocess
import sys
import time

from _common import interleaved, median, print_table


def run(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def main(rounds: int = 15) -> None:
    bare, tool = interleaved(lambda: run([sys.executable, "-c", "pass"]),
                             lambda: run([sys.executable, "-m", "molt_budget", "--help"]), rounds)
    ratio = median(tool) / median(bare)
    print_table("start-up", [
        ["python -c pass", median(bare), 1.0, ""],
        ["molt-budget --help", median(tool), ratio, "≤ 5.0x: " + ("met" if ratio <= 5 else "MISSED")],
    ], ["command", "median s", "ratio", "target"])


if __name__ == "__main__":
    main()
