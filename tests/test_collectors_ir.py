"""summarize_ir against molt's real IR (real/A, real/C) and against a json.load reference."""

from __future__ import annotations

import gzip
import json
import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
from conftest import MOLT, needs_shared
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutation import mutate

from molt_budget.collectors import molt_ir
from molt_budget.collectors.molt_diagnostics import summarize_diagnostics
from molt_budget.collectors.molt_ir import IrSummary, summarize_ir
from molt_budget.errors import CollectorError

ROOT = "/src/molt"  # the checkout path real/ was normalised to
LONG_ROOT = "/home/ci/work/molt-checkout/molt" + "-"  # 24 characters longer
assert len(LONG_ROOT) == len(ROOT) + 24


def _meta(case: str) -> dict[str, Any]:
    return json.loads((MOLT / "real" / case / "meta.json").read_text())


def _ir_path(case: str) -> Path:
    return MOLT / "real" / case / _meta(case)["ir"]["file"]


def _reference(doc: dict[str, Any]) -> tuple[int, int, list[str], dict[str, int]]:
    """The formats.md §2 definitions, straight from json.load."""
    fns = doc["functions"]
    kinds: dict[str, int] = {}
    for fn in fns:
        for op in fn["ops"]:
            kinds[op["kind"]] = kinds.get(op["kind"], 0) + 1
    inits = [f["name"][len("molt_init_"):] for f in fns if f["name"].startswith("molt_init_")]
    return len(fns), sum(len(f["ops"]) for f in fns), inits, kinds


# ---------------------------------------------------------------- real molt output


@needs_shared
@pytest.mark.parametrize("case", ["A", "C"])
def test_real_ir_matches_meta(case: str) -> None:
    meta = _meta(case)["ir"]
    s = summarize_ir(_ir_path(case))
    assert s.functions == meta["function_count"]
    assert s.ops == meta["op_count"]
    assert s.init_modules == meta["molt_init_count"]
    assert ["molt_init_" + n for n in s.init_module_names] == meta["molt_init_functions"]
    assert s.bytes == meta["normalized_bytes"]  # C: uncompressed size of ir.json.gz
    assert s.bytes_normalized == s.bytes  # no roots given: nothing to normalise
    assert sum(s.op_kinds.values()) == s.ops
    assert sum(s.function_ops.values()) == s.ops
    assert len(s.function_ops) == s.functions


@needs_shared
@pytest.mark.parametrize("case", ["A", "C"])
def test_real_counts_cross_check_with_diagnostics(case: str) -> None:
    meta = _meta(case)
    ir = summarize_ir(_ir_path(case))
    diag = summarize_diagnostics(MOLT / "real" / case / meta["diagnostics"]["file"])
    assert ir.functions == diag.functions == meta["diagnostics"]["backend_ir_function_count"]
    assert ir.ops == diag.ops == meta["diagnostics"]["backend_ir_op_count"]
    assert ir.init_modules == diag.module_count == meta["module_count"]
    # init names are sanitized module names: importlib._bootstrap -> molt_init_importlib__bootstrap
    assert sorted(ir.init_module_names) == sorted(re.sub(r"\W", "_", m) for m in diag.module_reasons)


@needs_shared
def test_real_a_op_kinds_match_json_load() -> None:
    doc = json.loads(_ir_path("A").read_text())
    functions, ops, inits, kinds = _reference(doc)
    s = summarize_ir(_ir_path("A"))
    assert (s.functions, s.ops, s.init_module_names, s.op_kinds) == (functions, ops, inits, kinds)
    assert list(s.op_kinds.values()) == sorted(s.op_kinds.values(), reverse=True)


@needs_shared
def test_example_excerpt() -> None:
    path = MOLT / "examples" / "ir_excerpt.json"
    functions, ops, inits, kinds = _reference(json.loads(path.read_text()))
    s = summarize_ir(path)
    assert (s.functions, s.ops, s.init_module_names, s.op_kinds) == (functions, ops, inits, kinds)
    assert s.bytes == path.stat().st_size
    assert s.mb == round(s.bytes / 1e6, 3)


# ---------------------------------------------------------------- path normalisation


def _move_checkout(data: Any, old: str, new: str) -> tuple[Any, int]:
    """Rewrite real/A as if checked out at `new`: only the root of each path moves.

    Every path under the root in A is `<root>/src/molt/...` or `<root>/examples/...`;
    a plain str.replace would also rewrite the `src/molt` package directory inside them.
    """
    pairs = [(old + "/src/molt/", new + "/src/molt/"), (old + "/examples/", new + "/examples/")]
    count = 0
    if isinstance(data, str):
        for a, b in pairs:
            count += data.count(a)
            data = data.replace(a, b)
        return data, count
    if isinstance(data, list):
        out = []
        for item in data:
            item, n = _move_checkout(item, old, new)
            out.append(item)
            count += n
        return out, count
    if isinstance(data, dict):
        result = {}
        for key, value in data.items():
            result[key], n = _move_checkout(value, old, new)
            count += n
        return result, count
    return data, 0


@needs_shared
def test_normalised_bytes_do_not_depend_on_the_checkout_path(tmp_path: Path) -> None:
    original = _ir_path("A").read_bytes()
    doc = json.loads(original)
    assert (json.dumps(doc, indent=2) + "\n").encode() == original  # molt's format, so a rebuild is faithful

    moved, in_strings = _move_checkout(doc, ROOT, LONG_ROOT)  # the blob is ints: untouched here
    blob = bytes(doc["module_registry"]["blob"])
    new_blob, in_blob = _move_checkout(blob.decode("latin-1"), ROOT, LONG_ROOT)
    moved["module_registry"]["blob"] = list(new_blob.encode("latin-1"))
    assert (in_strings, in_blob) == (370, 7)  # formats.md §7: 370 path strings; 7 paths in the blob
    moved_path = tmp_path / "ir.json"
    moved_path.write_text(json.dumps(moved, indent=2) + "\n")

    a = summarize_ir(_ir_path("A"), [ROOT])
    b = summarize_ir(moved_path, [LONG_ROOT])
    assert b.bytes > a.bytes + 370 * 24  # raw bytes moved with the checkout...
    assert b.bytes_normalized == a.bytes_normalized  # ...the normalised ones did not
    assert (a.root_occurrences, a.blob_root_occurrences) == (370, 7)
    assert (b.root_occurrences, b.blob_root_occurrences) == (370, 7)
    assert (b.functions, b.ops, b.init_modules) == (a.functions, a.ops, a.init_modules)


@needs_shared
def test_normalised_bytes_equal_the_rendered_replacement() -> None:
    """bytes_normalized is the size of the file actually rewritten with <ROOT>, blob included."""
    doc = json.loads(_ir_path("A").read_text())
    replaced, _ = _move_checkout(doc, ROOT, "<ROOT>")
    blob = bytes(doc["module_registry"]["blob"]).decode("latin-1")
    replaced["module_registry"]["blob"] = list(_move_checkout(blob, ROOT, "<ROOT>")[0].encode("latin-1"))
    expected = len((json.dumps(replaced, indent=2) + "\n").encode())
    assert summarize_ir(_ir_path("A"), [ROOT]).bytes_normalized == expected


def _write(tmp_path: Path, doc: Any, name: str = "ir.json", **dumps: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc, **dumps) + "\n", encoding="utf-8")
    return path


def _fn(name: str, strings: list[str], kind: str = "const_str") -> dict[str, Any]:
    return {"name": name, "ops": [{"kind": kind, "s_value": s} for s in strings]}


@pytest.mark.parametrize(
    ("text", "hits"),
    [
        ("/src/molt", 1),
        ("/src/molt/src/molt/x.py", 1),     # the package dir inside is not a second root
        ("/src/molten/x.py", 0),            # another directory
        ("/src/molt.py", 0),
        ("/x/src/molt/y", 0),               # not at the start of a path
        ("PYTHONPATH=/src/molt/src", 1),
        ("a\n/src/molt/b", 1),              # after an escape sequence (\n in the JSON text)
        ("\u00e9/src/molt/b", 1),           # after \u00e9
        ("/src/molt/a /src/molt/b", 2),
    ],
)
def test_root_boundaries(tmp_path: Path, text: str, hits: int) -> None:
    path = _write(tmp_path, {"functions": [_fn("f", [text])]}, indent=2)
    s = summarize_ir(path, [ROOT + "/"])  # a trailing slash is ignored
    assert s.root_occurrences == hits
    assert s.bytes - s.bytes_normalized == hits * (len(ROOT) - len("<ROOT>"))


def test_longest_root_wins_and_escaped_forms_count(tmp_path: Path) -> None:
    doc = {"functions": [_fn("f", ["/build/venv/bin/python", "/build/out", "C:\\ci\\molt\\x.py"])]}
    path = _write(tmp_path, doc, indent=2)
    s = summarize_ir(path, ["/build", "/build/venv", "C:\\ci\\molt"])
    assert s.root_occurrences == 3
    saved = (len("/build/venv") - 6) + (len("/build") - 6) + (len("C:\\\\ci\\\\molt") - 6)
    assert s.bytes - s.bytes_normalized == saved


def test_blob_separator_follows_the_file_formatting(tmp_path: Path) -> None:
    blob = list(b"mod/src/molt/a.py")
    for dumps in ({"indent": 2}, {"indent": 4}, {}, {"separators": (",", ":")}):
        doc = {"functions": [], "module_registry": {"blob": blob}}
        s = summarize_ir(_write(tmp_path, doc, **dumps), [ROOT])
        replaced = dict(doc, module_registry={"blob": list(b"mod<ROOT>/a.py")})
        expected = len(json.dumps(replaced, **dumps)) + 1
        assert (s.blob_root_occurrences, s.bytes_normalized) == (1, expected), dumps


def test_non_byte_blob_is_left_alone(tmp_path: Path) -> None:
    path = _write(tmp_path, {"functions": [], "module_registry": {"blob": [1, 300, "x"]}}, indent=2)
    s = summarize_ir(path, [ROOT])
    assert (s.blob_root_occurrences, s.bytes_normalized) == (0, s.bytes)


# ---------------------------------------------------------------- streaming details


def test_gzip_is_transparent(tmp_path: Path) -> None:
    doc = {"functions": [_fn("molt_init_x", ["/src/molt/a"]), _fn("g", [])]}
    plain = _write(tmp_path, doc, indent=2)
    gz = tmp_path / "ir.json.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert summarize_ir(gz, [ROOT]) == summarize_ir(plain, [ROOT])


def test_tiny_chunks_and_multibyte_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = {
        "profile": {"n": 12345678901234567890, "f": -1.5e-300},
        "functions": [_fn("molt_init_ü", ["→ /src/molt/ä", "日本"]), _fn("g", ["x"], kind="cönst")],
        "tail": 1e5,
    }
    path = _write(tmp_path, doc, indent=1, ensure_ascii=False)
    expected = summarize_ir(path, [ROOT])
    for chunk in (1, 2, 3, 7):
        monkeypatch.setattr(molt_ir, "_CHUNK_BYTES", chunk)
        assert summarize_ir(path, [ROOT]) == expected
    assert expected.init_module_names == ["ü"]
    assert expected.op_kinds == {"const_str": 2, "cönst": 1}
    assert expected.bytes == len(path.read_bytes())
    assert expected.root_occurrences == 1


def test_duplicate_function_names_add_up(tmp_path: Path) -> None:
    path = _write(tmp_path, {"functions": [_fn("f", ["a"]), _fn("f", ["b", "c"])]})
    s = summarize_ir(path)
    assert (s.functions, s.function_ops) == (2, {"f": 3})


def test_unknown_top_level_keys_are_ignored(tmp_path: Path) -> None:
    doc = {"profile": {"hot_functions": ["f"]}, "functions": [_fn("f", ["a"])], "runtime_feedback": None}
    s = summarize_ir(_write(tmp_path, doc, indent=2))
    assert (s.functions, s.ops) == (1, 1)


# ---------------------------------------------------------------- failures


def _error(path: Path, roots: tuple[str, ...] = ()) -> str:
    with pytest.raises(CollectorError) as info:
        summarize_ir(path, roots)
    message = str(info.value)
    assert message.startswith(str(path) + ": ")
    assert "\n" not in message
    return message


@needs_shared
@pytest.mark.parametrize("fraction", [0.0, 0.00001, 0.3, 0.5, 0.9999, "last"])
def test_truncated_real_ir(tmp_path: Path, fraction: float | str) -> None:
    data = _ir_path("A").read_bytes()
    cut = len(data) - 2 if fraction == "last" else int(len(data) * float(fraction))  # "last": drop '}\n'
    path = tmp_path / "ir.json"
    path.write_bytes(data[:cut])
    message = _error(path, (ROOT,))
    assert ("empty file" if cut == 0 else "truncated JSON at byte") in message


@needs_shared
def test_truncated_gzip(tmp_path: Path) -> None:
    data = _ir_path("C").read_bytes()
    path = tmp_path / "ir.json.gz"
    path.write_bytes(data[: len(data) // 2])
    assert "truncated gzip stream" in _error(path)


@pytest.mark.parametrize("chunk", [1, 4, 1 << 20])
def test_error_position_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, chunk: int) -> None:
    monkeypatch.setattr(molt_ir, "_CHUNK_BYTES", chunk)
    path = tmp_path / "ir.json"
    data = '{\n  "functions": [\n    {"name": "日本", "ops": []},\n    {"name": "f", "ops": [}]\n  ]\n}\n'.encode()
    path.write_bytes(data)
    assert f"invalid JSON at byte {data.index(b'}]')} (line 4)" in _error(path)
    path.write_bytes(data[:60])
    lines = data[:60].count(b"\n") + 1
    assert f"truncated JSON at byte 60 (line {lines})" in _error(path)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"", "empty file"),
        (b"  \n", "empty file"),
        (b"[]", "top level"),
        (b'{"module_registry": {}}', "no 'functions' key"),
        (b'{"functions": {}}', "'functions' is a dict"),
        (b'{"functions": [1]}', "functions[0] is a int"),
        (b'{"functions": [{"ops": []}]}', "functions[0] has no string 'name'"),
        (b'{"functions": [{"name": "f"}]}', "has no 'ops' list"),
        (b'{"functions": [{"name": "f", "ops": [{"k": 1}]}]}', "ops[0] has no 'kind'"),
        (b'{"functions": [{"name": "f", "ops": [{"kind": [1]}]}]}', "'kind' is a list"),
        (b'{"functions": [{"name": "f", "ops": [{"kind": 3}]}]}', "op 'kind' is not a string"),
        (b'{"functions": [], "functions": []}', "duplicate top-level key"),
        (b'{"functions": []} x', "extra data"),
        (b'{"functions": [] "x": 1}', "expected ',' or '}'"),
        (b'{"functions": ["\xff"]}', "not UTF-8"),
        (b'{"functions": ["\xe2\x82', "not UTF-8"),
        (b'{"functions": [' + b"[" * 100000, "nested too deeply"),
        (b"\x1f\x8bnot gzip", "cannot read"),
    ],
)
def test_malformed_ir(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "ir.json"
    path.write_bytes(content)
    assert expected in _error(path)


def test_missing_and_directory(tmp_path: Path) -> None:
    assert "file not found" in _error(tmp_path / "nope.json")
    assert "is a directory" in _error(tmp_path)


# ---------------------------------------------------------------- properties

_text = st.lists(st.sampled_from(list("ab/._- \n\"\\é→") + ["/src/molt", "/src/molt/"]), max_size=12).map("".join)
_ops = st.lists(st.fixed_dictionaries({"kind": st.sampled_from(["const", "call", "line"]), "s_value": _text}), max_size=4)
_functions = st.lists(st.fixed_dictionaries({"name": st.sampled_from(["f", "molt_init_m", "g"]), "ops": _ops}), max_size=5)
_format = st.sampled_from([{"indent": 2}, {}, {"separators": (",", ":")}, {"indent": 0, "ensure_ascii": False}])
_BOUNDARY = r"(?:(?<![A-Za-z0-9_.\-é])|(?<=\\[bfnrt])|(?<=\\u[0-9a-f]{4}))"
_SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.mark.slow
@_SETTINGS
@given(functions=_functions, fmt=_format, chunk=st.sampled_from([1, 5, 64, 1 << 20]))
def test_streaming_equals_json_load(monkeypatch: pytest.MonkeyPatch, functions: list[Any], fmt: dict[str, Any], chunk: int) -> None:
    monkeypatch.setattr(molt_ir, "_CHUNK_BYTES", chunk)
    text = json.dumps({"x": [1.5, "y"], "functions": functions}, **fmt) + "\n"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ir.json"
        path.write_text(text, encoding="utf-8")
        s = summarize_ir(path, [ROOT])
    n_functions, n_ops, inits, kinds = _reference(json.loads(text))
    assert (s.functions, s.ops, s.init_module_names, s.op_kinds) == (n_functions, n_ops, inits, kinds)
    normalized = re.sub(_BOUNDARY + re.escape(ROOT) + r"(?![A-Za-z0-9_.\-é])", "<ROOT>", text)
    assert (s.bytes, s.bytes_normalized) == (len(text.encode()), len(normalized.encode()))




_EXCERPT = (MOLT / "examples" / "ir_excerpt.json").read_bytes() if (MOLT / "examples").is_dir() else b'{"functions": []}'
_edits = st.lists(st.tuples(st.integers(0, 2), st.integers(0, 10**6), st.integers(0, 255)), min_size=1, max_size=4)


@pytest.mark.slow   # a 150-example fuzz sweep of whole IR files
@_SETTINGS
@given(edits=_edits, cut=st.one_of(st.none(), st.integers(0, len(_EXCERPT))), chunk=st.sampled_from([3, 1 << 20]))
def test_mutated_ir_only_raises_collector_error(
    monkeypatch: pytest.MonkeyPatch, edits: list[tuple[int, int, int]], cut: int | None, chunk: int
) -> None:
    monkeypatch.setattr(molt_ir, "_CHUNK_BYTES", chunk)
    data = mutate(_EXCERPT, edits)[:cut]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ir.json"
        path.write_bytes(data)
        try:
            assert isinstance(summarize_ir(path, [ROOT, "/home/runner"]), IrSummary)
        except CollectorError as exc:
            assert str(path) in str(exc)


@_SETTINGS
@given(data=st.binary(max_size=200))
def test_garbage_ir_only_raises_collector_error(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ir.json"
        path.write_bytes(data)
        try:
            summarize_ir(path, [ROOT])
        except CollectorError as exc:
            assert str(path) in str(exc)


@pytest.mark.slow
@_SETTINGS
@given(cut=st.integers(1, len(_EXCERPT) - 2), chunk=st.sampled_from([1, 16, 1 << 20]))
def test_every_cut_reads_as_truncated(monkeypatch: pytest.MonkeyPatch, cut: int, chunk: int) -> None:
    monkeypatch.setattr(molt_ir, "_CHUNK_BYTES", chunk)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ir.json"
        path.write_bytes(_EXCERPT[:cut])  # ends before the closing '}'
        with pytest.raises(CollectorError, match=f"truncated JSON at byte {cut} "):
            summarize_ir(path, [ROOT])
