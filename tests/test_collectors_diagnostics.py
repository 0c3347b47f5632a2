"""summarize_diagnostics against molt's real payloads (real/A, real/C) and the example."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import MOLT, needs_shared
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutation import mutate

from molt_budget.collectors.molt_diagnostics import DiagnosticsSummary, summarize_diagnostics
from molt_budget.errors import CollectorError

EXAMPLE = MOLT / "examples" / "diagnostics_dev_warm.json"


def _meta(case: str) -> dict[str, Any]:
    return json.loads((MOLT / "real" / case / "meta.json").read_text())


def _write(tmp_path: Path, doc: Any) -> Path:
    path = tmp_path / "diagnostics.json"
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def _error(path: Path) -> str:
    with pytest.raises(CollectorError) as info:
        summarize_diagnostics(path)
    message = str(info.value)
    assert message.startswith(str(path) + ": ") and "\n" not in message
    return message


@needs_shared
@pytest.mark.parametrize("case", ["A", "C"])
def test_real_payload_matches_meta(case: str) -> None:
    meta = _meta(case)["diagnostics"]
    s = summarize_diagnostics(MOLT / "real" / case / meta["file"])
    assert s.total_sec == meta["total_sec"]
    assert list(s.phase_sec.items()) == list(meta["phase_sec"].items())  # chronological order kept
    assert s.backend_sec == 0.0  # captured before backend setup: no backend_* phases
    assert s.module_count == meta["module_count"]
    assert s.reason_summary == meta["module_reason_summary"]
    assert s.functions == meta["backend_ir_function_count"]
    assert s.ops == meta["backend_ir_op_count"]
    assert len(s.module_reasons) == meta["module_count"]
    assert set(s.module_timings) == set(s.module_reasons)


@needs_shared
def test_example_payload() -> None:
    raw = json.loads(EXAMPLE.read_text())
    s = summarize_diagnostics(EXAMPLE)
    assert (s.functions, s.ops, s.module_count) == (203, 50483, 11)  # examples/README.md KPIs
    assert s.phase_sec == raw["phase_sec"]
    assert s.module_reasons == raw["module_reasons"]
    assert s.module_timings == {t["module"]: t["total_s"] for t in raw["frontend_module_timings"]}
    assert s.backend_sec == 0.0  # a warm backend-cache hit has no backend_* phases


@needs_shared
def test_backend_seconds_sum_backend_phases(tmp_path: Path) -> None:
    """Phases of a cold run (compile_progress example, copied from its diagnostics file)."""
    progress = json.loads((MOLT / "examples" / "compile_progress.json").read_text())
    phases = progress["results"][0]["diagnostics_phase_sec"]
    s = summarize_diagnostics(_write(tmp_path, {"total_sec": 1.0, "phase_sec": phases}))
    expected = sum(v for k, v in phases.items() if k.startswith("backend_"))
    assert expected > 0 and phases["backend_codegen"] == 0.0
    assert s.backend_sec == pytest.approx(expected)
    assert list(s.phase_sec) == list(phases)


def test_every_key_may_be_missing(tmp_path: Path) -> None:
    assert summarize_diagnostics(_write(tmp_path, {})) == DiagnosticsSummary(
        total_sec=None, phase_sec={}, backend_sec=0.0, module_count=None, module_reasons={},
        reason_summary={}, functions=None, ops=None, module_timings={},
    )
    partial = {"total_sec": 2, "binary_image_analysis": {"backend_ir": {"schema_version": 1}}}
    s = summarize_diagnostics(_write(tmp_path, partial))
    assert (s.total_sec, s.functions, s.ops) == (2.0, None, None)


def test_runtime_wasm_build_document_is_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, {"runtime_wasm_build": {"phases": [], "cargo_compile_builds": 1}})
    assert "runtime-wasm-build document" in _error(path)
    # a wasm *build* payload also carries runtime_wasm_build: that one is fine
    ok = {"enabled": True, "total_sec": 1.0, "phase_sec": {"resolve_entry": 1.0}, "runtime_wasm_build": {}}
    assert summarize_diagnostics(_write(tmp_path, ok)).total_sec == 1.0


def test_json_envelope_is_unwrapped(tmp_path: Path) -> None:
    inner = {"total_sec": 3.0, "phase_sec": {"backend_dispatch": 0.5, "backend_codegen": 0.0}}
    envelope = {"schema_version": "1.0", "command": "build", "status": "ok",
                "data": {"compile_diagnostics": inner}, "warnings": [], "errors": []}
    s = summarize_diagnostics(_write(tmp_path, envelope))
    assert (s.total_sec, s.backend_sec) == (3.0, 0.5)
    envelope["data"] = {}
    assert "without data.compile_diagnostics" in _error(_write(tmp_path, envelope))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"phase_sec": {"ir_lowering": NaN}}', "phase_sec.ir_lowering is nan"),
        ('{"phase_sec": {"ir_lowering": Infinity}}', "phase_sec.ir_lowering is inf"),
        ('{"phase_sec": {"module_graph": -0.5}}', "phase_sec.module_graph is -0.5"),
        ('{"phase_sec": {"module_graph": "1.0"}}', "phase_sec.module_graph is a str"),
        ('{"phase_sec": {"module_graph": true}}', "phase_sec.module_graph is a bool"),
        ('{"phase_sec": [1]}', "phase_sec is a list"),
        ('{"total_sec": -1}', "total_sec is -1"),
        ('{"module_count": 2.5}', "module_count is 2.5"),
        ('{"module_reasons": {"m": "entry_root"}}', "module_reasons.m"),
        ('{"module_reason_summary": {"entry_root": -1}}', "module_reason_summary.entry_root"),
        ('{"binary_image_analysis": {"backend_ir": {"backend_ir": {"op_count": "9"}}}}', "backend_ir.op_count"),
        ('{"frontend_module_timings": [{"module": "m"}]}', "frontend_module_timings[0].total_s"),
        ('{"frontend_module_timings": [{"total_s": 1}]}', "frontend_module_timings[0] has no string 'module'"),
        ('{"frontend_module_timings": {}}', "frontend_module_timings is not a list"),
        ("[]", "expected a JSON object, found a list"),
        ('"x"', "expected a JSON object, found a str"),
        ("", "empty file"),
        ("{", "truncated JSON"),
        ('{"a": 1} x', "invalid JSON"),
    ],
)
def test_malformed_payload(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "diagnostics.json"
    path.write_text(text)
    assert expected in _error(path)


def test_missing_file(tmp_path: Path) -> None:
    assert "file not found" in _error(tmp_path / "diagnostics.json")


@needs_shared
@pytest.mark.parametrize("fraction", [0.001, 0.25, 0.5, 0.75, 0.999])
def test_truncated_real_payload(tmp_path: Path, fraction: float) -> None:
    data = (MOLT / "real" / "A" / "diagnostics.json").read_bytes()
    path = tmp_path / "diagnostics.json"
    path.write_bytes(data[: int(len(data) * fraction)])
    assert "truncated JSON at byte" in _error(path)


# ---------------------------------------------------------------- properties

_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_BASE = EXAMPLE.read_bytes() if EXAMPLE.is_file() else b'{"total_sec": 1.0, "phase_sec": {"a": 1.0}}'
_edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4)
_json = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=10,
)
_keys = st.sampled_from(["total_sec", "phase_sec", "module_count", "module_reasons", "module_reason_summary",
                         "binary_image_analysis", "frontend_module_timings", "runtime_wasm_build", "data"])


def _check(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "diagnostics.json"
        path.write_bytes(data)
        try:
            assert isinstance(summarize_diagnostics(path), DiagnosticsSummary)
        except CollectorError as exc:
            assert str(path) in str(exc)




@pytest.mark.slow
@_SETTINGS
@given(edits=_edits, cut=st.one_of(st.none(), st.integers(0, len(_BASE))))
def test_mutated_payload_only_raises_collector_error(edits: list[tuple[int, int, int]], cut: int | None) -> None:
    _check(mutate(_BASE, edits)[:cut])


@pytest.mark.slow
@_SETTINGS
@given(doc=st.dictionaries(_keys, _json, max_size=4) | _json)
def test_arbitrary_json_only_raises_collector_error(doc: Any) -> None:
    _check(json.dumps(doc).encode())


@_SETTINGS
@given(data=st.binary(max_size=200))
def test_garbage_only_raises_collector_error(data: bytes) -> None:
    _check(data)


@pytest.mark.slow
@_SETTINGS
@given(cut=st.integers(1, len(_BASE) - 2))
def test_every_cut_reads_as_truncated(cut: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "diagnostics.json"
        path.write_bytes(_BASE[:cut])
        with pytest.raises(CollectorError, match=f"truncated JSON at byte {cut} "):
            summarize_diagnostics(path)


_ROW_VALUES = st.one_of(st.integers(-3, 2**60), st.floats(allow_nan=True, allow_infinity=True), st.booleans(),
                        st.none(), st.text(max_size=3))


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from(["a", "b", "c", 7]), _ROW_VALUES), max_size=6),
       reasons=st.dictionaries(st.sampled_from(["a", "b"]), st.one_of(st.lists(st.sampled_from(["x", 1]), max_size=2), st.text(max_size=2))))
def test_the_bulk_table_check_agrees_with_the_row_by_row_one(rows: list[tuple[Any, Any]], reasons: dict[str, Any]) -> None:
    """The module tables are checked in bulk, row by row only when that fails: both must take
    the same documents, sum the same modules and refuse the same ones."""
    from molt_budget.bounded import MAX_EXACT

    doc = {"module_reasons": reasons, "frontend_module_timings": [{"module": m, "total_s": v} for m, v in rows]}
    ok_rows = all(isinstance(m, str) and not isinstance(v, bool) and isinstance(v, (int, float)) and v == v and v >= 0
                  and v != float("inf") and not (isinstance(v, int) and v > MAX_EXACT) and abs(v) <= 1e300 for m, v in rows)
    ok_reasons = all(isinstance(r, list) and all(isinstance(x, str) for x in r) for r in reasons.values())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.json"
        path.write_text(json.dumps(doc))
        if ok_rows and ok_reasons:
            got = summarize_diagnostics(path)
            want: dict[str, float] = {}
            for m, v in rows:
                want[m] = want.get(m, 0.0) + float(v)
            assert got.module_timings == want and got.module_reasons == reasons
        else:
            with pytest.raises(CollectorError):
                summarize_diagnostics(path)


# ------------------------------------------------- the fast reading and the checked one

def _reading(data: bytes, fast: bool) -> Any:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "diagnostics.json"
        path.write_bytes(data)
        try:
            return summarize_diagnostics(path, fast=fast)
        except CollectorError as exc:
            return ("error", str(exc).replace(str(path), "FILE"))


_EDGES = {
    "envelope": {"schema_version": 1, "command": "build", "data": {"compile_diagnostics": {"total_sec": 2.0}}},
    "envelope without data": {"schema_version": 1, "command": "build", "data": [], "total_sec": 2.0},
    "a schema_version of its own": {"schema_version": 2, "total_sec": 2.0},
    "runtime wasm beside build keys": {"runtime_wasm_build": {}, "total_sec": 1.0},
    "runtime wasm": {"runtime_wasm_build": {"total_sec": 1}},
    "an IR file": {"functions": [{"name": "f", "ops": []}]},
    "null total": {"total_sec": None},
    "null tables": {"total_sec": 1.0, "module_reasons": None},
    "null timings": {"total_sec": 1.0, "frontend_module_timings": None},
    "bool row": {"frontend_module_timings": [{"module": "a", "total_s": True}]},
    "int row": {"frontend_module_timings": [{"module": "a", "total_s": 3}, {"module": "a", "total_s": 1.5}]},
    "float past 2^53 row": {"frontend_module_timings": [{"module": "a", "total_s": 2.0 ** 60}]},
    "int past 2^53 row": {"frontend_module_timings": [{"module": "a", "total_s": 2 ** 60}]},
    "negative row": {"frontend_module_timings": [{"module": "a", "total_s": -1}]},
    "row without module": {"frontend_module_timings": [{"total_s": 1}]},
    "reasons not lists": {"module_reasons": {"a": "core"}},
    "count as float": {"module_count": 3.0},
    "huge count": {"module_count": 10 ** 30},
    "deep backend_ir": {"binary_image_analysis": {"backend_ir": {"backend_ir": {"function_count": 3, "op_count": 9}}}},
    "a list": [1, 2],
}
_RAW_EDGES = {
    "NaN total": b'{"total_sec": NaN}',
    "NaN elsewhere": b'{"total_sec": 1, "other": NaN}',
    "1e400 phase": b'{"phase_sec": {"a": 1e400}}',
    "duplicate key": b'{"total_sec": 1, "total_sec": 2}',
    "huge int unread": b'{"total_sec": 1, "other": 1' + b"0" * 5000 + b"}",
    "huge int read": b'{"module_count": 1' + b"0" * 5000 + b"}",
    "lone surrogate": b'{"total_sec": 1, "other": "\\ud800"}',
    "invalid UTF-8 unread": b'{"total_sec": 1, "other": "\xff"}',
    "trailing garbage": b'{"total_sec": 1} x',
    "deep": b'{"other": ' + b"[" * 5000 + b"]" * 5000 + b', "total_sec": 1}',
    "empty": b"",
}


@pytest.mark.parametrize("name", [*_EDGES, *_RAW_EDGES])
def test_the_fast_reading_gives_what_the_checked_one_gives(name: str) -> None:
    """Same summary or the same error line, on the payloads each reading treats differently inside."""
    data = _RAW_EDGES[name] if name in _RAW_EDGES else json.dumps(_EDGES[name]).encode()
    assert _reading(data, fast=True) == _reading(data, fast=False)


@needs_shared
@pytest.mark.parametrize("source", ["examples/diagnostics_dev_warm.json", "real/A/diagnostics.json", "real/C/diagnostics.json"])
def test_molts_payloads_take_the_fast_reading(source: str) -> None:
    """The speed-up is real on molt's own payloads: they never fall back to the checked reading."""
    from molt_budget.collectors.molt_diagnostics import _fast_sample_fields

    data = (MOLT / source).read_bytes()
    assert _fast_sample_fields(data) is not None
    assert _reading(data, fast=True) == _reading(data, fast=False)


@pytest.mark.slow   # a 150-example sweep reading each document twice
@_SETTINGS
@given(doc=st.dictionaries(_keys, _json, max_size=4) | _json)
def test_the_fast_reading_agrees_on_arbitrary_json(doc: Any) -> None:
    data = json.dumps(doc).encode()
    assert _reading(data, fast=True) == _reading(data, fast=False)


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@pytest.mark.parametrize("data", [
    b"", b'{"a": 1}', "{\"m\": \"caf\u00e9 \u2603 \U0001f600\"}".encode(),
    b"x" * ((1 << 16) - 1) + "\u00e9".encode(),                       # a sequence split across chunks
    b"x" * ((1 << 16) - 2) + "\U0001f600".encode() + b"y" * 10,
    b"\xff", b"ok \xc3", b"\xed\xa0\x80", b"x" * (1 << 17) + b"\x80", b"\xc0\xaf",
])
def test_the_utf8_check_is_bytes_decode_without_the_text(data: bytes) -> None:
    from molt_budget.collectors.molt_diagnostics import _valid_utf8

    assert _valid_utf8(data) == _decodes(data)


@pytest.mark.slow   # a 300-example sweep; the cases above stay in the quick loop
@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), st.text(max_size=20).map(lambda t: t.encode("utf-8", "surrogatepass"))),
                max_size=8), st.integers(0, 3))
def test_the_utf8_check_agrees_with_decode_on_arbitrary_bytes(parts: list[bytes], pad: int) -> None:
    from molt_budget.collectors import molt_diagnostics as md

    data = b"a" * (pad * 21845) + b"".join(parts)                   # some runs cross a 64 kB chunk
    assert md._valid_utf8(data) == _decodes(data)


@needs_shared
def test_lanes_with_the_same_module_table_share_one_decoded_table(tmp_path: Path) -> None:
    """The lanes of one program (cold, warm, a cache hit) enter the same modules: their
    module_reasons bytes are decoded once and shared; another table is decoded on its own,
    and each equals the checked reading."""
    doc = json.loads(EXAMPLE.read_text())
    cold, warm, other = tmp_path / "cold.json", tmp_path / "warm.json", tmp_path / "other.json"
    cold.write_text(json.dumps(doc))
    warm.write_text(json.dumps({**doc, "total_sec": (doc.get("total_sec") or 1.0) / 2}))    # same modules, other times
    module = next(iter(doc["module_reasons"]))
    other.write_text(json.dumps({**doc, "module_reasons": {**doc["module_reasons"], module: ["entry_root", "extra"]}}))
    a, b, c = (summarize_diagnostics(p) for p in (cold, warm, other))
    assert a.module_reasons is b.module_reasons
    assert c.module_reasons is not a.module_reasons and c.module_reasons[module] == ["entry_root", "extra"]
    for path, got in ((cold, a), (warm, b), (other, c)):
        assert got == summarize_diagnostics(path, fast=False)


def _two_pass(data: bytes) -> Any:
    """The reading as a lane's later samples and the old first sample did it: values in one
    pass (the rows skipped), then the rows decoded from their raw slice."""
    from molt_budget.collectors.molt_diagnostics import _read_values, _with_tables

    path = Path("FILE")
    try:
        summary, tables = _read_values(path, data, rows=False)
        return _with_tables(path, data, summary, tables)
    except CollectorError as exc:
        return ("error", str(exc))


_ROWS = {
    "duplicate modules": [{"module": "a", "total_s": 1.0}, {"module": "a", "total_s": 2.5}],
    "a negative time": [{"module": "a", "total_s": -1.0}],
    "a row without a module": [{"total_s": 1.0}],
    "a string time": [{"module": "a", "total_s": "1"}],
    "rows not a list": {"a": 1},
    "null rows": None,
    "an integer time past 2^53": [{"module": "a", "total_s": 2 ** 60}],
    "extra fields": [{"module": "a", "path": "/x.py", "visit_s": 0.1, "lower_s": 0.2, "total_s": 0.3, "timed_out": False}],
}


@pytest.mark.parametrize("rows", list(_ROWS.values()), ids=list(_ROWS))
def test_rows_decoded_with_the_values_read_as_two_passes_do(rows: Any) -> None:
    """The first measured sample decodes its timing rows in its value pass; every table and
    every refusal (with its wording) is the two-pass reading's."""
    data = json.dumps({"total_sec": 1.0, "module_count": 1, "module_reasons": {"a": ["entry_root"]},
                       "frontend_module_timings": rows}).encode()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "FILE"
        path.write_bytes(data)
        try:
            merged: Any = summarize_diagnostics(path)
        except CollectorError as exc:
            merged = ("error", str(exc).replace(str(path), "FILE"))
    assert merged == _two_pass(data)


@needs_shared
@pytest.mark.parametrize("source", ["examples/diagnostics_dev_warm.json", "real/A/diagnostics.json", "real/C/diagnostics.json"])
def test_the_real_payloads_read_the_same_in_one_pass(source: str) -> None:
    """And they take it: the rows come decoded from the value pass, not from a second scan."""
    from molt_budget.collectors.molt_diagnostics import _fast_sample_fields

    data = (MOLT / source).read_bytes()
    found = _fast_sample_fields(data, rows=True)
    assert found is not None and found[1].rows is not None and found[1].timings is None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "FILE"
        path.write_bytes(data)
        assert summarize_diagnostics(path) == _two_pass(data)
