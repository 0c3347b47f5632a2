"""The history record: one model for the SQLite index and the data branch."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest
from history_factory import make_run, write_budgets

from molt_budget.config import load_config
from molt_budget.errors import ConfigError
from molt_budget.results.record import MainCheck, RunRecord, worst


@pytest.fixture
def record(tmp_path: Path) -> RunRecord:
    config = load_config(write_budgets(tmp_path))
    run = make_run(config, 7, random.Random(1))          # a run with a failed dev_warm sample
    run.lanes["dev_cold"].detail = {"ir": {"op_kinds": {"call": 3}, "function_ops": {"f": 3}, "init_modules": ["m"]}}
    return RunRecord.from_run(run, MainCheck(True, [], "origin/main"))


def test_round_trip_is_lossless_and_canonical(record: RunRecord) -> None:
    data = record.to_gzip()
    back = RunRecord.from_gzip(data, "records/x.json.gz")
    assert back == record
    assert back.to_gzip() == data                         # same record, same bytes
    assert RunRecord.from_dict(json.loads(json.dumps(record.to_dict()))) == record


def test_lane_medians_notes_and_verdict(record: RunRecord) -> None:
    warm = record.lanes["dev_warm"]
    assert warm.status == "error" and warm.measured == 2
    assert [(n.index, n.ok) for n in warm.notes] == [(2, False)]
    assert record.status == worst([k.status for k in record.kpis])
    assert record.lanes["dev_cold"].detail["ir"]["function_ops"] == {"f": 3}
    assert "dev_cold" in record.to_results().lanes
    stand_in = record.to_results().lanes["dev_cold"].measured()[0]
    assert stand_in.metrics == record.lanes["dev_cold"].metrics


def test_report_verdict_wins(tmp_path: Path) -> None:
    config = load_config(write_budgets(tmp_path))
    run = make_run(config, 10, random.Random(1))
    kpi = run.kpis[0]
    report = {"verdict": {"status": "fail", "counts": {"pass": 2, "fail": 1, "budget_fail": 1}}, "base": {"commit": "ab" * 20},
              "kpis": [{"id": kpi.id, "status": "fail", "budget_status": kpi.status, "reason": "grew by 9 ops"}]}
    rec = RunRecord.from_run(run, MainCheck(False, ["tree dirty"]), report)
    assert rec.status == "fail" and rec.counts["budget_fail"] == 1 and rec.base_commit == "ab" * 20
    assert rec.kpis[0].status == "fail" and rec.kpis[0].budget_status == kpi.status
    assert rec.not_main_reasons == ["tree dirty"] and not rec.main


@pytest.mark.parametrize("mutate", [
    lambda d: d.update(schema_version=99),
    lambda d: d.update(status="great"),
    lambda d: d.pop("main"),
    lambda d: d.update(commit="not a sha; rm -rf /"),
    lambda d: d["kpis"][0].update(value="1e9"),
])
def test_bad_records_are_one_config_error(record: RunRecord, mutate) -> None:
    doc = record.to_dict()
    mutate(doc)
    with pytest.raises(ConfigError, match="records/bad.json.gz"):
        RunRecord.from_gzip(gzip.compress(json.dumps(doc).encode()), "records/bad.json.gz")
    with pytest.raises(ConfigError, match="records/bad.json.gz"):
        RunRecord.from_gzip(b"not gzip", "records/bad.json.gz")


def test_a_gzip_bomb_record_is_refused_before_it_expands() -> None:
    """A forged data-branch file that gunzips to gigabytes costs one error, not the memory."""
    import zlib

    from molt_budget.bounded import MAX_SMALL_BYTES

    encoder = zlib.compressobj(1, zlib.DEFLATED, 31)     # level 1: ~200x on zeros, a third of level 9's time
    zeros = bytes(1 << 20)
    bomb = b"".join(encoder.compress(zeros) for _ in range((MAX_SMALL_BYTES >> 20) + 8)) + encoder.flush()
    assert len(bomb) < MAX_SMALL_BYTES // 100
    with pytest.raises(ConfigError, match="records/bomb.json.gz: gzip data expands past"):
        RunRecord.from_gzip(bomb, "records/bomb.json.gz")
    with pytest.raises(ConfigError, match="records/cut.json.gz"):
        RunRecord.from_gzip(gzip.compress(b'{"a": 1}')[:-6], "records/cut.json.gz")
