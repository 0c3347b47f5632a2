"""The collectors a lane's runs go through, in order, and the one call that reads a measured run.

Adding a metric family is one Collector subclass (collectors/base.py) added to COLLECTORS.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from molt_budget.collectors.base import Collector, Command, Detail, RunFiles
from molt_budget.collectors.generic import GenericCollector
from molt_budget.collectors.instructions import InstructionsCollector
from molt_budget.collectors.molt_cache import CacheLineCollector
from molt_budget.collectors.molt_diagnostics import DiagnosticsCollector
from molt_budget.collectors.molt_ir import IrCollector
from molt_budget.collectors.timing import ProcessCollector

if TYPE_CHECKING:
    from molt_budget.collectors.timing import ProcessMeasurement
    from molt_budget.config.model import Kpi, Lane

# order matters only for the command: the instructions counter wraps what the others prepared
COLLECTORS: tuple[Collector, ...] = (
    ProcessCollector(), CacheLineCollector(), IrCollector(), DiagnosticsCollector(), GenericCollector(),
    InstructionsCollector(),
)


class LaneCollectors:
    """The collectors that apply to one lane, asked at each step of each of its runs."""

    def __init__(self, lane: Lane, kpis: list[Kpi]) -> None:
        self.active = [c for c in COLLECTORS if c.applies(lane, kpis)]
        self.metrics = frozenset(k.metric for k in kpis)

    def prepare(self, kind: str, command: Command, env: dict[str, str], files: RunFiles) -> Command:
        for collector in self.active:
            command = collector.prepare(kind, command, env, files)
        return command

    def read_back(self, files: RunFiles) -> dict[str, str]:
        facts: dict[str, str] = {}
        for collector in self.active:
            facts.update(collector.read_back(files))
        return facts

    def collect(self, outcome: ProcessMeasurement, files: RunFiles,
                detail: bool = False) -> tuple[dict[str, float], list[Callable[[], Detail]]]:
        """Every metric the lane's collectors give (plus the requested generic ones), and, with
        `detail` (the lane's first measured sample), the detail parts, each computed when called."""
        values: dict[str, float] = {}
        details: list[Callable[[], Detail]] = []
        for collector in self.active:
            got = collector.collect(outcome, files, self.metrics, detail=detail)
            values.update(got.values)
            if got.detail is not None:
                details.append(got.detail)
        return values, details
