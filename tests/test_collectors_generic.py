"""json_pointer (RFC 6901), regex_stdout and file_bytes, partly against molt's real outputs."""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import MOLT, needs_shared

from molt_budget.collectors.generic import file_bytes, json_pointer, load_json, regex_stdout
from molt_budget.errors import CollectorError, ConfigError

REAL = MOLT / "real"

# RFC 6901 §5's example document, with numbers where the RFC has strings we cannot return
RFC_DOC = {"foo": [10, 20], "": 0, "a/b": 1, "c%d": 2, "e^f": 3, "g|h": 4, "i\\j": 5, 'k"l': 6, " ": 7, "m~n": 8}


def _write(tmp_path: Path, doc: Any, name: str = "doc.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("/foo/0", 10), ("/foo/1", 20), ("/", 0), ("/a~1b", 1), ("/c%d", 2), ("/e^f", 3),
        ("/g|h", 4), ("/i\\j", 5), ('/k"l', 6), ("/ ", 7), ("/m~0n", 8),
    ],
)
def test_rfc6901_examples(tmp_path: Path, pointer: str, expected: float) -> None:
    value = json_pointer(_write(tmp_path, RFC_DOC), pointer)
    assert value == expected and isinstance(value, float)


def test_unescaping_order_and_scalars(tmp_path: Path) -> None:
    path = _write(tmp_path, {"~1": 1, "/": 2, "ok": True, "no": False, "f": 2.5, "nested": [[0, {"x": 9}]]})
    assert json_pointer(path, "/~01") == 1.0  # '~01' is the key '~1', not '/'
    assert json_pointer(path, "/~1") == 2.0
    assert (json_pointer(path, "/ok"), json_pointer(path, "/no")) == (1.0, 0.0)
    assert json_pointer(path, "/f") == 2.5
    assert json_pointer(path, "/nested/0/1/x") == 9.0
    assert json_pointer(_write(tmp_path, 42), "") == 42.0  # '' is the whole document


@needs_shared
def test_pointer_into_real_diagnostics() -> None:
    meta = json.loads((REAL / "A" / "meta.json").read_text())["diagnostics"]
    path = REAL / "A" / "diagnostics.json"
    assert json_pointer(path, "/binary_image_analysis/backend_ir/backend_ir/function_count") == meta[
        "backend_ir_function_count"
    ]
    assert json_pointer(path, "/phase_sec/module_graph") == meta["phase_sec"]["module_graph"]


def test_pointer_reads_gzip(tmp_path: Path) -> None:
    path = tmp_path / "doc.json.gz"
    path.write_bytes(gzip.compress(json.dumps({"a": [1, 2]}).encode()))
    assert json_pointer(path, "/a/1") == 2.0


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("foo", "must be empty or start with '/'"),
        ("/nope", "no key at '/nope'"),
        ("/foo/2", "index 2 out of range"),
        ("/foo/-", "'/foo/-' is not a list index"),
        ("/foo/01", "'/foo/01' is not a list index"),
        ("/foo", "value is a list"),
        ("/s", "value is a str"),
        ("/n", "value is a NoneType"),
        ("/s/x", "cannot descend into str"),
        ("/bad~2", "'~' must be followed by 0 or 1"),
        ("/bad~", "'~' must be followed by 0 or 1"),
    ],
)
def test_pointer_errors_name_file_and_pointer(tmp_path: Path, pointer: str, expected: str) -> None:
    path = _write(tmp_path, {"foo": [1, 2], "s": "x", "n": None})
    with pytest.raises(CollectorError) as info:
        json_pointer(path, pointer)
    assert str(info.value).startswith(f"{path}: JSON pointer {pointer!r}")
    assert expected in str(info.value)


def test_pointer_rejects_non_finite(tmp_path: Path) -> None:
    path = tmp_path / "doc.json"
    path.write_text('{"x": NaN, "y": -Infinity}')
    for pointer in ("/x", "/y"):
        with pytest.raises(CollectorError, match="not finite"):
            json_pointer(path, pointer)


@pytest.mark.parametrize(
    ("content", "expected"), [(b"", "empty file"), (b'{"a": ', "truncated JSON"), (b"\xff{}", "not UTF-8")]
)
def test_pointer_on_bad_files(tmp_path: Path, content: bytes, expected: str) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(content)
    with pytest.raises(CollectorError, match=expected):
        json_pointer(path, "/a")
    with pytest.raises(CollectorError, match="file not found"):
        json_pointer(tmp_path / "missing.json", "/a")


def test_load_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"a": [1, 2}')
    with pytest.raises(CollectorError) as info:
        load_json(path)
    assert str(info.value) == f"{path}: invalid JSON at byte 11 (line 1, column 12): Expecting ',' delimiter"


def test_every_cut_of_tricky_tokens_reads_as_truncated(tmp_path: Path) -> None:
    text = '{"s": "a\\u00e9\\ud83d\\ude00\\n", "n": [-1.5e-3, 0, true, false, null, NaN, -Infinity]}'
    json.loads(text)  # valid as a whole
    path = tmp_path / "doc.json"
    for cut in range(1, len(text)):
        path.write_text(text[:cut])
        with pytest.raises(CollectorError, match=f"truncated JSON at byte {cut} "):
            load_json(path)


# ---------------------------------------------------------------- regex_stdout


@needs_shared
def test_regex_on_real_stderr() -> None:
    meta = json.loads((REAL / "A" / "meta.json").read_text())["diagnostics"]
    text = (REAL / "A" / "stderr.txt").read_text()
    assert regex_stdout(text, r"^- total_sec: ([0-9.]+)$", "A/stderr") == meta["total_sec"]
    assert regex_stdout(text, r"^- phase\.ir_lowering: ([0-9.]+)s", "A/stderr") == meta["phase_sec"]["ir_lowering"]
    assert regex_stdout(text, r"^- modules: (\d+)", "A/stderr") == meta["module_count"]


def test_regex_groups_and_first_match() -> None:
    text = "ops=12\nops=99\nsize 3.5e2 bytes\n"
    assert regex_stdout(text, r"ops=(\d+)", "out") == 12.0  # first match wins
    assert regex_stdout(text, r"\d+\.\d+e\d+", "out") == 350.0  # no group: the whole match
    assert regex_stdout(text, r"^ops=(\d+)$", "out") == 12.0  # ^/$ anchor per line
    assert regex_stdout(text, r"(?:ops=)(?P<n>\d+)", "out") == 12.0  # named group is group 1


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        (r"missing=(\d+)", "no match for regex"),
        (r"ops=(\w+)", "'abc', which is not a number"),
        (r"(nope)?ops", "group 1 did not participate"),
        (r"val=(\w+)", "'nan', which is not finite"),
    ],
)
def test_regex_errors(pattern: str, expected: str) -> None:
    text = "ops=abc\nval=nan\n"
    with pytest.raises(CollectorError) as info:
        regex_stdout(text, pattern, "lane dev: stdout")
    assert str(info.value).startswith("lane dev: stdout: ") and expected in str(info.value)


def test_invalid_regex_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="invalid regex"):
        regex_stdout("x", "(", "out")


# ---------------------------------------------------------------- file_bytes


@needs_shared
def test_file_bytes_of_real_files() -> None:
    meta = json.loads((REAL / "C" / "meta.json").read_text())["ir"]
    assert file_bytes(REAL / "C" / meta["file"]) == meta["gzip_bytes"]  # stored size, not gunzipped
    meta_a = json.loads((REAL / "A" / "meta.json").read_text())
    assert file_bytes(REAL / "A" / "ir.json") == meta_a["ir"]["normalized_bytes"]
    assert file_bytes(REAL / "A" / "stdout.txt") == 0


def test_file_bytes_errors(tmp_path: Path) -> None:
    with pytest.raises(CollectorError, match="file not found") as info:
        file_bytes(tmp_path / "nope")
    assert str(tmp_path / "nope") in str(info.value)
    with pytest.raises(CollectorError, match="not a regular file"):
        file_bytes(tmp_path)
