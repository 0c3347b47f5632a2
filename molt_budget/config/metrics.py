"""The metric namespace a KPI may name, and what each one needs from its lane."""

from __future__ import annotations

from molt_budget.structs import Struct

PROCESS_METRICS = {"wall_s": "s", "cpu_s": "s", "peak_rss_mb": "MB"}
IR_METRICS = {
    "ir.mb": "MB",
    "ir.raw_mb": "MB",
    "ir.bytes": "bytes",
    "ir.bytes_normalized": "bytes",
    "ir.functions": "functions",
    "ir.ops": "ops",
    "ir.init_modules": "modules",
}
DIAG_METRICS = {"diag.total_sec": "s", "diag.backend_sec": "s", "diag.module_count": "modules"}
DIAG_PREFIXES = {"diag.phase.": "s", "diag.reason.": "modules"}
GENERIC_PREFIXES = ("json:", "regex:stdout:", "regex:stderr:", "file_bytes:")


class MetricInfo(Struct, frozen=True):
    name: str
    family: str          # process | ir | diag | json | regex | file_bytes
    unit: str
    default_class: str   # exact | timed
    needs_ir: bool = False
    needs_diagnostics: bool = False


def parse_metric(name: str) -> MetricInfo | None:
    """None means unknown: the loader turns that into a config error with a line number."""
    if name in PROCESS_METRICS:
        return MetricInfo(name, "process", PROCESS_METRICS[name], "timed")
    if name == "instructions":
        return MetricInfo(name, "counted", "instructions", "counted")
    if name in IR_METRICS:
        return MetricInfo(name, "ir", IR_METRICS[name], "exact", needs_ir=True)
    if name in DIAG_METRICS:
        cls = "exact" if name == "diag.module_count" else "timed"
        return MetricInfo(name, "diag", DIAG_METRICS[name], cls, needs_diagnostics=True)
    for prefix, unit in DIAG_PREFIXES.items():
        if name.startswith(prefix) and len(name) > len(prefix):
            cls = "exact" if prefix == "diag.reason." else "timed"
            return MetricInfo(name, "diag", unit, cls, needs_diagnostics=True)
    if name.startswith("json:"):
        if "#" not in name or not name[5:].split("#", 1)[0]:
            return None
        return MetricInfo(name, "json", "", "exact")
    if name.startswith(("regex:stdout:", "regex:stderr:")):
        pattern = name.split(":", 2)[2]
        if not pattern:
            return None
        from molt_budget.bounded import InputError, safe_regex

        try:
            safe_regex(pattern)           # the engine that runs it (RE2): linear time, no hang
        except InputError:
            return None
        return MetricInfo(name, "regex", "", "exact")
    if name.startswith("file_bytes:") and len(name) > len("file_bytes:"):
        return MetricInfo(name, "file_bytes", "bytes", "exact")
    return None


def describe_known() -> str:
    names = list(PROCESS_METRICS) + ["instructions"] + list(IR_METRICS) + list(DIAG_METRICS)
    names += [p + "<name>" for p in DIAG_PREFIXES]
    names += ["json:<file>#<pointer>", "regex:stdout:<pattern>", "file_bytes:<path>"]
    return ", ".join(names)
