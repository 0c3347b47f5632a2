from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]

# The CLI runs as a subprocess in many tests: with PYTHONDONTWRITEBYTECODE (set on some CI
# images) each of them compiled every module again, ~0.4 s a run. Bytecode is written to
# the checkout's __pycache__ (ignored by git), as an installed package has it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False

# molt-budget keeps what it has checked before under $XDG_CACHE_HOME/molt-budget (schemas.
# checked_before_dir): the tests get one folder a session, never the developer's ~/.cache.
# The process that imports this first (xdist's controller, or a plain run) makes it; the
# workers and every subprocess inherit it; its maker removes it at exit. It starts empty, as
# on a fresh machine, so the fuzzed budgets files write ~2,000 small entries and markers: in
# memory (/dev/shm, when it has room) that costs nothing, on a contended disk seconds.
def _memory_tmp() -> str | None:
    shm = Path("/dev/shm")
    try:
        return str(shm) if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free >= 1 << 30 else None
    except OSError:
        return None


if "MOLT_BUDGET_TEST_CACHE" not in os.environ:
    os.environ["MOLT_BUDGET_TEST_CACHE"] = tempfile.mkdtemp(prefix="molt-budget-test-cache-", dir=_memory_tmp())
    atexit.register(shutil.rmtree, os.environ["MOLT_BUDGET_TEST_CACHE"], ignore_errors=True)
os.environ["XDG_CACHE_HOME"] = os.environ["MOLT_BUDGET_TEST_CACHE"]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(os.environ.get("MOLT_BUDGET_SHARED", REPO.parent / "shared"))
MOLT = SHARED / "molt"
needs_shared = pytest.mark.skipif(
    not (MOLT / "real").is_dir(), reason=f"molt reference data not found at {MOLT} (set MOLT_BUDGET_SHARED)"
)


def _shares_a_module_fixture(item: pytest.Item) -> bool:
    info = getattr(item, "_fixtureinfo", None)
    defs = info.name2fixturedefs.values() if info is not None else ()
    return any(d and d[-1].scope in ("module", "class") for d in defs)


def pytest_configure(config: pytest.Config) -> None:
    _fewer_gc_passes_at_exit(config)
    _rewrite_my_share_of_the_test_modules(config)
    _import_hypothesis_while_the_workers_run(config)


def _import_hypothesis_while_the_workers_run(config: pytest.Config) -> None:
    """Hypothesis's pytest plugin imports hypothesis in its terminal summary, at the very end of the
    run: in xdist's controller, which runs no test, that import (0.4-1.5 s) was the last thing
    between the workers' end and the verdict. The controller makes it while it waits on them."""
    if os.environ.get("PYTEST_XDIST_WORKER") or not getattr(config.option, "numprocesses", None):
        return                             # a worker or a plain run: the tests import hypothesis themselves
    import importlib
    import threading

    def preload() -> None:
        try:
            importlib.import_module("hypothesis.internal.observability")
        except ImportError:
            pass                           # no hypothesis: its plugin is not there either

    threading.Thread(target=preload, name="import-hypothesis", daemon=True).start()


def _rewrite_my_share_of_the_test_modules(config: pytest.Config) -> None:
    """On a fresh checkout every xdist worker rewrote the asserts of every test module before its
    first test (~4 CPU-s each, all at once; pytest keeps the result as a pyc in __pycache__ for the
    next run). Worker k of n rewrites the k-th n-th of them first, so each is rewritten once and
    the others load it. A module whose pyc is there already ends the share: a warm checkout
    costs one stat. Done with pytest's own functions (the pycs are pytest's, checked against the
    source as always); a pytest without them skips it and rewrites as it always does."""
    worker, count = os.environ.get("PYTEST_XDIST_WORKER", ""), os.environ.get("PYTEST_XDIST_WORKER_COUNT", "")
    if not worker.startswith("gw") or not worker[2:].isdigit() or not count.isdigit() or sys.dont_write_bytecode:
        return
    try:
        from _pytest.assertion.rewrite import PYC_TAIL, _rewrite_test, _write_pyc, assertstate_key, get_cache_dir

        state = config.stash[assertstate_key]
    except (ImportError, KeyError):
        return                             # another pytest, or asserts not rewritten (--assert=plain)
    here = Path(__file__).resolve().parent
    asked = {(config.invocation_params.dir / arg.split("::")[0]).resolve() for arg in config.args}
    if not asked <= {here, here.parent}:
        return                             # some files only: their workers rewrite just those, as ever
    modules = sorted(here.glob("test_*.py"))
    k, n = int(worker[2:]), int(count)
    for path in modules[len(modules) * k // n:len(modules) * (k + 1) // n] if k else ():
        pyc = get_cache_dir(path) / (path.name[:-3] + PYC_TAIL)
        if pyc.exists():
            return
        try:
            pyc.parent.mkdir(parents=True, exist_ok=True)
            source, code = _rewrite_test(path, config)
            _write_pyc(state, code, source, pyc)
        except Exception:                  # a broken module (collection reports it), another pytest's signature
            return


def _fewer_gc_passes_at_exit(config: pytest.Config) -> None:
    """pytest before 9.2 ends every process (each xdist worker, the controller) with gc.collect()
    five times over, to flush unraisable exceptions of objects freed late: ~0.8 CPU-s a worker
    with this suite's heap, at the very end of a run. pytest 9.2 does it once on CPython (five
    times on PyPy only); so do we, through the stash key that is pytest's knob for it (pytester
    sets it). A pytest without the key keeps its own default."""
    if sys.implementation.name != "cpython":
        return
    try:
        from _pytest.unraisableexception import gc_collect_iterations_key
    except ImportError:
        return
    config.stash[gc_collect_iterations_key] = 1


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """`-n auto` (pyproject's addopts): one worker more than xdist's own count (the cores).

    Why: much of the suite waits (real builds, git, browsers, timeouts, quiet-host waits), and a
    third worker fills those waits on two cores. Measured on this 2-core machine, quiet: the
    same clone back to back 139.3 s with 3 workers, 151.6 s with 2; fresh clones 144.3, 154.0
    and 156.7 s with 3, 154.6 s with 2 (runs vary by ~5-10 s); `-m "not slow"` 30.7-30.9 s with
    3, 32.6 s with 2, 33.0-33.6 s with 4. PYTEST_XDIST_AUTO_NUM_WORKERS (or an explicit -n)
    still decides when given."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None                                   # xdist's own hook reads it
    import psutil

    cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
    return cores + 1


@pytest.hookimpl(tryfirst=True)   # before xdist's own hook reads the groups (--dist loadgroup)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Two xdist groups. Tests that judge measured time (a timed verdict, a quiet-host check)
    would disturb each other's measurements: `timing` runs them one after the other on one
    worker. A module whose tests share a module-scoped fixture (a git world, a demo run, a
    rendered page) runs on one worker, so the fixture is built once, not once per worker."""
    for item in items:
        if item.get_closest_marker("timing"):
            item.add_marker(pytest.mark.xdist_group("timing"))
        elif item.get_closest_marker("xdist_group"):
            continue                    # a group named by the test (a session-wide share such as demo-mp)
        elif _shares_a_module_fixture(item):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))
    # Long first: the modules with a slow test lead (each kept whole and in order, for its
    # module-scoped fixtures), so a run ends on many short tests that even out the workers,
    # not on one worker's long build while the other idles (xdist hands out work in this order).
    heavy = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in heavy)


def demo_runtime() -> str:
    """A CARGO_TARGET_DIR for the demo compiler, one a session (every worker's): its runtime
    library is built once per profile (~0.6 CPU-s each) instead of in every fresh cache of every
    test, as molt shares cargo's target dir between builds. Two workers building it at once is
    safe: the demo writes both files atomically, its IR first and the library last (runtime_image).
    Nothing a test asserts is in that library: IR and diagnostics come from the frontend."""
    return str(Path(os.environ["MOLT_BUDGET_TEST_CACHE"]) / "demo-runtime")


@pytest.fixture(scope="session")
def demo_mp_regression(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The demo's `import multiprocessing` regression, measured once: ~8 CPU-s of builds that
    test_compare_git.py, test_first_screen.py and test_demo.py share (their tests are in xdist group demo-mp)."""
    from test_compare_git import multiprocessing_regression

    return multiprocessing_regression(tmp_path_factory.mktemp("demo-mp"))


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "molt").is_dir():
        pytest.skip(f"shared molt data not found at {SHARED} (set MOLT_BUDGET_SHARED)")
    return SHARED


# A stand-in build or helper script of the tests runs on the standard library alone: `-S` skips
# site-packages and its .pth files (an editable install's finder, a CA bundle hook, ...), which
# cost each start ~40-75 ms here and which no such script uses. PYTHONPATH still applies.
PY_STDLIB = [sys.executable, "-S"]


def fake_build(*args: str) -> list[str]:
    """argv for the scriptable fake build."""
    return [*PY_STDLIB, str(FIXTURES / "fake_build.py"), *args]


def wait_for_file(path: Path, timeout_s: float = 30.0) -> str:
    """Block until a process under test has written `path` (its "I am at this point" marker)
    and return its text. Tests wait on such an event, never on a guessed sleep; the deadline
    only turns a hang into a failure and never decides a passing test."""
    deadline = time.monotonic() + timeout_s
    while not path.exists() or not path.read_text().endswith("\n"):   # the writer ends its marker with a newline
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return path.read_text()


def _subset(small: object, big: object) -> bool:
    """Every key and value of `small` is in `big` (lists item by item): nothing was lost."""
    if isinstance(small, dict):
        return isinstance(big, dict) and all(k in big and _subset(v, big[k]) for k, v in small.items())
    if isinstance(small, list):
        return isinstance(big, list) and len(small) == len(big) and all(_subset(a, b) for a, b in zip(small, big))
    return small == big


def assert_report_round_trips(data: dict) -> None:
    """The typed model reads a report and writes it back without losing a key, and is stable."""
    from molt_budget.compare.model import Report

    out = Report.from_dict(data).to_dict()
    assert _subset(data, out), f"Report.from_dict/to_dict lost data:\n{data}\n{out}"
    assert Report.from_dict(out).to_dict() == out


def _not_json(word: str) -> object:
    raise ValueError(word)


@pytest.fixture(autouse=True)
def _reports_round_trip(request: pytest.FixtureRequest) -> object:
    """The net under the report model: every comparison report a test wrote round-trips through it."""
    if "tmp_path" not in request.fixturenames:
        yield
        return
    root = request.getfixturevalue("tmp_path")   # set up before this fixture, so torn down after it
    yield
    import json

    for path in root.rglob("*.json"):
        try:
            if not path.is_file() or path.stat().st_size > 4_000_000:
                continue                # a FIFO a fault test left there would block the read forever
            text = path.read_text(encoding="utf-8")
            if '"verdict"' not in text:
                continue                # no report (IR, diagnostics, results): not worth decoding (~1 CPU-s a quick loop)
            # NaN/Infinity: a forged report that readers reject, nothing to round-trip
            data = json.loads(text, parse_constant=_not_json)
        except (OSError, ValueError, RecursionError):
            continue
        if isinstance(data, dict) and {"schema_version", "verdict", "kpis", "head"} <= data.keys() and "lanes" not in data:
            from molt_budget.schemas import is_valid  # compiled: ~0.4 ms a report, jsonschema ~10 (test_schemas_fast: they agree)

            if not is_valid("report", data):
                continue                # a deliberately forged report: readers reject it, nothing to round-trip
            assert_report_round_trips(data)


def as_report(data: Any) -> Any:
    """A test's report, given as its JSON dict, as the typed model the renderers take. Keys a
    test leaves out get the schema's minimum (a KPI row's class, the verdict of its rows)."""
    from molt_budget.compare.model import Report, overall

    if isinstance(data, Report):
        return data
    kpis = [{"lane": "?", "class": "exact", "reason": "", **k} for k in data.get("kpis") or []]
    verdict = data.get("verdict") or {"status": overall(k.get("status", "pass") for k in kpis).value, "counts": {}}
    return Report.from_dict({"schema_version": 1, "head": {"commit": None}, "diff": {}, **data, "kpis": kpis, "verdict": verdict})


def tables_of(doc: dict) -> Any:
    """The shared tables of a results document read back (its "tables"), to write it again
    the way the run did (results.store.SharedTables); None when it has none."""
    from molt_budget.results.store import SharedTables
    from molt_budget.structs import msgspec

    if not doc.get("tables"):
        return None
    tables = SharedTables()
    tables.written = {key: msgspec.Raw(msgspec.json.encode(table)) for key, table in doc["tables"].items()}
    return tables
