"""molt `--emit-ir` IR: functions, ops, init modules, bytes (raw and path-normalized).

CONTRACT (implemented by the collectors helper).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class IrSummary:
    functions: int
    ops: int
    init_modules: int
    bytes: int
    bytes_normalized: int
    op_kinds: dict[str, int] = field(default_factory=dict)
    function_ops: dict[str, int] = field(default_factory=dict)   # name -> op count, for diffs
    init_module_names: list[str] = field(default_factory=list)   # e.g. ["hello", "sys"]

    @property
    def mb(self) -> float:
        return round(self.bytes / 1e6, 3)


def summarize_ir(path: Path, normalize_roots: list[str] | tuple[str, ...] = ()) -> IrSummary:
    """Raises molt_budget.errors.CollectorError naming the file when missing/truncated/malformed."""
    raise NotImplementedError
