"""The one number formatter: every value a report shows (terminal, Markdown, HTML, reasons,
chart ticks) is written here.

Why one place: a reviewer compares numbers across the table, the reasons and the charts;
if each renderer rounds its own way, "3 s", "3.600 s" and "0" end up in one column and
bytes show as `25179963` or `8e+06`. The rules:

- a unit on every value (`25.18 MB`, `1,396 ops`, `0.083 s`); byte counts are scaled to
  B / kB / MB / GB (SI, as molt's tracker reads IR size);
- thousands separators; at most 4 significant digits and never more than 3 decimals
  for non-integers, trailing zeros dropped; never an exponent below 10^15 (from there on
  `5e+299`, 4 significant digits: such a value is absurd input, and its 300 digits would
  make the report's table wider than a PR page);
- changes as a signed percentage, or as a ratio (`×122`) once the value has at least
  doubled, which reads better than `+12064.7%`.

Escaping of untrusted text is a separate concern (the renderers' escape helper); these
functions only ever produce digits, separators, signs and the given unit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

RATIO_FROM = 2.0                      # head/base at or above this: show `×N` instead of a percentage
SIG_DIGITS = 4
MAX_DECIMALS = 3
COUNT_UNITS = ("ops", "functions", "modules", "instructions", "count")
BYTE_UNITS = ("bytes", "B")
_BYTE_SCALE = ((1e9, "GB"), (1e6, "MB"), (1e3, "kB"))
MISSING = "-"
HUGE = 1e15                           # from here on an exponent (see the module doc)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def number(value: Any, sig: int = SIG_DIGITS, max_decimals: int = MAX_DECIMALS) -> str:
    """`1,396`, `0.207`, `25.18`, `174.8`: no unit, no sign for positives, no exponent."""
    if not is_number(value):
        return MISSING if value is None or isinstance(value, bool) or not isinstance(value, (int, float)) else str(value)
    if value == 0:
        return "0"
    if abs(value) >= HUGE:
        return f"{value:.{min(sig, SIG_DIGITS)}g}"
    if float(value).is_integer() and abs(value) >= 1:
        return f"{int(value):,}"
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, min(max_decimals, sig - 1 - magnitude))
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    if text in ("0", "-0"):
        return ("-" if value < 0 else "") + "<" + f"{10 ** -max_decimals:.{max_decimals}f}"
    return text


def value(amount: Any, unit: str = "") -> str:
    """A measured or budgeted value with its unit: `25.18 MB`, `1,396 ops`, `3.6 s`, `8 MB` (bytes)."""
    if not is_number(amount):
        return MISSING
    if unit in BYTE_UNITS:
        return _bytes(amount)
    text = number(amount)
    if not unit:
        return text
    if unit == "%":
        return f"{text}%"
    if unit in COUNT_UNITS and abs(amount) == 1 and unit.endswith("s"):
        return f"{text} {unit[:-1]}"
    return f"{text} {unit}"


def delta(amount: Any, unit: str = "") -> str:
    """A signed difference: `+24.97 MB`, `-3 ops`, `0 s`."""
    if not is_number(amount):
        return MISSING
    if amount == 0:
        return value(0, unit)
    return ("+" if amount > 0 else "-") + value(abs(amount), unit)


def ratio(r: Any) -> str:
    """`×122`, `×9.04`, `×1.005`: 3 significant digits (4 below 10, so small ratios still differ)."""
    if not is_number(r):
        return MISSING
    sig = 3 if r >= 10 else 4
    return "×" + number(r, sig=sig)


def pct(percent: Any) -> str:
    """A signed percentage given in percent (12.5 → `+12.5%`); at most 2 decimals."""
    if not is_number(percent):
        return MISSING
    if percent == 0:
        return "0%"
    text = number(abs(percent), sig=3, max_decimals=2)
    return ("+" if percent > 0 else "-") + text + "%"


def change(base: Any, head: Any) -> str:
    """How head compares with base: `+12.5%`, `-0.48%`, `×122`, `new` (from zero), `-`."""
    if not (is_number(base) and is_number(head)):
        return MISSING
    if base == 0:
        return "0%" if head == 0 else "new"
    r = head / base
    if not math.isfinite(r):
        return MISSING                # values ~1e300 apart: no ratio a float holds
    if base > 0 and r >= RATIO_FROM:
        return "×" + number(r, sig=3)
    return pct((head - base) / abs(base) * 100)


def change_from_pct(percent: Any) -> str:
    """The same as `change` when only the report's `delta_pct` is at hand."""
    if not is_number(percent):
        return MISSING
    r = 1 + percent / 100
    return "×" + number(r, sig=3) if r >= RATIO_FROM else pct(percent)


def share(part: Any, whole: Any) -> str:
    """`96%`: how much of a change one item accounts for (no sign, whole percents above 10)."""
    if not (is_number(part) and is_number(whole)) or whole == 0:
        return MISSING
    p = part / whole * 100
    return f"{number(p, sig=2, max_decimals=1)}%"


def p_value(p: Any) -> str:
    if not is_number(p):
        return MISSING
    return "p<0.0001" if p < 0.0001 else f"p={number(p, sig=2, max_decimals=5)}"


def plain(amount: float) -> str:
    """A number as a command-line or YAML argument: no separators, no exponent, no unit."""
    if float(amount).is_integer():
        return str(int(amount))
    return f"{amount:.6f}".rstrip("0").rstrip(".")


def plural(n: int, noun: str) -> str:
    """`1 module`, `54 modules` (nouns given in the singular)."""
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def duration(seconds: float) -> str:
    """Elapsed wall time for progress lines: `7s`, `2m05s`, `1h03m`."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _bytes(amount: float) -> str:
    size = abs(amount)
    for scale, name in _BYTE_SCALE:
        if size >= scale:
            return f"{number(amount / scale)} {name}"
    return f"{number(amount)} B"


def axis(unit: str, largest: float) -> tuple[Callable[[float, Any], str], str]:
    """A tick formatter for a chart axis whose values reach `largest`, and the axis label.

    Byte axes take one scale for every tick (`MB` when the largest value is MB-sized), so
    ticks read `8`, `10`, `12` under the label `MB` instead of `8e+06`.
    """
    divisor, label = 1.0, unit
    if unit in BYTE_UNITS:
        divisor, label = 1.0, "B"
        for scale, name in _BYTE_SCALE:
            if abs(largest) >= scale:
                divisor, label = scale, name
                break

    def tick(x: float, _pos: Any = None) -> str:
        return number(x / divisor)

    return tick, label or "value"
