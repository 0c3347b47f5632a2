"""molt `MOLT_BUILD_DIAGNOSTICS` payload. No top-level schema version: feature-detect keys.

Any key may be missing (frontend-only captures have no backend phases, older molts
lack `binary_image_analysis`), so absent means None/empty. A key that is present
with the wrong type or a non-finite/negative time is an error: silently dropping
it would make a budget pass on garbage.

Two readings of one payload, one outcome. The fast one (msgspec) decodes only what is
asked for: a sample's values from five small top-level fields, the lane's tables straight
into typed rows, skipping the rest unbuilt (a 1 MB payload's values in ~1 ms instead of
~19 ms). Whatever it refuses, a wrong type, a value out of range, another document, bad
syntax, goes to the checked reading (stdlib json and the field checks below), which alone
decides what is wrong and words it with the key's line. So the fast reading never accepts
what the checked one refuses in a field it reads, and never words an error.
"""

from __future__ import annotations

import codecs
import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NamedTuple

from molt_budget.bounded import MAX_EXACT, MAX_SMALL_BYTES, InputError, ReusedBuffer, check_number, locate
from molt_budget.collectors.base import Collected, Collector, Command, RunFiles, clear_stale
from molt_budget.collectors.generic import json_from_bytes, load_json_text, read_bytes, read_bytes_reused
from molt_budget.errors import CollectorError
from molt_budget.structs import Struct, encoded_before, field, msgspec, remember_encoding, replace

if TYPE_CHECKING:
    from molt_budget.collectors.timing import ProcessMeasurement
    from molt_budget.config.model import Kpi, Lane

# Keys only a `molt build` payload has; `runtime_wasm_build` alone means the other document.
_BUILD_KEYS = ("enabled", "total_sec", "phase_sec", "module_count", "binary_image_analysis")
_PAYLOAD_KEYS = (*_BUILD_KEYS, "module_reasons", "module_reason_summary", "phase_attribution", "frontend_parallel",
                 "frontend_module_timings", "binary_image", "binary_image_closure")


class DiagnosticsSummary(Struct):
    total_sec: float | None
    phase_sec: dict[str, float]                  # chronological, as in the file
    backend_sec: float                           # sum of backend_* phases (backend_codegen is always 0)
    module_count: int | None
    module_reasons: dict[str, list[str]]
    reason_summary: dict[str, int]
    functions: int | None                        # binary_image_analysis.backend_ir.backend_ir.function_count
    ops: int | None
    module_timings: dict[str, float] = field(default_factory=dict)  # module -> total_s, when present


def _seconds(path: Path, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise CollectorError(path, f"{key} is a {type(value).__name__}, expected seconds as a number")
    try:
        seconds = check_number(value, key)          # range first: float() of a huge int overflows
    except InputError as exc:
        raise CollectorError(path, f"{exc.message}, expected finite seconds >= 0") from None
    if seconds < 0:
        raise CollectorError(path, f"{key} is {value!r}, expected finite seconds >= 0")
    return seconds


def _count(path: Path, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        shown = f"an integer of {len(str(value))} digits" if isinstance(value, int) and value.bit_length() > 64 else repr(value)
        raise CollectorError(path, f"{key} is {shown[:80]}, expected a non-negative integer")
    try:
        check_number(value, key)
    except InputError as exc:
        raise CollectorError(path, exc.message) from None
    return value


def _object(path: Path, key: str, value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise CollectorError(path, f"{key} is a {type(value).__name__}, expected an object")
    return value


def _dig(doc: dict[str, Any], *keys: str) -> Any:
    """Nested lookup that treats any missing or non-object level as absent."""
    node: Any = doc
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _unwrap(path: Path, doc: Any) -> dict[str, Any]:
    """The build payload itself, also when given the `--json` stdout envelope."""
    if not isinstance(doc, dict):
        raise CollectorError(path, f"expected a JSON object, found a {type(doc).__name__}")
    if "runtime_wasm_build" in doc and not any(k in doc for k in _BUILD_KEYS):
        raise CollectorError(
            path,
            "this is a runtime-wasm-build document ({\"runtime_wasm_build\": ...}, written by "
            "`molt internal-runtime-wasm-build`), not a `molt build` diagnostics payload",
        )
    if "schema_version" in doc and "command" in doc and isinstance(doc.get("data"), dict):
        inner = doc["data"].get("compile_diagnostics")
        if not isinstance(inner, dict):
            raise CollectorError(path, "a molt --json envelope without data.compile_diagnostics")
        doc = inner
    if "functions" in doc and not any(k in doc for k in _PAYLOAD_KEYS):
        raise CollectorError(path, "this is an --emit-ir file (it has 'functions'), not a molt build diagnostics payload")
    return doc


def require_payload(path: Path) -> None:
    """`inspect diagnostics` is asked about one file: refuse one that has none of the payload's
    keys instead of printing `total_sec: None` for it."""
    doc = _unwrap(path, load_json_text(path)[0])
    if not any(k in doc for k in _PAYLOAD_KEYS):
        raise CollectorError(path, f"not a molt build diagnostics payload: it has none of {', '.join(_PAYLOAD_KEYS[:6])}, ...")


def summarize_diagnostics(path: Path, fast: bool = True) -> DiagnosticsSummary:
    """Raises molt_budget.errors.CollectorError naming the file and line when missing/truncated/malformed.

    `fast=False`: the checked reading alone (what the tests hold the fast one to)."""
    path = Path(path)
    data = read_bytes(path, MAX_SMALL_BYTES)
    summary, tables = _read_values(path, data, fast, rows=True)     # as a lane's first sample reads it
    return _with_tables(path, data, summary, tables)


class _SampleFields(msgspec.Struct):
    """The top-level fields a sample's values come from; msgspec skips the rest unbuilt.

    UNSET (absent) is not None (a JSON null, which the field checks refuse)."""

    total_sec: Any = msgspec.UNSET
    phase_sec: Any = msgspec.UNSET
    module_count: Any = msgspec.UNSET
    module_reason_summary: Any = msgspec.UNSET
    binary_image_analysis: Any = msgspec.UNSET
    # marks of another document (or of the --json envelope): `_unwrap` on the checked path decides
    runtime_wasm_build: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    functions: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    schema_version: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    command: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    data: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    # the module tables, as slices of the payload (no objects built): decoded once a lane, for
    # the detail, without scanning the whole payload again
    module_reasons: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET
    frontend_module_timings: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _RawTables(NamedTuple):
    """A plain payload's module tables as the fast reading found them (None: absent); `rows`:
    the timing rows when that reading decoded them too (the lane's first sample)."""

    reasons: msgspec.Raw | None
    timings: msgspec.Raw | None
    rows: list[_TimingRow] | None = None


_VALUE_FIELDS = ("total_sec", "phase_sec", "module_count", "module_reason_summary", "binary_image_analysis")
_ENVELOPE = ("schema_version", "command", "data")


class _TimingRow(msgspec.Struct, gc=False):   # a str and a float: never part of a cycle
    module: str
    total_s: Annotated[float, msgspec.Meta(ge=0, le=MAX_EXACT)]   # past 2^53 the checked path decides


class _SampleFieldsWithRows(_SampleFields):
    """The same fields with the timing rows decoded in the same pass (the detail's sample): one
    scan of the payload instead of a scan that skips the rows and a second that decodes them."""

    frontend_module_timings: list[_TimingRow] | None | msgspec.UnsetType = msgspec.UNSET   # type: ignore[assignment]


_SAMPLE = msgspec.json.Decoder(_SampleFields)
_SAMPLE_WITH_ROWS = msgspec.json.Decoder(_SampleFieldsWithRows)
_UTF8_DECODER = codecs.getincrementaldecoder("utf-8")
_UTF8_CHUNK = 1 << 16
_REASONS = msgspec.json.Decoder(dict[str, list[str]])
_TIMINGS = msgspec.json.Decoder(list[_TimingRow] | None)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """The tables are tens of thousands of fresh containers and no reference cycle: without a
    pause the cyclic collector walks them a hundred times while they are built."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _fast_sample_fields(data: bytes | bytearray, rows: bool = False) -> tuple[dict[str, Any], _RawTables] | None:
    """The value fields present in a plain payload and its raw tables, or None for the checked
    path to decide. `rows`: decode the timing rows in the same pass; a row that pass refuses
    leaves them raw, for _with_tables to decide as before."""
    if not _valid_utf8(data):           # msgspec does not check the UTF-8 of strings it skips
        return None
    with_rows: _SampleFieldsWithRows | None = None
    if rows:
        try:
            with _collector_paused():
                with_rows = _SAMPLE_WITH_ROWS.decode(data)
        except (msgspec.MsgspecError, RecursionError, ValueError):
            with_rows = None
    got: _SampleFields
    if with_rows is not None:
        got = with_rows
    else:
        try:
            got = _SAMPLE.decode(data)
        except (msgspec.MsgspecError, RecursionError, ValueError):
            return None
    if got.runtime_wasm_build is not msgspec.UNSET or got.functions is not msgspec.UNSET:
        return None
    if all(getattr(got, key) is not msgspec.UNSET for key in _ENVELOPE):
        return None
    values = {key: value for key in _VALUE_FIELDS if (value := getattr(got, key)) is not msgspec.UNSET}
    reasons = _present(got.module_reasons)
    if with_rows is not None:
        timed = with_rows.frontend_module_timings
        return values, _RawTables(reasons, None, None if timed is msgspec.UNSET else (timed or []))
    return values, _RawTables(reasons, _present(got.frontend_module_timings))


def _valid_utf8(data: bytes | bytearray) -> bool:
    """Whether `data` is UTF-8, without building the text: ASCII (molt's payloads) is a scan;
    anything else is decoded 64 kB at a time. data.decode() made a 1 MB string a sample, in
    fresh pages the kernel faulted in one by one (a tenth of a check's system time)."""
    if data.isascii():
        return True
    decoder = _UTF8_DECODER()
    view = memoryview(data)
    try:
        for start in range(0, len(data), _UTF8_CHUNK):
            decoder.decode(view[start:start + _UTF8_CHUNK])
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def _present(raw: msgspec.Raw | msgspec.UnsetType) -> msgspec.Raw | None:
    return None if raw is msgspec.UNSET else raw


def _read_values(path: Path, data: bytes | bytearray, fast: bool = True, rows: bool = False) -> tuple[DiagnosticsSummary, _RawTables | None]:
    """A sample's summary (tables empty), and the raw tables when the fast reading gave it:
    only then may the tables be read fast too (a plain payload, already UTF-8 checked).
    `rows`: the timing rows decoded in the same pass (see _fast_sample_fields)."""
    found = _fast_sample_fields(data, rows) if fast else None
    if found is not None:
        try:
            return _values(path, found[0]), found[1]
        except CollectorError:
            pass                        # the checked reading words it, with the key's line
    doc, text = json_from_bytes(path, data, fields_checked=True)
    with _located(path, text):
        return _values(path, _unwrap(path, doc)), None


def _with_tables(path: Path, data: bytes | bytearray, summary: DiagnosticsSummary, raw: _RawTables | None) -> DiagnosticsSummary:
    """`summary` with the per-module tables the diff attributes with."""
    if raw is not None:
        try:
            with _collector_paused():
                reasons = _reasons_of(raw.reasons) if raw.reasons is not None else {}
                rows = raw.rows if raw.rows is not None else (_TIMINGS.decode(raw.timings) if raw.timings is not None else None) or []
        except (msgspec.MsgspecError, RecursionError, ValueError):
            pass
        else:
            return replace(summary, module_reasons=reasons, module_timings=_timings_of(rows))
    doc, text = json_from_bytes(path, data, fields_checked=True)
    with _located(path, text):
        return _tables(path, _unwrap(path, doc), summary)


# module_reasons tables as decoded, by their bytes: the lanes of one program (cold, warm, a
# cache hit) enter the same modules for the same reasons, and each table is thousands of lists
_REASONS_SEEN: dict[bytes, dict[str, list[str]]] = {}
_REASONS_KEPT = 8


def _reasons_of(raw: msgspec.Raw) -> dict[str, list[str]]:
    """The table decoded once for every lane whose payload holds the same bytes (a shared,
    read-only table, as every detail is: readers never mutate it)."""
    key = bytes(raw)
    table = _REASONS_SEEN.get(key)
    if table is None:
        table = _REASONS.decode(key)
        if len(_REASONS_SEEN) >= _REASONS_KEPT:
            _REASONS_SEEN.clear()
        _REASONS_SEEN[key] = table
    if encoded_before(table) is None:
        remember_encoding(table)     # written into every such lane's detail from one encoding
    return table


@contextmanager
def _located(path: Path, text: str) -> Iterator[None]:
    """A field's error gets the line of the key it is about (every message starts with the key)."""
    try:
        yield
    except CollectorError as exc:
        if exc.line is not None:
            raise
        key = exc.detail.split(" ", 1)[0].rstrip(":")
        raise CollectorError(path, exc.detail, locate(text, key)) from None


def _values(path: Path, doc: dict[str, Any]) -> DiagnosticsSummary:
    """The small top-level fields every sample's metrics need (the module tables left empty)."""
    total_sec = _seconds(path, "total_sec", doc["total_sec"]) if "total_sec" in doc else None
    phase_sec: dict[str, float] = {}
    if "phase_sec" in doc:
        for name, value in _object(path, "phase_sec", doc["phase_sec"]).items():
            phase_sec[name] = _seconds(path, f"phase_sec.{name}", value)
    backend_sec = sum((v for k, v in phase_sec.items() if k.startswith("backend_")), 0.0)

    module_count = _count(path, "module_count", doc["module_count"]) if "module_count" in doc else None

    reason_summary: dict[str, int] = {}
    if "module_reason_summary" in doc:
        for reason, n in _object(path, "module_reason_summary", doc["module_reason_summary"]).items():
            reason_summary[reason] = _count(path, f"module_reason_summary.{reason}", n)

    backend_ir = "binary_image_analysis.backend_ir.backend_ir"
    functions = _dig(doc, "binary_image_analysis", "backend_ir", "backend_ir", "function_count")
    ops = _dig(doc, "binary_image_analysis", "backend_ir", "backend_ir", "op_count")
    if functions is not None:
        functions = _count(path, f"{backend_ir}.function_count", functions)
    if ops is not None:
        ops = _count(path, f"{backend_ir}.op_count", ops)
    return DiagnosticsSummary(
        total_sec=total_sec, phase_sec=phase_sec, backend_sec=backend_sec, module_count=module_count,
        module_reasons={}, reason_summary=reason_summary, functions=functions, ops=ops,
    )


def _tables(path: Path, doc: dict[str, Any], summary: DiagnosticsSummary) -> DiagnosticsSummary:
    """`summary` with the per-module tables (what the diff attributes with) read and checked.

    Each table is checked in bulk first (a few passes in C-level builtins over thousands of
    modules); only a table that fails is walked row by row, for the message naming the row."""
    module_reasons: dict[str, list[str]] = {}
    if "module_reasons" in doc:
        table = _object(path, "module_reasons", doc["module_reasons"])
        if not _all_string_lists(table):
            for module, reasons in table.items():
                if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
                    raise CollectorError(path, f"module_reasons.{module} is not a list of strings")
        module_reasons = table          # parsed for this call alone: nobody else holds it

    module_timings: dict[str, float] = {}
    timings = doc.get("frontend_module_timings")
    if timings is not None:
        if not isinstance(timings, list):
            raise CollectorError(path, "frontend_module_timings is not a list")
        rows = _timing_rows(timings)
        if rows is None:
            rows = _timing_rows_checked(path, timings)
        module_timings = _per_module(*rows)
    return replace(summary, module_reasons=module_reasons, module_timings=module_timings)


def _timings_of(rows: list[_TimingRow]) -> dict[str, float]:
    """module -> seconds from the fast reading's rows (a module timed in several rows: their sum)."""
    out = {row.module: row.total_s for row in rows}
    if len(out) == len(rows):
        return out
    return _per_module([row.module for row in rows], [row.total_s for row in rows])


def _per_module(modules: list[str], seconds: list[float]) -> dict[str, float]:
    """module -> seconds; a module timed in several rows gets their sum."""
    if len(set(modules)) == len(modules):
        return dict(zip(modules, seconds))
    out: dict[str, float] = {}
    for module, value in zip(modules, seconds):
        out[module] = out.get(module, 0.0) + value
    return out


def _all_string_lists(table: dict[str, Any]) -> bool:
    values = table.values()
    return all(type(v) is list for v in values) and all(type(r) is str for v in values for r in v)


def _timing_rows(timings: list[Any]) -> tuple[list[str], list[float]] | None:
    """(modules, seconds) when every row is well formed, else None (the caller says which is not)."""
    if not all(type(row) is dict for row in timings):
        return None
    modules = [row.get("module") for row in timings]
    seconds = [row.get("total_s") for row in timings]
    if not all(type(m) is str for m in modules) or not all(type(x) is float or type(x) is int for x in seconds):
        return None
    # past 2^53 an int is refused and a float still taken: the row-by-row check decides those
    if seconds and (min(seconds) < 0 or max(seconds) > MAX_EXACT or any(x != x for x in seconds)):
        return None
    return modules, [float(x) for x in seconds]


def _timing_rows_checked(path: Path, timings: list[Any]) -> tuple[list[str], list[float]]:
    modules, seconds = [], []
    for i, row in enumerate(timings):
        key = f"frontend_module_timings[{i}]"
        if not isinstance(row, dict) or not isinstance(row.get("module"), str):
            raise CollectorError(path, f"{key} has no string 'module'")
        seconds.append(_seconds(path, f"{key}.total_s", row.get("total_s")))
        modules.append(row["module"])
    return modules, seconds


def diagnostics_values(diag: DiagnosticsSummary) -> dict[str, float]:
    """The `diag.*` metrics of one payload."""
    values: dict[str, float] = {"diag.backend_sec": round(diag.backend_sec, 6)}
    if diag.total_sec is not None:
        values["diag.total_sec"] = diag.total_sec
    if diag.module_count is not None:
        values["diag.module_count"] = diag.module_count
    values.update({f"diag.phase.{k}": v for k, v in diag.phase_sec.items()})
    values.update({f"diag.reason.{k}": v for k, v in diag.reason_summary.items()})
    return values


def diagnostics_detail(diag: DiagnosticsSummary) -> dict[str, Any]:
    """What the diff attributes a change with: phases, inclusion reasons, per-module time."""
    return {"diagnostics": {
        "phase_sec": diag.phase_sec, "module_reasons": diag.module_reasons,
        "reason_summary": diag.reason_summary, "module_timings": diag.module_timings,
    }}


class DiagnosticsCollector(Collector):
    """`diag.*`: molt writes its `MOLT_BUILD_DIAGNOSTICS` payload where the lane tells it to.

    A sample reads the payload's small fields; the module tables are read once a lane, for
    the detail (a 1 MB payload's tables cost twice its values): the first measured sample's,
    its timing rows in the same pass as its values."""

    name = "molt diagnostics"

    def applies(self, lane: Lane, kpis: list[Kpi]) -> bool:
        return lane.diagnostics

    def prepare(self, kind: str, command: Command, env: dict[str, str], files: RunFiles) -> Command:
        clear_stale(files.diagnostics_path, "diagnostics payload")
        env["MOLT_BUILD_DIAGNOSTICS"] = "1"
        env["MOLT_BUILD_DIAGNOSTICS_FILE"] = str(files.diagnostics_path)
        return command

    def collect(self, outcome: ProcessMeasurement, files: RunFiles, metrics: frozenset[str], detail: bool = False) -> Collected:
        path = files.diagnostics_path
        if not detail:
            # the payload is not kept (another sample carries the detail): read into the buffer
            # the next sample reads into, its values copied out before then
            summary, _ = _read_values(path, read_bytes_reused(_PAYLOADS, path, MAX_SMALL_BYTES))
            return Collected(_with_absent_reasons(diagnostics_values(summary), metrics))
        data = read_bytes(path, MAX_SMALL_BYTES)      # kept for the detail, read at the lane's end
        summary, tables = _read_values(path, data, rows=True)

        def tables_detail() -> dict[str, Any]:
            return diagnostics_detail(_with_tables(path, data, summary, tables))
        return Collected(_with_absent_reasons(diagnostics_values(summary), metrics), tables_detail)


# the payloads of the samples that carry no detail, each read over the last one's
_PAYLOADS = ReusedBuffer()


def _with_absent_reasons(values: dict[str, float], metrics: frozenset[str]) -> dict[str, float]:
    """A `diag.reason.*` a KPI asks for that no module has is a real zero, not a missing value."""
    for metric in metrics:
        if metric.startswith("diag.reason.") and metric not in values:
            values[metric] = 0
    return values
