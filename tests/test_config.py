"""budgets.yaml loading: every bad input is one line naming file:line, never a traceback."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from molt_budget.config import load_config
from molt_budget.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
version: 1
defaults:
  timeout_s: 30
  env: {A: "1"}
lanes:
  cold:
    command: [echo, hi]
    emit_ir: true
    diagnostics: true
    cache_state: cold
  warm:
    command: echo hi
    prime: cold
    expect_cache: hit
    env: {B: 2, A: null}
kpis:
  ops:
    lane: cold
    metric: ir.ops
    target: 100
    limit: 120
  wall:
    lane: warm
    metric: wall_s
    target: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "budgets.yaml"
    path.write_text(text)
    return path


def error_of(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text))
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("budgets.yaml:")
    return message


def test_good_file_applies_defaults_and_infers_classes(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD))
    cold, warm = config.lanes["cold"], config.lanes["warm"]
    assert cold.timeout_s == 30 and cold.expect_exit == [0]
    assert cold.repeats == 1 and warm.repeats == 3     # exact-only: one build; timed: the default 3
    assert cold.emit_ir == "${attempt_dir}/ir.json"
    assert warm.env == {"A": None, "B": "2"}
    assert warm.cache == "warm" and warm.prime == "cold"
    assert config.kpis["ops"].kpi_class == "exact"
    assert config.kpis["wall"].kpi_class == "timed"
    assert config.kpis["ops"].line == 17


@pytest.mark.parametrize(
    "text, expected",
    [
        ("version: 1\nlanes:\n  a: {command: [x]\n", "budgets.yaml:4:1: YAML syntax error"),
        ("version: 1\nlanes:\n  a:\n    command: x\n  a:\n    command: y\nkpis: {}\n", "budgets.yaml:5:3: duplicate key 'lanes.a'"),
        ("version: 1\nlanes:\n  a:\n    command: x\n    repeats: two\nkpis: {}\n", "budgets.yaml:5: lanes.a.repeats:"),
        ("version: 1\nlanes:\n  a:\n    command: x\n    comand: y\nkpis: {}\n", "budgets.yaml:5: lanes.a.comand: unknown key"),
        ("version: 2\nlanes:\n  a:\n    command: x\nkpis: {}\n", "budgets.yaml:1: version"),
        ("- a\n", "budgets.yaml:1: the budgets file must be a mapping"),
        ("version: 1\nlanes:\n  a:\n    command: x\nkpis:\n  k:\n    lane: a\n    metric: ir.bogus\n    target: 1\n",
         "budgets.yaml:8: kpis.k: unknown metric 'ir.bogus'"),
        ("version: 1\nlanes:\n  a:\n    command: x\nkpis:\n  k:\n    lane: b\n    metric: wall_s\n    target: 1\n",
         "budgets.yaml:7: kpis.k: lane 'b' is not declared"),
        ("version: 1\nlanes:\n  a:\n    command: x\n    prime: b\n  b:\n    command: x\n    prime: a\nkpis: {}\n",
         "budgets.yaml:5: prime cycle: a -> b -> a"),
        ("version: 1\nlanes:\n  a:\n    command: x\n    prime: z\nkpis: {}\n", "budgets.yaml:5: lanes.a.prime: lane 'z'"),
        ("version: 1\nlanes:\n  a:\n    command: x\nkpis:\n  k:\n    lane: a\n    metric: ir.ops\n    target: 1\n",
         "needs `emit_ir:` on lane 'a'"),
        ("version: 1\nlanes:\n  a:\n    command: x\nkpis:\n  k:\n    lane: a\n    metric: diag.total_sec\n    target: 1\n",
         "needs `diagnostics: true`"),
        ("version: 1\nlanes:\n  a:\n    command: x\nkpis:\n  k:\n    lane: a\n    metric: wall_s\n    target: 5\n    limit: 4\n",
         "budgets.yaml:10: kpis.k: limit 4 is stricter than target 5"),
        ("version: 1\nlanes:\n  a:\n    command: x\nkpis:\n  k:\n    lane: a\n    metric: wall_s\n", "give a `target`"),
        ("version: 1\nlanes:\n  a:\n    command: x\nkpis:\n  k:\n    lane: a\n    metric: 'regex:stdout:(('\n    target: 1\n",
         "unknown metric"),
        ("version: 1\nlanes:\n  a:\n    command: 5\nkpis: {}\n", "budgets.yaml:4: lanes.a.command"),
    ],
)
def test_bad_input_names_file_and_line(tmp_path: Path, text: str, expected: str) -> None:
    assert expected in error_of(tmp_path, text)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such budgets file"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("name", ["budgets.yaml", "examples/molt/budgets.yaml"])
def test_shipped_budget_files_validate(name: str) -> None:
    config = load_config(REPO / name)
    assert config.kpis and config.lanes


KPI_BASE = "version: 1\nlanes:\n  a:\n    command: x\nkpis:\n  k:\n    lane: a\n    metric: wall_s\n    target: 1\n"


@pytest.mark.parametrize(
    "extra, expected",
    [
        ("    expires: 2024-13-45\n", "budgets.yaml:10: kpis.k.expires: '2024-13-45' is not a date"),
        ("    max_increase_pct: .nan\n", "budgets.yaml:10:23: kpis.k.max_increase_pct: .nan is not a finite number"),
        ("    limit: .inf\n", "budgets.yaml:10:12: kpis.k.limit: .inf is not a finite number"),
        # a timed budget line within float rounding of "no change" divided by ln(1) = 0 in the verdict
        ("    max_increase_pct: 1.0e-15\n", "budgets.yaml:10: kpis.k.max_increase_pct: 1e-15 is below"),
    ],
)
def test_bad_numbers_and_dates(tmp_path: Path, extra: str, expected: str) -> None:
    assert expected in error_of(tmp_path, KPI_BASE + extra)


@pytest.mark.parametrize("literal", ["1e9", "2.5e3", "-4E2", "1e16", "3e-7", "5E+20"])
def test_an_exponent_yaml_reads_as_text_gets_a_spelling_it_reads_as_a_number(tmp_path: Path, literal: str) -> None:
    """PyYAML (YAML 1.1) takes `1e9` as the string '1e9': the error names the line and a
    spelling that loads as the same number."""
    import yaml

    message = error_of(tmp_path, KPI_BASE + f"    limit: {literal}\n")
    assert message.startswith("budgets.yaml:10: kpis.k.limit:")
    suggested = message.rsplit("write it as ", 1)[1].rstrip(")")
    assert yaml.safe_load(suggested) == float(literal)


def test_an_unquoted_date_is_a_date_string(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, KPI_BASE + "    expires: 2027-01-31\n"))
    assert config.kpis["k"].expires == "2027-01-31"


@pytest.mark.parametrize("extra", ["    expect_cache: hit\n", "    prime: b\n"])
def test_a_cold_lane_cannot_be_warm(tmp_path: Path, extra: str) -> None:
    text = "version: 1\nlanes:\n  a:\n    command: x\n    cache_state: cold\n" + extra + "  b:\n    command: y\nkpis: {}\n"
    assert "a cold lane wipes its cache" in error_of(tmp_path, text)


def test_exact_only_lane_builds_once_unless_it_asks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from molt_budget.cli import main

    text = GOOD.replace("defaults:\n", "defaults:\n  repeats: 5\n")
    config = load_config(write(tmp_path, text))
    assert config.lanes["cold"].repeats == 1 and config.lanes["warm"].repeats == 5
    assert main(["validate", "--config", str(tmp_path / "budgets.yaml")]) == 0
    assert "note:" not in capsys.readouterr().out
    # asked for on the lane: a determinism check, kept, and `validate` says what it buys
    explicit = text.replace("    cache_state: cold\n", "    cache_state: cold\n    repeats: 3\n")
    assert load_config(write(tmp_path, explicit)).lanes["cold"].repeats == 3
    assert main(["validate", "--config", str(tmp_path / "budgets.yaml")]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and notes[0].startswith("note: budgets.yaml:12: lanes.cold.repeats:")


def test_the_text_a_config_was_parsed_from_is_not_part_of_what_it_is(tmp_path: Path) -> None:
    """Config.text (kept for the budget gate's comments) is out of equality and repr; every
    other field is in both, a field added later included."""
    from molt_budget.structs import replace

    config = load_config(write(tmp_path, KPI_BASE))
    assert config.text and replace(config, text="# other comments\n") == config
    assert "text=" not in repr(config) and all(f"{name}=" in repr(config) for name in config.__struct_fields__ if name != "text")
    assert replace(config, lines={}) != config


# What a hostile or mistyped budget may not ask for: each bound, the value at it (accepted) and
# past it (refused with file:line). Before the bounds, `retry_backoff_s: 1e300` made a retried
# build's backoff an internal error (time.sleep overflowed), and `repeats`, `max_wait_s` or
# `timeout_s` near the floats' top held a runner until CI's own timeout.
BOUNDS = [
    ("lanes.cold.timeout_s", "lanes:\n  cold:\n", "    timeout_s: {}\n", 604800, 604800.5),
    ("defaults.retries", "defaults:\n", "  retries: {}\n", 100, 101),
    ("lanes.cold.repeats", "lanes:\n  cold:\n", "    repeats: {}\n", 1000, 1001),
    ("lanes.cold.warmups", "lanes:\n  cold:\n", "    warmups: {}\n", 1000, 1001),
    ("lanes.cold.retries", "lanes:\n  cold:\n", "    retries: {}\n", 100, 101),
    ("lanes.cold.retry_backoff_s", "lanes:\n  cold:\n", "    retry_backoff_s: {}\n", 3600, "1.0e+300"),
    ("kpis.wall.max_pairs", "  wall:\n", "    max_pairs: {}\n", 10000, 10001),
    ("kpis.wall.pairs", "  wall:\n", "    pairs: {}\n", 10000, 10001),
    ("settings.quiescence.max_wait_s", None, "settings:\n  quiescence: {{max_wait_s: {}}}\n", 86400, "1.0e+300"),
    ("settings.quiescence.poll_s", None, "settings:\n  quiescence: {{poll_s: {}}}\n", 0.01, "1.0e-300"),
]


@pytest.mark.parametrize("key,anchor,line,ok,bad", BOUNDS, ids=[b[0] for b in BOUNDS])
def test_counts_and_durations_are_bounded(tmp_path: Path, key: str, anchor: str | None, line: str, ok: float,
                                         bad: float | str) -> None:
    def text(value: float | str) -> str:
        added = line.format(value)
        return GOOD + added if anchor is None else GOOD.replace(anchor, anchor + added, 1)

    assert load_config(write(tmp_path, text(ok))) is not None
    message = error_of(tmp_path, text(bad))
    found = re.match(r"budgets\.yaml:\d+(?::\d+)?: (\S+):", message)      # file:line, then the key
    assert found is not None and found.group(1) == key, message


@pytest.mark.parametrize("name", ["A=B", "", "A\\0B"], ids=["equals", "empty", "nul"])
def test_an_env_name_execve_refuses_is_refused_with_its_line(tmp_path: Path, name: str) -> None:
    """`env: {"A=B": x}` (and an empty or NUL name) reached execve as a ValueError mid-run: an
    internal error after the lanes before it had run. Now the file is refused where it says so."""
    text = GOOD.replace('  env: {A: "1"}', f'  env: {{A: "1", "{name}": "x"}}')
    message = error_of(tmp_path, text)
    assert re.match(r"budgets\.yaml:4: defaults\.env: ", message), message
    assert load_config(write(tmp_path, GOOD.replace('  env: {A: "1"}', '  env: {A: "1", "LC_ALL.x-1": "x"}'))) is not None


def test_a_budgets_file_too_big_is_not_called_an_alias_bomb(tmp_path: Path) -> None:
    """Both are refused with the line of the value past MAX_NODES: a generated file of 3,000
    KPIs written out (no alias) was blamed on aliases it does not have; a real alias bomb
    still is."""
    import yaml
    from fuzz_inputs import alias_bomb

    big = tmp_path / "big.yaml"
    big.write_text(yaml.safe_dump({"version": 1, "lanes": {"a": {"command": "true"}},
                                   "kpis": {f"k{i}": {"lane": "a", "metric": "wall_s", "target": 10} for i in range(3000)}}))
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(alias_bomb(9) + "version: 1\n")
    for path, aliased in ((big, False), (bomb, True)):
        with pytest.raises(ConfigError) as info:
            load_config(path)
        assert str(info.value).startswith(f"{path.name}:") and ("alias" in str(info.value)) is aliased, str(info.value)


def _names_and_paths(lane: str = "a", cache: str = "c", kpi: str = "k", history: str = "h.sqlite", output_root: str = "out") -> str:
    return (f"version: 1\nsettings:\n  history: {history}\n  output_root: {output_root}\n"
            f"lanes:\n  {lane}:\n    command: 'true'\n    cache: {cache}\n    cache_state: warm\n"
            f"kpis:\n  {kpi}: {{lane: {lane}, metric: wall_s, target: 1}}\n")


DEEP = "/".join(["d" * 200] * 16)     # 3,215 bytes: a path, but no room for the run folders beneath it
NAMES_AND_PATHS = [
    ("lane id", {"lane": "l" * 129}, r"budgets\.yaml:6: lanes: "),
    ("cache name", {"cache": "c" * 129}, r"budgets\.yaml:8: lanes\.a\.cache: "),
    ("kpi id", {"kpi": "k" * 129}, r"budgets\.yaml:11: kpis: "),
    ("history name", {"history": "h" * 256 + "/h.sqlite"}, r"budgets\.yaml:3: settings\.history: "),
    ("history path", {"history": "/".join(["h" * 250] * 17)}, r"budgets\.yaml:3: settings\.history: "),
    ("output_root path", {"output_root": DEEP}, r"budgets\.yaml:4: settings\.output_root: "),
]


@pytest.mark.parametrize("fields, where", [(f, w) for _, f, w in NAMES_AND_PATHS], ids=[n for n, _, _ in NAMES_AND_PATHS])
def test_a_name_or_path_this_system_cannot_hold_is_refused_at_its_line(tmp_path: Path, fields: dict[str, str],
                                                                       where: str) -> None:
    """A lane id or cache name names a folder, a KPI id a chart's file; settings.history and
    output_root are opened by every command. Too long for the file system, they passed
    validate and ended `check`, `tracker` and `ratchet` as an internal error (OSError:
    File name too long)."""
    message = error_of(tmp_path, _names_and_paths(**fields))
    assert re.match(where, message), message


def test_names_and_paths_at_the_bounds_are_taken(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, _names_and_paths(lane="l" * 128, cache="c" * 128, kpi="k" * 128,
                                                          history="h" * 255, output_root="/".join(["d" * 200] * 10))))
    assert list(config.lanes) == ["l" * 128] and list(config.kpis) == ["k" * 128]


def test_check_with_a_lane_id_too_long_for_a_folder_is_one_line_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from molt_budget import cli

    path = write(tmp_path, _names_and_paths(lane="l" * 300))
    assert cli.main(["check", "--no-base", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("molt-budget: error: budgets.yaml:6: ")


def test_whole_floats_in_integer_fields_are_integers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The schema's integer takes `2.0` (JSON Schema counts a whole float as one), but a slice
    does not: `keep_run_dirs: 2.0` ended every check as an internal error at retention."""
    from molt_budget import cli

    path = write(tmp_path, "version: 1\nsettings: {output_root: out, history: out/h.sqlite, keep_run_dirs: 1.0,\n"
                           "  quiescence: {max_wait_s: 0}}\nlanes:\n  a: {command: 'true', repeats: 2.0, warmups: 1.0, retries: 1.0,\n"
                           "      expect_exit: [0.0]}\nkpis:\n  w: {lane: a, metric: wall_s, target: 5, pairs: 6.0, max_pairs: 12.0}\n")
    config = load_config(path)
    lane, kpi = config.lanes["a"], config.kpis["w"]
    whole = [config.settings.keep_run_dirs, lane.repeats, lane.warmups, lane.retries, *lane.expect_exit, kpi.pairs, kpi.max_pairs]
    assert all(type(v) is int for v in whole), whole
    for _ in range(2):
        assert cli.main(["check", "--no-base", "--config", str(path), "--quiet"]) == 0, capsys.readouterr().err
    assert len([p for p in (tmp_path / "out" / "runs").iterdir() if p.is_dir()]) == 1
