"""Reading what someone else wrote, within bounds: files, JSON documents and the numbers in them.

Why one module: every collector, the results and report readers and the config loader
take input from a build or a pull request. Each read here is bounded in time (regular files
only: a FIFO at a diagnostics path would block `open()` forever), in size (a gzip bomb, a
40 GB log), in depth (a nested document overflows the parser's stack) and in value (an
integer above 1e308 overflows `float()`, NaN passes a schema and breaks every comparison).
Failures are `InputError`s carrying a message and, where known, a 1-based line; each caller
wraps them into its own error (ConfigError, CollectorError) naming the file.
"""

from __future__ import annotations

import fcntl
import functools
import io
import json
import math
import os
import re
import stat
import threading
import zlib
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 1 << 30         # 1 GiB: molt's largest IR is ~41 MB
MAX_SMALL_BYTES = 64 << 20       # reports, results, diagnostics, budgets files
MAX_DEPTH = 64                   # no molt-budget document nests deeper than ~8
MAX_EXACT = 2 ** 53              # above this a count is not exact as a float (and no build is that big)
MAX_FINITE = 1e300               # a measured value above this is garbage, and squaring it overflows
NAME_MAX = 255                   # bytes in one file or folder name (ext4, xfs, btrfs, tmpfs, APFS)
PATH_MAX = 4096                  # bytes in a path the kernel takes (Linux; one of them ends the string)
MAX_KPIS = 10_000                # rows of a report (a budgets file's 20,000 values hold fewer KPIs): a
                                 # report of 200k forged rows took 40 s and 0.8 GB to render


def unnameable(path: Path, room: int = 0) -> str | None:
    """Why no file system here can name `path` (with `room` bytes of names beneath it), or None.
    Before Python 3.14 every stat of such a path raises (ENAMETOOLONG) where a missing file
    would just be missing, so a name from a budgets file or a flag is asked here first."""
    for part in path.parts:
        if len(os.fsencode(part)) > NAME_MAX:
            return f"a name in it is {len(os.fsencode(part))} bytes long: a file or folder name is at most {NAME_MAX}"
    size = len(os.fsencode(str(path)))
    if size + room >= PATH_MAX:
        beneath = f", and {room} are kept for the run folders beneath it" if room else ""
        return f"the path is {size} bytes long: a path is at most {PATH_MAX - 1}{beneath}"
    return None


class InputError(ValueError):
    """Bad input from outside: `message` says what is wrong, `line` where (1-based) when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.line = line

    def where(self, path: object) -> str:
        """`path:line: message`, or `path: message` when no line is known."""
        return f"{path}:{self.line}: {self.message}" if self.line else f"{path}: {self.message}"


# -- files ---------------------------------------------------------------------------------------


_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def open_regular(path: Path | str) -> io.BufferedReader:
    """Open a regular file for reading without ever blocking on a FIFO or a device.

    O_NONBLOCK makes `open()` of a FIFO return at once; the file type is then checked on the
    open descriptor (no race with a rename), and blocking mode is restored for a plain read.
    Raises OSError as `open()` does (FileNotFoundError, PermissionError) and InputError for
    anything that is not a regular file.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
            raise InputError(f"is {kind}, expected a regular file")
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: Path | str, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The whole regular file, refused past `max_bytes`; gunzipped (within the same cap) when gzip."""
    with open_regular(path) as fh:
        size = _size_within(fh, max_bytes)
        # read(n) allocates n bytes up front: asked for the cap (64 MB for a diagnostics file)
        # every read was a fresh mapping whose pages the kernel faulted in one by one, the
        # most of a check's system time. Exactly the stat's size, then one byte to see growth:
        # read(size + 1) shrinks its buffer by a byte at the end, a realloc that cost 0.8 ms a MB
        data = fh.read(size)
        if len(data) == size:
            data = _grown(fh, data, max_bytes) or data
    return gunzip(data, max_bytes) if _gzipped(data) else data


def _size_within(fh: io.BufferedReader, max_bytes: int) -> int:
    size = os.fstat(fh.fileno()).st_size
    if size > max_bytes:
        raise InputError(f"is {_mb(size)}, more than the {_mb(max_bytes)} molt-budget reads")
    return size


def _grown(fh: io.BufferedReader, data: bytes | bytearray, max_bytes: int) -> bytes | None:
    """None, or, when the file grew while being read, all of it up to the cap."""
    more = fh.read(1)
    if not more:
        return None
    whole = bytes(data) + more + fh.read(max_bytes - len(data))
    if len(whole) > max_bytes:
        raise InputError(f"grew past {_mb(max_bytes)} while being read")
    return whole


def _gzipped(data: bytes | bytearray) -> bool:
    return data[:2] == b"\x1f\x8b"


class ReusedBuffer:
    """One buffer that every read fills again, for files read one after another and dropped
    once decoded (a lane's diagnostics payload, every sample).

    Why: a fresh bytes object of a MB is a fresh mapping whose 256 pages the kernel faults in
    one by one on every read, ~0.5 ms a MB: as much as decoding the payload. What a read
    returns is valid until the next read, which writes over it: nothing may keep it, or a
    zero-copy slice of it such as a msgspec.Raw (one still alive only keeps the buffer from
    being resized: the next read then takes a new one). A file past `keep_bytes`, or a read
    from a thread other than the one that made the buffer, gets a fresh bytes, as
    read_regular's: the buffer kept between reads stays small, and has one reader."""

    def __init__(self, keep_bytes: int = 16 << 20) -> None:
        self.keep_bytes = keep_bytes
        self._buffer = bytearray()
        self._reader = threading.get_ident()

    def read(self, path: Path | str, max_bytes: int = MAX_FILE_BYTES) -> bytes | bytearray:
        """read_regular's bytes (same bounds, same errors), in the buffer when it fits."""
        if threading.get_ident() != self._reader:
            return read_regular(path, max_bytes)
        with open_regular(path) as fh:
            size = _size_within(fh, max_bytes)
            if size > self.keep_bytes:
                data: bytes | bytearray = fh.read(size)
            else:
                buffer = self._sized(size)
                got = fh.readinto(buffer)        # up to the buffer's end or the file's
                data = buffer if got == size else bytes(memoryview(buffer)[:got])   # it shrank meanwhile
            if len(data) == size:
                data = _grown(fh, data, max_bytes) or data
        return gunzip(data, max_bytes) if _gzipped(data) else data

    def _sized(self, size: int) -> bytearray:
        """The buffer, `size` bytes long (the same length as the last file's: untouched)."""
        buffer = self._buffer
        try:
            if len(buffer) > size:
                del buffer[size:]
            elif len(buffer) < size:
                buffer.extend(bytes(size - len(buffer)))
        except BufferError:                      # a slice of the last read is still alive
            buffer = self._buffer = bytearray(size)
        return buffer


def gunzip(data: bytes | bytearray, max_bytes: int) -> bytes:
    """Decompress a gzip stream, refusing one that expands past `max_bytes` (a gzip bomb)."""
    out = bytearray()
    decoder = zlib.decompressobj(wbits=31)
    chunk = data
    while True:
        out += decoder.decompress(chunk, max_bytes + 1 - len(out))
        if len(out) > max_bytes:
            raise InputError(f"gzip data expands past {_mb(max_bytes)}")
        if decoder.eof or not decoder.unconsumed_tail:
            break
        chunk = decoder.unconsumed_tail
    if not decoder.eof:
        raise EOFError("truncated gzip stream")
    return bytes(out)


def _mb(n: int) -> str:
    return f"{n / (1 << 20):,.1f} MiB"


# -- text ----------------------------------------------------------------------------------------


def decode_utf8(data: bytes) -> str:
    """UTF-8 text, or an InputError naming the line of the first bad byte (NUL counts as bad)."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(f"not UTF-8: invalid byte 0x{data[exc.start]:02x} at offset {exc.start}", line) from None
    nul = text.find("\0")
    if nul >= 0:
        raise InputError(f"contains a NUL byte at offset {len(text[:nul].encode())}", text.count("\n", 0, nul) + 1)
    return text


def line_of(text: str, pos: int) -> int:
    return text.count("\n", 0, max(0, pos)) + 1


# -- numbers -------------------------------------------------------------------------------------


def check_number(value: Any, what: str) -> float:
    """A measured number as a float: finite, within ±1e300; ints exact (|n| ≤ 2^53). InputError if not."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} is {type(value).__name__}, expected a number")
    if isinstance(value, int):
        if abs(value) > MAX_EXACT:
            raise InputError(f"{what} is {_short(value)}, out of range (above 2^53, not an exact count)")
        return float(value)
    if not math.isfinite(value):
        raise InputError(f"{what} is {value!r}, not finite")
    if abs(value) > MAX_FINITE:
        raise InputError(f"{what} is {value!r}, out of range")
    return value


def log_ratio(a: float, b: float) -> float:
    """ln(a / b) of two positive measured values; from the two logs when the quotient itself
    leaves the floats (values reach ±MAX_FINITE: 1e300 over 1e-300 is inf, the other way 0)."""
    quotient = a / b
    return math.log(quotient) if 0 < quotient < math.inf else math.log(a) - math.log(b)


def _short(value: int) -> str:
    digits = len(str(abs(value))) if value.bit_length() < 14_000 else int(value.bit_length() * 0.30103) + 1
    return f"an integer of {digits} digits"


# -- regular expressions --------------------------------------------------------------------------


def safe_regex(pattern: str) -> Any:
    """A pattern from a budgets file, compiled with RE2: matching takes linear time, so no
    pattern (`^(a+)+$` included) can hang a check on a long log. MULTILINE: ^/$ anchor per
    line. RE2 has no backreferences or lookarounds: such a pattern is an InputError saying so."""
    import re2  # type: ignore[import-untyped]  # google-re2 ships no type information

    options = re2.Options()
    options.log_errors = False
    try:
        return re2.compile(f"(?m){pattern}", options)
    except re2.error as exc:
        reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        raise InputError(f"{reason} (regex metrics use RE2 syntax: no backreferences or lookarounds)") from None


# -- JSON ----------------------------------------------------------------------------------------


_BARE = re.compile(r"-?Infinity|NaN")


def parse_json(text: str, max_depth: int = MAX_DEPTH, non_finite: bool = False, fields_checked: bool = False,
               text_only: bool = False) -> Any:
    """`json.loads` without NaN/Infinity, non-finite floats (`1e400`), huge integers or deep nesting.

    `non_finite=True` reads NaN, ±Infinity and overflowing floats as the floats they are, for
    a reader that checks each field itself and names the key (the molt collectors).
    `fields_checked=True` (with non_finite) is for a reader that also copies no subtree it did
    not check (the diagnostics reader): the C parser alone, no depth walk, and an integer past
    the interpreter's digit limit read as the float it overflows to (±inf), which the field
    check refuses if the reader takes it and which cannot matter if it does not.
    `text_only=True` refuses a string that is not text (refuse_lone_surrogates), for a
    document whose strings are stored (results, the journal): a reader that only shows
    them (a report) lets report/escape.py show U+FFFD instead.
    Raises InputError with the line where known, and json.JSONDecodeError for bad syntax.
    """
    if text_only:
        refuse_lone_surrogates(text)

    def constant(name: str) -> Any:
        if non_finite:
            return float(name)
        raise InputError(f"{name} is not a number JSON allows", _first_line(text, _BARE, name))

    def number(literal: str) -> float:
        value = float(literal)
        if not non_finite and (not math.isfinite(value) or abs(value) > MAX_FINITE):
            raise InputError(f"number {literal[:40]} is out of range", _literal_line(text, literal))
        return value

    def integer(literal: str) -> int | float:
        if len(literal.lstrip("-")) > 16:
            if len(literal.lstrip("-")) > 300 and not fields_checked:
                raise InputError(f"an integer of {len(literal.lstrip('-'))} digits is out of range", _literal_line(text, literal))
            return number(literal)       # big but finite: a float, range-checked where it is used
        return int(literal)

    if non_finite and fields_checked:
        try:
            # the reader checks every field it takes (type, range, NaN) and copies no subtree it
            # did not check, so neither the number hooks nor the depth walk buy it anything:
            # the C parser alone, 3-4x faster on a 1 MB diagnostics payload. Nesting deeper than
            # the interpreter's stack is still a RecursionError, a huge integer a ValueError.
            return json.loads(text)
        except RecursionError:
            raise InputError(f"nested deeper than {max_depth} levels", deep_line(text, max_depth)) from None
        except json.JSONDecodeError:
            raise
        except ValueError:
            pass                         # an integer past the digit limit: the hooked parse reads it as a float
    try:
        data = json.loads(text, parse_constant=constant, parse_float=number, parse_int=integer)
    except RecursionError:
        raise InputError(f"nested deeper than {max_depth} levels", deep_line(text, max_depth)) from None
    depth = _depth(data, max_depth)
    if depth > max_depth:
        raise InputError(f"nested deeper than {max_depth} levels", deep_line(text, max_depth))
    return data


@functools.cache
def _surrogate_escape() -> re.Pattern[str]:
    """Compiled on first use (0.16 ms): only the readers of stored documents ask for it."""
    return re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def refuse_lone_surrogates(text: str) -> None:
    """JSON lets a string escape half of a UTF-16 pair (`"\\ud800"`); Python reads it as a lone
    surrogate, a str that no UTF-8 writer (a file, SQLite, the terminal) can encode: a forged
    run id crashed `history record`. Such a string is not text: an InputError with its line.
    A pair (high then low) is one character and stays."""
    escape = _surrogate_escape()
    high_ends = -1                       # where the last high half ended
    for match in escape.finditer(text):
        start = match.start()
        if _escaped_backslash_before(text, start):
            continue                     # `\\ud800`: an escaped backslash, then plain letters
        unit = int(match.group(0)[2:], 16)
        if unit >= 0xDC00 and start == high_ends:
            high_ends = -1               # the low half of a pair
            continue
        if unit < 0xDC00 and escape.match(text, match.end()) and int(text[match.end() + 2:match.end() + 6], 16) >= 0xDC00:
            high_ends = match.end()      # a high half with its low one next
            continue
        raise InputError(f"a string holds {match.group(0)}, half of a UTF-16 pair: not text", line_of(text, start))


def _escaped_backslash_before(text: str, pos: int) -> bool:
    """Whether the backslash at `pos` is itself escaped (an odd run of backslashes before it)."""
    run = 0
    while pos - run - 1 >= 0 and text[pos - run - 1] == "\\":
        run += 1
    return run % 2 == 1


def _depth(data: Any, limit: int) -> int:
    """Nesting depth of a parsed document, stopping once past `limit` (iterative: no recursion)."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, (dict, list)):
            deepest = max(deepest, depth)
            if deepest > limit:
                return deepest
            children = node.values() if isinstance(node, dict) else node
            stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _first_line(text: str, pattern: re.Pattern[str], literal: str) -> int | None:
    for match in pattern.finditer(text):
        if match.group(0) == literal and not _inside_string(text, match.start()):
            return line_of(text, match.start())
    return None


def _literal_line(text: str, literal: str) -> int | None:
    pos = text.find(literal)
    while pos >= 0 and _inside_string(text, pos):
        pos = text.find(literal, pos + 1)
    return line_of(text, pos) if pos >= 0 else None


def _inside_string(text: str, pos: int) -> bool:
    """Whether `pos` is inside a JSON string on its line (a cheap look: count unescaped quotes)."""
    start = text.rfind("\n", 0, pos) + 1
    segment = text[start:pos].replace("\\\\", "").replace('\\"', "")
    return segment.count('"') % 2 == 1


_TOKEN = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def locate(text: str, key_path: str) -> int:
    """The line of `a.b[3].c` in a JSON text: each key searched after the one before (a good
    guess, not a parse: enough to point a reader at the right place); line 1 if not found."""
    pos, found = 0, 0
    for name, _index in _TOKEN.findall(key_path):
        if not name:
            continue
        at = text.find(json.dumps(name), pos)
        if at < 0:
            break
        pos = found = at
    return line_of(text, found)


def deep_line(text: str, limit: int = MAX_DEPTH) -> int | None:
    """The line where nesting first goes past `limit` (strings skipped), None if it never does."""
    depth, in_string, escaped = 0, False, False
    for i, ch in enumerate(text):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return line_of(text, i)
        elif ch in "]}":
            depth -= 1
    return None


def load_json_file(path: Path | str, max_bytes: int = MAX_SMALL_BYTES, max_depth: int = MAX_DEPTH,
                   text_only: bool = False) -> Any:
    """A small JSON document from a regular file: bounded size, UTF-8, finite numbers, bounded
    depth (`text_only`: see parse_json).

    Raises OSError (missing, unreadable), InputError (with line) or json.JSONDecodeError.
    """
    text = decode_utf8(read_regular(path, max_bytes))
    return parse_json(text, max_depth, text_only=text_only)
