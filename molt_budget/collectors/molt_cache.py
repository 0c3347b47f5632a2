"""molt's cache line: a build says on stdout whether its cache hit (formats.md), every lane."""

from __future__ import annotations

from pathlib import Path

from molt_budget.collectors.base import Collector, RunFiles

PREFIX = "Cache: "


def cache_state(stdout_log: Path) -> str:
    """molt's rule: the first stdout line starting with `Cache: ` decides; none means n/a."""
    try:
        with stdout_log.open("r", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.startswith(PREFIX):
                    rest = line[len(PREFIX):].strip()
                    if "hit" in rest:
                        return "hit"
                    if "miss" in rest:
                        return "miss"
                    return rest.split()[0] if rest else "n/a"
    except OSError:
        pass
    return "n/a"


class CacheLineCollector(Collector):
    """No metric: the `cache_state` fact a lane's `expect_cache` is checked against."""

    name = "molt cache line"

    def read_back(self, files: RunFiles) -> dict[str, str]:
        return {"cache_state": cache_state(files.stdout_path)}
