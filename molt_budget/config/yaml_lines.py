"""YAML loading that keeps line numbers and refuses duplicate keys.

Errors must say `budgets.yaml:LINE:COL: ...`; PyYAML knows the marks, this keeps them.

One pass, in C when libyaml is there: `CSafeLoader` composes the node tree (every node
carries its marks), one walk over it records the line of every key path and refuses
duplicate keys and non-finite numbers, and the values are constructed from the same
nodes. The pure-Python loader runs only to word a syntax error libyaml found, so the
message reads the same whether or not PyYAML was built with libyaml.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from molt_budget.errors import ConfigError

Lines = dict[tuple[str, ...], int]
NON_FINITE = {".nan", ".inf", "-.inf", "+.inf"}


def _without_timestamps(base: Any) -> dict[Any, Any]:
    return {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in base.yaml_implicit_resolvers.items()
    }


class PreciseLoader(yaml.SafeLoader):
    """Pure Python, slow: the reference wording of syntax errors.

    Safe loading without implicit timestamps: `expires: 2027-01-31` stays the string the
    schema expects, and an impossible date is a schema error with a line, not a crash."""


PreciseLoader.yaml_implicit_resolvers = _without_timestamps(yaml.SafeLoader)

FastLoader: Any = PreciseLoader   # PyYAML built without libyaml: correct, only slower
HAVE_LIBYAML = hasattr(yaml, "CSafeLoader")
if HAVE_LIBYAML:
    class _CLoader(yaml.CSafeLoader):
        """libyaml's parser and composer, the same resolvers and constructors as PreciseLoader."""

    _CLoader.yaml_implicit_resolvers = _without_timestamps(yaml.CSafeLoader)
    FastLoader = _CLoader


def load_yaml_with_lines(path: Path, text: str) -> tuple[Any, Lines]:
    """Parse one YAML document; return (data, {key path: 1-based line})."""
    try:
        return _load(FastLoader, path, text)
    except yaml.YAMLError as fast_error:
        if not HAVE_LIBYAML:
            raise _syntax_error(path, text, fast_error) from None
    try:
        # libyaml found a problem; the pure loader words it the way it always has
        return _load(PreciseLoader, path, text)
    except yaml.YAMLError as exc:
        raise _syntax_error(path, text, exc) from None


def _load(loader_class: Any, path: Path, text: str) -> tuple[Any, Lines]:
    loader = loader_class(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, {}
        lines: Lines = {}
        _index(node, (), lines, path)
        return loader.construct_document(node), lines
    finally:
        loader.dispose()


def _syntax_error(path: Path, text: str, exc: yaml.YAMLError) -> ConfigError:
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        problem = exc.problem or exc.context or "invalid YAML"
        return ConfigError(f"{where}: YAML syntax error: {problem}")
    if isinstance(exc, yaml.reader.ReaderError):
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        return ConfigError(f"{path.name}:{line}:{col}: YAML error: unacceptable character #x{exc.character:04x}")
    return ConfigError(f"{path.name}: YAML error: {' '.join(str(exc).split())}")


def _index(node: yaml.Node, prefix: tuple[str, ...], lines: Lines, path: Path) -> None:
    lines.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:float" and node.value.lower() in NON_FINITE:
        dotted = ".".join(prefix) or "(value)"
        raise ConfigError(f"{path.name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}: {dotted}: "
                          f"{node.value} is not a finite number")
    if isinstance(node, yaml.MappingNode):
        seen: dict[str, int] = {}
        for key_node, value_node in node.value:
            key = str(key_node.value)
            line = key_node.start_mark.line + 1
            if key in seen:
                dotted = ".".join(prefix + (key,))
                raise ConfigError(
                    f"{path.name}:{line}:{key_node.start_mark.column + 1}: duplicate key "
                    f"'{dotted}' (first defined on line {seen[key]})"
                )
            seen[key] = line
            lines[prefix + (key,)] = line
            _index(value_node, prefix + (key,), lines, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (str(i),)] = item.start_mark.line + 1
            _index(item, prefix + (str(i),), lines, path)
