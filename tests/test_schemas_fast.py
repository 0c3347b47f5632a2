"""schemas.first_error: the compiled fast path must accept exactly what jsonschema accepts.

Documents are a real record and random structural edits of it (a value replaced at a random
path by a random JSON value, a key dropped or added); both validators must agree on every one,
and an invalid one gets jsonschema's error (path and message), as before.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from molt_budget.results.model import KpiResult, LaneResult, RunResults, Sample
from molt_budget.results.record import MainCheck, RunRecord
from molt_budget.schemas import first_error, is_valid, validator


def record_doc() -> dict[str, Any]:
    run = RunResults("20261201T000000000Z-abc123", "budgets.yaml", "0" * 64, "2026-12-01T00:00:00+00:00",
                     "2026-12-01T00:01:00+00:00", state="complete", provenance={"commit": "a" * 40, "branch": "main", "dirty": False})
    run.lanes["dev"] = LaneResult("dev", "ok", samples=[Sample("measure", 0, True, metrics={"ir.ops": 1396.0, "wall_s": 0.2})],
                                  detail={"ir": {"functions": 12, "modules": ["a", "b"]}})
    run.kpis = [KpiResult("ir_ops", "dev", "ir.ops", "exact", "ops", "lower", 100.0, 200.0, "median", [1396.0], 1396.0, "fail", "over")]
    return RunRecord.from_run(run, MainCheck(True, [], "origin/main")).to_dict()


BASE = record_doc()
JSON = st.recursive(st.none() | st.booleans() | st.integers(-10, 10**6) | st.floats(allow_nan=False) | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3), max_leaves=6)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths(v, prefix + (i,))
    return out


ALL = paths(BASE)[1:]


def edited(doc: dict[str, Any], path: tuple[Any, ...], op: str, value: Any) -> dict[str, Any]:
    out = copy.deepcopy(doc)
    parent = out
    for key in path[:-1]:
        parent = parent[key]
    last = path[-1]
    if op == "set":
        parent[last] = value
    elif op == "drop" and isinstance(parent, dict):
        del parent[last]
    elif op == "add" and isinstance(parent, dict):
        parent["unexpected_key"] = value
    return out


def test_the_real_record_is_valid_for_both() -> None:
    assert first_error("record", BASE) is None
    assert next(iter(validator("record").iter_errors(BASE)), None) is None


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ALL), st.sampled_from(["set", "drop", "add"]), JSON)
def test_fast_and_jsonschema_agree(path: tuple[Any, ...], op: str, value: Any) -> None:
    assert_first_errors_agree("record", edited(BASE, path, op, value))


def assert_first_errors_agree(name: str, doc: Any) -> None:
    """first_error gives what jsonschema gives: no error, or the same path and message."""
    slow = next(iter(validator(name).iter_errors(doc)), None)
    fast = first_error(name, doc)
    assert (fast is None) == (slow is None), (doc, slow)
    if slow is not None:
        assert (list(fast.absolute_path), fast.message) == (list(slow.absolute_path), slow.message)


REPORT = json.loads((Path(__file__).resolve().parent / "github_data" / "report_fail.json").read_text(encoding="utf-8"))
REPORT_PATHS = paths(REPORT)[1:]


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(REPORT_PATHS), st.sampled_from(["set", "drop", "add"]), JSON)
def test_fast_and_jsonschema_agree_on_reports(path: tuple[Any, ...], op: str, value: Any) -> None:
    """`report` trusts the compiled check alone for a valid report (load_report)."""
    doc = edited(REPORT, path, op, value)
    slow = next(iter(validator("report").iter_errors(doc)), None)
    assert is_valid("report", doc) == (slow is None), (path, op, value, slow)


def test_a_valid_report_is_rendered_without_jsonschema_and_an_invalid_one_refused(tmp_path: Path) -> None:
    """`report --markdown` of a valid report never imports jsonschema (its import cost more than
    the rest of the command); an invalid one is refused with jsonschema's path, exit 2."""
    import subprocess
    import sys

    from molt_budget.errors import EXIT_CONFIG

    repo = Path(__file__).resolve().parents[1]
    probe = ("import sys\nfrom molt_budget import cli\ncode = cli.main(['report', sys.argv[1], '--markdown'])\n"
             "print('RESULT', code, 'jsonschema' in sys.modules)")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(repo)}

    def render(doc: dict[str, Any]) -> tuple[list[str], str]:
        path = tmp_path / "report.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        done = subprocess.run([sys.executable, "-c", probe, str(path)], env=env, capture_output=True, text=True)
        return done.stdout.split("RESULT")[-1].split(), done.stderr

    assert render(REPORT)[0] == ["0", "False"]          # rendered (the verdict is the poster's exit code)
    bad = copy.deepcopy(REPORT)
    bad["kpis"][0]["status"] = "passed-honest"
    result, stderr = render(bad)
    assert result == [str(EXIT_CONFIG), "True"]
    assert "kpis/0/status" in stderr


def test_a_budgets_file_validated_once_is_not_validated_again(tmp_path: Path) -> None:
    """A valid budgets file is checked by the compiled schema alone (jsonschema is not even
    imported), and once per content: the second load of it skips the check. An edited file
    is checked again, and an invalid one is refused with jsonschema's wording, every time."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    budgets = repo / "budgets.yaml"
    probe = ("import sys; from molt_budget.config.loader import load_config\n"
             "try:\n    load_config(sys.argv[1])\nexcept Exception as exc:\n    print('refused', type(exc).__name__)\n"
             "print('fastjsonschema' in sys.modules, 'jsonschema' in sys.modules)")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(repo)}

    def load(path: Path) -> list[str]:
        done = subprocess.run([sys.executable, "-c", probe, str(path)], env=env, capture_output=True, text=True, check=True)
        return done.stdout.split()

    assert load(budgets) == ["True", "False"]
    assert load(budgets) == ["False", "False"]
    edited = tmp_path / "budgets.yaml"
    edited.write_text(budgets.read_text(encoding="utf-8").replace("version: 1", "version: 1\nbogus_key: 1", 1), encoding="utf-8")
    assert load(edited) == ["refused", "ConfigError", "True", "True"]
    assert load(edited) == ["refused", "ConfigError", "True", "True"]


def results_doc() -> dict[str, Any]:
    run = RunResults("20261201T000000000Z-abc123", "budgets.yaml", "0" * 64, "2026-12-01T00:00:00+00:00",
                     "2026-12-01T00:01:00+00:00", state="complete", provenance={"commit": "a" * 40, "branch": "main", "dirty": False})
    run.lanes["dev"] = LaneResult("dev", "ok", samples=[Sample("measure", 0, True, metrics={"ir.ops": 1396.0, "wall_s": 0.2})],
                                  detail={"diagnostics": {"module_timings": {"a": 0.1}}})
    run.kpis = [KpiResult("ir_ops", "dev", "ir.ops", "exact", "ops", "lower", 100.0, 200.0, "median", [1396.0], 1396.0, "fail", "over")]
    return run.to_dict()


RESULTS = results_doc()


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.sampled_from(paths(RESULTS)[1:]), st.sampled_from(["set", "drop", "add"]), JSON)
def test_fast_and_jsonschema_agree_on_results(path: tuple[Any, ...], op: str, value: Any) -> None:
    """load_results trusts the compiled check alone for a valid results file."""
    assert_first_errors_agree("results", edited(RESULTS, path, op, value))


def test_a_valid_results_file_is_judged_without_jsonschema_and_an_invalid_one_refused(tmp_path: Path) -> None:
    """`verdict` of a valid results file never imports jsonschema (on a 12-lane results file its
    validation took 110 ms, the compiled check 38 ms); an invalid one is refused with
    jsonschema's path, exit 2."""
    import subprocess
    import sys

    from molt_budget.errors import EXIT_CONFIG

    repo = Path(__file__).resolve().parents[1]
    (tmp_path / "budgets.yaml").write_text(
        "version: 1\nlanes:\n  dev: {command: [/bin/true]}\nkpis:\n  dev_wall: {lane: dev, metric: wall_s, target: 10}\n",
        encoding="utf-8")
    probe = ("import sys\nfrom molt_budget import cli\ncode = cli.main(['verdict', sys.argv[1], '--config', sys.argv[2]])\n"
             "print('RESULT', code, 'jsonschema' in sys.modules)")
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(repo)}

    def judge(doc: dict[str, Any]) -> tuple[list[str], str]:
        path = tmp_path / "results.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        done = subprocess.run([sys.executable, "-c", probe, str(path), str(tmp_path / "budgets.yaml")], env=env,
                              capture_output=True, text=True)
        return done.stdout.split("RESULT")[-1].split(), done.stderr

    result, stderr = judge(RESULTS)
    assert result == ["0", "False"], stderr
    bad = copy.deepcopy(RESULTS)
    bad["lanes"]["dev"]["status"] = "fine"
    result, stderr = judge(bad)
    assert result == [str(EXIT_CONFIG), "True"]
    assert "lanes/dev/status" in stderr


BUDGETS = {"version": 1, "lanes": {"dev": {"command": ["/bin/true"]}}, "kpis": {"dev_wall": {"lane": "dev", "metric": "wall_s", "target": 10}}}
CONST_FIELDS = [("budgets", BUDGETS, "version"), ("record", BASE, "schema_version"), ("report", REPORT, "schema_version")]


@pytest.mark.parametrize(("name", "doc", "field"), CONST_FIELDS)
@pytest.mark.parametrize("value", [1, 1.0, True, False, 0, 2, "1", None, [1]])
def test_every_const_is_held_by_the_compiled_check(name: str, doc: dict[str, Any], field: str, value: Any) -> None:
    """The compiled check is built without detailed exceptions, with each `const` as a one-value
    `enum`: it must still accept exactly what jsonschema accepts (a bool is not 1, 1.0 is)."""
    forged = {**doc, field: value}
    slow = next(iter(validator(name).iter_errors(forged)), None)
    assert is_valid(name, forged) == (slow is None), (name, field, value)


def test_const_becomes_enum_only_where_it_is_a_keyword() -> None:
    """A property named `const`, a `const` inside a default, and a schema holding both `const`
    and `enum` keep their meaning for the compiled check."""
    import fastjsonschema
    import jsonschema

    from molt_budget.schemas import _const_as_enum

    schema = {"type": "object", "properties": {"const": {"type": "integer", "const": 3}, "x": {"enum": [1, 2], "const": 2},
                                               "y": {"default": {"const": 9}, "type": "object"}},
              "$defs": {"const": {"const": "c"}}, "additionalProperties": {"$ref": "#/$defs/const"}}
    check = fastjsonschema.compile(_const_as_enum(schema), detailed_exceptions=False)
    docs = [{"const": 3}, {"const": 4}, {"const": True}, {"x": 2}, {"x": 1}, {"y": {}}, {"y": {"const": 1}}, {"z": "c"}, {"z": "d"}]
    for doc in docs:
        try:
            check(doc)
            fast = True
        except fastjsonschema.JsonSchemaException:
            fast = False
        assert fast == jsonschema.Draft202012Validator(schema).is_valid(doc), doc
