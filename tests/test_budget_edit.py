"""`molt-budget bump`: an in-place edit whose diff touches only the KPI's lines."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from molt_budget import cli
from molt_budget.budgets.edit import bump_kpi, render_scalar, round_budget, set_kpi_fields
from molt_budget.config import load_config
from molt_budget.errors import ConfigError
from molt_budget.results.model import KpiResult, LaneResult, RunResults, Sample
from molt_budget.results.store import save_results

REPO = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 26)

# Deliberately quirky: comments everywhere, flow mappings, quoted strings, 4-space and
# uneven indentation, blank lines, a multi-line flow sequence, a literal block scalar.
QUIRKY = """\
# Budgets -- hand formatted; a bump must not reflow anything else.
version: 1   # schema version

defaults: {timeout_s: 30, env: {A: "1", B: null}}
lanes:
    cold:
        command: [echo, "hi",
                  there]     # wrapped by hand
        emit_ir: true
        diagnostics: true
    warm: {command: 'echo warm', prime: cold}

kpis:

    # --- IR ---
    ops:
        lane: cold
        metric: ir.ops
        target:   100    # tracker target
        limit: 120
        owner: 'frontend team'
        justification: "limit = target + 20%"

    wall: {lane: warm, metric: wall_s, target: 3.0, limit: 3.6, owner: infra}
    # a comment after the flow KPI

    score:
      lane: warm
      metric: "json:out.json#/score"
      direction: higher
      target: 50
      limit: 40
      seeded_from:
          value: 55
          commit: abc
      basis: |
          multi-line
          # not a comment
      expires: '2030-01-01'
# end of file
"""


def write(tmp_path: Path, text: str, name: str = "budgets.yaml") -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode())
    return path


def kpi_span(text: str, kpi: str, next_key: str | None) -> tuple[int, int]:
    """0-based [first, end) lines of a KPI: from its key to the next KPI's key (or EOF comment)."""
    lines = text.splitlines()
    first = next(i for i, l in enumerate(lines) if l.strip().startswith(f"{kpi}:"))
    end = next((i for i, l in enumerate(lines) if i > first and next_key and l.strip().startswith(f"{next_key}:")), len(lines))
    return first, end


def assert_only_kpi_changed(old: str, new: str, kpi: str, next_key: str | None) -> None:
    first, end = kpi_span(old, kpi, next_key)
    old_lines, new_lines = old.splitlines(keepends=True), new.splitlines(keepends=True)
    tail = len(old_lines) - end
    assert new_lines[:first] == old_lines[:first]
    assert new_lines[len(new_lines) - tail:] == old_lines[end:]
    # byte for byte, not just line for line
    head_bytes = "".join(old_lines[:first]).encode()
    tail_bytes = "".join(old_lines[end:]).encode()
    assert new.encode().startswith(head_bytes) and new.encode().endswith(tail_bytes)


def results_file(tmp_path: Path, values: dict[str, float], lanes: dict[str, dict[str, float]] | None = None) -> Path:
    kpis = [KpiResult(id=k, lane="x", metric="m", kpi_class="exact", unit="", direction="lower", target=None, limit=None,
                      aggregate="median", values=[v], value=v, status="pass", reason="") for k, v in values.items()]
    lane_results = {name: LaneResult(lane=name, status="ok", samples=[Sample(kind="measure", index=0, ok=True, metrics=m)])
                    for name, m in (lanes or {}).items()}
    results = RunResults(run_id="20261126T000000Z-abc", config_path="budgets.yaml", config_sha256="0", started_utc="2026-11-25T10:00:00Z",
                         state="complete", provenance={"commit": "f00dfacecafe1234", "branch": "main"}, lanes=lane_results, kpis=kpis)
    path = tmp_path / "results.json"
    save_results(path, results)
    return path


# -- round trip ------------------------------------------------------------------------


def test_bump_block_kpi_changes_only_its_lines(tmp_path: Path) -> None:
    path = write(tmp_path, QUIRKY)
    result = bump_kpi(path, "ops", target=200, reason="stdlib shims (#901)", owner="compiler-frontend", today=TODAY, commit="deadbeef")
    new = path.read_text()
    assert_only_kpi_changed(QUIRKY, new, "ops", "wall")
    assert "        target:   200    # tracker target\n" in new          # spacing and comment kept
    assert "        limit: 240\n" in new                                  # limit kept its ratio
    assert "        owner: 'compiler-frontend'\n" in new                 # quote style kept
    assert '        justification: "stdlib shims (#901)"\n' in new
    assert '        updated: "2026-11-26"\n' in new
    data = load_config(path).kpis["ops"]
    assert (data.target, data.limit, data.updated, data.owner) == (200, 240, "2026-11-26", "compiler-frontend")
    assert "set by hand; was target 100, limit 120" in data.basis
    assert result.diff.startswith("--- a/budgets.yaml\n+++ b/budgets.yaml\n")
    changed = [l for l in result.diff.splitlines()[2:] if l[:1] in "+-"]
    assert all("target" in l or "limit" in l or "owner" in l or "justification" in l or "updated" in l or "basis" in l for l in changed)


def test_bump_flow_kpi_rewrites_only_that_mapping(tmp_path: Path) -> None:
    path = write(tmp_path, QUIRKY)
    bump_kpi(path, "wall", target=4, reason="daemon warm-up", today=TODAY, commit=None)
    new = path.read_text()
    assert_only_kpi_changed(QUIRKY, new, "wall", "score")
    wall_line = next(l for l in new.splitlines() if l.strip().startswith("wall:"))
    assert wall_line.startswith("    wall: {lane: warm, metric: wall_s, target: 4, limit: 4.8, owner: infra, ")
    assert len([l for l in new.splitlines() if l not in QUIRKY.splitlines()]) == 1
    assert load_config(path).kpis["wall"].justification == "daemon warm-up"


def test_bump_from_results_higher_is_better_replaces_nested_and_literal_values(tmp_path: Path) -> None:
    path = write(tmp_path, QUIRKY)
    res = results_file(tmp_path, {"score": 70})
    result = bump_kpi(path, "score", from_results=res, headroom_pct=10, reason="faster parser", today=TODAY, commit="0123456789abcdef")
    new = path.read_text()
    assert_only_kpi_changed(QUIRKY, new, "score", None)
    kpi = load_config(path).kpis["score"]
    assert kpi.target == 63 and kpi.limit == 50          # 70 - 10%; limit keeps 40/50 (floored: the looser side)
    assert kpi.seeded_from == {"value": 70, "commit": "f00dfacecafe", "date": "2026-11-25", "headroom_pct": 10}
    assert kpi.basis == "measured 70 - 10% headroom (run 20261126T000000Z-abc)"
    assert kpi.expires is None                             # a re-set budget is permanent
    assert "      seeded_from:\n          value: 70\n" in new  # nested indentation of the file kept
    assert any("dropped the waiver" in n for n in result.notes)
    assert new.endswith("      updated: \"2026-11-26\"\n# end of file\n")


def test_bump_keeps_crlf_and_missing_final_newline(tmp_path: Path) -> None:
    text = QUIRKY.replace("\n# end of file\n", "").replace("\n", "\r\n")
    path = write(tmp_path, text)
    bump_kpi(path, "score", target=60, reason="r", expires="2030-06-30", today=TODAY, commit=None)
    new = path.read_bytes().decode()
    assert "\n" not in new.replace("\r\n", "")
    assert not new.endswith("\r\n")
    assert new.startswith(text[: text.index("    score:")])
    kpi = load_config(path).kpis["score"]
    assert (kpi.target, kpi.expires, kpi.limit) == (60, "2030-06-30", 48)


@pytest.mark.parametrize("rel, kpi", [("budgets.yaml", "dev_warm_s"), ("examples/molt/budgets.yaml", "ir_ops"),
                                      ("examples/molt/budgets.yaml", "dev_warm_backend_s")])
def test_bump_real_files_touches_only_the_kpi(tmp_path: Path, rel: str, kpi: str) -> None:
    src = (REPO / rel).read_text()
    path = write(tmp_path, src)
    bump_kpi(path, kpi, target=12345, limit=20000, reason="test", today=TODAY, commit=None)
    new = path.read_text()
    keys = list(load_config(REPO / rel).kpis)
    nxt = keys[keys.index(kpi) + 1] if keys.index(kpi) + 1 < len(keys) else None
    assert_only_kpi_changed(src, new, kpi, nxt)


@pytest.mark.slow
@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=40))
@settings(max_examples=300, deadline=None)
def test_rendered_strings_read_back_unchanged(text: str) -> None:
    assert yaml.safe_load("k: " + render_scalar(text)) == {"k": text}
    assert yaml.safe_load("{k: " + render_scalar(text, flow=True) + "}") == {"k": text}


@pytest.mark.parametrize("text", ["yes", "2026-11-26", "a: b", "x # y", "0o17", "", " lead", "null", "1_000", "{x}", "it's"])
def test_tricky_strings_are_quoted(text: str) -> None:
    assert yaml.safe_load("k: " + render_scalar(text)) == {"k": text}


def test_round_budget_rounds_toward_the_looser_side() -> None:
    assert round_budget(1.3574, "lower") == 1.358
    assert round_budget(1.3574, "higher") == 1.357
    assert round_budget(55531.3, "lower") == 55532
    assert round_budget(6.6, "lower", integral=True) == 7
    assert round_budget(0.012345, "lower") == 0.01235
    # a measured 5e-324 (allowed: |v| <= 1e300) once made 10**327 and an OverflowError
    assert round_budget(5e-324, "lower") == 5e-324 and round_budget(1e-300, "lower") == 1e-300


def test_set_kpi_fields_unknown_kpi() -> None:
    with pytest.raises(ConfigError, match="kpis.nope is not a mapping"):
        set_kpi_fields(QUIRKY, "nope", {"target": 1})


# -- bad input: one line, exit 2, never a traceback -------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["nope", "--target", "5", "--reason", "r"], "unknown KPI 'nope' (known: ops, wall, score)"),
        (["ops", "--target", "200", "--limit", "150", "--reason", "r"], "limit 150 is below the target 200"),
        (["score", "--target", "30", "--limit", "40", "--reason", "r"], "limit 40 is above the target 30"),
        (["ops", "--target", "200", "--expires", "2020-01-01", "--reason", "r"], "--expires 2020-01-01 is in the past"),
        (["ops", "--target", "200", "--expires", "2026-13-01", "--reason", "r"], "is not a date"),
        (["ops", "--reason", "r"], "no change requested"),
        (["ops", "--target", "100", "--reason", "r"], "no change requested"),
        (["ops", "--target", "200"], "--reason is required"),
        (["ops", "--target", "200", "--reason", "  "], "--reason is required"),
        (["ops", "--target", "lots", "--reason", "r"], "'lots' is not a number"),
        (["ops", "--target", "1.7e308", "--reason", "r"], "past the largest number a budget can hold"),
        (["ops", "--headroom", "10%", "--reason", "r"], "--headroom needs --from-results"),
        (["ops", "--from-results", "RESULTS", "--target", "3", "--reason", "r"], "not both"),
        (["ops", "--from-results", "RESULTS", "--reason", "r"], "no measured value for KPI 'ops' (values for: wall)"),
        (["ops", "--from-results", "missing.json", "--reason", "r"], "no such results file"),
    ],
)
def test_bump_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], args: list[str], message: str) -> None:
    path = write(tmp_path, QUIRKY)
    res = results_file(tmp_path, {"wall": 2.0})
    args = [str(res) if a == "RESULTS" else str(tmp_path / a) if a == "missing.json" else a for a in args]
    code = cli.main(["bump", *args, "--config", str(path), "--today", "2026-11-26"])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.startswith("molt-budget: error: ") and err.count("\n") == 1
    assert path.read_text() == QUIRKY                         # nothing written


def test_bump_command_prints_diff_and_aggregates_lane_samples(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, QUIRKY)
    res = results_file(tmp_path, {}, lanes={"warm": {"wall_s": 2.0}})   # no verdicts: value from the lane samples
    code = cli.main(["bump", "wall", "--from-results", str(res), "--headroom", "25%", "--reason", "new host",
                     "--config", str(path), "--today", "2026-11-26"])
    out = capsys.readouterr().out
    assert code == 0
    assert out.startswith("--- a/") and "+    wall: {lane: warm, metric: wall_s, target: 2.5, limit: 3," in out
    kpi = load_config(path).kpis["wall"]
    assert kpi.basis == "measured 2 s + 25% headroom (run 20261126T000000Z-abc)"


def test_dry_run_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, QUIRKY)
    assert cli.main(["bump", "ops", "--limit", "130", "--reason", "r", "--dry-run", "--config", str(path)]) == 0
    assert "+        limit: 130" in capsys.readouterr().out
    assert path.read_text() == QUIRKY


def test_bump_refuses_an_invalid_budgets_file(tmp_path: Path) -> None:
    path = write(tmp_path, QUIRKY.replace("metric: ir.ops", "metric: ir.nope"))
    with pytest.raises(ConfigError, match="unknown metric"):
        bump_kpi(path, "ops", target=5, reason="r", today=TODAY, commit=None)



ODD = """\
---
version: 1
kpis:
  "ops":   # quoted key, kpis before lanes, document markers
    lane: cold
    # a comment between keys
    target:
      100
    limit: &lim 120   # an anchor
    justification: >-
      folded
      text
  other: {lane: cold, metric: ir.ops, target: 1, limit: *lim}
lanes:
  cold: {command: [echo], emit_ir: true}
...
"""


def test_splice_handles_next_line_values_folded_scalars_and_markers() -> None:
    from molt_budget.budgets.edit import DELETE

    new = set_kpi_fields(ODD, "ops", {"target": 200, "justification": "x y", "updated": "2026-11-26", "expires": DELETE})
    assert new == ODD.replace("    target:\n      100\n", "    target: 200\n").replace(
        "    justification: >-\n      folded\n      text\n", '    justification: x y\n    updated: "2026-11-26"\n')
    new = set_kpi_fields(ODD, "other", {"target": 2, "owner": "a, b"})
    assert new == ODD.replace("target: 1, limit: *lim}", 'target: 2, limit: *lim, owner: "a, b"}')


def test_splice_refuses_what_it_cannot_do_exactly() -> None:
    """Editing an anchored value would change its aliases too: refuse, change nothing."""
    from molt_budget.errors import BudgetError

    with pytest.raises(BudgetError, match="cannot edit kpis.ops safely"):
        set_kpi_fields(ODD, "ops", {"limit": 130})


def test_alias_values_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ConfigError, match=r"kpis.other.limit is a YAML alias"):
        set_kpi_fields(ODD, "other", {"limit": 130})
    block = ODD.replace("  other: {lane: cold, metric: ir.ops, target: 1, limit: *lim}\n",
                        "  other:\n    lane: cold\n    metric: ir.ops\n    limit: *lim\n")
    with pytest.raises(ConfigError, match=r"kpis.other.limit is a YAML alias"):
        set_kpi_fields(block, "other", {"limit": 130})
    assert "limit: *lim\n    target: 5\n" in set_kpi_fields(block, "other", {"target": 5})


def test_flow_kpi_drops_a_key() -> None:
    from molt_budget.budgets.edit import DELETE

    text = "version: 1\nkpis:\n  k: {lane: a, metric: wall_s, target: 1, expires: '2030-01-01'}\n  j: {lane: a, metric: wall_s, expires: x, target: 2}\n"
    assert set_kpi_fields(text, "k", {"expires": DELETE, "target": 2}) == text.replace("target: 1, expires: '2030-01-01'", "target: 2")
    assert set_kpi_fields(text, "j", {"expires": DELETE}) == text.replace("expires: x, target: 2", "target: 2")
