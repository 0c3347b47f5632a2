"""Files the command line names (`--report-json`, `--results`, `merge --out`, `tracker --out`, the
budgets file `bump` edits) are written where they are and as what they are.

Only a regular file is replaced (atomically); a symlink stays a link and its target is written;
a device, FIFO or socket is written into. Before, every write was a rename over the path: as
root, `--report-json /dev/full` turned the device into a regular file and `--report-json
/dev/stdout` would have done the same to the container's /dev/stdout. A write that fails is one
line naming the file (exit 3), never an internal error."""

from __future__ import annotations

import errno
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from conftest import fake_build
from test_engine import write_budgets

from molt_budget import cli
from molt_budget.errors import EXIT_MEASUREMENT
from molt_budget.results.store import write_bytes_atomic

REPO = Path(__file__).resolve().parents[1]


def test_a_regular_file_is_replaced_and_keeps_its_mode(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("old")
    page.chmod(0o640)
    write_bytes_atomic(page, [b"new ", b"text"])
    assert page.read_bytes() == b"new text"
    assert stat.S_IMODE(page.stat().st_mode) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["page.md"]          # no temporary file left


def test_a_symlink_stays_a_link_and_its_target_is_replaced(tmp_path: Path) -> None:
    (tmp_path / "ci").mkdir()
    target = tmp_path / "ci" / "budgets.yaml"
    target.write_text("old")
    link = tmp_path / "budgets.yaml"
    link.symlink_to(Path("ci") / "budgets.yaml")
    write_bytes_atomic(link, b"new")
    assert link.is_symlink() and target.read_text() == "new"


def test_a_fifo_is_written_into_and_one_nobody_reads_fails_at_once(tmp_path: Path) -> None:
    fifo = tmp_path / "report.fifo"
    os.mkfifo(fifo)
    with pytest.raises(OSError) as info:
        write_bytes_atomic(fifo, b"nobody reads")                      # ENXIO at the open: no hang
    assert info.value.errno == errno.ENXIO
    got: list[bytes] = []
    reader_ready = threading.Event()

    def read() -> None:
        # O_RDWR: open at once, as a reader, and read() waits for data instead of seeing EOF
        # before the writer comes (Linux's FIFO semantics); read exactly what is written
        fd = os.open(fifo, os.O_RDWR)
        reader_ready.set()
        data = b""
        with os.fdopen(fd, "rb", buffering=0) as fh:
            while len(data) < 100_001:
                data += fh.read(100_001 - len(data))
        got.append(data)

    reader = threading.Thread(target=read)
    reader.start()
    reader_ready.wait(30)
    write_bytes_atomic(fifo, [b"x" * 100_000, b"y"])                    # more than a pipe holds
    reader.join(30)
    assert got == [b"x" * 100_000 + b"y"]
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def device(tmp_path: Path, name: str, major: int, minor: int) -> Path:
    """A private node of a system device (root only): a regression replaces this one, never
    the machine's /dev/full or /dev/null."""
    node = tmp_path / name
    try:
        os.mknod(node, stat.S_IFCHR | 0o666, os.makedev(major, minor))
    except PermissionError:
        pytest.skip("making a device node needs root (CI runs as root)")
    return node


def test_a_device_is_written_into_never_replaced(tmp_path: Path) -> None:
    full, null = device(tmp_path, "full", 1, 7), device(tmp_path, "null", 1, 3)
    with pytest.raises(OSError) as info:
        write_bytes_atomic(full, b"{}")
    assert info.value.errno == errno.ENOSPC
    write_bytes_atomic(null, b"{}")
    assert stat.S_ISCHR(os.lstat(full).st_mode) and stat.S_ISCHR(os.lstat(null).st_mode)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        write_bytes_atomic(tmp_path, b"{}")


def _project(tmp_path: Path) -> Path:
    return write_budgets(tmp_path, {"dev": {"command": fake_build(), "repeats": 1, "retries": 0}},
                         {"w": {"lane": "dev", "metric": "wall_s", "target": 60}})


def _check(config: Path, *args: str, stdout: object = subprocess.PIPE) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "molt_budget", "check", "--config", str(config), "--no-base", "--quiet",
                           *args], cwd=config.parent, env=env, stdout=stdout, stderr=subprocess.PIPE, text=True,
                          timeout=120, check=False)


@pytest.mark.slow
def test_report_json_to_dev_stdout_redirected_to_a_file_keeps_both_reports(tmp_path: Path) -> None:
    """`--report-json /dev/stdout > out.txt`: the JSON is written through our own descriptor 1,
    so the human report printed after it follows it instead of overwriting it from offset 0.
    The link is a private copy of /dev/stdout's (-> /proc/self/fd/1): a regression replaces
    it, never the machine's own (the old code, run as root, made /dev/stdout a file)."""
    config = _project(tmp_path)
    stdout = tmp_path / "stdout"
    stdout.symlink_to(os.readlink("/dev/stdout") if os.path.islink("/dev/stdout") else "/proc/self/fd/1")
    out = tmp_path / "out.txt"
    with out.open("w") as fh:
        done = _check(config, "--report-json", str(stdout), stdout=fh)
    assert done.returncode == 0, done.stderr
    text = out.read_text()
    report, end = json.JSONDecoder().raw_decode(text)
    assert report["verdict"]["status"] == "pass"
    assert "verdict: PASS" in text[end:]                                 # the human report, after it
    assert stdout.is_symlink()


@pytest.mark.slow
def test_a_report_that_cannot_be_written_is_one_line_and_the_results_are_kept(tmp_path: Path) -> None:
    config = _project(tmp_path)
    full = device(tmp_path, "full", 1, 7)
    done = _check(config, "--report-json", str(full), "--results", str(tmp_path / "copy.json"))
    lines = [line for line in done.stderr.splitlines() if line.startswith("molt-budget:")]
    assert done.returncode == EXIT_MEASUREMENT
    assert len(lines) == 1 and lines[0].startswith(f"molt-budget: error: {full}: cannot write the report"), done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    assert stat.S_ISCHR(os.lstat(full).st_mode)
    assert json.loads((tmp_path / "copy.json").read_text())["lanes"]["dev"]["status"] == "ok"   # written before it


def test_bump_edits_a_symlinked_budgets_file_where_it_lives(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = _project(tmp_path)
    (tmp_path / "repo").mkdir()
    link = tmp_path / "repo" / "budgets.yaml"
    link.symlink_to(real)
    assert cli.main(["bump", "w", "--target", "90", "--reason", "slower host", "--config", str(link),
                     "--today", "2026-12-02"]) == 0
    assert link.is_symlink()
    assert "target: 90" in real.read_text()
    capsys.readouterr()


@pytest.mark.parametrize("kind", ["folder", "device"])
def test_tracker_out_that_is_not_a_page_is_one_line(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The old page is read first: a folder was an internal error, and a device like /dev/full
    was read (zeros) until the process was killed."""
    from molt_budget.errors import EXIT_CONFIG

    config = _project(tmp_path)
    assert cli.main(["check", "--config", str(config), "--no-base", "--quiet"]) == 0
    out = tmp_path / "pages" if kind == "folder" else device(tmp_path, "full", 1, 7)
    if kind == "folder":
        out.mkdir()
    capsys.readouterr()
    assert cli.main(["tracker", "--config", str(config), "--out", str(out)]) == EXIT_CONFIG
    err = capsys.readouterr().err
    assert err.startswith(f"molt-budget: error: {out}: is ") and err.count("\n") == 1, err
