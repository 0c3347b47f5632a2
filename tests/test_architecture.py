"""The folder tree is the pipeline (config → runner → collectors → results → compare → report):
no package imports back up it, and the runner imports nothing that judges or renders."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "molt_budget"
# one xdist worker: the package graph is parsed once (_package_graph), not once by each worker
pytestmark = pytest.mark.xdist_group("tests/test_architecture.py")


def _imports(path: Path) -> set[str]:
    """Every molt_budget module `path` imports, at module level or inside functions, except under
    `if TYPE_CHECKING:` (annotations only)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("molt_budget"):
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("molt_budget")}
    return found


def _node(module: str) -> str | None:
    """The package (or top-level module) a module belongs to: molt_budget.compare.model -> compare."""
    parts = module.split(".")
    if len(parts) < 2:
        return None
    name = parts[1]
    return name if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").is_file() else None


@functools.cache
def _package_graph() -> dict[str, frozenset[str]]:
    """Parsed once a worker (~0.5 s for the whole package): two tests read it."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        source = _node(module.removesuffix(".__init__"))
        if source is None:
            continue
        targets = {_node(m) for m in _imports(path)} - {None, source}
        graph.setdefault(source, set()).update(t for t in targets if t)
    return {k: frozenset(v) for k, v in graph.items()}


def package_graph() -> dict[str, set[str]]:
    return {k: set(v) for k, v in _package_graph().items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_no_package_level_import_cycle() -> None:
    assert _cycle(package_graph()) is None, " -> ".join(_cycle(package_graph()) or [])


def test_the_runner_and_collectors_never_judge_or_render() -> None:
    graph = package_graph()
    for stage in ("runner", "collectors", "config", "results"):
        assert not graph.get(stage, set()) & {"compare", "report", "commands", "cli"}, (stage, graph.get(stage))


def test_the_checker_sees_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_the_runner_knows_no_metric_family() -> None:
    """molt's specifics live in their collectors (collectors/base.py is the interface): the
    runner names no diagnostics variable, cache line, counter or IR field."""
    import re

    specifics = re.compile(r'MOLT_BUILD_DIAGNOSTICS|Cache: |PYTHONHASHSEED|instructions|summarize_|"(?:ir|diag)\.(?!json)')
    for path in (PACKAGE / "runner").rglob("*.py"):
        code = "\n".join(line for line in path.read_text(encoding="utf-8").splitlines() if not line.lstrip().startswith("#"))
        assert not specifics.findall(code), (path.name, specifics.findall(code))
