"""`molt-budget tracker`: the KPI table and Run History regenerated from a real SQLite history."""

from __future__ import annotations

import random
import statistics
from pathlib import Path

import pytest
from history_factory import START, history_record, is_main, kpi_value, make_run, populate

from molt_budget import cli
from molt_budget.compare.budget import judge
from molt_budget.errors import ConfigError
from molt_budget.report.tracker import HISTORY_BLOCK, KPI_BLOCK, marker, update_tracker

STATUS_WORD = {"pass": "🟢 green", "yellow": "🟡 yellow", "fail": "🔴 red"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("tracker")
    config, history, runs = populate(tmp, n=300)
    return tmp, config, history, runs


def block(text: str, name: str) -> str:
    start, end = marker(name), marker(name, end=True)
    return text[text.index(start) + len(start): text.index(end)].strip("\n")


def table(text: str) -> list[list[str]]:
    """Markdown table rows (header and rule dropped), cells split on unescaped pipes."""
    rows = []
    for line in text.splitlines():
        if not line.startswith("| ") or line.startswith("| ---"):
            continue
        cells = [c.strip().replace("\\|", "|") for c in line.strip()[1:-1].replace("\\|", "\0").split("|")]
        rows.append([c.replace("\0", "|") for c in cells])
    return rows[1:]


PAGE = (
    "# Compile Progress Tracker\n\nHand-written scope, kept as is.  \n\n## KPIs\n\n"
    f"{marker(KPI_BLOCK)}\nstale table\n{marker(KPI_BLOCK, end=True)}\n\n"
    "Notes between the blocks: | not a table | ünïcödé\t\n\n## Run History\n\n"
    f"{marker(HISTORY_BLOCK)}\n| old | rows |\n{marker(HISTORY_BLOCK, end=True)}\n\n## Work Board\n\ntrailing text without newline"
)


def test_kpi_table_from_300_runs(world, tmp_path: Path) -> None:
    _, config, history, runs = world
    out = tmp_path / "page.md"
    assert update_tracker(out, config, history, runs=10) is True
    rows = {r[0]: r for r in table(block(out.read_text(encoding="utf-8"), KPI_BLOCK))}
    assert list(rows) == ["IR ops", "IR size (MB)", "dev warm cache-hit (s)"]

    # seeded_from wins over history for the baseline (value and date)
    assert rows["IR ops"][1] == "409900 (2026-02-09)"
    # without seeded_from: the oldest main record's value, with that run's date
    first = next(r for r in runs if is_main(r))
    assert rows["IR size (MB)"][1] == f"{kpi_value(first, 'ir_size_mb'):.3f} ({first.started_utc[:10]})"
    assert rows["dev warm cache-hit (s)"][1] == f"{statistics.median(s.metrics['wall_s'] for s in first.lanes['dev_warm'].samples):.3f} (2026-03-01)"

    # latest: the newest main record; a branch or noisy run is never "Latest"; integers stay integers
    assert not is_main(runs[-1])
    for title, kpi in (("IR ops", "ir_ops"), ("IR size (MB)", "ir_size_mb"), ("dev warm cache-hit (s)", "dev_warm_s")):
        latest_run = next(r for r in reversed(runs) if is_main(r))
        value = kpi_value(latest_run, kpi)
        shown = str(int(value)) if kpi == "ir_ops" else f"{value:.3f}"
        assert rows[title][3] == shown
        assert rows[title][4] == STATUS_WORD[judge(value, config.kpis[kpi])[0]]
    everything = tmp_path / "all.md"
    update_tracker(everything, config, history, runs=10, main_only=False)
    rows = {r[0]: r for r in table(block(everything.read_text(encoding="utf-8"), KPI_BLOCK))}
    newest = next(r for r in reversed(runs) if kpi_value(r, "ir_ops") is not None)
    assert rows["IR ops"][3] == str(int(kpi_value(newest, "ir_ops"))) + ("\\*" if not newest.authoritative else "")
    assert rows["IR ops"][2] == "<= 100000" and rows["IR size (MB)"][2] == "<= 10.000" and rows["dev warm cache-hit (s)"][2] == "<= 3.000"


def test_run_history_rows(world, tmp_path: Path) -> None:
    _, config, history, runs = world
    out = tmp_path / "page.md"
    update_tracker(out, config, history, runs=40, main_only=False)
    rows = table(block(out.read_text(encoding="utf-8"), HISTORY_BLOCK))
    newest = sorted(runs, key=lambda r: r.started_utc, reverse=True)[:40]
    assert [r[0] for r in rows] == [f"{r.started_utc[:10]} `{r.run_id}`" for r in newest]
    for row, run in zip(rows, newest):
        _run, commit, lanes, verdicts, problems, auth = row
        assert commit == f"`{run.provenance['commit'][:12]}`"
        counts = run.counts()
        assert verdicts == ", ".join(f"{counts[s]} {s}" for s in ("pass", "yellow", "fail", "error") if counts[s])
        failed = [s for s in run.lanes["dev_warm"].samples if not s.ok]
        assert lanes == ("dev_cold, dev_warm (error)" if failed else "dev_cold, dev_warm")
        retried = [s for s in run.lanes["dev_warm"].samples if s.attempts > 1]
        assert problems == ("; ".join([f"dev_warm repeat {s.index + 1}: 2 attempts (timeout)" for s in retried]
                                      + [f"dev_warm repeat {s.index + 1}: {s.error}" for s in failed]) or "-")
        if not run.authoritative:
            assert auth == "no: " + "; ".join(run.authoritative_reasons)
        else:
            assert auth == ("yes" if is_main(run) else "yes; not main: " + "; ".join(history_record(run).not_main_reasons))
    assert any("attempts" in r[4] for r in rows) and any("attempts" not in r[4] and r[4] != "-" for r in rows)
    assert any(r[5] != "yes" for r in rows)
    update_tracker(out, config, history, runs=40)
    rows = table(block(out.read_text(encoding="utf-8"), HISTORY_BLOCK))
    assert [r[0] for r in rows] == [f"{r.started_utc[:10]} `{r.run_id}`"
                                    for r in sorted(runs, key=lambda r: r.started_utc, reverse=True) if is_main(r)][:40]


def test_idempotent_and_text_outside_markers_kept_byte_for_byte(world, tmp_path: Path) -> None:
    _, config, history, _ = world
    out = tmp_path / "page.md"
    raw = PAGE.encode("utf-8").replace(b"kept as is.", b"kept as is \xff\xfe (not UTF-8).")
    out.write_bytes(raw)
    assert update_tracker(out, config, history) is True
    first = out.read_bytes()
    assert update_tracker(out, config, history) is False
    assert out.read_bytes() == first
    start, end = marker(KPI_BLOCK).encode(), marker(HISTORY_BLOCK, end=True).encode()
    assert first[: first.index(start)] == raw[: raw.index(start)]        # before the first block
    assert first[first.index(end):] == raw[raw.index(end):]              # after the last block
    mid_old = raw[raw.index(marker(KPI_BLOCK, end=True).encode()): raw.index(marker(HISTORY_BLOCK).encode())]
    mid_new = first[first.index(marker(KPI_BLOCK, end=True).encode()): first.index(marker(HISTORY_BLOCK).encode())]
    assert mid_new == mid_old
    assert b"stale table" not in first and b"| old | rows |" not in first


def test_new_run_changes_only_the_blocks(tmp_path: Path) -> None:
    config, history, runs = populate(tmp_path, n=30)
    out = tmp_path / "page.md"
    out.write_text(PAGE, encoding="utf-8")
    update_tracker(out, config, history)
    before = out.read_text(encoding="utf-8")
    extra = make_run(config, 30, random.Random(1))
    assert is_main(extra)
    history.index(history_record(extra))
    assert update_tracker(out, config, history, check=True) is True
    assert out.read_text(encoding="utf-8") == before          # --check writes nothing
    assert update_tracker(out, config, history) is True
    after = out.read_text(encoding="utf-8")
    assert f"`{extra.run_id}`" in block(after, HISTORY_BLOCK)
    strip = lambda t: t.replace(block(t, KPI_BLOCK), "").replace(block(t, HISTORY_BLOCK), "")  # noqa: E731
    assert strip(after) == strip(before)


def test_crlf_page_keeps_crlf(world, tmp_path: Path) -> None:
    _, config, history, _ = world
    out = tmp_path / "page.md"
    out.write_bytes(PAGE.replace("\n", "\r\n").encode("utf-8"))
    update_tracker(out, config, history)
    data = out.read_bytes()
    assert b"\n" not in data.replace(b"\r\n", b"")
    assert update_tracker(out, config, history) is False


def test_creates_file_and_appends_markers(world, tmp_path: Path) -> None:
    _, config, history, _ = world
    created = tmp_path / "docs" / "benchmarks" / "compile_progress.md"
    assert update_tracker(created, config, history) is True
    text = created.read_text(encoding="utf-8")
    assert text.startswith("# Compile Progress Tracker\n\n## KPIs\n\n" + marker(KPI_BLOCK) + "\n| KPI | Baseline (date) |")
    assert "## Run History\n\n" + marker(HISTORY_BLOCK) in text and text.endswith(marker(HISTORY_BLOCK, end=True) + "\n")

    plain = tmp_path / "plain.md"
    plain.write_text("# Mine\n\nno markers, no final newline", encoding="utf-8")
    update_tracker(plain, config, history)
    text = plain.read_text(encoding="utf-8")
    assert text.startswith("# Mine\n\nno markers, no final newline\n\n## KPIs\n\n" + marker(KPI_BLOCK))
    assert update_tracker(plain, config, history) is False


@pytest.mark.parametrize("page", [
    f"a\n{marker(KPI_BLOCK)}\nno end\n",
    f"a\n{marker(KPI_BLOCK, end=True)}\nb\n{marker(KPI_BLOCK)}\n",
    f"{marker(KPI_BLOCK)}\n{marker(KPI_BLOCK, end=True)}\n{marker(KPI_BLOCK)}\n{marker(KPI_BLOCK, end=True)}\n",
])
def test_broken_markers_are_refused_and_the_page_untouched(world, tmp_path: Path, page: str) -> None:
    _, config, history, _ = world
    out = tmp_path / "page.md"
    out.write_text(page, encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"^{out}:\d+: markers"):
        update_tracker(out, config, history)
    assert out.read_text(encoding="utf-8") == page


def test_branch_filter_and_empty_history(tmp_path: Path) -> None:
    config, history, runs = populate(tmp_path, n=20)
    out = tmp_path / "page.md"
    update_tracker(out, config, history, runs=100, branch="feature", main_only=False)
    rows = table(block(out.read_text(encoding="utf-8"), HISTORY_BLOCK))
    assert len(rows) == sum(r.provenance["branch"] == "feature" for r in runs) == 4
    update_tracker(out, config, history, runs=100, branch="feature")
    assert "_No runs recorded yet._" in out.read_text(encoding="utf-8")       # a branch has no main records

    from molt_budget.results.history import History

    empty = tmp_path / "empty.md"
    update_tracker(empty, config, History(tmp_path / "empty.sqlite"))
    text = empty.read_text(encoding="utf-8")
    assert "_No runs recorded yet._" in text
    assert "| IR size (MB) | n/a | <= 10.000 | n/a | ⚪ no data |" in text
    assert "| IR ops | 409900 (2026-02-09) | <= 100000 | n/a | ⚪ no data |" in text


def test_cli_tracker_command(world, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    root, _config, _history, _ = world
    out = tmp_path / "compile_progress.md"
    args = ["tracker", "--config", str(root / "budgets.yaml"), "--out", str(out), "--runs", "5"]
    assert cli.main(args) == 0
    assert capsys.readouterr().out.strip() == f"{out}: updated"
    assert len(table(block(out.read_text(encoding="utf-8"), HISTORY_BLOCK))) == 5
    assert cli.main(args) == 0
    assert capsys.readouterr().out.strip() == f"{out}: unchanged"
    assert cli.main([*args, "--check"]) == 0
    assert cli.main([*args[:-1], "6", "--check"]) == 1
    assert cli.main(["tracker", "--config", str(root / "budgets.yaml"), "--db", str(tmp_path / "nope.sqlite"), "--out", str(out)]) == 2
    assert "no history database" in capsys.readouterr().err
    assert not (tmp_path / "nope.sqlite").exists()


def test_seed_dates_are_not_clock_dependent(world, tmp_path: Path) -> None:
    """No 'generated at' stamps: the same history renders the same bytes in another folder, later."""
    _, config, history, _ = world
    a, b = tmp_path / "a.md", tmp_path / "sub" / "b.md"
    update_tracker(a, config, history)
    update_tracker(b, config, history)
    assert a.read_bytes() == b.read_bytes()
    assert START.isoformat()[:10] in a.read_text(encoding="utf-8")
