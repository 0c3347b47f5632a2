"""`write_html`: one static page with the KPI table, the charts and the last diff."""

from __future__ import annotations

import sys
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import as_report
from history_factory import populate

from molt_budget.report.charts import ChartsUnavailable
from molt_budget.report.html import write_html
from molt_budget.schemas import validator


def report(kpis: list[dict[str, Any]]) -> dict[str, Any]:
    doc = {
        "schema_version": 1,
        "verdict": {"status": "yellow", "counts": {"pass": 2, "yellow": 1}},
        "authoritative": False,
        "authoritative_reasons": ["host not quiet: load1 2.0 per CPU"],
        "base": {"commit": "a" * 40, "source": "history", "run_id": "r-base"},
        "head": {"commit": "b" * 40, "dirty": True, "run_id": "r-head"},
        "kpis": kpis,
        "diff": {
            "modules_added": [{"module": "multiprocessing.spawn", "reasons": ["spawn_closure"]},
                              {"module": "<script>alert(1)</script>", "reasons": ["entry_closure"]}],
            "reason_summary_deltas": {"spawn_closure": 40},
            "phases": [{"lane": "dev_warm", "phase": "module_graph", "base": 3.9, "head": 4.4, "delta": 0.5}],
            "functions_added": [f"molt_init_mod{i}" for i in range(205)],
            "top_function_op_deltas": [{"function": "molt_init_multiprocessing", "base": 0, "head": 5120, "delta": 5120}],
            "op_kind_deltas": {},
        },
        "reproduce": "molt-budget compare --base main",
    }
    errors = list(validator("report").iter_errors(doc))
    assert not errors, errors[0].message
    return doc


def kpis_of(config: Any) -> list[dict[str, Any]]:
    out = []
    for k in config.kpis.values():
        out.append({"id": k.id, "title": k.title, "lane": k.lane, "metric": k.metric, "class": k.kpi_class, "unit": k.unit,
                    "direction": k.direction, "target": k.target, "limit": k.limit, "base": 2.5, "head": 3.2,
                    "delta": 0.7, "delta_pct": 28.0, "status": "yellow" if k.id == "dev_warm_s" else "pass",
                    "reason": "3.2 s is above the target 3 s" if k.id == "dev_warm_s" else "within target"})
    return out


class Parsed(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.imgs: list[str] = []
        self.cells: list[str] = []
        self.text: list[str] = []
        self._in_td = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "img":
            self.imgs.append(dict(attrs)["src"] or "")
        if tag == "td":
            self._in_td = True
            self.cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_td = False

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._in_td:
            self.cells[-1] += data


@pytest.mark.slow   # matplotlib renders a chart per KPI (as in test_charts.py); the page without charts stays in the quick loop
def test_page_with_charts_table_and_diff(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    config, history, _runs = populate(tmp_path, n=60)
    out = tmp_path / "site"
    page = write_html(as_report(report(kpis_of(config))), out, history.path)
    assert page == out / "index.html"
    html = page.read_text(encoding="utf-8")
    parsed = Parsed()
    parsed.feed(html)
    assert parsed.imgs == [f"charts/{k}.svg" for k in config.kpis]
    for src in parsed.imgs:
        assert (out / src).is_file() and (out / src).with_suffix(".png").is_file()
    text = "".join(parsed.text)
    titles = [c for c in parsed.cells if any(c.startswith(k.id) and c.endswith(k.title) for k in config.kpis.values())]
    assert len(titles) == len(config.kpis)                   # <code>id</code> · lane<br>title
    assert "not authoritative (host not quiet: load1 2.0 per CPU)" in text
    assert "<script>alert(1)</script>" in text and "<script>" not in html.replace("&lt;script&gt;", "")
    assert "multiprocessing.spawn" in text and "spawn_closure" in text and "module_graph" in text
    assert "molt_init_mod199" in text and "molt_init_mod200" not in text and "… and 5 more" in text
    assert "Op-kind deltas" not in text                        # empty sections are left out
    assert "28%" in text and "dev warm cache-hit (s)" in text
    assert "<script" not in html.lower().replace("&lt;script", "")


def test_page_without_history_needs_no_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    doc = report([{"id": "ops", "lane": "dev", "class": "exact", "base": None, "head": 50483, "delta": None,
                   "delta_pct": None, "status": "pass", "reason": "within 100000"}])
    page = write_html(as_report(doc), tmp_path / "site", None)
    html = page.read_text(encoding="utf-8")
    assert "<img" not in html and "50,483" in html and not (tmp_path / "site" / "charts").exists()
    missing = tmp_path / "nowhere" / "history.sqlite"
    html = write_html(as_report(doc), tmp_path / "site2", missing).read_text(encoding="utf-8")
    assert f"No history at {missing}" in html and not missing.exists()
    # charts asked for (history exists) without matplotlib: one clear line
    missing.parent.mkdir()
    missing.write_bytes(b"")
    with pytest.raises(ChartsUnavailable, match="molt-budget\\[charts\\]"):
        write_html(as_report(doc), tmp_path / "site3", missing)
