"""molt `--emit-ir` IR: functions, ops, init modules, bytes (raw and path-normalized).

Why streaming: a 40 MB IR costs several times its size as Python objects, and CI runners
are small. We keep a sliding text window (about one chunk) and decode one function at a
time with the C scanner (`raw_decode`), so peak memory is a few MB and time stays at or
below a plain `json.load`.

Path normalisation (`bytes_normalized`): IR bytes depend on the checkout path (formats.md
§7). A root counts where it starts a path: in JSON strings the character before it must
not continue a path component (so the `src/molt` *inside* `/src/molt/src/molt/stdlib` is
not a second root); in `module_registry.blob`, where paths are concatenated without
separators, a root may not start right where the previous root ended. In both, the
character after a root must end the component. The blob's header ints (digest prefix,
string offsets/lengths) also move with the path and are NOT normalised: between two real
checkouts a few bytes of difference remain.
"""

from __future__ import annotations

import codecs
import contextlib
import gzip
import json
import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterator
from operator import itemgetter
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from molt_budget.bounded import MAX_FILE_BYTES, InputError, open_regular
from molt_budget.collectors.base import Collected, Collector, Command, RunFiles, clear_stale
from molt_budget.collectors.generic import json_cut_short, read_errors
from molt_budget.errors import CollectorError
from molt_budget.structs import Struct, field

if TYPE_CHECKING:
    from molt_budget.collectors.timing import ProcessMeasurement
    from molt_budget.config.model import Kpi, Lane

PLACEHOLDER = "<ROOT>"
INIT_PREFIX = "molt_init_"
_CHUNK_BYTES = 1 << 20          # read size; tests shrink it to hit every boundary
_GZIP_MAGIC = b"\x1f\x8b"

_WS = re.compile(r"[ \t\n\r]*")
_NUMBER_TAIL = re.compile(r"[0-9eE+\-.]*\Z")
_BLOB_SEP = re.compile(r'"blob"\s*:\s*\[\s*-?[0-9]+(\s*,\s*)')
_BLOB_OPEN = re.compile(r'"blob"\s*:\s*\[(\s*)')
_decode = json.JSONDecoder().raw_decode
_get_kind = itemgetter("kind")


RUNTIME_MODULE = "(runtime)"      # functions of no module: molt_main, molt_host_init, ...
IMPORT_CALL = "molt_importlib_import_transaction"   # molt: the builtin an `import` statement lowers to
_IMPORT_MARKERS = ('"module_import"', IMPORT_CALL)
_MODULE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")


class ModuleStats(Struct):
    """What one compiled module puts into the IR (attribution without diagnostics)."""

    ops: int = 0
    functions: int = 0
    bytes: int = 0
    bytes_normalized: int = 0
    file: str = ""                   # its source file's name (`hello.py`), for "via import x (hello.py:1)"

    def to_dict(self) -> dict[str, Any]:
        return {"ops": self.ops, "functions": self.functions, "bytes": self.bytes,
                "bytes_normalized": self.bytes_normalized, "file": self.file}


class IrSummary(Struct):
    functions: int
    ops: int
    init_modules: int
    bytes: int
    bytes_normalized: int
    op_kinds: dict[str, int] = field(default_factory=dict)
    function_ops: dict[str, int] = field(default_factory=dict)   # name -> op count, for diffs
    init_module_names: list[str] = field(default_factory=list)   # e.g. ["hello", "sys"]
    root_occurrences: int = 0        # roots replaced in JSON strings
    blob_root_occurrences: int = 0   # roots replaced in module_registry.blob
    modules: dict[str, ModuleStats] = field(default_factory=dict)   # dotted module name -> its share of the IR
    imports: list[tuple[str, str, int | None]] = field(default_factory=list)  # (importer, imported, source line)
    entry: str | None = None         # the module molt runs as __main__, when the IR says so

    @property
    def mb(self) -> float:
        """The seed's "IR size (MB)", from the path-normalised bytes: the same commit reads the
        same size in any checkout (the raw size is `raw_mb`)."""
        return round(self.bytes_normalized / 1e6, 3)

    @property
    def raw_mb(self) -> float:
        return round(self.bytes / 1e6, 3)


def _continues_component(ch: str) -> bool:
    return ch.isalnum() or ch in "_.-"


class _Root(Struct, frozen=True):
    text_forms: tuple[str, ...]   # as the root appears inside JSON strings
    raw: bytes                    # as it appears in the blob


def _prepare_roots(normalize_roots: list[str] | tuple[str, ...]) -> list[_Root]:
    roots = []
    for root in normalize_roots:
        root = str(root)
        if len(root) > 1:
            root = root.rstrip("/") or "/"
        if root in ("", "/"):
            continue  # would replace every '/', which normalises nothing useful
        forms = dict.fromkeys([json.dumps(root)[1:-1], json.dumps(root, ensure_ascii=False)[1:-1]])
        roots.append(_Root(tuple(forms), root.encode("utf-8")))
    roots.sort(key=lambda r: len(r.raw), reverse=True)  # longest first, like sequential replace
    return roots


def _free(taken: list[tuple[int, int]], start: int, end: int) -> bool:
    i = bisect_left(taken, (start, start))
    if i < len(taken) and taken[i][0] < end:
        return False
    return not (i > 0 and taken[i - 1][1] > start)


def _string_hits(buf: str, start: int, end: int, roots: list[_Root]) -> tuple[int, int]:
    """(occurrences, bytes saved) for roots inside JSON text buf[start:end]."""
    taken: list[tuple[int, int]] = []
    saved = 0
    for root in roots:
        for form in root.text_forms:
            i = buf.find(form, start, end)
            while i != -1:
                j = i + len(form)
                if _text_boundary(buf, i, j) and _free(taken, i, j):
                    taken.insert(bisect_left(taken, (i, j)), (i, j))
                    saved += len(form.encode("utf-8")) - len(PLACEHOLDER)
                    i = buf.find(form, j, end)
                else:
                    i = buf.find(form, i + 1, end)
    return len(taken), saved


def _text_boundary(buf: str, i: int, j: int) -> bool:
    if j < len(buf) and _continues_component(buf[j]):
        return False
    if i == 0 or not _continues_component(buf[i - 1]):
        return True
    # an escape (\n, \t, ... or \uXXXX) right before the root ends the previous component
    return (i >= 2 and buf[i - 2] == "\\" and buf[i - 1] in "bfnrt") or (i >= 6 and buf[i - 6 : i - 4] == "\\u")


def _blob_delta(blob: bytes, sep_len: int, roots: list[_Root]) -> tuple[int, int]:
    """(occurrences, rendered-size change) of replacing roots by PLACEHOLDER in an int list."""
    placeholder = PLACEHOLDER.encode()
    taken: list[tuple[int, int]] = []
    ends: set[int] = set()
    delta = 0
    for root in roots:
        needle = root.raw
        i = blob.find(needle)
        while i != -1:
            j = i + len(needle)
            right_ok = j >= len(blob) or not _continues_component(chr(blob[j]))
            if right_ok and i not in ends and _free(taken, i, j):
                taken.insert(bisect_left(taken, (i, j)), (i, j))
                ends.add(j)
                delta += _digits(placeholder) - _digits(needle)
                delta += (len(placeholder) - len(needle)) * sep_len
                i = blob.find(needle, j)
            else:
                i = blob.find(needle, i + 1)
    return len(taken), delta


_DIGITS = [len(str(v)) for v in range(256)]


def _digits(data: bytes) -> int:
    return sum(_DIGITS[b] for b in data)


class _Window:
    """Sliding UTF-8 text window over a binary stream; positions are indexes into `buf`."""

    def __init__(self, stream: IO[bytes], path: Path) -> None:
        self.stream = stream
        self.path = path
        self.decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self.buf = ""
        self.pos = 0
        self.eof = False
        self.nbytes = 0          # raw bytes read so far
        self.base_bytes = 0      # bytes / lines discarded before buf[0]
        self.base_lines = 0
        self.buf_ascii = True
        self._counted = (0, 0)   # (pos, newlines in buf before pos): line() counts on from the last call

    def more(self) -> bool:
        """Drop consumed text and append at least a chunk (doubling, so re-parses stay O(n))."""
        if self.eof:
            return False
        want = max(_CHUNK_BYTES, len(self.buf) - self.pos)
        data = self.stream.read(want)
        pending = len(self.decoder.getstate()[0])
        try:
            text = self.decoder.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            at = self.nbytes - pending + exc.start
            line = self.base_lines + self.buf.count("\n") + data[: max(0, exc.start - pending)].count(b"\n") + 1
            raise CollectorError(self.path, f"not UTF-8: {exc.reason} at byte {at}", line) from None
        self.nbytes += len(data)
        if self.nbytes > MAX_FILE_BYTES:
            raise CollectorError(self.path, f"more than {MAX_FILE_BYTES >> 20} MiB of IR (after gunzip): not read further",
                                 self.line(len(self.buf)))
        if not data:
            self.eof = True
        if self.pos:
            self.base_lines += self.buf.count("\n", 0, self.pos)
            self.base_bytes += self.pos if self.buf_ascii else len(self.buf[: self.pos].encode())
            self.buf = self.buf[self.pos :]
            self.pos = 0
            self._counted = (0, 0)
            if not self.buf_ascii:
                self.buf_ascii = self.buf.isascii()
        self.buf_ascii = self.buf_ascii and text.isascii()
        self.buf += text
        return bool(data) or bool(text)

    def line(self, pos: int) -> int:
        """1-based line of `pos`. Called for every function in order: counting from the last
        position asked keeps a file's line numbers O(n), not O(functions x window)."""
        last, lines = self._counted if pos >= self._counted[0] else (0, 0)
        lines += self.buf.count("\n", last, pos)
        self._counted = (pos, lines)
        return self.base_lines + lines + 1

    def where(self, pos: int) -> str:
        line = self.base_lines + self.buf.count("\n", 0, pos) + 1
        nbytes = self.base_bytes + (pos if self.buf_ascii else len(self.buf[:pos].encode()))
        return f"byte {nbytes} (line {line})"

    def truncated(self) -> CollectorError:
        return CollectorError(self.path, f"truncated JSON at {self.where(len(self.buf))}")

    def peek(self) -> str:
        """Next non-whitespace character, '' at end of file."""
        while True:
            blank = _WS.match(self.buf, self.pos)
            assert blank is not None              # `[ ...]*` matches the empty string anywhere
            self.pos = blank.end()
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self.more():
                return ""

    def expect(self, chars: str, context: str) -> str:
        ch = self.peek()
        if ch == "":
            raise self.truncated()
        if ch not in chars:
            wanted = " or ".join(repr(c) for c in chars)
            raise CollectorError(self.path, f"expected {wanted} {context} at {self.where(self.pos)}, found {ch!r}")
        self.pos += 1
        return ch

    def value(self) -> tuple[Any, int, int]:
        """Decode one JSON value at the cursor; (obj, start, end) valid until the next more()."""
        if self.peek() == "":
            raise self.truncated()
        while True:
            # more() moves the buffer, so after it we always decode again: positions from a
            # failed or cut decode must not outlive it.
            try:
                obj, end = _decode(self.buf, self.pos)
            except json.JSONDecodeError as exc:
                if not json_cut_short(self.buf, exc):  # more text cannot fix an earlier error
                    raise CollectorError(self.path, f"invalid JSON at {self.where(exc.pos)}: {exc.msg}") from None
                if self.eof:
                    raise self.truncated() from None
                self.more()
                continue
            except RecursionError:
                raise CollectorError(self.path, f"JSON nested too deeply at {self.where(self.pos)}") from None
            except ValueError as exc:  # e.g. an int beyond sys.get_int_max_str_digits()
                raise CollectorError(self.path, f"invalid JSON at {self.where(self.pos)}: {exc}") from None
            if isinstance(obj, (int, float)) and not self.eof and _NUMBER_TAIL.match(self.buf, end):
                self.more()  # a number cut by the window edge ("12" of "123", "1" of "1e5")
                continue
            start, self.pos = self.pos, end
            return obj, start, end


class _Summarizer:
    def __init__(self, window: _Window, roots: list[_Root]) -> None:
        self.w = window
        self.roots = roots
        self.functions = 0
        self.ops = 0
        self.kinds: Counter[str] = Counter()
        self.function_ops: dict[str, int] = {}
        self.init_names: list[str] = []
        self.root_hits = 0
        self.saved = 0
        self.blob_hits = 0
        self.blob_delta = 0
        # per function: (name, ops, bytes, bytes saved by normalisation, source_file)
        self.fn_records: list[tuple[str, int, int, int, str | None]] = []
        self.init_files: dict[str, str | None] = {}          # init symbol -> its source_file
        self.entry_sym: str | None = None
        self.fn_imports: list[tuple[str, str | None, str, int | None]] = []  # (function, file, imported, line)

    def count_roots(self, start: int, end: int) -> int:
        """Roots in buf[start:end]; returns the bytes their replacement saves."""
        if not self.roots:
            return 0
        hits, saved = _string_hits(self.w.buf, start, end, self.roots)
        self.root_hits += hits
        self.saved += saved
        return saved

    def run(self) -> IrSummary:
        w = self.w
        first = w.peek()
        if first == "":
            raise CollectorError(w.path, "empty file", 1)
        if first != "{":
            raise CollectorError(w.path, f"expected a JSON object at the top level, found {first!r}", w.line(w.pos))
        w.pos += 1
        seen: set[str] = set()
        if w.peek() == "}":
            w.pos += 1
        else:
            while True:
                if w.peek() != '"':
                    w.expect('"', "(an object key)")
                key, start, end = w.value()
                self.count_roots(start, end)
                if key in seen:
                    raise CollectorError(w.path, f"duplicate top-level key {key!r}", w.line(start))
                seen.add(key)
                w.expect(":", f"after key {key!r}")
                if key == "functions":
                    self.read_functions()
                else:
                    obj, start, end = w.value()
                    self.count_roots(start, end)
                    if key == "module_registry":
                        self.read_registry(obj, start, end)
                if w.expect(",}", f"after the value of {key!r}") == "}":
                    break
        if w.peek() != "":
            raise CollectorError(w.path, f"extra data after the top-level object at {w.where(w.pos)}")
        bad = [k for k in self.kinds if type(k) is not str]
        if bad:
            raise CollectorError(w.path, f"an op 'kind' is not a string: {bad[0]!r}", w.line(w.pos))
        if "functions" not in seen:
            raise CollectorError(w.path, "no 'functions' key: not a molt --emit-ir file", w.line(w.pos))
        return IrSummary(
            functions=self.functions,
            ops=self.ops,
            init_modules=len(self.init_names),
            bytes=w.nbytes,
            bytes_normalized=w.nbytes - self.saved + self.blob_delta,
            op_kinds=dict(self.kinds.most_common()),
            function_ops=self.function_ops,
            init_module_names=self.init_names,
            root_occurrences=self.root_hits,
            blob_root_occurrences=self.blob_hits,
            **self.attribution(),
        )

    def attribution(self) -> dict[str, Any]:
        """Functions grouped by module. A function belongs to the module whose `molt_init_*`
        shares its source_file; where a file holds several modules (or none is given), to the
        longest init symbol its name starts with (`os__fspath` -> `os`), else to the runtime."""
        names = {sym: _module_name(sym, path) for sym, path in self.init_files.items()}
        by_file: dict[str, list[str]] = {}
        for init_sym, init_path in self.init_files.items():
            if init_path:
                by_file.setdefault(init_path, []).append(init_sym)
        modules: dict[str, ModuleStats] = {}
        owner_of: dict[str, str] = {}
        for name, ops, nbytes, saved, path in self.fn_records:
            syms = by_file.get(path or "", [])
            sym = syms[0] if len(syms) == 1 else _symbol_prefix(name, names)
            module = names.get(sym, RUNTIME_MODULE) if sym else RUNTIME_MODULE
            owner_of[name] = module
            stats = modules.setdefault(module, ModuleStats(file=Path(self.init_files.get(sym or "") or path or "").name))
            stats.ops += ops
            stats.functions += 1
            stats.bytes += nbytes
            stats.bytes_normalized += nbytes - saved
        imports = [(owner_of.get(fn, RUNTIME_MODULE), imported, line) for fn, _path, imported, line in self.fn_imports]
        entry = names.get(self.entry_sym) if self.entry_sym else None
        return {"modules": modules, "imports": list(dict.fromkeys(imports)), "entry": entry}

    def read_functions(self) -> None:
        w = self.w
        ch = w.peek()
        if ch != "[":
            obj, start, _ = w.value()
            raise CollectorError(w.path, f"'functions' is a {type(obj).__name__}, expected a list", w.line(start))
        w.pos += 1
        if w.peek() == "]":
            w.pos += 1
            return
        while True:
            fn, start, end = w.value()
            saved = self.count_roots(start, end)
            self.add_function(fn, start)
            self.record_function(fn, start, end, saved)
            if w.expect(",]", f"after functions[{self.functions - 1}]") == "]":
                return

    def record_function(self, fn: dict[str, Any], start: int, end: int, saved: int) -> None:
        buf = self.w.buf
        nbytes = end - start if self.w.buf_ascii else len(buf[start:end].encode("utf-8"))
        path = fn.get("source_file")
        path = path if isinstance(path, str) else None
        name = fn["name"]
        self.fn_records.append((name, len(fn["ops"]), nbytes, saved, path))
        if name.startswith(INIT_PREFIX):
            self.init_files.setdefault(name[len(INIT_PREFIX):], path)
            if self.entry_sym is None and buf.find('"__main__"', start, end) != -1 and _caches_as_main(fn["ops"]):
                self.entry_sym = name[len(INIT_PREFIX):]
        if any(buf.find(marker, start, end) != -1 for marker in _IMPORT_MARKERS):   # C speed: most functions import nothing
            for imported, line in import_sites(fn["ops"]):
                self.fn_imports.append((name, path, imported, line))

    def add_function(self, fn: Any, start: int = 0) -> None:
        index = self.functions
        line = self.w.line(start)
        if not isinstance(fn, dict):
            raise CollectorError(self.w.path, f"functions[{index}] is a {type(fn).__name__}, expected an object", line)
        name = fn.get("name")
        ops = fn.get("ops")
        if not isinstance(name, str):
            raise CollectorError(self.w.path, f"functions[{index}] has no string 'name'", line)
        if not isinstance(ops, list):
            raise CollectorError(self.w.path, f"functions[{index}] ({name}) has no 'ops' list", line)
        known = len(self.kinds)
        try:
            self.kinds.update(map(_get_kind, ops))  # C fast path; new kinds (rare) are checked here
        except (KeyError, TypeError):
            self.explain_bad_op(index, name, ops, line)
        if len(self.kinds) > known:
            bad = next((k for k in list(self.kinds)[known:] if type(k) is not str), None)
            if bad is not None:
                raise CollectorError(self.w.path, f"functions[{index}] ({name}): an op 'kind' is not a string: {bad!r}", line)
        self.functions += 1
        self.ops += len(ops)
        self.function_ops[name] = self.function_ops.get(name, 0) + len(ops)  # duplicates add up
        if name.startswith(INIT_PREFIX):
            self.init_names.append(name[len(INIT_PREFIX) :])

    def explain_bad_op(self, index: int, name: str, ops: list[Any], line: int | None = None) -> None:
        for k, op in enumerate(ops):
            where = f"functions[{index}] ({name}).ops[{k}]"
            if not isinstance(op, dict) or "kind" not in op:
                raise CollectorError(self.w.path, f"{where} has no 'kind'", line)
            if not isinstance(op["kind"], str):
                raise CollectorError(self.w.path, f"{where}: 'kind' is a {type(op['kind']).__name__}, expected a string", line)
        raise CollectorError(self.w.path, f"functions[{index}] ({name}): malformed ops", line)

    def read_registry(self, registry: Any, start: int, end: int) -> None:
        if not self.roots or not isinstance(registry, dict):
            return
        blob = registry.get("blob")
        if not isinstance(blob, list) or not blob:
            return
        if not all(type(v) is int and 0 <= v <= 255 for v in blob):
            return  # not a byte list: leave it un-normalised rather than guess
        self.blob_hits, self.blob_delta = _blob_delta(bytes(blob), self.blob_separator(start, end), self.roots)

    def blob_separator(self, start: int, end: int) -> int:
        """Length of ',<newline><indent>' between blob ints, measured so any indent works."""
        m = _BLOB_SEP.search(self.w.buf, start, end)
        if m:
            return len(m.group(1))
        m = _BLOB_OPEN.search(self.w.buf, start, end)
        return 1 + len(m.group(1)) if m else len(",\n      ")


def import_sites(ops: list[Any]) -> list[tuple[str, int | None]]:
    """(imported module, source line) of each import statement in a function's ops.

    Feature-detected: an op `module_import` carrying the name (the demo's lowering), or molt's
    `molt_importlib_import_transaction` call, whose module name is the first plain string
    constant since the statement's `line` marker.
    """
    sites: list[tuple[str, int | None]] = []
    candidate: tuple[str, int | None] | None = None
    for op in ops:
        if not isinstance(op, dict):
            continue
        kind = op.get("kind")
        text = op.get("s_value")
        line = op.get("source_line") if isinstance(op.get("source_line"), int) else None
        if kind == "line":
            candidate = None
        elif kind == "module_import" and isinstance(text, str) and _MODULE_NAME.match(text):
            sites.append((text, line))
        elif kind == "const_str" and candidate is None and isinstance(text, str) and _MODULE_NAME.match(text) \
                and not text.startswith(("__", "molt_")):
            candidate = (text, line)
        elif text == IMPORT_CALL or op.get("builtin_name") == IMPORT_CALL:
            if candidate is not None:
                sites.append(candidate)
            candidate = None
    return sites


def _caches_as_main(ops: list[Any]) -> bool:
    """molt's entry init stores its module in the module cache under `__main__` as well."""
    main_vars = {op.get("out") for op in ops if isinstance(op, dict) and op.get("kind") == "const_str" and op.get("s_value") == "__main__"}
    return any(isinstance(op, dict) and op.get("kind") == "module_cache_set" and (op.get("args") or [None])[0] in main_vars
               for op in ops)


def _sanitize(dotted: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", dotted)


def _module_name(sym: str, path: str | None) -> str:
    """`importlib__bootstrap` + `.../importlib/_bootstrap.py` -> `importlib._bootstrap`: the dotted
    name whose sanitised form is the init symbol, read off the source path; else the symbol."""
    if path:
        parts = [p for p in path.replace("\\", "/").split("/") if p]
        if parts:
            stem = parts[-1].split(".")[0]
            parts = parts[:-1] if stem == "__init__" else parts[:-1] + [stem]
            for k in range(1, min(len(parts), 6) + 1):
                dotted = ".".join(parts[-k:])
                if _sanitize(dotted) == sym:
                    return dotted
    return sym


def _symbol_prefix(function: str, names: dict[str, str]) -> str | None:
    """The longest init symbol `function` is named under (`sym__...` or `molt_init_sym`)."""
    if function.startswith(INIT_PREFIX) and function[len(INIT_PREFIX):] in names:
        return function[len(INIT_PREFIX):]
    best = None
    at = function.find("__", 1)
    while at != -1:
        if function[:at] in names:
            best = function[:at]
        at = function.find("__", at + 1)
    return best


@contextlib.contextmanager
def _open_stream(path: Path) -> Iterator[IO[bytes]]:
    """gzip is detected by magic bytes, not the suffix: real/C ships `ir.json.gz`."""
    try:
        opened = open_regular(path)          # a FIFO or device at the IR path: refused, never waited on
    except InputError as exc:
        raise CollectorError(path, exc.message) from None
    with opened as raw:
        magic = raw.read(2)
        raw.seek(0)
        if magic == _GZIP_MAGIC:
            with gzip.GzipFile(fileobj=raw, mode="rb") as gz:
                yield gz  # type: ignore[misc]  # a GzipFile is a binary stream (typeshed types it as BufferedIOBase)
        else:
            yield raw


def summarize_ir(path: Path, normalize_roots: list[str] | tuple[str, ...] = ()) -> IrSummary:
    """Raises molt_budget.errors.CollectorError naming the file when missing/truncated/malformed."""
    path = Path(path)
    roots = _prepare_roots(normalize_roots)
    with read_errors(path):
        with _open_stream(path) as stream:
            return _Summarizer(_Window(stream, path), roots).run()


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


class IrCollector(Collector):
    """`ir.*`: the IR file molt writes with `--emit-ir` (the lane's `emit_ir` path)."""

    name = "molt IR"

    def applies(self, lane: Lane, kpis: list[Kpi]) -> bool:
        return lane.emit_ir is not None

    def prepare(self, kind: str, command: Command, env: dict[str, str], files: RunFiles) -> Command:
        if files.ir_path is not None:
            clear_stale(files.ir_path, "IR (emit_ir)")
        return command

    def collect(self, outcome: ProcessMeasurement, files: RunFiles, metrics: frozenset[str], detail: bool = False) -> Collected:
        assert files.ir_path is not None, "applies() holds only for a lane with emit_ir"
        values, ir_detail = ir_metrics(summarize_ir(files.ir_path, files.normalize_roots))
        return Collected(values, (lambda: {"ir": ir_detail}) if detail else None)
