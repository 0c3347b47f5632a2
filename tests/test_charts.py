"""Trend charts: produced as PNG and SVG, and checked by parsing the SVG."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from history_factory import kpi_value, populate

from molt_budget import cli
from molt_budget.report.charts import ChartsUnavailable, Series, render_chart, series_from_config, write_charts

# matplotlib renders every chart. Looked up, not imported, at collection: importing it costs
# every xdist worker ~0.3 s even when `-m "not slow"` deselects this file.
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(importlib.util.find_spec("matplotlib") is None, reason="matplotlib is not installed")]

SVG = "{http://www.w3.org/2000/svg}"
NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:e-?\d+)?")


@pytest.fixture(scope="module")
def charts(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("charts")
    config, history, runs = populate(tmp, n=250)
    files = write_charts(series_from_config(config, history, runs=120, main_only=False), tmp / "charts")
    return tmp, config, runs, files


def test_charts_default_to_main_records(tmp_path: Path) -> None:
    from history_factory import is_main

    config, history, runs = populate(tmp_path, n=60)
    for series in series_from_config(config, history, runs=120):
        assert [p.run_id for p in series.points] == [r.run_id for r in runs if is_main(r) and kpi_value(r, series.kpi) is not None]


def group(root: ET.Element, gid: str) -> ET.Element | None:
    return next((g for g in root.iter(f"{SVG}g") if g.get("id") == gid), None)


def vertices(g: ET.Element) -> list[tuple[float, float]]:
    (path,) = [p for p in g.iter(f"{SVG}path")]
    nums = [float(n) for n in NUMBER.findall(path.get("d", "").replace("M", " ").replace("L", " "))]
    return list(zip(nums[0::2], nums[1::2]))


def meta(root: ET.Element) -> dict:
    (element,) = [m for m in root.iter(f"{SVG}metadata") if m.get("id") == "molt-budget-chart"]
    return json.loads(element.text or "")


def test_one_chart_and_one_series_per_kpi(charts) -> None:
    tmp, config, _runs, files = charts
    assert [f.kpi for f in files] == list(config.kpis)
    for f in files:
        assert f.png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        root = ET.parse(f.svg).getroot()
        values = [g for g in root.iter(f"{SVG}g") if (g.get("id") or "").endswith("-value")]
        assert [g.get("id") for g in values] == [f"kpi-{f.kpi}-value"]
        for part in ("target", "limit", "yellow-band", "fail-band", "axes"):
            assert group(root, f"kpi-{f.kpi}-{part}") is not None, part


def test_values_and_target_line_are_where_the_data_says(charts) -> None:
    _tmp, config, runs, files = charts
    for f in files:
        kpi = config.kpis[f.kpi]
        root = ET.parse(f.svg).getroot()
        m = meta(root)
        expected = [kpi_value(r, f.kpi) for r in runs if kpi_value(r, f.kpi) is not None][-120:]
        assert [p["value"] for p in m["points"]] == expected
        assert (m["target"], m["limit"]) == (kpi.target, kpi.limit)

        pts = vertices(group(root, f"kpi-{f.kpi}-value"))
        assert len(pts) == len(expected)                          # every run is a vertex
        sx, ox, sy, oy = m["x"]["scale"], m["x"]["offset"], m["y"]["scale"], m["y"]["offset"]
        for i, ((x, y), v) in enumerate(zip(pts, expected)):
            assert x == pytest.approx(sx * i + ox, abs=0.01) and y == pytest.approx(sy * v + oy, abs=0.01)

        # independent of our metadata: fit data → y from the value path itself, predict the lines
        n = len(pts)
        mean_v, mean_y = sum(expected) / n, sum(y for _, y in pts) / n
        slope = sum((v - mean_v) * (y - mean_y) for v, (_, y) in zip(expected, pts)) / sum((v - mean_v) ** 2 for v in expected)
        for part, value in (("target", kpi.target), ("limit", kpi.limit)):
            line = vertices(group(root, f"kpi-{f.kpi}-{part}"))
            assert len({round(y, 3) for _, y in line}) == 1       # horizontal
            assert line[0][1] == pytest.approx(mean_y + slope * (value - mean_v), abs=0.05)
        assert slope < 0                                          # higher values are drawn higher up


def test_bands_span_target_to_limit_and_limit_outwards(charts) -> None:
    _tmp, config, _runs, files = charts
    f = files[-1]
    root = ET.parse(f.svg).getroot()
    m = meta(root)
    to_y = lambda v: m["y"]["scale"] * v + m["y"]["offset"]  # noqa: E731
    yellow = {round(y, 2) for _, y in vertices(group(root, f"kpi-{f.kpi}-yellow-band"))}
    fail = {round(y, 2) for _, y in vertices(group(root, f"kpi-{f.kpi}-fail-band"))}
    kpi = config.kpis[f.kpi]
    assert yellow == {round(to_y(kpi.target), 2), round(to_y(kpi.limit), 2)}
    assert round(to_y(kpi.limit), 2) in fail and min(fail) < to_y(kpi.limit)   # up to the top edge (SVG y grows down)


def test_non_authoritative_points_are_marked(charts) -> None:
    _tmp, _config, _runs, files = charts
    for f in files:
        root = ET.parse(f.svg).getroot()
        m = meta(root)
        flagged = [p for p in m["points"] if not p["authoritative"]]
        assert flagged
        marks = group(root, f"kpi-{f.kpi}-nonauthoritative")
        uses = [u for u in marks.iter(f"{SVG}use")]
        assert len(uses) == len(flagged)
        xs = sorted(round(float(u.get("x")), 2) for u in uses)
        index = {p["run_id"]: i for i, p in enumerate(m["points"])}
        assert xs == sorted(round(m["x"]["scale"] * index[p["run_id"]] + m["x"]["offset"], 2) for p in flagged)
        plain = group(root, f"kpi-{f.kpi}-authoritative")
        assert len(list(plain.iter(f"{SVG}use"))) == len(m["points"]) - len(flagged)


def test_svg_is_reproducible_and_empty_series_draws(tmp_path: Path) -> None:
    s = Series("x", "x", "s", "higher", 5.0, 4.0, [])
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a, b = render_chart(s, tmp_path / "a"), render_chart(s, tmp_path / "b")
    assert a.svg.read_bytes() == b.svg.read_bytes()
    root = ET.parse(a.svg).getroot()
    assert group(root, "kpi-x-value") is None and group(root, "kpi-x-target") is not None
    # direction "higher": the fail band lies below the limit
    m = meta(root)
    fail = [y for _, y in vertices(group(root, "kpi-x-fail-band"))]
    assert max(fail) > m["y"]["scale"] * 4.0 + m["y"]["offset"]


def test_a_title_and_unit_that_are_broken_mathtext_are_drawn_as_written(tmp_path: Path) -> None:
    """A title or unit is the budgets file's text: matplotlib read `$...$` as mathtext, and a
    broken one (`$\\frac{$`) raised a ValueError out of the charts command."""
    title, unit = "cost in $\\frac{$ (was $5)", "$\\x$"
    files = write_charts([Series("usd", title, unit, "lower", 10.0, 12.0, [])], tmp_path)
    texts = ["".join(t.itertext()) for t in ET.parse(files[0].svg).getroot().iter(f"{SVG}text")]
    assert any(title in t for t in texts) and any(unit in t for t in texts)


def test_dotted_kpi_ids_get_their_own_files(tmp_path: Path) -> None:
    """`ir.mb` and `ir.ops` once both became `ir.png`: the second overwrote the first."""
    points = []
    files = write_charts([Series("ir.mb", "IR size", "MB", "lower", 10.0, 12.0, points),
                          Series("ir.ops", "IR ops", "", "lower", 100.0, 120.0, points)], tmp_path)
    assert [(f.png.name, f.svg.name) for f in files] == [("ir.mb.png", "ir.mb.svg"), ("ir.ops.png", "ir.ops.svg")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ir.mb.png", "ir.mb.svg", "ir.ops.png", "ir.ops.svg"]
    assert group(ET.parse(files[0].svg).getroot(), "kpi-ir.mb-target") is not None
    assert group(ET.parse(files[1].svg).getroot(), "kpi-ir.ops-target") is not None


def test_missing_matplotlib_is_one_clear_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ChartsUnavailable, match=r"^charts need matplotlib, which is not installed: pip install 'molt-budget\[charts\]'$"):
        write_charts([Series("x", "x", "", "lower", 1.0, 2.0)], tmp_path)
    assert cli.main(["charts", "--out", str(tmp_path / "c"), "--config", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "molt-budget[charts]" in err


def test_cli_charts_command(charts, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    root, config, _runs, _files = charts
    out = tmp_path / "out"
    assert cli.main(["charts", "--config", str(root / "budgets.yaml"), "--out", str(out), "--runs", "30"]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{k}.{ext}" for k in config.kpis for ext in ("png", "svg"))
    assert len(meta(ET.parse(out / "ir_ops.svg").getroot())["points"]) == 30
    assert capsys.readouterr().out.count("\n") == len(config.kpis)


def test_axis_follows_the_data_ticks_name_commit_and_time_and_no_exponent(tmp_path: Path) -> None:
    from molt_budget.report.charts import y_range
    from molt_budget.results.history import KpiPoint

    points = [KpiPoint(run_id=f"r{i}", started_utc=f"2026-11-26T1{i}:0{i}:00Z", commit=f"{i}abcdef0123", value=8_000_000 + i * 1000,
                       authoritative=True, source="run") for i in range(5)]
    far = Series("ir_bytes", "IR bytes", "bytes", "lower", 80_000_000.0, 120_000_000.0, points)
    low, high = y_range(far)
    assert low < 8_000_000 and high < 9_000_000                 # the far-away limit does not flatten the data
    near = Series("ir_bytes", "IR bytes", "bytes", "lower", 8_010_000.0, 8_020_000.0, points)
    assert y_range(near)[1] > 8_020_000                         # a limit close by is shown
    files = render_chart(far, tmp_path)
    text = " ".join(t for t in ET.parse(files.svg).getroot().itertext())
    assert "e+0" not in text and "MB" in text
    assert "0abcdef" in text and "11-26 10:00" in text          # commit and time on the x ticks
    assert "off the chart: target 80 MB above, limit 120 MB above" in text


@pytest.mark.parametrize("kind", ["file", "fifo", "unwritable"])
def test_charts_out_that_is_not_a_writable_folder_is_one_line(charts, tmp_path: Path, capsys, kind: str) -> None:
    """`--out` a file or a FIFO was an internal error (mkdir's FileExistsError); a folder that
    cannot be made is a write fault naming it."""
    import os

    root, _config, _runs, _files = charts
    out = tmp_path / "out"
    if kind == "file":
        out.write_text("keep me")
    elif kind == "fifo":
        os.mkfifo(out)
    else:
        out = Path("/proc/self/no-such-folder")
    code = cli.main(["charts", "--config", str(root / "budgets.yaml"), "--out", str(out)])
    err = capsys.readouterr().err
    assert (code, err.count("\n")) == ((3, 1) if kind == "unwritable" else (2, 1)), err
    assert str(out) in err and "internal error" not in err
    if kind == "file":
        assert out.read_text() == "keep me"
