"""The one Markdown renderer: content, escaping of code-under-review text, and the length budget."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pytest
from conftest import as_report
from github_fake import DATA
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from molt_budget.report.markdown import render_markdown
from molt_budget.schemas import validator

MARKER = "<!-- molt-budget:budgets.yaml -->"


def report() -> dict[str, Any]:
    return json.loads((DATA / "report_fail.json").read_text(encoding="utf-8"))


def test_fixture_is_a_valid_report() -> None:
    assert list(validator("report").iter_errors(report())) == []


def test_everything_a_reviewer_needs_is_there() -> None:
    text = render_markdown(as_report(report()), max_chars=65_536, marker=MARKER, sparklines={"ir_ops": [1.0, 2.0, 4.0]})
    assert text.startswith(MARKER + "\n")
    assert "## ❌ molt-budget: FAIL" in text
    header = next(line for line in text.splitlines() if line.startswith("|  | KPI"))
    assert header == "|  | KPI · lane | head | Δ | decided by |"          # status first, narrow, no trend column
    row = next(line for line in text.splitlines() if line.startswith("| ❌ | `ir_ops`"))
    assert row == "| ❌ | `ir_ops` · `dev_cold` | 131,000 ops | +33.7% | limit 120,000 ops |"
    assert text.index("`ir_size_mb`") < text.index("`init_modules`") < text.index("`dev_warm_s`")   # worst first
    first_screen = text[: text.index("<details>")]
    assert first_screen.index("- `ir_size_mb`") < first_screen.index("|  | KPI")   # the causes come before the table
    for summary in ("Modules added, largest first (2)", "Phase time deltas (2)", "Top function op-count deltas (2)",
                    "Op-kind deltas (3)", "Module timing deltas (1)", "Trends on main (1)"):
        assert f"<details><summary>{summary}</summary>" in text
    assert "import multiprocessing (hello.py:1)" in text
    assert "Other budget changes in this PR (1)" in text and "asyncio support needs two more init modules" in text
    assert "not authoritative (load 1.9 per CPU" in text
    assert "base `9f1c2d3e4b5a` (main, history) → head `4f1e2d3c4b5a`" in text
    assert "```sh\nmolt-budget check --config budgets.yaml --lanes dev_cold,dev_warm --base 9f1c2d3e4b5a\n```" in text
    assert 'molt-budget bump ir_size_mb --limit 13.92 --reason "TODO' in text
    assert text.count("<details>") == text.count("</details>")


def test_base_null_renders_without_comparison_columns() -> None:
    r = report()
    r["base"] = None
    r["diff"] = {}
    for k in r["kpis"]:
        k.update(base=None, delta=None, delta_pct=None)
    text = render_markdown(as_report(r), max_chars=65_536)
    assert "no baseline: the budgets alone decided" in text
    assert "|  | KPI · lane | head | Δ | decided by |" in text and "| 13.25 MB | - | limit 12 MB |" in text
    assert "Regression diff" not in text


def test_skipped_report_says_so() -> None:
    r = report()
    r.update(kpis=[], diff={}, verdict={"status": "pass", "counts": {"skipped": 9}})
    text = render_markdown(as_report(r), max_chars=65_536)
    assert "SKIPPED" in text and "9 skipped" in text and "every lane was skipped" in text


def test_text_from_the_code_under_review_is_inert() -> None:
    r = report()
    evil = [
        {"module": f"{MARKER}", "reasons": ["<img src=x onerror=alert(1)>", "@octo-org/owners please look"]},
        {"module": "a|b`c", "reasons": ["</details><details open>"]},
    ]
    r["diff"]["modules_added"] = evil
    r["kpis"][0]["reason"] = "ping @everyone <!-- molt-budget:budgets.yaml -->"
    text = render_markdown(as_report(r), max_chars=65_536, marker=MARKER)
    assert text.count(MARKER) == 2 and text.startswith(MARKER)        # the fake one sits inside a code span
    assert f"`{MARKER}`" in text
    assert "<img" not in text and "&lt;img src=x" in text
    assert "@octo-org" not in text and "@everyone" not in text
    assert "</details><details open>" not in text
    assert "``a\\|b`c``" in text                                       # pipe escaped, backtick fenced
    assert text.count("<details>") == text.count("</details>")


def test_code_fences_survive_backticks_in_the_command() -> None:
    r = report()
    r["reproduce"] = "molt-budget check ```; echo"
    text = render_markdown(as_report(r), max_chars=65_536)
    assert "````sh\nmolt-budget check ```; echo\n````" in text


def huge(kpis: int = 1500, modules: int = 5000, changes: int = 500) -> dict[str, Any]:
    r = report()
    base = r["kpis"][0]
    r["kpis"] = [dict(base, id=f"kpi_{i}", status=("fail", "yellow", "pass")[i % 3]) for i in range(kpis)]
    r["diff"]["modules_added"] = [{"module": f"m{i}", "reasons": ["r" * 80]} for i in range(modules)]
    r["diff"]["functions_added"] = [f"f{i}" for i in range(modules)]
    r["budget_changes"] = [{"kpi": f"k{i}", "field": "limit", "old": i, "new": i + 1, "reason": "x"} for i in range(changes)]
    return r


HUGE = huge()
# Every section over its share of the largest budget tried below (80,000 characters), at a
# third of HUGE's size: each example cuts, and renders three times faster.
OVER_80K = as_report(huge(kpis=600, modules=2000, changes=200))


def test_the_property_report_is_over_every_budget_it_is_tried_with() -> None:
    assert len(render_markdown(OVER_80K, max_chars=10**9)) > 80_000


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(max_chars=st.integers(min_value=60, max_value=80_000))
def test_never_over_the_budget(max_chars: int) -> None:
    text = render_markdown(OVER_80K, max_chars=max_chars, marker=MARKER, full_report_hint="the artifact")
    assert len(text) <= max_chars
    if max_chars >= 2_000:
        assert text.startswith(MARKER) and "molt-budget: FAIL" in text and "Full report: the artifact" in text


def test_rendering_does_not_change_the_report() -> None:
    before = copy.deepcopy(HUGE)
    render_markdown(as_report(HUGE), max_chars=5_000)
    assert HUGE == before


def test_cuts_least_important_first() -> None:
    text = render_markdown(as_report(HUGE), max_chars=20_000, full_report_hint="the artifact")
    assert "omitted" in text and "Functions added" not in text
    assert "`kpi_0`" in text and "Reproduce locally" in text       # the verdict and how to reproduce stay
    assert re.search(r"Cut to fit 20,000 characters \(omitted [^)]*functions added", text)
    tiny = render_markdown(as_report(HUGE), max_chars=3_000, full_report_hint="the artifact")
    assert len(tiny) <= 3_000 and "KPI rows" in tiny and "`kpi_0`" in tiny


def test_a_real_regression_report_renders_within_limits() -> None:
    """`molt-budget check --report-json` on the demo with `import multiprocessing` added."""
    real = json.loads((DATA / "report_demo_regression.json").read_text(encoding="utf-8"))
    assert list(validator("report").iter_errors(real)) == []
    text = render_markdown(as_report(real), max_chars=65_536, marker=MARKER)
    assert len(text) <= 65_536 and "## ❌ molt-budget: FAIL" in text
    assert "<details><summary>Modules added, largest first (54)</summary>" in text and "`multiprocessing.context`" in text
    assert "<details><summary>Functions added (2006)</summary>" in text
    assert "×125" in text                                        # ir_ops: 1,396 → 174,823, a ratio, not +12423.1%
    # the cause, from the report's own explanation, comes before any folded detail
    cause = next(e["cause"] for e in real["explanations"] if e["kpi"] == "ir_ops")
    for word in (f"import {cause['module']}", f"{cause['file']}:{cause['line']}"):
        assert 0 <= text.find(word) < text.index("<details>"), word
    small = render_markdown(as_report(real), max_chars=6_000, marker=MARKER)
    assert len(small) <= 6_000 and "`init_modules`" in small and "Cut to fit 6,000 characters" in small


# -- budget changes: a failure caused only by an edit of the budgets file -------------------


def budget_only_failure(n_pass_changes: int = 0) -> dict[str, Any]:
    r = report()
    r["kpis"] = [dict(k, status="pass", budget_status="pass") for k in r["kpis"]]
    r["verdict"] = {"status": "fail", "counts": {"pass": len(r["kpis"]), "budget_fail": 1}}
    r["budget_changes"] = [
        {"kpi": "ir_ops", "lane": "dev_cold", "kind": "loosened", "field": "target", "old": 100000, "new": 400000,
         "justification": "bigger stdlib (#901)", "owner": "fe", "status": "fail", "line": 39,
         "reason": "budget far looser than measured: target 400000 is above measured 98000 + 50%"},
        {"kpi": None, "lane": "dev_cold", "kind": "lane_changed", "field": "command", "old": ["molt", "build"],
         "new": ["molt", "build", "--fast"], "justification": "users build with --fast", "owner": "", "status": "yellow",
         "line": 12, "reason": "changes what ir_ops measure; justified by kpis.ir_ops"},
    ] + [{"kpi": f"k{i}", "lane": "dev_cold", "kind": "tightened", "field": "limit", "old": i + 1, "new": i,
          "justification": "", "owner": "", "status": "pass", "line": 50 + i, "reason": "tighter: good news"}
         for i in range(n_pass_changes)]
    return r


def test_a_budget_only_failure_is_in_the_headline_with_old_new_justification_and_reason() -> None:
    text = render_markdown(as_report(budget_only_failure()), max_chars=65_536)
    assert "## ❌ molt-budget: FAIL" in text and "5 pass · 1 budget fail · 1 budget yellow" in text
    assert "**Budget changes that need review (2):**" in text
    line = next(x for x in text.splitlines() if x.startswith("- ❌ `ir_ops` `target`"))
    assert "100000 → 400000" in line and "justification: bigger stdlib (#901)" in line
    assert "budget far looser than measured" in line and "`budgets.yaml:39`" in line
    lane = next(x for x in text.splitlines() if x.startswith("- 🟡 lane `dev_cold` `command`"))
    lane = re.sub(r"\\([\\`*_\[\]~])", r"\1", lane)     # as rendered: backslash escapes gone
    assert '["molt", "build"] → ["molt", "build", "--fast"]' in lane and "justified by kpis.ir_ops" in lane
    assert text.index("Budget changes that need review") < text.index("<details>")    # not folded away


def test_failing_budget_changes_are_never_cut() -> None:
    r = budget_only_failure(n_pass_changes=400)
    r["diff"]["functions_added"] = [f"f{i}" for i in range(5000)]
    for max_chars in (3_000, 8_000, 20_000):
        text = render_markdown(as_report(r), max_chars=max_chars, full_report_hint="the artifact")
        assert len(text) <= max_chars and "Cut to fit" in text
        assert "- ❌ `ir_ops` `target`: 100000 → 400000" in text and "- 🟡 lane `dev_cold` `command`" in text
        assert "1 budget fail" in text


def test_the_bump_hint_only_when_something_is_yellow_or_failed() -> None:
    assert "molt-budget bump" not in render_markdown(as_report(budget_only_failure()), max_chars=65_536)
    passing = report()
    passing["kpis"] = [dict(k, status="pass") for k in passing["kpis"]]
    passing["verdict"] = {"status": "pass", "counts": {"pass": 5}}
    assert "Accepting the change?" not in render_markdown(as_report(passing), max_chars=65_536)
    assert "molt-budget bump ir_size_mb --limit 13.92" in render_markdown(as_report(report()), max_chars=65_536)


def test_budget_counts_come_from_the_verdict_without_a_list() -> None:
    r = budget_only_failure()
    del r["budget_changes"]
    assert "5 pass · 1 budget fail" in render_markdown(as_report(r), max_chars=65_536)


def test_sparkline_skips_non_finite_values() -> None:
    from molt_budget.report.sparkline import sparkline

    nan, inf = float("nan"), float("inf")
    assert sparkline([1.0, nan, 2.0, inf, 4.0, -inf]) == sparkline([1.0, 2.0, 4.0]) == "▁▃█"
    assert sparkline([nan, inf]) == ""
    text = render_markdown(as_report(report()), max_chars=65_536, sparklines={"ir_ops": [1.0, nan, 2.0]})
    assert "`ir_ops` ▁█" in text
