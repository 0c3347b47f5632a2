"""The gate on budget changes, on real git repositories: base budgets.yaml committed, head edited."""

from __future__ import annotations

import json
import subprocess
from datetime import date
from pathlib import Path

import pytest

from molt_budget import cli
from molt_budget.compare.budget_changes import BudgetChange, budget_gate, diff_budgets, read_budgets_at
from molt_budget.errors import ConfigError
from molt_budget.results.model import KpiResult, RunResults
from molt_budget.results.store import save_results

pytestmark = pytest.mark.slow   # each case is a real git repository with a base and a head commit

TODAY = date(2026, 11, 26)

BASE = """\
# budgets under test
version: 1
defaults:
  env: {MODE: fast}
settings:
  max_headroom_pct: 50
lanes:
  cold:
    command: [echo, cold]
    emit_ir: true
  warm:
    command: [echo, warm]
    prime: cold
  score_lane:
    command: [echo, score]
kpis:
  ops:
    lane: cold
    metric: ir.ops
    target: 100
    limit: 120
    owner: frontend
    justification: tracker target
  wall:
    lane: warm
    metric: wall_s
    target: 3.0
    limit: 3.6
    owner: infra
    justification: seed
    max_increase_pct: 5
  score:
    lane: score_lane
    metric: "json:out.json#/score"
    direction: higher
    target: 50
    limit: 40
    owner: infra
    justification: seed
"""


def results_file(tmp_path: Path, values: dict[str, float]) -> Path:
    kpis = [KpiResult(id=k, lane="x", metric="m", kpi_class="timed", unit="s", direction="lower", target=None, limit=None,
                      aggregate="median", values=[v], value=v, status="pass", reason="") for k, v in values.items()]
    results = RunResults(run_id="r1", config_path="budgets.yaml", config_sha256="0", started_utc="2026-11-25T10:00:00Z",
                         state="complete", provenance={"commit": "f00dfacecafe", "branch": "main"}, kpis=kpis)
    path = tmp_path / "results.json"
    save_results(path, results)
    return path


def git(repo: Path, *args: str) -> str:
    proc = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "commit.gpgsign=false", *args],
        capture_output=True, text=True, check=True,
    )
    return proc.stdout.strip()


def repo_with(tmp_path: Path, base: str | None, head: str, name: str = "budgets.yaml") -> tuple[Path, str]:
    """A repo whose first commit holds `base` (or no budgets file), then a feature-branch commit with `head`."""
    repo = tmp_path / "repo"
    repo.mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    (repo / "README").write_text("x\n")
    if base is not None:
        (repo / name).write_text(base)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    sha = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-qb", "feature")
    (repo / name).write_text(head)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", "head")
    return repo, sha


def gate(tmp_path: Path, head: str, base: str | None = BASE, measured: dict[str, float] | None = None) -> list[BudgetChange]:
    repo, sha = repo_with(tmp_path, base, head)
    return budget_gate(repo / "budgets.yaml", sha, measured=measured or {}, today=TODAY).changes


def only(changes: list[BudgetChange], **match: object) -> BudgetChange:
    found = [c for c in changes if all(getattr(c, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, changes)
    return found[0]


def run_cli(args: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = cli.main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


# -- loosening -------------------------------------------------------------------------


def test_loosened_with_a_new_justification_is_listed_yellow(tmp_path: Path) -> None:
    head = BASE.replace("target: 100\n    limit: 120\n    owner: frontend\n    justification: tracker target",
                        "target: 110\n    limit: 132\n    owner: frontend\n    justification: inlined shims (#901)")
    changes = gate(tmp_path, head, measured={"ops": 100})
    target = only(changes, kpi="ops", field="target")
    assert (target.kind, target.old, target.new, target.status) == ("loosened", 100, 110, "yellow")
    assert target.justification == "inlined shims (#901)" and target.owner == "frontend"
    assert target.line == 20
    assert only(changes, kpi="ops", field="limit").status == "yellow"


def test_loosened_with_the_old_justification_fails(tmp_path: Path) -> None:
    change = only(gate(tmp_path, BASE.replace("target: 100", "target: 110")), kpi="ops", field="target")
    assert change.status == "fail" and "without a new justification" in change.reason


def test_loosened_without_any_justification_fails(tmp_path: Path) -> None:
    head = BASE.replace("target: 100", "target: 110").replace("    justification: tracker target\n", "")
    change = only(gate(tmp_path, head), kpi="ops", field="target")
    assert change.status == "fail" and "without a justification" in change.reason


def test_higher_is_better_mirrors(tmp_path: Path) -> None:
    head = BASE.replace("target: 50\n    limit: 40\n    owner: infra\n    justification: seed",
                        "target: 45\n    limit: 40\n    owner: infra\n    justification: new parser is slower on purpose")
    change = only(gate(tmp_path, head), kpi="score", field="target")
    assert (change.kind, change.status) == ("loosened", "yellow")
    tighter = BASE.replace("target: 50", "target: 55")
    assert only(gate(tmp_path / "b", tighter), kpi="score", field="target").kind == "tightened"


def test_far_looser_than_measured_fails(tmp_path: Path) -> None:
    head = BASE.replace("target: 100\n    limit: 120\n    owner: frontend\n    justification: tracker target",
                        "target: 400\n    limit: 480\n    owner: frontend\n    justification: because")
    changes = gate(tmp_path, head, measured={"ops": 100})
    target = only(changes, kpi="ops", field="target")
    assert target.status == "fail" and "budget far looser than measured" in target.reason
    assert "= 150" in target.reason
    assert "budget far looser than measured" in only(changes, kpi="ops", field="limit").reason   # 480 > 150 * 1.2


def test_far_looser_falls_back_to_the_bases_seeded_from(tmp_path: Path) -> None:
    base = BASE.replace("    justification: seed\n    max_increase_pct", "    justification: seed\n    seeded_from: 2.0\n    max_increase_pct")
    head = base.replace("target: 3.0\n    limit: 3.6\n    owner: infra\n    justification: seed",
                        "target: 9\n    limit: 10\n    owner: infra\n    justification: slow CI host")
    change = only(gate(tmp_path, head, base=base), kpi="wall", field="target")
    assert change.status == "fail" and "the base's seeded_from.value 2" in change.reason


def test_far_looser_never_uses_the_heads_own_seeded_from(tmp_path: Path) -> None:
    """The pull request could write any number into seeded_from: only the base's counts."""
    base = BASE.replace("    justification: seed\n    max_increase_pct", "    justification: seed\n    seeded_from: 2.0\n    max_increase_pct")
    head = base.replace("target: 3.0\n    limit: 3.6\n    owner: infra\n    justification: seed\n    seeded_from: 2.0",
                        "target: 9\n    limit: 10\n    owner: infra\n    justification: slow CI host\n    seeded_from: 8.0")
    change = only(gate(tmp_path, head, base=base), kpi="wall", field="target")
    assert change.status == "fail" and "seeded_from.value 2 " in change.reason and "(= 3;" in change.reason
    # no measurement and no seeded_from at the base: no "far looser" check, the head's number is ignored
    unseeded = BASE.replace("target: 3.0\n    limit: 3.6\n    owner: infra\n    justification: seed",
                            "target: 900\n    limit: 1000\n    owner: infra\n    justification: slow CI host\n    seeded_from: 850")
    change = only(gate(tmp_path / "b", unseeded), kpi="wall", field="target")
    assert change.status == "yellow" and "far looser" not in change.reason
    assert change.unmeasured and "not checked against a measurement" in change.reason    # said, never silent
    # a real measurement wins over any seeded_from
    change = only(gate(tmp_path / "c", head, base=base, measured={"wall": 8.0}), kpi="wall", field="target")
    assert change.status == "yellow" and not change.unmeasured


def test_within_headroom_of_measured_passes_as_yellow(tmp_path: Path) -> None:
    head = BASE.replace("target: 3.0\n    limit: 3.6\n    owner: infra\n    justification: seed",
                        "target: 4\n    limit: 4.8\n    owner: infra\n    justification: daemon start-up")
    changes = gate(tmp_path, head, measured={"wall": 3.5})
    assert {c.status for c in changes if c.kpi == "wall"} == {"yellow"}


def test_widened_max_increase_and_removed_bound_are_loosenings(tmp_path: Path) -> None:
    head = BASE.replace("max_increase_pct: 5", "max_increase_pct: 8").replace("    limit: 3.6\n", "")
    changes = gate(tmp_path, head)
    assert only(changes, kpi="wall", field="max_increase_pct").kind == "loosened"
    limit = only(changes, kpi="wall", field="limit")
    assert (limit.kind, limit.new, limit.status) == ("loosened", None, "fail")


def test_redefining_a_kpi_counts_as_loosening(tmp_path: Path) -> None:
    head = BASE.replace("metric: wall_s", "metric: cpu_s")
    change = only(gate(tmp_path, head), kpi="wall", field="metric")
    assert (change.kind, change.status) == ("loosened", "fail")


def test_a_redefined_kpi_still_lists_its_bounds_and_the_far_looser_check(tmp_path: Path) -> None:
    head = BASE.replace("metric: wall_s\n    target: 3.0\n    limit: 3.6\n    owner: infra\n    justification: seed",
                        "metric: cpu_s\n    target: 9\n    limit: 10.8\n    owner: infra\n    justification: cpu is steadier")
    changes = gate(tmp_path, head, measured={"wall": 3.0})
    assert only(changes, kpi="wall", field="metric").status == "yellow"
    target = only(changes, kpi="wall", field="target")
    assert (target.kind, target.old, target.new, target.status) == ("loosened", 3.0, 9, "fail")
    assert "budget far looser than measured" in target.reason
    assert only(changes, kpi="wall", field="limit").kind == "loosened"
    # a new direction is judged in the new direction
    flipped = BASE.replace("metric: ir.ops\n    target: 100\n    limit: 120\n    owner: frontend\n    justification: tracker target",
                           "metric: ir.ops\n    direction: higher\n    target: 80\n    limit: 70\n    owner: frontend\n"
                           "    justification: counts kept ops now")
    changes = gate(tmp_path / "b", flipped)
    assert only(changes, kpi="ops", field="direction").kind == "loosened"
    assert {c.field: c.kind for c in changes if c.kpi == "ops"} == {"direction": "loosened", "target": "loosened", "limit": "loosened"}


# -- defaults are filled in before comparing -----------------------------------------------

TIMED_NO_BUDGET = BASE.replace("    max_increase_pct: 5\n", "")


@pytest.mark.parametrize(("line", "expected"), [
    ("    max_increase_pct: 10\n", None),          # the comparator's default, written out
    ("    max_increase_pct: 15\n", ("loosened", "fail")),
    ("    max_increase_pct: 8\n", ("tightened", "pass")),
])
def test_timed_max_increase_pct_none_or_zero_means_ten(tmp_path: Path, line: str, expected: tuple[str, str] | None) -> None:
    head = TIMED_NO_BUDGET.replace("    justification: seed\n  score:", "    justification: seed\n" + line + "  score:")
    found = [c for c in gate(tmp_path, head, base=TIMED_NO_BUDGET) if c.field == "max_increase_pct"]
    if expected is None:
        assert found == []
    else:
        (change,) = found
        assert (change.kind, change.status) == expected and "(10 → " in change.reason
    # and from 5 to none: 5 -> 10 is a widening, not a removal
    removed = only(gate(tmp_path / "b", TIMED_NO_BUDGET), kpi="wall", field="max_increase_pct")
    assert (removed.kind, removed.status, removed.old, removed.new) == ("loosened", "fail", 5, None)
    assert "10 with defaults" in removed.reason


def test_exact_max_increase_pct_none_is_no_budget(tmp_path: Path) -> None:
    head = BASE.replace("    justification: tracker target\n", "    justification: tracker target\n    max_increase_pct: 1\n")
    change = only(gate(tmp_path, head), kpi="ops", field="max_increase_pct")
    assert (change.kind, change.status) == ("tightened", "pass")
    change = only(gate(tmp_path / "b", BASE, base=head), kpi="ops", field="max_increase_pct")
    assert (change.kind, change.status) == ("loosened", "fail")


def test_raising_the_noise_floor_from_its_default_is_a_loosening(tmp_path: Path) -> None:
    head = BASE.replace("    justification: tracker target\n", "    justification: tracker target\n    noise_floor_pct: 5\n")
    change = only(gate(tmp_path, head), kpi="ops", field="noise_floor_pct")
    assert (change.kind, change.old, change.new, change.status) == ("loosened", None, 5, "fail")
    assert "0.5 → 5 with defaults" in change.reason
    same = BASE.replace("    justification: tracker target\n", "    justification: tracker target\n    noise_floor_pct: 0.5\n")
    assert [c for c in gate(tmp_path / "b", same) if c.field == "noise_floor_pct"] == []


def test_fewer_pairs_is_a_weaker_test(tmp_path: Path) -> None:
    head = BASE.replace("    max_increase_pct: 5\n", "    max_increase_pct: 5\n    pairs: 3\n    max_pairs: 8\n")
    changes = gate(tmp_path, head)
    pairs, max_pairs = only(changes, kpi="wall", field="pairs"), only(changes, kpi="wall", field="max_pairs")
    assert (pairs.kind, pairs.old, pairs.new, pairs.status) == ("loosened", 6, 3, "fail") and "weaker test" in pairs.reason
    assert (max_pairs.kind, max_pairs.old, max_pairs.new, max_pairs.status) == ("loosened", 20, 8, "fail")
    more = BASE.replace("    max_increase_pct: 5\n", "    max_increase_pct: 5\n    pairs: 10\n")
    assert {(c.field, c.kind) for c in gate(tmp_path / "b", more)} == {("pairs", "tightened")}
    # pairs mean nothing to an exact KPI
    exact = BASE.replace("    justification: tracker target\n", "    justification: tracker target\n    pairs: 2\n")
    assert gate(tmp_path / "c", exact) == []


# -- lane fields that change what is measured ---------------------------------------------


@pytest.mark.parametrize(("old", "new", "field"), [
    ("    emit_ir: true\n", "    emit_ir: out/ir.json\n", "emit_ir"),
    ("    emit_ir: true\n", "    emit_ir: true\n    diagnostics: true\n", "diagnostics"),
    ("    emit_ir: true\n", "    emit_ir: true\n    expect_exit: [0, 1]\n", "expect_exit"),
    ("    emit_ir: true\n", "    emit_ir: true\n    cwd: sub\n", "cwd"),
])
def test_lane_fields_that_change_the_measurement_need_a_justification(tmp_path: Path, old: str, new: str, field: str) -> None:
    change = only(gate(tmp_path, BASE.replace(old, new)), lane="cold", kind="lane_changed")
    assert (change.field, change.status) == (field, "fail")


def test_more_repeats_on_a_min_aggregate_is_a_loosening(tmp_path: Path) -> None:
    # the lane asks for its repeats (an exact-only lane would build once otherwise)
    base = BASE.replace("    justification: tracker target\n", "    justification: tracker target\n    aggregate: min\n").replace(
        "    emit_ir: true\n", "    emit_ir: true\n    repeats: 3\n")
    head = base.replace("    repeats: 3\n", "    repeats: 9\n")
    change = only(gate(tmp_path, head, base=base), lane="cold", kind="lane_changed")
    assert (change.field, change.old, change.new, change.status) == ("repeats", 3, 9, "fail") and "ops" in change.reason
    fewer = base.replace("    repeats: 3\n", "    repeats: 2\n")
    assert gate(tmp_path / "b", fewer, base=base) == []
    # median: more repeats do not favour the head
    assert gate(tmp_path / "c", BASE.replace("    emit_ir: true\n", "    emit_ir: true\n    repeats: 9\n")) == []
    justified = head.replace("justification: tracker target", "justification: min of 9 is what users see")
    assert only(gate(tmp_path / "d", justified, base=base), lane="cold", kind="lane_changed").status == "yellow"


def test_median_to_min_is_a_loosening(tmp_path: Path) -> None:
    head = BASE.replace("    justification: tracker target\n", "    justification: tracker target\n    aggregate: min\n")
    change = only(gate(tmp_path, head), kpi="ops", field="aggregate")
    assert (change.kind, change.old, change.new, change.status) == ("loosened", "median", "min", "fail")


# -- the gate's own settings ----------------------------------------------------------------


def test_headroom_comes_from_the_base_file(tmp_path: Path) -> None:
    head = BASE.replace("max_headroom_pct: 50", "max_headroom_pct: 1000").replace(
        "target: 3.0\n    limit: 3.6\n    owner: infra\n    justification: seed",
        "target: 9\n    limit: 10.8\n    owner: infra\n    justification: slow CI host")
    changes = gate(tmp_path, head, measured={"wall": 3.0})
    target = only(changes, kpi="wall", field="target")
    assert target.status == "fail" and "+ 50%" in target.reason
    setting = only(changes, field="settings.max_headroom_pct")
    assert (setting.kind, setting.old, setting.new, setting.status) == ("loosened", 50, 1000, "fail")
    assert "# settings: <why>" in setting.reason and setting.line == 6


def test_the_pull_request_cannot_choose_its_own_base(tmp_path: Path) -> None:
    """remote_main/main_branch pointing at the PR's own branch would make the base the head itself."""
    head = BASE.replace("  max_headroom_pct: 50\n", "  max_headroom_pct: 50\n  remote_main: feature\n  main_branch: feature\n").replace(
        "target: 100", "target: 110")
    repo, sha = repo_with(tmp_path, BASE, head)
    result = budget_gate(repo / "budgets.yaml", None, measured={}, today=TODAY)
    assert result.base == sha
    assert only(result.changes, kpi="ops", field="target").status == "fail"
    assert {c.field for c in result.changes if c.kpi is None} == {"settings.remote_main", "settings.main_branch"}


def test_the_base_files_main_branch_steers_the_default_base(tmp_path: Path) -> None:
    """A project whose budgets say `main_branch: trunk`: the merge-base with trunk, not with a stale main."""
    base = BASE.replace("  max_headroom_pct: 50\n", "  max_headroom_pct: 50\n  remote_main: ''\n  main_branch: trunk\n")
    repo, sha = repo_with(tmp_path, base, base)
    git(repo, "checkout", "-qb", "trunk", sha)
    (repo / "budgets.yaml").write_text(base.replace("target: 100", "target: 90"))
    git(repo, "commit", "-qam", "tighter on trunk")
    trunk = git(repo, "rev-parse", "HEAD")
    git(repo, "checkout", "-q", "feature")
    git(repo, "merge", "-q", "--no-edit", "trunk")
    (repo / "budgets.yaml").write_text(base.replace("target: 100", "target: 95"))
    result = budget_gate(repo / "budgets.yaml", None, measured={}, today=TODAY)
    assert result.base == trunk
    change = only(result.changes, kpi="ops", field="target")
    assert (change.old, change.new, change.status) == (90, 95, "fail")


@pytest.mark.parametrize(("old", "new", "field"), [
    ("  max_headroom_pct: 50\n", "  max_headroom_pct: 50\n  compare_on: [python]\n", "settings.compare_on"),
    ("  max_headroom_pct: 50\n", "  max_headroom_pct: 50\n  provenance_tools: {cargo: [cargo, --version]}\n",
     "settings.provenance_tools"),
    ("  max_headroom_pct: 50\n", "  max_headroom_pct: 50\n  quiescence: {max_load_per_cpu: 2.0}\n",
     "settings.quiescence.max_load_per_cpu"),
    ("  max_headroom_pct: 50\n", "  max_headroom_pct: 50\n  quiescence: {competitors: [cargo]}\n",
     "settings.quiescence.competitors"),
])
def test_loosened_settings_need_a_settings_comment(tmp_path: Path, old: str, new: str, field: str) -> None:
    head = BASE.replace(old, new)
    change = only(gate(tmp_path, head), field=field)
    assert (change.kind, change.status) == ("loosened", "fail") and "# settings: <why>" in change.reason
    noted = head.replace("settings:\n", "settings:\n  # settings: the CI fleet moved to shared runners (#77)\n")
    change = only(gate(tmp_path / "b", noted), field=field)
    assert (change.status, change.justification) == ("yellow", "the CI fleet moved to shared runners (#77)")
    # the same note already at the base does not cover a new loosening
    old_note = BASE.replace("settings:\n", "settings:\n  # settings: the CI fleet moved to shared runners (#77)\n")
    assert only(gate(tmp_path / "c", noted, base=old_note), field=field).status == "fail"


def test_tighter_settings_are_good_news(tmp_path: Path) -> None:
    changes = gate(tmp_path, BASE.replace("max_headroom_pct: 50", "max_headroom_pct: 20"))
    assert [(c.field, c.kind, c.status) for c in changes] == [("settings.max_headroom_pct", "tightened", "pass")]
    more = BASE.replace("  max_headroom_pct: 50\n", "  max_headroom_pct: 50\n  quiescence: {competitors: [cargo, rustc, molt, gcc]}\n")
    assert [(c.field, c.kind) for c in gate(tmp_path / "b", more)] == [("settings.quiescence.competitors", "tightened")]


# -- tightening, additions, removals ----------------------------------------------------


def test_tightening_is_good_news(tmp_path: Path) -> None:
    changes = gate(tmp_path, BASE.replace("target: 100\n    limit: 120", "target: 80\n    limit: 96"))
    assert [(c.field, c.kind, c.status) for c in changes] == [("target", "tightened", "pass"), ("limit", "tightened", "pass")]
    assert "good news" in changes[0].reason


def test_new_kpi_without_owner_is_yellow(tmp_path: Path) -> None:
    head = BASE + "  cpu:\n    lane: warm\n    metric: cpu_s\n    target: 2\n  rss:\n    lane: warm\n    metric: peak_rss_mb\n    limit: 900\n    owner: infra\n"
    changes = gate(tmp_path, head)
    cpu, rss = only(changes, kpi="cpu"), only(changes, kpi="rss")
    assert (cpu.kind, cpu.status) == ("added", "yellow") and "owner" in cpu.reason
    assert (rss.kind, rss.status) == ("added", "pass")


def test_removed_kpi_needs_a_tombstone_comment(tmp_path: Path) -> None:
    start = BASE.index("  score:\n")
    removed = BASE[:start]
    change = only(gate(tmp_path, removed), kpi="score")
    assert (change.kind, change.status) == ("removed", "fail") and "# removed score:" in change.reason
    lane = only(gate(tmp_path / "b", removed.replace("  score_lane:\n    command: [echo, score]\n", "")), lane="score_lane", kind="lane_removed")
    assert lane.status == "fail"
    noted = removed.replace("kpis:\n", "kpis:\n  # removed score: the json probe moved to the nightly gate\n")
    change = only(gate(tmp_path / "c", noted), kpi="score")
    assert (change.status, change.justification) == ("yellow", "the json probe moved to the nightly gate")


def test_lane_command_or_env_change_needs_a_kpi_justification(tmp_path: Path) -> None:
    changes = gate(tmp_path, BASE.replace("command: [echo, warm]", "command: [echo, warm, --fast]"))
    change = only(changes, lane="warm", kind="lane_changed")
    assert change.status == "fail" and change.field == "command" and "kpis" not in change.reason
    assert change.old == ["echo", "warm"] and change.new == ["echo", "warm", "--fast"]
    # a primer's env change reaches the KPIs of the lanes it primes; the line points at defaults
    env = gate(tmp_path / "b", BASE.replace("env: {MODE: fast}", "env: {MODE: slow}"))
    assert {c.lane for c in env if c.kind == "lane_changed"} == {"cold", "warm", "score_lane"}
    assert only(env, lane="cold", kind="lane_changed").line == 4
    justified = BASE.replace("command: [echo, warm]", "command: [echo, warm, --fast]").replace(
        "    justification: seed\n    max_increase_pct", "    justification: --fast is what users run\n    max_increase_pct")
    change = only(gate(tmp_path / "c", justified), lane="warm", kind="lane_changed")
    assert change.status == "yellow" and "kpis.wall" in change.reason


# -- waivers ---------------------------------------------------------------------------


def test_expired_waiver_fails_even_without_an_edit(tmp_path: Path) -> None:
    head = BASE.replace("    justification: tracker target\n", "    justification: tracker target\n    expires: '2026-11-25'\n")
    changes = gate(tmp_path, head, base=head)
    change = only(changes, kind="waiver_expired")
    assert change.status == "fail" and "expired on 2026-11-25" in change.reason and change.line == 24


def test_active_waiver_is_noted_and_extending_it_is_a_loosening(tmp_path: Path) -> None:
    base = BASE.replace("    justification: tracker target\n", "    justification: tracker target\n    expires: '2026-12-01'\n")
    changes = gate(tmp_path, base.replace("2026-12-01", "2027-03-01"), base=base)
    assert only(changes, kind="unchanged_note").reason == "temporary waiver: 95 day(s) left"
    extended = only(changes, field="expires", kind="loosened")
    assert extended.status == "fail" and "waiver extended" in extended.reason


# -- new adoption, broken input ---------------------------------------------------------


def test_base_without_budgets_file_is_a_new_adoption(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    repo, sha = repo_with(tmp_path, None, BASE)
    assert read_budgets_at(repo, sha, "budgets.yaml") is None
    code, out, err = run_cli(["budget-diff", "--base", sha, "--config", str(repo / "budgets.yaml"), "--json"], monkeypatch, capsys)
    assert code == 0, err
    data = json.loads(out)
    assert data["base_found"] is False and data["status"] == "pass"
    assert {c["kind"] for c in data["changes"]} == {"added"}
    assert {c["kpi"] for c in data["changes"] if c["kpi"]} == {"ops", "wall", "score"}


def test_unreadable_base_is_one_yellow_note(tmp_path: Path) -> None:
    changes = gate(tmp_path, BASE, base="version: 1\nlanes: [unclosed\n")
    assert len(changes) == 1
    assert changes[0].status == "yellow" and changes[0].reason.startswith("base budgets unreadable")


def test_broken_head_is_a_config_error_with_a_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    repo, sha = repo_with(tmp_path, BASE, BASE.replace("target: 100", "target: [100"))
    code, out, err = run_cli(["budget-diff", "--base", sha, "--config", str(repo / "budgets.yaml")], monkeypatch, capsys)
    assert code == 2 and err.startswith("molt-budget: error: budgets.yaml:") and err.count("\n") == 1


def test_unknown_base_and_no_repository_are_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    repo, _ = repo_with(tmp_path, BASE, BASE)
    code, _, err = run_cli(["budget-diff", "--base", "nope123", "--config", str(repo / "budgets.yaml")], monkeypatch, capsys)
    assert code == 2 and "nope123" in err and err.count("\n") == 1
    loose = tmp_path / "loose"
    loose.mkdir()
    (loose / "budgets.yaml").write_text(BASE)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    code, _, err = run_cli(["budget-diff", "--config", str(loose / "budgets.yaml")], monkeypatch, capsys)
    assert code == 2 and "not inside a git repository" in err and err.count("\n") == 1


def test_no_main_branch_needs_an_explicit_base(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    repo, sha = repo_with(tmp_path, BASE, BASE)
    git(repo, "branch", "-q", "-m", "main", "trunk")
    code, _, err = run_cli(["budget-diff", "--config", str(repo / "budgets.yaml")], monkeypatch, capsys)
    assert code == 2 and "pass --base REF" in err
    code, out, _ = run_cli(["budget-diff", "--config", str(repo / "budgets.yaml"), "--base", "trunk"], monkeypatch, capsys)
    assert code == 0 and out.startswith(f"no budget changes in budgets.yaml since {sha[:12]}")


def test_unknown_commit_in_read_budgets_at(tmp_path: Path) -> None:
    repo, _ = repo_with(tmp_path, BASE, BASE)
    with pytest.raises(ConfigError, match="not a commit"):
        read_budgets_at(repo, "0" * 40, "budgets.yaml")


# -- the command -----------------------------------------------------------------------


def test_command_default_base_is_the_merge_base_with_main(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    repo, sha = repo_with(tmp_path, BASE, BASE.replace("target: 100", "target: 110"))
    code, out, _ = run_cli(["budget-diff", "--config", str(repo / "budgets.yaml"), "--today", "2026-11-26"], monkeypatch, capsys)
    assert code == 1
    assert f"since {sha[:12]}" in out and "| FAIL" in out and "budget gate: FAIL (1 fail)" in out
    assert "budgets.yaml:20" in out


def test_command_uses_results_for_the_headroom_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    head = BASE.replace("target: 3.0\n    limit: 3.6\n    owner: infra\n    justification: seed",
                        "target: 4\n    limit: 4.8\n    owner: infra\n    justification: new host")
    repo, sha = repo_with(tmp_path, BASE, head)
    res = results_file(tmp_path, {"wall": 1.0})
    code, out, _ = run_cli(["budget-diff", "--base", sha, "--config", str(repo / "budgets.yaml"), "--results", str(res), "--json"],
                           monkeypatch, capsys)
    assert code == 1
    assert all("far looser" in c["reason"] for c in json.loads(out)["changes"])
    code, out, _ = run_cli(["budget-diff", "--base", sha, "--config", str(repo / "budgets.yaml")], monkeypatch, capsys)
    assert code == 0 and "budget gate: YELLOW (2 yellow)" in out


def test_bump_then_gate_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """A bump records everything the gate asks for: its loosening is listed yellow, never failed."""
    repo, sha = repo_with(tmp_path, BASE, BASE)
    res = results_file(tmp_path, {"wall": 3.4})
    config = str(repo / "budgets.yaml")
    code, out, err = run_cli(["bump", "wall", "--from-results", str(res), "--headroom", "10%", "--reason", "daemon start-up",
                              "--config", config, "--today", "2026-11-26"], monkeypatch, capsys)
    assert code == 0, err
    code, out, err = run_cli(["budget-diff", "--base", sha, "--config", config, "--results", str(res), "--json",
                              "--today", "2026-11-26"], monkeypatch, capsys)
    data = json.loads(out)
    assert code == 0 and data["status"] == "yellow"
    assert {(c["field"], c["old"], c["new"]) for c in data["changes"]} == {("target", 3.0, 3.74), ("limit", 3.6, 4.488)}


def test_diff_budgets_directly_without_git() -> None:
    changes = diff_budgets(BASE, BASE.replace("target: 100", "target: 90"), measured={}, today=TODAY, max_headroom_pct=50,
                           path_name="budgets.yaml")
    assert [(c.kpi, c.kind) for c in changes] == [("ops", "tightened")]
