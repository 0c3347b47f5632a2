"""The `instructions` metric: work done, not time taken, so it holds up on a noisy host.

`perf stat -e instructions:u` where the kernel exposes the counter, else valgrind's
callgrind with `--trace-children=yes` (total Ir). Hash seed pinned, ASLR off (`setarch -R`)
where allowed; the KPI takes the minimum of its runs.
"""

from __future__ import annotations

import functools
import platform
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from molt_budget.collectors.base import Collected, Collector, Command, RunFiles
from molt_budget.errors import CollectorError, MeasurementError

if TYPE_CHECKING:
    from molt_budget.collectors.timing import ProcessMeasurement
    from molt_budget.config.model import Kpi, Lane


@functools.lru_cache(maxsize=1)
def counter() -> str:
    """'perf' or 'valgrind'; raises when neither can count on this machine."""
    if shutil.which("perf"):
        try:
            out = subprocess.run(["perf", "stat", "-x,", "-e", "instructions:u", "true"], capture_output=True, text=True, timeout=10)
            first = (out.stderr.strip().splitlines() or [""])[-1]
            if out.returncode == 0 and first.split(",")[0].strip().isdigit():
                return "perf"
        except (OSError, subprocess.SubprocessError):
            pass
    if shutil.which("valgrind"):
        return "valgrind"
    raise MeasurementError("the `instructions` metric needs `perf stat` with hardware counters or valgrind; neither works here")


def wrap(command: list[str] | str, out_dir: Path) -> list[str]:
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    tool = counter()
    if tool == "perf":
        wrapped = ["perf", "stat", "-x,", "-e", "instructions:u", "-o", str(out_dir / "perf.csv"), "--", *argv]
    else:
        wrapped = ["valgrind", "--tool=callgrind", "--trace-children=yes", "--quiet",
                   f"--callgrind-out-file={out_dir / 'callgrind.out.%p'}", *argv]
    if shutil.which("setarch") and _setarch_works():
        wrapped = ["setarch", platform.machine(), "-R", *wrapped]
    return wrapped


@functools.lru_cache(maxsize=1)
def _setarch_works() -> bool:
    try:
        return subprocess.run(["setarch", platform.machine(), "-R", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def read_instructions(out_dir: Path) -> float:
    perf = out_dir / "perf.csv"
    if perf.exists():
        for line in perf.read_text(errors="replace").splitlines():
            fields = line.split(",")
            if len(fields) > 2 and fields[2].startswith("instructions"):
                if not fields[0].strip().isdigit():
                    raise CollectorError(perf, f"perf could not count instructions ({fields[0].strip()})")
                return float(fields[0])
        raise CollectorError(perf, "no instructions line in perf output")
    files = sorted(out_dir.glob("callgrind.out.*"))
    if not files:
        raise CollectorError(out_dir / "callgrind.out.*", "no callgrind output (did the command run under valgrind?)")
    total = 0
    for path in files:
        total += _callgrind_total(path)
    return float(total)


def _callgrind_total(path: Path) -> int:
    summary = 0
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
        if line.startswith("summary:"):
            summary += int(line.split()[1])
    if not summary:
        raise CollectorError(path, "callgrind output has no totals")
    return summary


class InstructionsCollector(Collector):
    """`instructions`: a counted lane's measured runs run under the counter, hash seed pinned."""

    name = "instructions"

    def applies(self, lane: Lane, kpis: list[Kpi]) -> bool:
        return any(k.kpi_class == "counted" for k in kpis)

    def prepare(self, kind: str, command: Command, env: dict[str, str], files: RunFiles) -> Command:
        if kind != "measure":
            return command
        env["PYTHONHASHSEED"] = "0"
        return wrap(command, files.attempt_dir)

    def collect(self, outcome: ProcessMeasurement, files: RunFiles, metrics: frozenset[str], detail: bool = False) -> Collected:
        return Collected({"instructions": read_instructions(files.attempt_dir)})
