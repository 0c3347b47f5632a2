"""Process metrics of one run: wall, CPU (whole tree) and peak RSS."""

from __future__ import annotations

from typing import Protocol


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
