"""Shared helpers for the benchmarks: run things side by side, print ratios as a table."""

from __future__ import annotations

import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence


def time_command(argv: Sequence[str], runs: int, **kwargs: object) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(list(argv), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **kwargs)  # type: ignore[arg-type]
        out.append(time.perf_counter() - start)
    return out


def interleaved(a: Callable[[], float], b: Callable[[], float], rounds: int) -> tuple[list[float], list[float]]:
    """A B A B …: slow and fast phases of a noisy host hit both sides alike."""
    xs, ys = [], []
    for _ in range(rounds):
        xs.append(a())
        ys.append(b())
    return xs, ys


def median(values: list[float]) -> float:
    return float(statistics.median(values))


def print_table(title: str, rows: list[list[object]], headers: list[str]) -> None:
    from tabulate import tabulate

    print(f"\n## {title}\n")
    print(tabulate(rows, headers=headers, tablefmt="github", floatfmt=".4f"))


def tool_env() -> dict[str, str]:
    """The environment of an installed tool: bytecode cached (some CI images set
    PYTHONDONTWRITEBYTECODE, which would charge a compile of every module to each check),
    and one validated-budgets cache for the whole bench, as on a developer's machine."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.setdefault("XDG_CACHE_HOME", _CACHE.name)
    return env


_CACHE = tempfile.TemporaryDirectory(prefix="molt-budget-bench-cache-")
