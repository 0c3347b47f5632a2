"""One-line Unicode sparklines for the PR comment's per-KPI trend."""

from __future__ import annotations

import math

BARS = "▁▂▃▄▅▆▇█"


def sparkline(values: list[float]) -> str:
    """Scaled between the series' own min and max; a flat series is a flat line.
    NaN and ±Infinity (a broken history row) are skipped, never drawn or allowed to break the scale."""
    values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if not values:
        return ""
    low, high = min(values), max(values)
    if high == low:
        return BARS[3] * len(values)
    span = high - low
    return "".join(BARS[min(len(BARS) - 1, int((v - low) / span * (len(BARS) - 1) + 0.5))] for v in values)
