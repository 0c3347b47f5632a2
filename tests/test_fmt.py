"""The one number formatter: units, separators, significant digits, ratios, no exponent below 1e15."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from molt_budget import fmt

GRAMMAR = re.compile(r"^[+-]?(<)?\d{1,3}(,\d{3})*(\.\d{1,3})?( [A-Za-z%]+)?$")


@pytest.mark.parametrize(("amount", "unit", "shown"), [
    (0.20712, "MB", "0.207 MB"),
    (25.1799, "MB", "25.18 MB"),
    (1396, "ops", "1,396 ops"),
    (174823.0, "ops", "174,823 ops"),
    (1, "modules", "1 module"),
    (3.0, "s", "3 s"),
    (3.6, "s", "3.6 s"),
    (0, "s", "0 s"),
    (0.0004, "s", "<0.001 s"),
    (25179963, "bytes", "25.18 MB"),
    (8_000_000, "bytes", "8 MB"),
    (812, "bytes", "812 B"),
    (12345.678, "", "12,346"),
    (None, "MB", "-"),
    (float("nan"), "s", "-"),
])
def test_value(amount, unit, shown):
    assert fmt.value(amount, unit) == shown


@pytest.mark.parametrize(("base", "head", "shown"), [
    (0.207, 25.18, "×122"),
    (0.083, 0.760, "×9.16"),
    (100, 112.5, "+12.5%"),
    (3.740, 3.722, "-0.48%"),
    (10, 10, "0%"),
    (0, 5, "new"),
    (None, 5, "-"),
])
def test_change_uses_ratios_for_large_changes(base, head, shown):
    assert fmt.change(base, head) == shown


def test_change_from_pct_matches_change():
    for base, head in ((0.207, 25.18), (100, 112.5), (3.74, 3.722), (6, 60)):
        assert fmt.change_from_pct((head - base) / base * 100) == fmt.change(base, head)


def test_delta_is_signed_with_unit():
    assert fmt.delta(24.973, "MB") == "+24.97 MB"
    assert fmt.delta(-3, "ops") == "-3 ops"
    assert fmt.delta(0, "s") == "0 s"
    assert fmt.delta(25179963 - 207000, "bytes") == "+24.97 MB"


def test_axis_uses_one_scale_and_no_exponent():
    tick, label = fmt.axis("bytes", 12_000_000)
    assert label == "MB"
    assert [tick(v) for v in (0, 4e6, 8e6, 1.2e7)] == ["0", "4", "8", "12"]
    tick, label = fmt.axis("s", 3.6)
    assert label == "s" and tick(3.6) == "3.6"


@given(st.floats(min_value=-1e13, max_value=1e13, allow_nan=False), st.sampled_from(["", "s", "MB", "ops", "bytes"]))
def test_every_value_follows_the_grammar(amount, unit):
    shown = fmt.value(amount, unit)
    assert "e+" not in shown and "e-" not in shown
    assert GRAMMAR.match(shown.replace(" kB", " kB")), shown
    number_part = shown.split(" ")[0].lstrip("+-<")
    assert len(number_part.split(".")[1]) <= 3 if "." in number_part else True


@pytest.mark.parametrize(("amount", "unit", "shown"), [
    (999_999_999_999_999, "ops", "999,999,999,999,999 ops"),
    (5e299, "s", "5e+299 s"),                 # absurd input: 4 significant digits, not 300 of them
    (-1.23456e20, "", "-1.235e+20"),
])
def test_huge_values_are_short(amount, unit, shown):
    assert fmt.value(amount, unit) == shown


def test_a_change_past_the_floats_is_not_a_number():
    assert fmt.change(1e-300, 5e299) == "-"       # head/base is inf
    assert fmt.change(5e299, 1e-300) == "-100%"


def test_plain_is_a_cli_argument():
    assert fmt.plain(25180000.0) == "25180000"
    assert fmt.plain(3.6) == "3.6"
    assert fmt.plain(1e-7) == "0"


def test_share_and_p_value():
    assert fmt.share(96.2, 100) == "96%"
    assert fmt.share(5.56, 100) == "5.6%"
    assert fmt.p_value(0.00029) == "p=0.00029"
    assert fmt.p_value(1e-9) == "p<0.0001"


def test_reports_format_numbers_only_through_fmt() -> None:
    """Structural: no renderer or reason writer formats a number itself (`{x:.3f}`, `{x:g}`,
    `{n:,}`, `%.2f`); they all call report.fmt. tracker.py is exempt: it writes molt's own
    Compile Progress table, whose `%.3f` columns molt's readers parse."""
    from pathlib import Path

    root = Path(fmt.__file__).resolve().parent          # molt_budget/
    files = [*sorted((root / "report").glob("*.py")), root / "compare" / "budget.py", root / "compare" / "comparator.py",
             root / "compare" / "attribution.py", root / "budgets" / "advice.py"]
    spec = re.compile(r"\{[^{}\"']*:[+ ,]*[.0-9]*[dfgeE%]\}|:,\}|%[.0-9]*[dfg]\b")
    found = [f"{f.name}:{n}: {line.strip()}" for f in files if f.name not in ("fmt.py", "tracker.py")
             for n, line in enumerate(f.read_text().splitlines(), 1) if spec.search(line) and "font-size" not in line]
    assert found == []
