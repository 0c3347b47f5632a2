"""A table several lanes' details share is written into each from its one encoding: the bytes a
fresh encoding of each detail gives, and only for that very object."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from conftest import SHARED

from molt_budget.cli import main
from molt_budget.collectors import molt_diagnostics
from molt_budget.collectors.molt_diagnostics import summarize_diagnostics
from molt_budget.results.store import _known_encodings_in, detail_bytes, results_chunks
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
    written = next((tmp_path / "out" / "runs").glob("*/results.json")).read_bytes()
    doc = json.loads(written)
    checked = summarize_diagnostics(PAYLOAD, fast=False).module_reasons
    details = {lid: doc["lanes"][lid]["detail"] for lid in lanes}
    assert all(d["diagnostics"]["module_reasons"] == checked for d in details.values())
    # every byte of the file is what encoding each lane's detail afresh writes
    assert written == b"".join(results_chunks(doc, {lid: (d, msgspec.json.encode(d)) for lid, d in details.items()}))
    # and the shared table did go in from its one encoding (the path this test is about was taken)
    shared = next(t for t in molt_diagnostics._REASONS_SEEN.values() if t == checked)
    assert isinstance(_known_encodings_in({"diagnostics": {"module_reasons": shared}})["diagnostics"]["module_reasons"], msgspec.Raw)
