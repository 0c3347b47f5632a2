"""Attribution from the IR alone: modules entered and left, what each costs, and the import
that brought them in, ranked by the share of the KPI's change each accounts for."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import MOLT, needs_shared
from test_compare_git import check, git, make_repo

from molt_budget.collectors.molt_ir import ir_metrics, summarize_ir
from molt_budget.compare.attribution import explain, lane_diff
from molt_budget.results.model import LaneResult, Sample

COPY_IR = {"command": ["${python}", "-S", "-c", "import shutil, sys; shutil.copy('ir.json', sys.argv[1])", "${emit_ir}"],
           "emit_ir": True}
KPIS = {
    "ir_ops": {"lane": "dev", "metric": "ir.ops", "target": 40000, "limit": 50000},
    "init_modules": {"lane": "dev", "metric": "ir.init_modules", "target": 8, "limit": 10},
    "ir_size_mb": {"lane": "dev", "metric": "ir.mb", "target": 8, "limit": 10},
}


def _load(case: str) -> dict[str, Any]:
    path = MOLT / "real" / case / ("ir.json" if case == "A" else "ir.json.gz")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        return json.load(fh)


def _ops_by_init(ir: dict[str, Any]) -> dict[str, int]:
    """Oracle, independent of the streaming collector: ops per module, grouping functions by the
    source_file of their molt_init_* (every real module has its own file)."""
    file_of = {fn["source_file"]: fn["name"][len("molt_init_"):] for fn in ir["functions"] if fn["name"].startswith("molt_init_")}
    out: dict[str, int] = {}
    for fn in ir["functions"]:
        sym = file_of.get(fn.get("source_file"))
        if sym is not None:
            out[sym] = out.get(sym, 0) + len(fn["ops"])
    return out


def _sym(module: str) -> str:
    return module.replace(".", "_")


def real_a_vs_c(tmp_path: Path) -> tuple[int, dict[str, Any]]:
    """molt's real frontend output, `hello.py` (A) then `import json` (C), no diagnostics payload:
    measured through the real runner, collector and comparator in a git repository."""
    repo = make_repo(tmp_path, {"dev": COPY_IR}, KPIS, {})
    shutil.copy(MOLT / "real" / "A" / "ir.json", repo / "ir.json")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "hello")
    base = git(repo, "rev-parse", "HEAD")
    shutil.copy(MOLT / "real" / "C" / "ir.json.gz", repo / "ir.json")   # gzip is read by its magic bytes
    git(repo, "commit", "-qam", "import json")
    return check(repo, "--base", base)


@pytest.mark.slow
@needs_shared
def test_real_a_vs_c_names_the_entering_modules_ranked_without_diagnostics(tmp_path: Path) -> None:
    code, report = real_a_vs_c(tmp_path)
    assert code == 1
    a_meta = json.loads((MOLT / "real" / "A" / "meta.json").read_text())["ir"]
    c_meta = json.loads((MOLT / "real" / "C" / "meta.json").read_text())["ir"]
    entering = {f[len("molt_init_"):] for f in c_meta["molt_init_functions"]} - {f[len("molt_init_"):] for f in a_meta["molt_init_functions"]}

    added = [m["module"] for m in report["diff"]["modules_added"]]
    assert {_sym(m) for m in added} == entering                       # every entering module named, nothing else
    c_ops = _ops_by_init(_load("C"))
    assert [c_ops[_sym(m)] for m in added] == sorted((c_ops[_sym(m)] for m in added), reverse=True)   # largest first
    assert "importlib._bootstrap_external" in added                   # dotted names, read off the source path
    assert [m["module"] for m in report["diff"]["modules_removed"]] == ["hello"]

    by_kpi = {e["kpi"]: e for e in report["explanations"]}
    ops = by_kpi["ir_ops"]
    assert ops["entered"] == len(entering) and ops["left"] == 1
    assert ops["delta"] == c_meta["op_count"] - a_meta["op_count"]      # every op attributed to a module
    cause = ops["cause"]
    assert {k: cause[k] for k in ("importer", "module", "file", "line")} == \
        {"importer": "hello_json", "module": "json", "file": "hello_json.py", "line": 1}     # `import json`, line 1
    assert 1 <= cause["entered"] < len(entering)
    packages = [i for i in ops["items"] if i["kind"] == "package"]
    shares = [i["share"] for i in packages]
    assert shares == sorted(shares, reverse=True) and packages[0]["name"] == "typing"
    assert abs(packages[0]["share"] - c_ops["typing"] / ops["delta"]) < 1e-9
    assert by_kpi["init_modules"]["delta"] == c_meta["molt_init_count"] - a_meta["molt_init_count"]
    assert by_kpi["ir_size_mb"]["measure"] == "bytes_normalized" and by_kpi["ir_size_mb"]["items"][0]["kind"] == "package"


def _lane(ir: dict[str, Any], tmp_path: Path, name: str) -> LaneResult:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(ir, indent=2) + "\n")
    values, detail = ir_metrics(summarize_ir(path))
    return LaneResult("dev", "ok", samples=[Sample("measure", 0, True, metrics=values)], detail={"ir": detail})


def _module(name: str, n_funcs: int, ops_each: int, extra_line_ops: int = 0, imports: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    def ops(n: int) -> list[dict[str, Any]]:
        return [{"kind": "const", "value": i} for i in range(n)] + [{"kind": "line", "value": 1}] * extra_line_ops
    fns = [{"name": f"{name}__f{i}", "params": [], "ops": ops(ops_each), "source_file": f"/src/{name}.py"} for i in range(n_funcs)]
    init_ops = ops(3) + [{"kind": "module_import", "s_value": m, "value": 0, "source_line": 1} for m in imports]
    return fns + [{"name": f"molt_init_{name}", "params": [], "ops": init_ops, "source_file": f"/src/{name}.py"}]


def test_a_line_marker_regression_leads_with_the_op_kind(tmp_path: Path) -> None:
    """No module entered: the change is spread over every module, one op kind explains it all."""
    base = {"functions": [*_module("app", 6, 40), *_module("lib", 9, 30), *_module("util", 4, 50)]}
    head = {"functions": [*_module("app", 6, 40, 3), *_module("lib", 9, 30, 3), *_module("util", 4, 50, 3)]}
    diff = lane_diff("dev", _lane(base, tmp_path, "b"), _lane(head, tmp_path, "h"))
    why = explain({"id": "ir_ops", "metric": "ir.ops", "lane": "dev"}, diff)
    assert why is not None and why["entered"] == 0
    assert (why["items"][0]["kind"], why["items"][0]["name"], why["items"][0]["share"]) == ("op_kind", "line", 1.0)
    assert why["delta"] == 3 * (7 + 10 + 5)   # 3 line ops in each function, init functions included


def test_an_import_leads_with_the_package_it_brings(tmp_path: Path) -> None:
    base = {"functions": [*_module("app", 2, 10), *_module("os", 3, 10)]}
    head = {"functions": [*_module("app", 2, 10, imports=("mp",)), *_module("os", 3, 10),
                          *_module("mp", 8, 50, imports=("mp.spawn",)), *_module("mp_spawn", 2, 20)]}
    head["functions"] = [dict(f, source_file=f["source_file"].replace("mp_spawn.py", "mp/spawn.py")) for f in head["functions"]]
    diff = lane_diff("dev", _lane(base, tmp_path, "b"), _lane(head, tmp_path, "h"))
    why = explain({"id": "ir_ops", "metric": "ir.ops", "lane": "dev"}, diff)
    assert why is not None
    assert [m["module"] for m in diff["modules_added"]] == ["mp", "mp.spawn"]
    top = why["items"][0]
    assert (top["kind"], top["name"], top["modules"]) == ("package", "mp.*", 2)
    assert {k: v for k, v in why["cause"].items() if k != "share"} == {"importer": "app", "module": "mp", "file": "app.py", "line": 1, "entered": 2}
    assert why["cause"]["share"] > 0.95          # the import accounts for the growth
    assert top["share"] > 0.95


@needs_shared
def test_inspect_diagnostics_refuses_an_ir_file(capsys: Any) -> None:
    from molt_budget.cli import main

    assert main(["inspect", "diagnostics", str(MOLT / "real" / "A" / "ir.json")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ir.json" in err and "Traceback" not in err and "total_sec: None" not in err
    assert main(["inspect", "diagnostics", str(MOLT / "real" / "A" / "diagnostics.json")]) == 0


@needs_shared
def test_ir_mb_is_the_location_independent_size(tmp_path: Path) -> None:
    """The seed's MB KPI does not move with the checkout path; the raw size is its own metric."""
    from test_collectors_ir import LONG_ROOT, ROOT, _move_checkout

    doc = json.loads((MOLT / "real" / "A" / "ir.json").read_text())
    moved_doc, _ = _move_checkout(doc, ROOT, LONG_ROOT)
    blob = bytes(doc["module_registry"]["blob"]).decode("latin-1")
    moved_doc["module_registry"]["blob"] = list(_move_checkout(blob, ROOT, LONG_ROOT)[0].encode("latin-1"))
    moved = tmp_path / "ir.json"
    moved.write_text(json.dumps(moved_doc, indent=2) + "\n")
    a = summarize_ir(MOLT / "real" / "A" / "ir.json", [ROOT])
    b = summarize_ir(moved, [LONG_ROOT])
    assert a.raw_mb != b.raw_mb and a.mb == b.mb
    values, _ = ir_metrics(a)
    assert values["ir.mb"] == a.mb and values["ir.raw_mb"] == round(a.bytes / 1e6, 3)
