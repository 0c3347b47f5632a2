"""Process metrics of one run: wall, CPU (whole tree) and peak RSS."""

from __future__ import annotations

from molt_budget.runner.process import ProcessOutcome


def process_metrics(outcome: ProcessOutcome) -> dict[str, float]:
    return {
        "wall_s": round(outcome.wall_s, 6),
        "cpu_s": round(outcome.cpu_s, 6),
        "peak_rss_mb": round(outcome.peak_rss_bytes / 1e6, 3),
    }
