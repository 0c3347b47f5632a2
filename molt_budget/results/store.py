"""Results files: nothing measured is lost on a crash, and a sample costs O(sample) to keep.

results.json is written whole (atomically: tmp + fsync + rename) when a run starts, resumes
and ends. In between, every change is one line appended to the journal beside it
(journal.jsonl: a lane started, a sample measured, a lane's status, the host found busy);
reading a results file of a run still marked "running" replays its journal, so an
interrupted or killed run's file holds every sample that was measured.

A line is written through to the kernel at once (a killed, crashed or cancelled run loses
nothing), and fsync'd at a lane's end once the builds it holds unsynced took a second or more
(SYNC_AFTER_S). An fsync (3-7 ms on a CI disk, more than the rest of a sample's bookkeeping)
protects only against the machine itself going down; builds cheaper than a second are
cheaper to measure again on resume than to fsync after every lane.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple, TextIO

from molt_budget.errors import ConfigError
from molt_budget.results.model import READABLE_VERSIONS, RunResults
from molt_budget.structs import encoded_before, msgspec


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes | list[bytes], mode: int | None = None) -> None:
    """tmp file in the same folder + fsync + rename: readers see the old or the new file, never half.

    `data` may come in pieces, written one after the other: a run's results are a few big
    module tables and many small lines, and joining them first copied megabytes twice.
    An existing file keeps its mode (unless `mode` says otherwise). Only a regular file is
    replaced, and where it is: a symlink to one (a budgets file kept elsewhere) stays a link
    and its target is replaced; a device, FIFO or socket (`/dev/stdout`, `>(cmd)`) is written
    into as it is, never replaced by a file (as root, a rename over `/dev/full` had made it one).
    """
    into, target, existing_mode = _write_target(Path(path))
    if into is not None:
        _write_into(into, data)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if mode is None:
        mode = existing_mode if existing_mode is not None else 0o666 & ~_umask()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.writelines([data] if isinstance(data, bytes) else data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


class _Target(NamedTuple):
    """Where a write goes: `into` an existing non-regular file or a descriptor of ours, else
    a replace of `path` (a symlink's target), with the mode of the file it replaces."""

    into: Path | int | None
    path: Path
    mode: int | None


def _write_target(path: Path) -> _Target:
    """Where a write to `path` goes (see write_bytes_atomic); a descriptor of ours for
    /dev/stdout, /dev/fd/N and /proc/self/fd/N."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return _Target(None, path, None)
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if stat.S_ISBLK(st.st_mode):
        raise OSError(errno.EINVAL, "is a block device, not a file to write", str(path))
    through_proc = _proc_link(path)
    if through_proc is not None:
        return _Target(through_proc, path, None)
    if not stat.S_ISREG(st.st_mode):
        return _Target(path, path, None)          # a device, FIFO or socket
    return _Target(None, Path(os.path.realpath(path)) if path.is_symlink() else path, stat.S_IMODE(st.st_mode))


_OWN_FD = re.compile(r"/proc/(?:self|thread-self|(\d+))/fd/(\d+)")


def _proc_link(path: Path, hops: int = 40) -> Path | int | None:
    """Where a link on the way to `path`'s file is one of /proc's (/dev/stdout, /dev/fd/N): a
    descriptor some process holds, written into, never replaced. One of ours (`> out.json`
    behind /dev/stdout) is written through that descriptor: opening the link again would
    start a second offset at 0, under what the process writes there next."""
    current = Path(os.path.abspath(path))
    for _ in range(hops):
        if str(current).startswith("/proc/"):
            own = _OWN_FD.fullmatch(str(current))
            if own is not None and own.group(1) in (None, str(os.getpid())):
                return int(own.group(2))
            return current
        if not current.is_symlink():
            return None
        current = Path(os.path.abspath(current.parent / os.readlink(current)))
    return None


def _write_into(where: Path | int, data: bytes | list[bytes]) -> None:
    """Write into an existing non-regular file, or through a descriptor of ours (after what
    Python buffered for it). O_NONBLOCK only for the open: a FIFO nobody reads fails at once
    (ENXIO) instead of hanging the run; writes then block as usual."""
    if isinstance(where, int):
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        fd = os.dup(where)
    else:
        fd = os.open(where, os.O_WRONLY | os.O_NONBLOCK)
        os.set_blocking(fd, True)
    with os.fdopen(fd, "wb") as fh:
        fh.writelines([data] if isinstance(data, bytes) else data)


def open_for_append(path: Path) -> TextIO:
    """A file the environment names for appending (`$GITHUB_STEP_SUMMARY`, `$GITHUB_OUTPUT`),
    O_NONBLOCK only for the open as in `_write_into`: a FIFO nobody reads fails at once
    (ENXIO) instead of hanging the job until its timeout."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o666)
    os.set_blocking(fd, True)
    return os.fdopen(fd, "a", encoding="utf-8")


# lane -> (its detail, that detail as JSON): the journal encodes a lane's detail once, and the
# whole write at the run's end reuses the bytes while the lane still holds that same object
Encoded = dict[str, tuple[object, bytes]]


TABLE_REF = "$table"        # {"$table": key}: in a lane's detail, the shared table `key` (see SharedTables)


class SharedTables:
    """The tables several lanes' details share (a program's module_reasons, the same for its
    cold, warm and cache-hit lanes: ~60% of a 1 MB payload's detail), each written once into
    a document: the journal gets a `table` line before the first lane that refers to it,
    results.json a top-level "tables" object; a detail holds {"$table": key} in its place.
    Only tables known by their one encoding (structs.remember_encoding) are shared."""

    def __init__(self) -> None:
        self.written: dict[str, msgspec.Raw] = {}          # key -> JSON, every table of the document
        self._keys: dict[int, tuple[object, str]] = {}     # id -> (table, key): hashed once a table
        self.new: list[str] = []                           # keys not yet in the journal

    def ref(self, table: object, raw: msgspec.Raw) -> dict[str, str]:
        entry = self._keys.get(id(table))
        if entry is None or entry[0] is not table:
            entry = self._keys[id(table)] = (table, hashlib.sha256(raw).hexdigest()[:24])
        key = entry[1]
        if key not in self.written:
            self.written[key] = raw
            self.new.append(key)
        return {TABLE_REF: key}


def save_results(path: Path, results: RunResults, encoded: Encoded | None = None, tables: SharedTables | None = None) -> None:
    write_bytes_atomic(path, results_chunks(results.to_dict(), encoded, tables))


def results_chunks(data: dict[str, Any], encoded: Encoded | None = None, tables: SharedTables | None = None) -> list[bytes]:
    """A results document with a line per top-level key, lane field, sample and KPI, in pieces
    to be written one after the other (a lane's detail is one piece, never copied into another).

    Not `indent=2`: that switches json to its pure-Python encoder, ~10x slower on a run whose
    lanes carry big module tables. Each line here is one C-encoded value, and an error in a
    hand-edited file still names the sample's own line."""
    dump = json.dumps
    out: list[bytes] = []
    lines = ["{"]            # text not yet in `out`

    def flush(text: str) -> None:
        lines.append(text)
        out.append("\n".join(lines).encode("utf-8"))
        lines.clear()

    shared = tables.written if tables is not None and encoded else {}   # referred to by `encoded` details only
    keys = [key for key in data if not (shared and key == "tables")] + (["tables"] if shared else [])
    for i, key in enumerate(keys):
        comma = "," if i < len(keys) - 1 else ""
        value = data.get(key)
        if key == "tables" and shared:
            lines.append('"tables": {')
            for j, (name, raw) in enumerate(shared.items()):
                flush(f"{json.dumps(name)}: ")
                out.append(bytes(raw))
                lines.append("," if j < len(shared) - 1 else "")
            lines.append("}" + comma)
        elif key == "lanes" and isinstance(value, dict) and value:
            lines.append(f"{dump(key)}: {{")
            names = list(value)
            for j, name in enumerate(names):
                head = f"{dump(name)}: "
                for piece in _lane_pieces(value[name], (encoded or {}).get(name)):
                    if isinstance(piece, bytes):
                        flush(head)
                        out.append(piece)
                        head = ""
                    else:
                        head += piece
                lines.append(head + ("," if j < len(names) - 1 else ""))
            lines.append("}" + comma)
        elif key == "kpis" and isinstance(value, list) and value:
            lines.append(f"{dump(key)}: [")
            lines.append(",\n".join(dump(k) for k in value))
            lines.append("]" + comma)
        else:
            lines.append(f"{dump(key)}: {dump(value)}{comma}")
    lines.append("}")
    flush("")
    return out


def _lane_pieces(lane: Any, encoded: tuple[object, bytes] | None = None) -> list[str | bytes]:
    """One lane's object as text, with its already-encoded detail as a piece of its own."""
    if not isinstance(lane, dict):
        return [json.dumps(lane)]
    parts: list[str | bytes] = ["{\n"]
    for n, (key, value) in enumerate(lane.items()):
        if n:
            parts.append(",\n")
        if key == "detail" and encoded is not None and encoded[0] is value:
            parts += ['"detail": ', encoded[1]]
        elif key == "samples" and isinstance(value, list) and value:
            parts.append('"samples": [\n' + ",\n".join(json.dumps(s) for s in value) + "\n]")
        else:
            parts.append(f"{json.dumps(key)}: {json.dumps(value)}")
    parts.append("\n}")
    return parts


def detail_bytes(detail: dict[str, Any], tables: SharedTables | None = None) -> bytes:
    """A lane's detail as JSON, by msgspec: ~15x json.dumps on a build's module tables (the
    biggest thing a run writes). Exact for what collectors put there, strings, integers and
    finite floats (each checked where it was read), which is all it may hold: msgspec would
    write a NaN as null where json.dumps writes NaN. A table shared by several lanes' details
    (structs.remember_encoding) is written from its one encoding; with `tables`, as a
    reference to it, written once (SharedTables)."""
    return msgspec.json.encode(_known_encodings_in(detail, tables))


def _known_encodings_in(value: Any, tables: SharedTables | None = None, depth: int = 0) -> Any:
    """`value` with every table whose JSON is known replaced by it (or by a reference into
    `tables`), down to a collector's tables (detail -> collector -> table); only the dicts on
    the way are copied."""
    known = encoded_before(value)
    if known is not None:
        return known if tables is None else tables.ref(value, known)
    if depth < 2 and type(value) is dict:
        return {key: _known_encodings_in(item, tables, depth + 1) for key, item in value.items()}
    return value


def resolve_tables(data: dict[str, Any], where: Path | str) -> None:
    """A results document's shared tables put back in every detail that refers to them (one
    object for all), and its "tables" dropped: readers see the details as they were measured.
    A reference to a table the document does not hold is a ConfigError naming it."""
    tables = data.pop("tables", None) or {}
    for lane in (data.get("lanes") or {}).values():
        for part in ((lane.get("detail") or {}) if isinstance(lane, dict) else {}).values():
            if not isinstance(part, dict):
                continue
            for name, value in part.items():
                if type(value) is dict and len(value) == 1 and TABLE_REF in value:
                    key = value[TABLE_REF]
                    if not isinstance(key, str) or key not in tables:
                        raise ConfigError(f"{where}: invalid results file at lanes/{lane.get('lane')}/detail: "
                                          f"{name} refers to table {str(key)[:40]!r}, which the file does not hold")
                    part[name] = tables[key]


JOURNAL_NAME = "journal.jsonl"
SYNC_AFTER_S = 1.0          # build seconds the journal may hold unsynced (see the module doc)


class Journal:
    """Append-only log of a running run's changes, replayed by load_results (see the module doc)."""

    def __init__(self, results_path: Path, on_error: Callable[[OSError, Path], Exception] | None = None) -> None:
        self.path = results_path.with_name(JOURNAL_NAME)
        self._fh: Any = None
        self._on_error = on_error
        self.encoded: Encoded = {}
        self.tables = SharedTables()
        self._unsynced_s = 0.0      # build time measured since the last fsync

    def lane_started(self, lane: str) -> None:
        self._append({"op": "lane_start", "lane": lane}, durable=False)

    def sample(self, lane: str, sample: Any) -> None:
        self._unsynced_s += sum(a.wall_s for a in sample.attempt_log)
        self._append({"op": "sample", "lane": lane, "sample": sample.to_dict()}, durable=False)

    def lane_state(self, lane: Any, with_detail: bool = False) -> None:
        record = {"op": "lane_state", "lane": lane.lane, "status": lane.status, "error": lane.error}
        if not with_detail:
            self._append(record)
            return
        data = detail_bytes(lane.detail, self.tables)
        self.encoded[lane.lane] = (lane.detail, data)
        pieces = []
        for key in self.tables.new:         # a table before the first line that refers to it
            pieces += [f'{{"op":"table","key":{json.dumps(key)},"table":'.encode(), bytes(self.tables.written[key]), b"}\n"]
        head = json.dumps(record, separators=(",", ":"))[:-1] + ',"detail":'
        self._write_pieces([*pieces, head.encode("utf-8"), data, b"}\n"], durable=True)
        self.tables.new.clear()             # written: a failed write leaves them for the next line

    def authority(self, results: RunResults) -> None:
        self._append({"op": "authority", "authoritative": results.authoritative, "reasons": results.authoritative_reasons})

    def _append(self, record: dict[str, Any], durable: bool = True) -> None:
        self._write(json.dumps(record, separators=(",", ":")), durable)

    def _write(self, line: str, durable: bool) -> None:
        self._write_pieces([(line + "\n").encode("utf-8")], durable)

    def _write_pieces(self, pieces: list[bytes], durable: bool) -> None:
        """One journal line, from pieces written in turn (a lane's detail is never copied into a line)."""
        try:
            if self._fh is None:
                self._fh = open(self.path, "ab")
            self._fh.writelines(pieces)
            self._fh.flush()
            if durable and self._unsynced_s >= SYNC_AFTER_S:
                os.fsync(self._fh.fileno())
                self._unsynced_s = 0.0
        except OSError as exc:
            # a full disk mid-run: the owner words it (one line); what the journal held is kept
            if self._on_error is None:
                raise
            raise self._on_error(exc, self.path) from None

    def clear(self) -> None:
        """After results.json was written whole: everything the journal held is in it."""
        if self._fh is not None:
            self._fh.close()
            self._fh = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def replay_journal(data: dict[str, Any], journal: Path) -> dict[str, Any]:
    """Apply a running run's journal to its results document (a torn last line is dropped:
    the crash came while it was written, the sample before it is kept).

    The journal is input like any other file: read bounded (a FIFO, folder or device in its
    place is refused at once, not waited on), each line parsed with finite numbers and bounded
    nesting, and a line that is not a record of a lane this document holds is skipped; the
    schema check after the replay words whatever is still wrong with the document."""
    from molt_budget.bounded import MAX_FILE_BYTES, InputError, parse_json, read_regular

    try:
        raw = read_regular(journal, MAX_FILE_BYTES)
    except FileNotFoundError:
        return data
    except InputError as exc:
        raise ConfigError(f"{journal}: {exc.message} (the journal of a running run)") from None
    except OSError as exc:
        raise ConfigError(f"{journal}: cannot read the journal of a running run: {exc.strerror or exc}") from None
    lanes = data.setdefault("lanes", {})
    if not isinstance(lanes, dict):
        return data
    for line in raw.splitlines():
        try:
            record = parse_json(line.decode("utf-8"), text_only=True)
        except (ValueError, RecursionError):      # torn, damaged or out of range (InputError is a ValueError)
            continue
        if not isinstance(record, dict):
            continue
        op, lane = record.get("op"), record.get("lane")
        if op == "table":
            if isinstance(record.get("key"), str) and isinstance(record.get("table"), dict):
                data.setdefault("tables", {})[record["key"]] = record["table"]
            continue
        if op == "authority":
            data["authoritative"], data["authoritative_reasons"] = record.get("authoritative"), record.get("reasons")
            continue
        if not isinstance(lane, str):
            continue
        if op == "lane_start":
            lanes[lane] = {"lane": lane, "status": "pending", "error": None, "samples": [], "detail": {}}
            continue
        held = lanes.get(lane)
        if not isinstance(held, dict):
            continue
        if op == "sample" and isinstance(held.get("samples"), list):
            held["samples"].append(record.get("sample"))
        elif op == "lane_state":
            held["status"], held["error"] = record.get("status"), record.get("error")
            if "detail" in record:
                held["detail"] = record["detail"]
    return data


def _umask() -> int:
    """mkstemp creates 0600 files; results are meant to be read like any other file."""
    current = os.umask(0)
    os.umask(current)
    return current


def read_json_file(path: Path, what: str, text_only: bool = False) -> Any:
    """A JSON document the user handed us; any problem is one ConfigError naming the file (exit 2).

    Bounded (molt_budget.bounded): a regular file, finite numbers, no NaN, bounded nesting;
    `text_only`: no string that is not text (one whose strings are stored: results).
    """
    from molt_budget.bounded import InputError, load_json_file

    try:
        return load_json_file(path, text_only=text_only)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except InputError as exc:
        raise ConfigError(f"{exc.where(path)} (in this {what})") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


def load_results(path: Path) -> RunResults:
    """Read and schema-check a results file; errors name the file (exit 2: bad input)."""
    data = read_json_file(path, "results file", text_only=True)
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ConfigError(f"{path}: not a molt-budget results file (no schema_version)")
    if data.get("state") == "running":
        data = replay_journal(data, Path(path).with_name(JOURNAL_NAME))
    if data["schema_version"] not in READABLE_VERSIONS or type(data["schema_version"]) is not int:
        raise ConfigError(f"{path}: results schema_version {data['schema_version']!r} is not supported "
                          f"(expected {' or '.join(map(str, READABLE_VERSIONS))}); upgrade molt-budget")
    from molt_budget.schemas import first_error

    error = first_error("results", data)      # the compiled check; jsonschema only words a failure
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"{path}: invalid results file at {where}: {error.message}")
    resolve_tables(data, path)
    return RunResults.from_dict(data)
