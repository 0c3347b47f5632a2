"""The one small interface every collector sits behind (as pre-commit's languages do).

A collector owns one metric family and everything that family needs from a run: whether it
applies to a lane, the environment and command wrapper it needs (molt's diagnostics
variables, the instructions counter), what it reads back from any run (molt's `Cache:`
line) and the metric values of a measured run. The runner knows none of these specifics:
it asks each collector that applies to the lane, in order, and never judges the values.

The diff's detail (the IR's modules and functions, the diagnostics' module tables) is large
and is needed once a lane, not once a sample: the runner asks for it (`detail=True`) for the
lane's first measured sample only, whose reading may then take it in the same pass as the
values (a diagnostics payload is scanned once, not twice); `collect` returns it as a function
called once, at the lane's end. Every other sample costs only its values.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molt_budget.errors import CollectorError
from molt_budget.structs import Struct, field

if TYPE_CHECKING:
    from molt_budget.collectors.timing import ProcessMeasurement
    from molt_budget.config.model import Kpi, Lane

Detail = dict[str, Any]
Command = list[str] | str      # an argv, or a shell line


class RunFiles(Struct, frozen=True):
    """Where one attempt of a lane's command runs and what it leaves behind."""

    attempt_dir: Path
    cwd: Path
    stdout_path: Path
    stderr_path: Path
    diagnostics_path: Path
    ir_path: Path | None = None
    normalize_roots: tuple[str, ...] = ()


class Collected(Struct):
    """One collector's reading of one measured run: its values, and the detail on demand."""

    values: dict[str, float] = field(default_factory=dict)
    detail: Callable[[], Detail] | None = None


class Collector:
    """One metric family. Every hook has a do-nothing default: a collector overrides what it needs."""

    name = "collector"

    def applies(self, lane: Lane, kpis: list[Kpi]) -> bool:
        """Whether this collector takes part in the lane's runs at all."""
        return True

    def prepare(self, kind: str, command: Command, env: dict[str, str], files: RunFiles) -> Command:
        """The command to run for a sample of `kind` (prime, warmup, measure); may add to `env`."""
        return command

    def read_back(self, files: RunFiles) -> dict[str, str]:
        """Facts about any run (every sample kind), e.g. the cache state the build reported."""
        return {}

    def collect(self, outcome: ProcessMeasurement, files: RunFiles, metrics: frozenset[str], detail: bool = False) -> Collected:
        """The values of a measured run (`metrics`: what the lane's KPIs ask for)."""
        return Collected()


def clear_stale(path: Path, what: str) -> None:
    """Remove what an earlier build left at `path`, so that it cannot pass for this run's.
    The path comes from the budgets file (`emit_ir`): one the build could not write either
    (a folder, a name too long, /proc/self/mem) is this lane's error, one line, not a crash."""
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        raise CollectorError(path, f"the {what} cannot be written there: {exc.strerror or exc}") from None


def merged_detail(parts: Iterable[Callable[[], Detail] | None]) -> Detail:
    """The lane's detail from every collector's part (each part names its own keys)."""
    out: Detail = {}
    for part in parts:
        if part is not None:
            out.update(part())
    return out
