"""Generated and mutated budgets files: never a traceback, always exit 2 with the file named."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from molt_budget.cli import main

REPO = Path(__file__).resolve().parents[1]
SEED_TEXT = (REPO / "budgets.yaml").read_text()

scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 10**6), st.floats(allow_nan=True, allow_infinity=True),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=3)), max_leaves=8)


def check_validate(tmp: Path, text: str, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp / "budgets.yaml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    code = main(["validate", "--config", str(path)])
    err = capsys.readouterr().err
    assert code in (0, 2), err
    if code == 2:
        lines = err.strip().splitlines()
        assert len(lines) == 1, err
        assert "budgets.yaml" in lines[0]
        assert "Traceback" not in err


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_lines_of_a_real_file(tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject) -> None:
    lines = SEED_TEXT.splitlines()
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(lines) - 1))
        op = data.draw(st.sampled_from(["drop", "dup", "garble", "indent", "value"]))
        if op == "drop":
            lines.pop(i)
        elif op == "dup":
            lines.insert(i, lines[i])
        elif op == "garble":
            lines[i] = data.draw(st.text(max_size=20))
        elif op == "indent":
            lines[i] = " " + lines[i]
        elif op == "value" and ":" in lines[i]:
            key = lines[i].split(":", 1)[0]
            lines[i] = f"{key}: {yaml.safe_dump(data.draw(scalars), default_flow_style=True).strip().splitlines()[0]}"
        if not lines:
            break
    check_validate(tmp_path, "\n".join(lines) + "\n", capsys)


@pytest.mark.slow
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.fixed_dictionaries(
    {"version": st.sampled_from([1, 1, 2, "1"])},
    optional={
        "lanes": st.dictionaries(st.sampled_from(["a", "b", "c d", ""]), values, max_size=3),
        "kpis": st.dictionaries(st.sampled_from(["k", "m"]), st.dictionaries(
            st.sampled_from(["lane", "metric", "target", "limit", "class", "direction", "aggregate"]), values, max_size=6), max_size=2),
        "defaults": values,
        "settings": values,
    },
))
def test_generated_documents(tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: dict) -> None:
    check_validate(tmp_path, yaml.safe_dump(doc, allow_unicode=True), capsys)


@pytest.mark.slow   # 40 CLI runs of a fuzz sweep, as the others in this file
def test_truncations_of_the_shipped_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rng = random.Random(7)
    for cut in sorted(rng.sample(range(1, len(SEED_TEXT)), 40)):
        check_validate(tmp_path, SEED_TEXT[:cut], capsys)


def _mutate(data: bytes, draw: st.DataObject) -> bytes:
    op = draw.draw(st.sampled_from(["cut", "flip", "insert", "drop_span"]))
    i = draw.draw(st.integers(0, max(0, len(data) - 1)))
    if op == "cut":
        return data[:i]
    if op == "flip":
        return data[:i] + bytes([data[i] ^ draw.draw(st.integers(1, 255))]) + data[i + 1:] if data else b"\xff"
    if op == "insert":
        return data[:i] + draw.draw(st.binary(min_size=1, max_size=8)) + data[i:]
    j = draw.draw(st.integers(i, min(len(data), i + 200)))
    return data[:i] + data[j:]


SHARED = Path(__file__).resolve().parents[2] / "shared" / "molt"


@pytest.mark.slow
@pytest.mark.skipif(not SHARED.is_dir(), reason="shared molt data not beside the repo")
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data(), which=st.sampled_from(["ir", "diagnostics"]))
def test_inspect_on_mutated_molt_files_exits_3_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], data: st.DataObject, which: str
) -> None:
    source = SHARED / "examples" / ("ir_excerpt.json" if which == "ir" else "diagnostics_dev_warm.json")
    target = tmp_path / f"mutated-{which}.json"
    target.write_bytes(_mutate(source.read_bytes(), data))
    code = main(["inspect", which, str(target), "--json"])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    if code != 0:
        assert code == 3, captured.err
        lines = captured.err.strip().splitlines()
        assert len(lines) == 1 and str(target) in lines[0], captured.err
