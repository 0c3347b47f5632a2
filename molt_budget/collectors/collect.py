"""One entry point the runner calls after each run: every collector behind one interface."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from molt_budget.collectors import generic, timing
from molt_budget.collectors.molt_diagnostics import summarize_diagnostics
from molt_budget.collectors.molt_ir import IrSummary, summarize_ir
from molt_budget.collectors.timing import ProcessMeasurement
from molt_budget.errors import CollectorError


@dataclass
class SampleContext:
    outcome: ProcessMeasurement
    stdout_path: Path
    stderr_path: Path
    cwd: Path
    ir_path: Path | None = None
    diagnostics_path: Path | None = None
    normalize_roots: list[str] = field(default_factory=list)


def collect(ctx: SampleContext, metrics: Iterable[str]) -> tuple[dict[str, float], dict[str, Any]]:
    """All metrics the lane can give plus the requested generic ones; detail feeds the diff."""
    values = timing.process_metrics(ctx.outcome)
    detail: dict[str, Any] = {}
    if ctx.ir_path is not None:
        ir_values, detail["ir"] = ir_metrics(summarize_ir(ctx.ir_path, ctx.normalize_roots))
        values.update(ir_values)
    if ctx.diagnostics_path is not None:
        diag = summarize_diagnostics(ctx.diagnostics_path)
        if diag.total_sec is not None:
            values["diag.total_sec"] = diag.total_sec
        values["diag.backend_sec"] = round(diag.backend_sec, 6)
        if diag.module_count is not None:
            values["diag.module_count"] = diag.module_count
        values.update({f"diag.phase.{k}": v for k, v in diag.phase_sec.items()})
        values.update({f"diag.reason.{k}": v for k, v in diag.reason_summary.items()})
        detail["diagnostics"] = {
            "phase_sec": diag.phase_sec, "module_reasons": diag.module_reasons,
            "reason_summary": diag.reason_summary, "module_timings": diag.module_timings,
        }
    for metric in metrics:
        if metric in values:
            continue
        if metric.startswith("diag.reason."):
            values[metric] = 0        # a reason no module has: a real zero, not a missing value
        elif metric.startswith("json:"):
            file, pointer = metric[len("json:"):].split("#", 1)
            values[metric] = generic.json_pointer(_under(ctx.cwd, file), pointer)
        elif metric.startswith("regex:"):
            _, stream, pattern = metric.split(":", 2)
            path = ctx.stdout_path if stream == "stdout" else ctx.stderr_path
            values[metric] = generic.regex_stdout(_read(path), pattern, f"{stream} of the run ({path})")
        elif metric.startswith("file_bytes:"):
            values[metric] = generic.file_bytes(_under(ctx.cwd, metric[len("file_bytes:"):]))
    return values, detail


def ir_metrics(ir: IrSummary) -> tuple[dict[str, float], dict[str, Any]]:
    """The `ir.*` metrics of one IR file, and the detail the diff attributes changes with."""
    values: dict[str, float] = {
        "ir.bytes": ir.bytes, "ir.mb": ir.mb, "ir.raw_mb": ir.raw_mb, "ir.bytes_normalized": ir.bytes_normalized,
        "ir.functions": ir.functions, "ir.ops": ir.ops, "ir.init_modules": ir.init_modules,
    }
    detail = {"op_kinds": ir.op_kinds, "function_ops": ir.function_ops, "init_modules": ir.init_module_names,
              "modules": {name: m.to_dict() for name, m in ir.modules.items()},
              "imports": [list(site) for site in ir.imports], "entry": ir.entry}
    return values, detail


def _under(cwd: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else cwd / p


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CollectorError(path, f"cannot read: {exc}") from None
