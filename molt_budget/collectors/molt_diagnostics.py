"""molt `MOLT_BUILD_DIAGNOSTICS` payload. No top-level schema version: feature-detect keys.

CONTRACT (implemented by the collectors helper).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class DiagnosticsSummary:
    total_sec: float | None
    phase_sec: dict[str, float]                  # chronological, as in the file
    backend_sec: float                           # sum of backend_* phases (backend_codegen is always 0)
    module_count: int | None
    module_reasons: dict[str, list[str]]
    reason_summary: dict[str, int]
    functions: int | None                        # binary_image_analysis.backend_ir.backend_ir.function_count
    ops: int | None
    module_timings: dict[str, float] = field(default_factory=dict)  # module -> total_s, when present


def summarize_diagnostics(path: Path) -> DiagnosticsSummary:
    """Raises molt_budget.errors.CollectorError naming the file when missing/truncated/malformed."""
    raise NotImplementedError
