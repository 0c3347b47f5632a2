"""Process metrics of one run: wall, CPU (whole tree) and peak RSS."""

from __future__ import annotations

from typing import Protocol

from molt_budget.collectors.base import Collected, Collector, RunFiles


class ProcessMeasurement(Protocol):
    """What the runner measured of one process tree (runner.process.ProcessOutcome is one).
    A protocol, so collectors read the runner's output without importing the runner."""

    @property
    def wall_s(self) -> float: ...
    @property
    def cpu_s(self) -> float: ...
    @property
    def peak_rss_bytes(self) -> int: ...


def process_metrics(outcome: ProcessMeasurement) -> dict[str, float]:
    return {
        "wall_s": round(outcome.wall_s, 6),
        "cpu_s": round(outcome.cpu_s, 6),
        "peak_rss_mb": round(outcome.peak_rss_bytes / 1e6, 3),
    }


class ProcessCollector(Collector):
    """wall_s, cpu_s, peak_rss_mb: what the runner measured of the process tree, every lane."""

    name = "process"

    def collect(self, outcome: ProcessMeasurement, files: RunFiles, metrics: frozenset[str], detail: bool = False) -> Collected:
        return Collected(process_metrics(outcome))
