"""A table several lanes' details share is written into each from its one encoding: the bytes a
fresh encoding of each detail gives, and only for that very object."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from conftest import SHARED, tables_of

from molt_budget.cli import main
from molt_budget.collectors import molt_diagnostics
from molt_budget.collectors.molt_diagnostics import summarize_diagnostics
from molt_budget.results.store import TABLE_REF, _known_encodings_in, detail_bytes, load_results, results_chunks
from molt_budget.structs import encoded_before, msgspec, remember_encoding

PAYLOAD = SHARED / "molt" / "real" / "C" / "diagnostics.json"


def test_a_remembered_table_is_written_as_its_encoding_and_only_that_object() -> None:
    table = {"app": ["entry_root"], "json": ["core_closure", "entry_closure"]}
    remember_encoding(table)
    detail = {"diagnostics": {"module_reasons": table, "phase_sec": {"module_graph": 0.25}}, "ir": {"ops": 3}}
    assert encoded_before(table) is not None
    assert encoded_before(dict(table)) is None            # an equal table is not this one
    assert isinstance(_known_encodings_in(detail)["diagnostics"]["module_reasons"], msgspec.Raw)
    assert detail_bytes(detail) == msgspec.json.encode(detail)
    for i in range(8):                                    # the registry is bounded: the table drops out
        remember_encoding({f"m{i}": ["core_closure"]})
    assert encoded_before(table) is None
    assert detail_bytes(detail) == msgspec.json.encode(detail)


def test_lanes_sharing_a_payload_write_its_reasons_as_a_fresh_encoding_would(tmp_path: Path) -> None:
    lanes = {lid: {"command": ["/bin/cp", str(PAYLOAD), "${diagnostics_file}"], "diagnostics": True, "repeats": 1}
             for lid in ("cold", "warm")}
    kpis = {f"mods_{lid}": {"lane": lid, "metric": "diag.module_count", "class": "exact", "target": 1000} for lid in lanes}
    config = tmp_path / "budgets.yaml"
    config.write_text(yaml.safe_dump({
        "version": 1, "settings": {"output_root": "out", "history": "out/history.sqlite", "quiescence": {"max_wait_s": 0}},
        "lanes": lanes, "kpis": kpis,
    }))
    summarize_diagnostics(PAYLOAD)                        # the table decoded (and cached) before the run,
    for i in range(9):                                    # its encoding then forgotten: the two caches part
        remember_encoding({f"other{i}": ["core_closure"]})
    assert main(["check", "--config", str(config), "--quiet", "--no-base"]) == 0
    path = next((tmp_path / "out" / "runs").glob("*/results.json"))
    written = path.read_bytes()
    doc = json.loads(written)
    checked = summarize_diagnostics(PAYLOAD, fast=False).module_reasons
    details = {lid: doc["lanes"][lid]["detail"] for lid in lanes}
    # the table is in the file once, each lane's detail refers to it
    assert list(doc["tables"].values()) == [checked]
    assert all(d["diagnostics"]["module_reasons"] == {TABLE_REF: next(iter(doc["tables"]))} for d in details.values())
    # read back, every lane has it, as one object
    results = load_results(path)
    got = [results.lanes[lid].detail["diagnostics"]["module_reasons"] for lid in lanes]
    assert got[0] == checked and got[0] is got[1]
    # every byte of the file is what encoding each lane's detail afresh writes, the table once
    assert written == b"".join(results_chunks(doc, {lid: (d, msgspec.json.encode(d)) for lid, d in details.items()},
                                              tables_of(doc)))
    # and the shared table did go in from its one encoding (the path this test is about was taken)
    shared = next(t for t in molt_diagnostics._REASONS_SEEN.values() if t == checked)
    assert isinstance(_known_encodings_in({"diagnostics": {"module_reasons": shared}})["diagnostics"]["module_reasons"], msgspec.Raw)


def test_a_killed_runs_journal_gives_back_its_shared_tables(tmp_path: Path) -> None:
    """The journal writes a shared table before the first lane that refers to it: a run killed
    after two lanes reads back with each lane's table, one object; a lane whose reference has no
    table (a torn or forged journal) is a one-line error naming the file."""
    from molt_budget.errors import ConfigError
    from molt_budget.results.model import LaneResult, RunResults
    from molt_budget.results.store import Journal, save_results

    table = {"app": ["entry_root"], "json": ["core_closure"]}
    remember_encoding(table)
    results = RunResults(run_id="20261202T000000000Z-abcdef", config_path="budgets.yaml", config_sha256="0" * 64,
                         started_utc="2026-12-02T00:00:00+00:00", state="running")
    path = tmp_path / "results.json"
    save_results(path, results)
    journal = Journal(path)
    for lid in ("cold", "warm"):
        journal.lane_started(lid)
        journal.lane_state(LaneResult(lid, "ok", detail={"diagnostics": {"module_reasons": table, "phase_sec": {}}}),
                           with_detail=True)
    lines = [json.loads(line) for line in journal.path.read_text().splitlines()]
    assert [line["op"] for line in lines] == ["lane_start", "table", "lane_state", "lane_start", "lane_state"]
    back = load_results(path)
    cold, warm = (back.lanes[lid].detail["diagnostics"]["module_reasons"] for lid in ("cold", "warm"))
    assert cold == table and cold is warm
    journal.path.write_text("\n".join(json.dumps(line) for line in lines if line["op"] != "table") + "\n")
    with pytest.raises(ConfigError) as info:
        load_results(path)
    assert str(info.value).startswith(f"{path}: invalid results file at lanes/")


def test_a_table_line_that_could_not_be_written_goes_with_the_next_lane(tmp_path: Path) -> None:
    """A full disk fails a lane's journal line: the shared table it would have brought is written
    with the next lane's line, so no line ever refers to a table the journal lacks."""
    import errno

    from molt_budget.results.model import LaneResult, RunResults
    from molt_budget.results.store import Journal, save_results

    table = {"app": ["entry_root"]}
    remember_encoding(table)
    path = tmp_path / "results.json"
    save_results(path, RunResults(run_id="20261202T000000000Z-abcdef", config_path="b.yaml", config_sha256="0" * 64,
                                  started_utc="2026-12-02T00:00:00+00:00", state="running"))
    journal = Journal(path)
    journal.lane_started("cold")
    full = [True]
    real_write = journal._write_pieces

    def write(pieces: list[bytes], durable: bool) -> None:
        if full.pop() if full else False:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(pieces, durable)

    journal._write_pieces = write           # type: ignore[method-assign]
    detail = {"diagnostics": {"module_reasons": table}}
    with pytest.raises(OSError):
        journal.lane_state(LaneResult("cold", "ok", detail=detail), with_detail=True)
    journal.lane_started("warm")
    journal.lane_state(LaneResult("warm", "ok", detail=detail), with_detail=True)
    assert load_results(path).lanes["warm"].detail["diagnostics"]["module_reasons"] == table
