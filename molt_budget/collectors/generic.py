"""Generic collectors for lanes that are not molt: a JSON value, a number in stdout, a file size.

Also home of `load_json`, the one place that turns "the file is not what we expected"
into a CollectorError for the small JSON documents (diagnostics, compile_progress).
"""

from __future__ import annotations

import json
import math
import os
import re
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from molt_budget.bounded import (
    MAX_FILE_BYTES,
    MAX_SMALL_BYTES,
    InputError,
    ReusedBuffer,
    check_number,
    parse_json,
    read_regular,
    safe_regex,
)
from molt_budget.collectors.base import Collected, Collector, RunFiles
from molt_budget.errors import CollectorError, ConfigError

if TYPE_CHECKING:
    from molt_budget.collectors.timing import ProcessMeasurement

GZIP_MAGIC = b"\x1f\x8b"


@contextmanager
def read_errors(path: Path | str) -> Iterator[None]:
    """The one place a failed read becomes a CollectorError naming the file."""
    try:
        yield
    except FileNotFoundError:
        raise CollectorError(path, "file not found") from None
    except IsADirectoryError:
        raise CollectorError(path, "is a directory, expected a file") from None
    except EOFError:
        raise CollectorError(path, "truncated gzip stream") from None
    except (OSError, zlib.error) as exc:  # gzip.BadGzipFile is an OSError
        raise CollectorError(path, f"cannot read: {exc}") from None


def read_bytes(path: Path | str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """Whole regular file, gunzipped when it starts with the gzip magic (real/C ships `ir.json.gz`).

    Bounded (molt_budget.bounded): a FIFO or device is refused without blocking, a file or
    gzip stream past `max_bytes` is refused.
    """
    with _bounded_read_errors(path):
        return read_regular(path, max_bytes)


def read_bytes_reused(buffer: ReusedBuffer, path: Path | str, max_bytes: int = MAX_FILE_BYTES) -> bytes | bytearray:
    """read_bytes into `buffer`: valid until its next read (see bounded.ReusedBuffer)."""
    with _bounded_read_errors(path):
        return buffer.read(path, max_bytes)


@contextmanager
def _bounded_read_errors(path: Path | str) -> Iterator[None]:
    with read_errors(path):
        try:
            yield
        except InputError as exc:
            raise CollectorError(path, exc.message) from None


_LITERALS = ("true", "false", "null", "NaN", "Infinity", "-Infinity")
_NUMBER_CHARS = re.compile(r"[0-9eE+\-.]+")
_CUT_ESCAPE = re.compile(r"u[0-9a-fA-F]{0,4}")  # CPython also flags a complete \uXXXX at the very end


def json_cut_short(text: str, exc: json.JSONDecodeError) -> bool:
    """True when the parse failed only because the text ended (a cut file, not a bad one)."""
    tail = text[exc.pos :].rstrip()
    if not tail or exc.msg.startswith("Unterminated string"):
        return True
    if exc.msg.startswith("Invalid \\uXXXX escape"):
        return _CUT_ESCAPE.fullmatch(tail) is not None
    return _NUMBER_CHARS.fullmatch(tail) is not None or any(lit.startswith(tail) for lit in _LITERALS)


def describe_json_error(text: str, exc: json.JSONDecodeError) -> str:
    """One line, with the byte offset (what `cmp`/`dd` use) and the line."""
    if json_cut_short(text, exc):
        nbytes = len(text.encode("utf-8", "surrogatepass"))
        return f"truncated JSON at byte {nbytes} (line {text.count(chr(10)) + 1})"
    byte = len(text[: exc.pos].encode("utf-8", "surrogatepass"))
    return f"invalid JSON at byte {byte} (line {exc.lineno}, column {exc.colno}): {exc.msg}"


def load_json(path: Path | str) -> Any:
    """Parse a small JSON document; every failure mode becomes a CollectorError naming the file."""
    return load_json_text(path)[0]


def load_json_text(path: Path | str, fields_checked: bool = False) -> tuple[Any, str]:
    """`load_json`, with the text (to point a later error at its line with `bounded.locate`).

    Numbers are range-checked as they are parsed (no NaN/Infinity, nothing that overflows a
    float), nesting is bounded: an absurd payload is a clear error, never an OverflowError.
    `fields_checked`: the caller checks every field it takes (see bounded.parse_json).
    """
    return json_from_bytes(path, read_bytes(path, MAX_SMALL_BYTES), fields_checked)


def json_from_bytes(path: Path | str, data: bytes | bytearray, fields_checked: bool = False) -> tuple[Any, str]:
    """`load_json_text` of bytes already read (a reader that tried a faster parse first)."""
    if not data.strip():
        raise CollectorError(path, "empty file", 1)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise CollectorError(path, f"not UTF-8: invalid byte at offset {exc.start}", line) from None
    try:
        return parse_json(text, non_finite=True, fields_checked=fields_checked), text       # each field check names a NaN's key
    except json.JSONDecodeError as exc:
        raise CollectorError(path, describe_json_error(text, exc)) from None
    except InputError as exc:
        raise CollectorError(path, exc.message, exc.line or 1) from None
    except ValueError as exc:  # e.g. an integer longer than sys.get_int_max_str_digits()
        raise CollectorError(path, f"invalid JSON: {exc}", 1) from None


def _pointer_tokens(path: Path | str, pointer: str) -> list[str]:
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise CollectorError(path, f"JSON pointer {pointer!r} must be empty or start with '/'")
    tokens = []
    for raw in pointer[1:].split("/"):
        if re.search(r"~(?![01])", raw):
            raise CollectorError(path, f"JSON pointer {pointer!r}: '~' must be followed by 0 or 1")
        tokens.append(raw.replace("~1", "/").replace("~0", "~"))  # RFC 6901 order: ~1 first
    return tokens


def json_pointer(path: Path | str, pointer: str) -> float:
    """RFC 6901 lookup; the target must be a finite number or a bool (a budget needs a number)."""
    node: Any = load_json(path)
    walked = ""
    for token in _pointer_tokens(path, pointer):
        walked += "/" + token.replace("~", "~0").replace("/", "~1")
        if isinstance(node, dict):
            if token not in node:
                raise CollectorError(path, f"JSON pointer {pointer!r}: no key at {walked!r}")
            node = node[token]
        elif isinstance(node, list):
            if not re.fullmatch(r"0|[1-9][0-9]*", token):
                raise CollectorError(path, f"JSON pointer {pointer!r}: {walked!r} is not a list index")
            index = int(token)
            if index >= len(node):
                raise CollectorError(
                    path, f"JSON pointer {pointer!r}: index {index} out of range (list has {len(node)})"
                )
            node = node[index]
        else:
            raise CollectorError(
                path, f"JSON pointer {pointer!r}: cannot descend into {type(node).__name__} at {walked!r}"
            )
    if isinstance(node, bool):
        return float(node)
    if isinstance(node, (int, float)):
        try:
            return check_number(node, f"JSON pointer {pointer!r}: the value")
        except InputError as exc:
            raise CollectorError(path, exc.message) from None
    raise CollectorError(
        path, f"JSON pointer {pointer!r}: value is a {type(node).__name__}, expected a number or bool"
    )


def regex_stdout(text: str, pattern: str, source_name: str) -> float:
    """First match wins (MULTILINE, so ^/$ anchor per line); group 1 if the pattern has groups."""
    try:
        compiled = safe_regex(pattern)
    except InputError as exc:
        raise ConfigError(f"invalid regex {pattern!r} for {source_name}: {exc.message}") from None
    match = compiled.search(text)
    if match is None:
        raise CollectorError(source_name, f"no match for regex {pattern!r}")
    captured = match.group(1) if compiled.groups else match.group(0)
    if captured is None:
        raise CollectorError(source_name, f"regex {pattern!r} matched but group 1 did not participate")
    try:
        value = float(captured.strip())
    except ValueError:
        raise CollectorError(source_name, f"regex {pattern!r} matched {captured[:80]!r}, which is not a number") from None
    if not math.isfinite(value):
        raise CollectorError(source_name, f"regex {pattern!r} matched {captured[:80]!r}, which is not finite")
    try:
        return check_number(value, f"regex {pattern!r} matched {captured[:80]!r}, which")
    except InputError as exc:
        raise CollectorError(source_name, exc.message) from None


def file_bytes(path: Path | str) -> int:
    """Size on disk as stored (a .gz counts compressed: that is what ships)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise CollectorError(path, "file not found") from None
    except OSError as exc:
        raise CollectorError(path, f"cannot stat: {exc}") from None
    if not os.path.isfile(path):
        raise CollectorError(path, "not a regular file")
    return st.st_size


GENERIC_PREFIXES = ("json:", "regex:", "file_bytes:")


class GenericCollector(Collector):
    """`json:FILE#POINTER`, `regex:STREAM:PATTERN`, `file_bytes:FILE`: lanes that are not molt."""

    name = "generic"

    def collect(self, outcome: ProcessMeasurement, files: RunFiles, metrics: frozenset[str], detail: bool = False) -> Collected:
        values: dict[str, float] = {}
        for metric in sorted(metrics):
            if metric.startswith("json:"):
                file, pointer = metric[len("json:"):].split("#", 1)
                values[metric] = json_pointer(_under(files.cwd, file), pointer)
            elif metric.startswith("regex:"):
                _, stream, pattern = metric.split(":", 2)
                path = files.stdout_path if stream == "stdout" else files.stderr_path
                values[metric] = regex_stdout(_read_text(path), pattern, f"{stream} of the run ({path})")
            elif metric.startswith("file_bytes:"):
                values[metric] = file_bytes(_under(files.cwd, metric[len("file_bytes:"):]))
        return Collected(values)


def _under(cwd: Path, path: str) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else cwd / p


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")
    except OSError as exc:
        raise CollectorError(path, f"cannot read: {exc}") from None
