"""The budgets parse cache: a hit gives the Config a parse gives, without PyYAML; anything
that would not come back the same is parsed again."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from molt_budget.config import parse_cache
from molt_budget.config.loader import load_config

REPO = Path(__file__).resolve().parents[1]
SHIPPED = [REPO / "examples" / "molt" / "budgets.yaml", REPO / "examples" / "demo" / "budgets.yaml", REPO / "budgets.yaml"]


@pytest.fixture
def cache_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    return home


def _entries(home: Path) -> list[Path]:
    folder = home / "molt-budget" / "budgets"
    return sorted(folder.glob("*.json")) if folder.is_dir() else []


@pytest.mark.parametrize("path", [p for p in SHIPPED if p.is_file()], ids=lambda p: str(p.relative_to(REPO)))
def test_a_cached_parse_is_the_parse(path: Path, cache_home: Path) -> None:
    parsed = load_config(path)
    assert len(_entries(cache_home)) == 1
    assert parse_cache.load(path.read_text(encoding="utf-8")) is not None
    assert load_config(path) == parsed                    # from the cache: same lanes, KPIs, settings, lines


def test_an_edit_is_parsed_again(tmp_path: Path, cache_home: Path) -> None:
    config = tmp_path / "budgets.yaml"
    config.write_text("version: 1\nlanes:\n  a: {command: ['true']}\nkpis:\n  k: {lane: a, metric: wall_s, target: 5}\n")
    assert load_config(config).kpis["k"].target == 5
    config.write_text(config.read_text().replace("target: 5", "target: 7"))
    assert load_config(config).kpis["k"].target == 7
    assert len(_entries(cache_home)) == 2


def test_a_damaged_entry_is_a_miss(tmp_path: Path, cache_home: Path) -> None:
    config = tmp_path / "budgets.yaml"
    config.write_text("version: 1\nlanes:\n  a: {command: ['true']}\nkpis:\n  k: {lane: a, metric: wall_s, target: 5}\n")
    want = load_config(config)
    (entry,) = _entries(cache_home)
    for damage in (b"", b"{", b'{"data": 1}', b'{"data": {}, "lines": [[1]]}'):
        entry.write_bytes(damage)
        assert load_config(config) == want


def test_a_parse_json_would_not_give_back_is_not_kept(cache_home: Path) -> None:
    parse_cache.store("a: 1\n", {1: "integer key"}, {})
    parse_cache.store("b: 1\n", {"when": {1, 2}}, {})
    assert _entries(cache_home) == []
    parse_cache.store("c: 1\n", {"c": 1}, {("c",): 1})
    assert parse_cache.load("c: 1\n") == ({"c": 1}, {("c",): 1})


def test_the_cache_keeps_a_bounded_number_of_entries(cache_home: Path) -> None:
    for i in range(parse_cache.KEEP + 5):
        parse_cache.store(f"n: {i}\n", {"n": i}, {("n",): 1})
    assert len(_entries(cache_home)) <= parse_cache.KEEP
    assert parse_cache.load(f"n: {parse_cache.KEEP + 4}\n") is not None      # the newest stays


def test_a_second_check_of_the_same_budgets_never_imports_yaml(tmp_path: Path) -> None:
    """The end-to-end gain: the second `check` reads its budgets from the cache."""
    (tmp_path / "budgets.yaml").write_text(
        "version: 1\nsettings: {quiescence: {max_wait_s: 0}}\nlanes:\n  a: {command: ['true'], repeats: 1}\n"
        "kpis:\n  k: {lane: a, metric: wall_s, target: 30}\n")
    probe = ("import sys\nfrom molt_budget.cli import main\ncode = main(['check', '--no-base', '--quiet'])\n"
             "print(code, 'yaml' in sys.modules)")
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache"), "PYTHONPATH": str(REPO)}
    runs = [subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
            for _ in range(2)]
    assert [r.stdout.split()[-2:] for r in runs] == [["0", "True"], ["0", "False"]], [r.stderr[-300:] for r in runs]


def test_the_test_session_keeps_its_caches_out_of_the_users_home() -> None:
    """conftest gives the session (every worker and subprocess) one cache folder of its own."""
    from molt_budget.schemas import checked_before_dir

    session = Path(os.environ["MOLT_BUDGET_TEST_CACHE"])
    assert session.is_dir() and not session.is_relative_to(Path.home() / ".cache")
    for kind in ("budgets", "valid"):
        assert checked_before_dir(kind).is_relative_to(session)
    seen = subprocess.run([sys.executable, "-c", "from molt_budget.schemas import checked_before_dir as d; print(d('valid'))"],
                          capture_output=True, text=True, check=True, env={**os.environ, "PYTHONPATH": str(REPO)}).stdout.strip()
    assert Path(seen).is_relative_to(session)


def test_a_relative_cache_home_is_ignored_not_made_inside_the_project(tmp_path: Path) -> None:
    """The XDG spec: a relative $XDG_CACHE_HOME is invalid. It was taken as is, so a check made
    `rel/cache/molt-budget/...` inside the folder it ran in (the user's checkout)."""
    env = {**os.environ, "XDG_CACHE_HOME": "rel/cache", "HOME": str(tmp_path / "home"), "PYTHONPATH": str(REPO)}
    probe = "from molt_budget.schemas import checked_before_dir as d; print(d('valid'))"
    seen = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True, check=True).stdout
    assert Path(seen.strip()) == tmp_path / "home" / ".cache" / "molt-budget" / "valid"
    assert subprocess.run([sys.executable, "-m", "molt_budget", "validate", "--config", str(REPO / "budgets.yaml")],
                          cwd=tmp_path, env=env, capture_output=True).returncode == 0
    assert not (tmp_path / "rel").exists()


@pytest.mark.parametrize("home", ["n" * 300, "/".join(["d" * 200] * 25)], ids=["a name too long", "a path too long"])
def test_a_cache_home_no_file_system_can_name_means_no_cache_not_an_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], home: str) -> None:
    """The cache is best effort: a $XDG_CACHE_HOME past what a file system names made the first
    stat of a cache entry raise (ENAMETOOLONG), so every command failed before it began."""
    from molt_budget.cli import main
    from molt_budget.schemas import checked_before_dir

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / home))
    assert checked_before_dir("valid") is None and checked_before_dir("budgets") is None
    assert main(["validate", "--config", str(REPO / "budgets.yaml")]) == 0
    assert main(["validate", "--config", str(REPO / "budgets.yaml")]) == 0        # the second takes no cached path either
    assert "error" not in capsys.readouterr().err


@pytest.mark.skipif(os.geteuid() != 0, reason="becomes a user without a passwd entry (needs root)")
def test_no_home_at_all_means_no_cache_not_an_error(request: pytest.FixtureRequest) -> None:
    """No $HOME and a uid with no passwd entry (an arbitrary container user): Path.home() raises
    RuntimeError, which was an internal error; the cache is best effort, so validate goes on
    without it. A fresh interpreter imports what it runs as root, then becomes that user."""
    project = Path(tempfile.mkdtemp(prefix="molt-budget-no-home-"))   # not under pytest's 0700 folders
    request.addfinalizer(lambda: shutil.rmtree(project, ignore_errors=True))
    config = project / "budgets.yaml"
    config.write_bytes((REPO / "budgets.yaml").read_bytes())
    project.chmod(0o755)
    config.chmod(0o644)
    probe = (
        "import os, sys, tempfile\n"
        "from molt_budget.cli import main\n"
        "from molt_budget.schemas import checked_before_dir\n"
        "os.environ['XDG_CACHE_HOME'] = tempfile.mkdtemp()   # an empty cache: the first run takes the uncached path\n"
        f"assert main(['validate', '--config', {str(config)!r}]) == 0   # and imports all it needs (PyYAML, schemas)\n"
        "os.environ.pop('HOME', None); os.environ.pop('XDG_CACHE_HOME', None)\n"
        "os.setuid(54321)\n"
        f"code = main(['validate', '--config', {str(config)!r}])\n"
        "print(checked_before_dir('valid'), code)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-2:] == ["None", "0"], done.stdout[-300:] + done.stderr[-500:]
