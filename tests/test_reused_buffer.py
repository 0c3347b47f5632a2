"""bounded.ReusedBuffer: a lane's later samples read their payloads into one buffer.

What it must keep: the bytes read_regular would return, its bounds and errors, and never a
read that changes what an earlier read's still-alive slice shows."""

from __future__ import annotations

import gzip
import json
import os
import threading
from pathlib import Path

import pytest

from molt_budget import bounded
from molt_budget.bounded import InputError, ReusedBuffer, read_regular
from molt_budget.collectors.base import RunFiles
from molt_budget.collectors.molt_diagnostics import DiagnosticsCollector, diagnostics_values, summarize_diagnostics
from molt_budget.errors import CollectorError


def _files(tmp_path: Path, contents: list[bytes]) -> list[Path]:
    paths = []
    for i, data in enumerate(contents):
        path = tmp_path / f"f{i}"
        path.write_bytes(data)
        paths.append(path)
    return paths


def test_each_read_is_read_regulars_bytes_in_one_buffer(tmp_path: Path) -> None:
    contents = [b"a" * 1000, b"b" * 1000, b"c" * 10, b"", b"d" * 5000, gzip.compress(b"e" * 3000), b"f" * 5000]
    buffer = ReusedBuffer()
    seen = []
    for path in _files(tmp_path, contents):
        data = buffer.read(path)
        assert data == read_regular(path)
        seen.append(data)
    # the plain files were all read into the one buffer (each read over the last one); the gzip
    # file's text is a fresh bytes
    plain = [data for data, raw in zip(seen, contents) if raw[:2] != b"\x1f\x8b"]
    assert all(data is plain[0] for data in plain)
    assert isinstance(seen[5], bytes) and seen[5] == b"e" * 3000


def test_a_live_slice_of_a_read_keeps_its_bytes(tmp_path: Path) -> None:
    """A zero-copy slice (a msgspec.Raw is one) still alive blocks resizing the buffer: the next
    read of another size takes a new buffer, and the slice still shows what it was cut from."""
    first, second = _files(tmp_path, [b"x" * 100, b"y" * 200])
    buffer = ReusedBuffer()
    kept = memoryview(buffer.read(first))[10:20]
    assert buffer.read(second) == b"y" * 200
    assert kept.tobytes() == b"x" * 10


def test_what_the_buffer_does_not_keep_is_read_fresh(tmp_path: Path) -> None:
    """A file past keep_bytes, and a read from another thread, get a bytes of their own."""
    small, big = _files(tmp_path, [b"s" * 100, b"b" * 5000])
    buffer = ReusedBuffer(keep_bytes=1000)
    kept = buffer.read(small)
    fresh = buffer.read(big)
    assert isinstance(fresh, bytes) and fresh == b"b" * 5000
    assert kept == b"s" * 100              # the big read left the buffer alone

    got: list[bytes | bytearray] = []
    thread = threading.Thread(target=lambda: got.append(buffer.read(small)))
    thread.start()
    thread.join()
    assert isinstance(got[0], bytes) and got[0] == b"s" * 100


def test_bounds_and_errors_are_read_regulars(tmp_path: Path) -> None:
    buffer = ReusedBuffer()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError):          # refused at once, never blocking on the FIFO
        buffer.read(fifo)
    big = tmp_path / "big"
    big.write_bytes(b"z" * 2000)
    with pytest.raises(InputError):
        buffer.read(big, 1000)
    with pytest.raises(FileNotFoundError):
        buffer.read(tmp_path / "missing")
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(b"0" * 100_000))
    with pytest.raises(InputError):
        buffer.read(bomb, 10_000)



@pytest.mark.parametrize("reader", ["read_regular", "a reused buffer"])
def test_a_file_that_grows_while_read_is_read_to_the_cap(reader: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Both read the stat's size, then one byte more: a byte more means the file grew since the
    stat, and the rest is read up to the cap (past it: refused), as when it read the cap at once.
    The growth is staged by a stat that reports the file smaller than it is."""
    read = read_regular if reader == "read_regular" else ReusedBuffer().read
    path = tmp_path / "d.json"
    path.write_bytes(b"x" * 1000)
    real_fstat = os.fstat

    def stale_fstat(fd: int) -> os.stat_result:
        st = real_fstat(fd)
        return os.stat_result((st.st_mode, st.st_ino, st.st_dev, st.st_nlink, st.st_uid, st.st_gid, 10,
                               int(st.st_atime), int(st.st_mtime), int(st.st_ctime)))

    monkeypatch.setattr(bounded.os, "fstat", stale_fstat)
    assert read(path, 5000) == b"x" * 1000
    assert read(path, 1000) == b"x" * 1000           # grown to the cap exactly: still read
    with pytest.raises(InputError):
        read(path, 500)


def test_samples_read_into_the_buffer_give_the_checked_readings_outcome(tmp_path: Path) -> None:
    """A lane's later samples, one after another through the shared buffer: payloads of other
    sizes, a malformed one and a truncated one between good ones. Each gives the values of
    the checked reading, or fails with its error (file and line)."""
    base = {"total_sec": 1.5, "phase_sec": {"module_graph": 0.25, "backend_codegen": 0.0}, "module_count": 3,
            "module_reason_summary": {"core_closure": 3}, "module_reasons": {"a": ["core_closure"]},
            "frontend_module_timings": [{"module": "a", "total_s": 0.5}]}
    payloads = [
        json.dumps(base),
        json.dumps({**base, "total_sec": 2.5, "module_reasons": {f"m{i}": ["core_closure"] for i in range(300)}}),
        json.dumps({**base, "module_count": -1}),                     # a field the checks refuse
        json.dumps(base)[:-40],                                       # truncated
        json.dumps({**base, "total_sec": 0.5}),
        json.dumps(base, ensure_ascii=False).replace('"a"', '"\xe9"'),         # written as latin-1: not UTF-8
    ]
    collector = DiagnosticsCollector()
    for i, text in enumerate(payloads):
        path = tmp_path / f"s{i}" / "diagnostics.json"
        path.parent.mkdir()
        path.write_bytes(text.encode("latin-1"))
        files = RunFiles(attempt_dir=path.parent, cwd=tmp_path, stdout_path=tmp_path / "o", stderr_path=tmp_path / "e",
                         diagnostics_path=path)
        try:
            expected = diagnostics_values(summarize_diagnostics(path, fast=False))
        except CollectorError as exc:
            with pytest.raises(CollectorError) as got:
                collector.collect(None, files, frozenset())       # type: ignore[arg-type]
            assert (got.value.path, got.value.line) == (exc.path, exc.line), i
            continue
        assert collector.collect(None, files, frozenset()).values == expected, i   # type: ignore[arg-type]
