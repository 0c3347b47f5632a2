"""The `inspect` probes users of the seed ran by hand, as stable JSON."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from molt_budget.collectors.molt_diagnostics import require_payload, summarize_diagnostics
from molt_budget.collectors.molt_ir import summarize_ir


def ir_report(path: Path, normalize_roots: list[str] | None = None) -> dict[str, Any]:
    ir = summarize_ir(path, normalize_roots or [])
    return {
        "functions": ir.functions,
        "ops": ir.ops,
        "init_modules": ir.init_modules,
        "bytes": ir.bytes,
        "mb": ir.mb,
        "raw_mb": ir.raw_mb,
        "bytes_normalized": ir.bytes_normalized,
        "op_kinds": dict(sorted(ir.op_kinds.items(), key=lambda kv: (-kv[1], kv[0]))),
    }


def diagnostics_report(path: Path) -> dict[str, Any]:
    require_payload(path)
    d = summarize_diagnostics(path)
    return {
        "total_sec": d.total_sec,
        "phase_sec": d.phase_sec,
        "backend_sec": round(d.backend_sec, 6),
        "module_count": d.module_count,
        "module_reasons": d.module_reasons,
        "reason_summary": d.reason_summary,
        "functions": d.functions,
        "ops": d.ops,
    }
