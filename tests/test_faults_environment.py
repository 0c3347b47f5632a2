"""Faults of the machine: a full disk (a real small tmpfs), a read-only output root, a corrupt
history, a forged `ok` lane. Each is one line naming the path and what to do, the resume
hint stays true, and nothing already measured is lost."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fake_build
from test_engine import latest_results, write_budgets

from molt_budget.cli import main
from molt_budget.results.store import load_results


def mount_tmpfs(where: Path, *options: str) -> Iterator[Path]:
    where.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(where)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.strip() or done.returncode})")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mount_tmpfs(tmp_path / "small", "size=1m")


@pytest.fixture
def read_only_disk(tmp_path: Path) -> Iterator[Path]:
    yield from mount_tmpfs(tmp_path / "ro", "ro", "size=64k")


def fill(path: Path) -> list[str]:
    """A lane step that fills the disk `path` lives on, then succeeds."""
    return [sys.executable, "-c", f"f = open({str(path)!r}, 'wb')\ntry:\n    while True: f.write(bytes(65536)); f.flush()\n"
            "except OSError: pass"]


def one_error_line(err: str) -> str:
    lines = [line for line in err.strip().splitlines() if line.startswith("molt-budget:")]
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    return lines[0]


def test_disk_full_on_the_snapshot_says_where_and_how_to_resume(tmp_path: Path, small_disk: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    filler = small_disk / "filler"
    config = write_budgets(tmp_path, {"a": {"command": fake_build(), "repeats": 1},
                                      "fill": {"command": fill(filler), "repeats": 2}},
                           {"w": {"lane": "a", "metric": "wall_s", "target": 10},
                            "f": {"lane": "fill", "metric": "wall_s", "target": 10}})
    code = main(["run", "--config", str(config), "--quiet", "--no-history", "--output-root", str(small_disk / "out")])
    line = one_error_line(capsys.readouterr().err)
    assert code == 3
    assert "No space left on device" in line and "free space" in line and "results.json" in line
    run_dir = line.split("--resume ")[1].split()[0].rstrip(")")
    kept = load_results(Path(run_dir) / "results.json")
    assert kept.lanes["a"].status == "ok" and len(kept.lanes["a"].measured()) == 1     # measured before the disk filled
    filler.unlink()                                                                     # the user frees space …
    config.write_text(config.read_text())
    assert main(["run", "--config", str(config), "--quiet", "--no-history", "--output-root", str(small_disk / "out"),
                 "--resume", run_dir]) in (0, 3)                                        # … and the hint works
    assert load_results(Path(run_dir) / "results.json").lanes["a"].status == "ok"


def test_disk_full_on_the_history_keeps_the_results(tmp_path: Path, small_disk: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = write_budgets(tmp_path, {"fill": {"command": fill(small_disk / "filler"), "repeats": 1}},
                           {"f": {"lane": "fill", "metric": "wall_s", "target": 10}}, history=str(small_disk / "history.sqlite"))
    code = main(["run", "--config", str(config), "--quiet"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 3 and "history.sqlite" in line and "free space" in line and "results are kept in" in line
    kept = Path(line.split("results are kept in ")[1].split()[0])
    assert load_results(kept).lanes["fill"].status == "ok"


def test_a_read_only_output_root_is_said_before_anything_runs(tmp_path: Path, read_only_disk: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    count = tmp_path / "count"
    config = write_budgets(tmp_path, {"a": {"command": fake_build("--count", str(count)), "repeats": 1}},
                           {"w": {"lane": "a", "metric": "wall_s", "target": 10}})
    code = main(["check", "--config", str(config), "--quiet", "--no-base", "--output-root", str(read_only_disk / "out")])
    line = one_error_line(capsys.readouterr().err)
    assert code == 3 and str(read_only_disk) in line and "--output-root" in line and "Read-only" in line
    assert not count.exists()


def test_a_corrupt_history_is_found_before_any_lane_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    count = tmp_path / "count"
    config = write_budgets(tmp_path, {"a": {"command": fake_build("--count", str(count)), "repeats": 1}},
                           {"w": {"lane": "a", "metric": "wall_s", "target": 10}})
    history = tmp_path / "out" / "history.sqlite"
    history.parent.mkdir(parents=True)
    history.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)
    code = main(["check", "--config", str(config), "--quiet", "--no-base"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 3 and str(history) in line and f"mv {history} {history}.corrupt" in line
    assert not count.exists()                                  # no lane ran
    history.rename(history.with_suffix(".corrupt"))            # what the line says to do
    assert main(["check", "--config", str(config), "--quiet", "--no-base"]) == 0
    assert count.exists()


def test_a_truncated_history_is_found_before_any_lane_runs_from_its_header(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A copy cut short (an interrupted cache restore) is told by SQLite's header, which
    counts more pages than the file holds: found without reading the whole database."""
    from history_factory import populate

    populate(tmp_path, n=40)                                     # a real history: out/history.sqlite
    history = tmp_path / "out" / "history.sqlite"
    count = tmp_path / "count"
    config = write_budgets(tmp_path, {"a": {"command": fake_build("--count", str(count)), "repeats": 1}},
                           {"w": {"lane": "a", "metric": "wall_s", "target": 10}})
    data = history.read_bytes()
    assert len(data) > 8 * 4096
    history.write_bytes(data[: len(data) // 2])
    code = main(["check", "--config", str(config), "--quiet", "--no-base"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 3 and "truncated" in line and f"mv {history} {history}.corrupt" in line
    assert not count.exists()


def test_damage_deep_in_the_history_is_one_line_when_a_read_reaches_it(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The check before the lanes reads the header and schema only; pages damaged further in
    are said as the same one line by the read that meets them, never as a traceback."""
    from history_factory import populate

    populate(tmp_path, n=40)
    history = tmp_path / "out" / "history.sqlite"
    data = bytearray(history.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    for start in range(4 * page, len(data) - page, page):       # every page past the schema's
        data[start:start + page] = bytes([0x0D]) + bytes(range(256)) * (page // 256 - 1) + bytes(255)
    history.write_bytes(bytes(data))
    code = main(["history", "--db", str(history), "list"])
    line = one_error_line(capsys.readouterr().err)
    assert code == 3 and str(history) in line and f"mv {history} {history}.corrupt" in line


def test_resume_does_not_trust_a_lane_marked_ok_without_samples(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    count = tmp_path / "count"
    config = write_budgets(tmp_path, {"a": {"command": fake_build("--count", str(count)), "repeats": 1}},
                           {"w": {"lane": "a", "metric": "wall_s", "target": 10}})
    assert main(["run", "--config", str(config), "--quiet", "--no-history"]) == 0
    run_dir = sorted((tmp_path / "out" / "runs").iterdir())[-1]
    data = json.loads((run_dir / "results.json").read_text())
    data["lanes"]["a"]["samples"] = []
    data["state"] = "interrupted"
    (run_dir / "results.json").write_text(json.dumps(data))
    assert main(["run", "--config", str(config), "--quiet", "--no-history", "--resume", str(run_dir)]) == 0
    assert count.read_text().count("run") == 2                  # measured again
    assert len(load_results(run_dir / "results.json").lanes["a"].measured()) == 1


@pytest.mark.parametrize("counts", ["not json", "[]", "{\"pass\": \"two\"}", "null"])
def test_a_forged_counts_column_is_the_damaged_history_line(tmp_path: Path, counts: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """`history list` read a run's verdict counts with json.loads and used them as a dict: a
    damaged or forged column was an internal error (found by mutating each column of a real
    history). It is now the one line for a damaged history: which file, and what to do."""
    import sqlite3
    from contextlib import closing

    from molt_budget.errors import EXIT_MEASUREMENT

    config = write_budgets(tmp_path, {"a": {"command": fake_build(), "repeats": 1}},
                           {"w": {"lane": "a", "metric": "wall_s", "target": 10}})
    assert main(["check", "--config", str(config), "--no-base", "--quiet"]) == 0
    history = tmp_path / "out" / "history.sqlite"
    with closing(sqlite3.connect(history)) as conn:
        conn.execute("UPDATE runs SET counts = ?", (counts,))
        conn.commit()
    capsys.readouterr()
    assert main(["history", "list", "--config", str(config)]) == EXIT_MEASUREMENT
    line = one_error_line(capsys.readouterr().err)
    assert line.startswith(f"molt-budget: error: {history}: the history database is unreadable or corrupt")


HOSTILE_JOURNAL_LINES = {
    "unhashable lane": '{"op":"lane_start","lane":[1]}',
    "a mapping as lane": '{"op":"lane_state","lane":{"a":1},"status":"ok"}',
    "an overflowing number": '{"op":"sample","lane":"dev","sample":{"kind":"measure","index":9,"ok":true,"attempts":1,'
                             '"metrics":{"wall_s":1e999}}}',
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "not a record": "[1, 2, 3]",
    "not UTF-8": "{\"op\":\"lane_start\",\"lane\":\"\udcff\"}",   # a raw 0xff byte (surrogateescape)
}


@pytest.mark.parametrize("line", list(HOSTILE_JOURNAL_LINES.values()), ids=list(HOSTILE_JOURNAL_LINES))
def test_a_hostile_journal_line_is_skipped_and_the_samples_around_it_kept(tmp_path: Path, line: str) -> None:
    """A running run's journal is replayed by every reader of its results: a damaged or forged
    line (found by fuzzing the replay: each of these was an internal error, or let an infinite
    wall time through) is skipped like a torn one, and every real sample around it is kept."""
    from molt_budget.results.model import LaneResult, RunResults, Sample
    from molt_budget.results.store import Journal, save_results

    run = RunResults("20261202T000000000Z-abc123", "budgets.yaml", "0" * 64, "2026-12-02T00:00:00+00:00", state="running")
    results = tmp_path / "results.json"
    save_results(results, run)
    journal = Journal(results)
    journal.lane_started("dev")
    journal.sample("dev", Sample("measure", 0, True, attempts=1, metrics={"wall_s": 1.5}))
    with journal.path.open("ab") as fh:
        fh.write(line.encode("utf-8", "surrogateescape") + b"\n")
    journal.sample("dev", Sample("measure", 1, True, attempts=1, metrics={"wall_s": 1.25}))
    journal.lane_state(LaneResult("dev", "ok"))
    loaded = load_results(results)
    assert [s.metrics["wall_s"] for s in loaded.lanes["dev"].samples] == [1.5, 1.25]
    assert loaded.lanes["dev"].status == "ok"


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_journal_that_is_not_a_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    """A FIFO in the journal's place made every reader of the results wait for a writer for ever."""
    import os

    from molt_budget.errors import ConfigError
    from molt_budget.results.model import RunResults
    from molt_budget.results.store import JOURNAL_NAME, save_results

    results = tmp_path / "results.json"
    save_results(results, RunResults("20261202T000000000Z-abc123", "budgets.yaml", "0" * 64, "2026-12-02T00:00:00+00:00",
                                     state="running"))
    (os.mkfifo if kind == "fifo" else os.mkdir)(tmp_path / JOURNAL_NAME)
    with pytest.raises(ConfigError) as info:
        load_results(results)
    assert str(info.value).startswith(str(tmp_path / JOURNAL_NAME) + ": ")


@pytest.mark.parametrize("emit_ir", ["${attempt_dir}", "/proc/self/mem", "${attempt_dir}/" + "n" * 300],
                         ids=["a folder", "not a file to replace", "a name too long"])
def test_an_emit_ir_path_no_build_could_write_is_that_lanes_error(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                                  emit_ir: str) -> None:
    """emit_ir is a template the budgets file gives: clearing a stale IR there raised an OSError
    out of the runner (IsADirectoryError, PermissionError, File name too long), an internal
    error, with the other lanes' samples unjudged. Now it is the lane's error, and the rest of
    the run measures and is judged."""
    config = write_budgets(tmp_path, {"a": {"command": fake_build(), "repeats": 1},
                                      "ir": {"command": fake_build(), "emit_ir": emit_ir, "repeats": 1, "retries": 0}},
                           {"w": {"lane": "a", "metric": "wall_s", "target": 10},
                            "ops": {"lane": "ir", "metric": "ir.ops", "target": 10}})
    code = main(["check", "--no-base", "--config", str(config), "--quiet"])
    err = capsys.readouterr().err
    assert code == 3 and "internal error" not in err and "Traceback" not in err, err
    results = latest_results(tmp_path)
    assert results.lanes["a"].status == "ok" and len(results.lanes["a"].measured()) == 1
    assert results.lanes["ir"].status == "error" and "emit_ir" in (results.lanes["ir"].error or "")


def _one_lane(tmp_path: Path) -> Path:
    return write_budgets(tmp_path, {"a": {"command": fake_build(), "repeats": 1}}, {"w": {"lane": "a", "metric": "wall_s", "target": 10}})


@pytest.mark.parametrize("command, flag, target", [
    (command, flag, target) for command in ("check", "run") for flag, target in
    [("--results", "a folder"), ("--results", "a name too long"), ("--report-json", "a folder")]
    if not (command == "run" and flag == "--report-json")          # run writes no report
])
def test_an_output_file_that_can_never_be_written_is_refused_before_any_lane_runs(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str, flag: str, target: str) -> None:
    """The lanes of a check can take an hour; a --results naming a folder (or a name no file
    system takes) failed only after them, and under `run` as an internal error."""
    config = _one_lane(tmp_path)
    (tmp_path / "here").mkdir()
    path = str(tmp_path / "here") if target == "a folder" else str(tmp_path / ("n" * 300))
    extra = ["--no-base"] if command == "check" else []
    code = main([command, *extra, "--config", str(config), "--quiet", flag, path])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and line.startswith(f"molt-budget: error: {flag} ")
    assert not list((tmp_path / "out").glob("runs/*/results.json"))        # no lane ran


def test_a_results_copy_run_cannot_write_is_one_line_and_the_history_keeps_the_run(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`run --results` into a FIFO nobody reads (ENXIO) was an internal error, raised before the
    history recorded the run: the measurements were in the run folder, and nowhere else."""
    import os

    from molt_budget.results.history import History

    config = _one_lane(tmp_path)
    os.mkfifo(tmp_path / "fifo")
    code = main(["run", "--config", str(config), "--quiet", "--results", str(tmp_path / "fifo")])
    line = one_error_line(capsys.readouterr().err)
    assert code == 3 and str(tmp_path / "fifo") in line
    assert [r.run_id for r in History(tmp_path / "out" / "history.sqlite").runs()] == [latest_results(tmp_path).run_id]


def test_a_path_no_file_system_can_name_is_one_line_wherever_it_is_opened(tmp_path: Path,
                                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """--resume, --history and the like are opened deep inside a command; a name past 255 bytes
    raised ENAMETOOLONG there, an internal error. It is the user's to shorten: one line, exit 2."""
    config = _one_lane(tmp_path)
    code = main(["check", "--no-base", "--config", str(config), "--quiet", "--resume", str(tmp_path / ("r" * 300))])
    line = one_error_line(capsys.readouterr().err)
    assert code == 2 and "r" * 300 in line


FORGED_COLUMNS = [("chunks", "t", ""), ("chunks", "t", 1e308), ("chunks", "data", -1), ("chunks", "n", "x"),
                  ("chunks", "rid", 2 ** 63 - 1), ("runs", "record", -1)]


@pytest.mark.parametrize("table, column, value", FORGED_COLUMNS, ids=[f"{t}.{c}={v!r}"[:30] for t, c, v in FORGED_COLUMNS])
def test_a_history_value_of_the_wrong_type_is_the_damaged_history_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], table: str, column: str, value: object) -> None:
    """SQLite keeps whatever a column is given, and a history can come from a restored CI cache:
    text where a chunk's time is, a number where its bytes are. Reading it raised TypeError,
    OverflowError or StopIteration out of tracker, check and history show (internal errors).
    Each is now the one damaged-history line, naming the file and what to do."""
    import sqlite3

    config = _one_lane(tmp_path)
    for _ in range(2):
        assert main(["check", "--no-base", "--config", str(config), "--quiet"]) in (0, 1)
    capsys.readouterr()
    history = tmp_path / "out" / "history.sqlite"
    run_id = latest_results(tmp_path).run_id
    with sqlite3.connect(history) as con:
        con.execute(f"UPDATE {table} SET {column} = ?", (value,))
    con.close()
    codes = []
    for argv in (["tracker", "--config", str(config), "--out", str(tmp_path / "t.md"), "--all-branches"],
                 ["history", "show", run_id, "--config", str(config)],
                 ["check", "--no-base", "--config", str(config), "--quiet"]):
        codes.append(main(argv))
        err = capsys.readouterr().err
        assert "internal error" not in err and "Traceback" not in err, (argv, err)
        if codes[-1] == 3:
            assert str(history) in one_error_line(err)
    assert 3 in codes                                  # the damage is reached, and said, by at least one reader


def test_a_record_that_cannot_be_indexed_is_its_own_error_not_a_damaged_history(tmp_path: Path) -> None:
    """A wrong value read out of the database is the damaged-history line, which tells the user to
    move the file aside. A record only being added (its KPI value not a number, as no schema-checked
    file gives but an in-memory caller could) must be named as the record's fault instead, with
    the database left as it was."""
    import random

    from history_factory import main_check, make_run
    from history_factory import write_budgets as factory_budgets

    from molt_budget.config import load_config
    from molt_budget.errors import ConfigError, EnvironmentFault
    from molt_budget.results.history import History
    from molt_budget.results.record import RunRecord

    config = load_config(factory_budgets(tmp_path))
    history = History(tmp_path / "h.sqlite")
    good = make_run(config, 1, random.Random(1))
    history.record(good, main=main_check(good))
    doc = RunRecord.from_run(make_run(config, 2, random.Random(2)), main_check(good)).to_dict()
    doc["run_id"] = "bad-value"
    doc["kpis"][0]["value"] = "not a number"
    with pytest.raises(ConfigError) as info:
        history.index(RunRecord.from_dict(doc))
    assert not isinstance(info.value, EnvironmentFault) and "run bad-value" in str(info.value)
    assert [r.run_id for r in history.runs()] == [good.run_id]
