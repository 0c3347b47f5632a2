"""YAML loading that keeps line numbers and refuses duplicate keys.

Errors must say `budgets.yaml:LINE:COL: ...`; PyYAML knows the marks, this keeps them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from molt_budget.errors import ConfigError

Lines = dict[tuple[str, ...], int]


class _Loader(yaml.SafeLoader):
    """Safe loading without implicit timestamps: `expires: 2027-01-31` stays the string the
    schema expects, and an impossible date is a schema error with a line, not a crash."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
NON_FINITE = {".nan", ".inf", "-.inf", "+.inf"}


def load_yaml_with_lines(path: Path, text: str) -> tuple[Any, Lines]:
    """Parse one YAML document; return (data, {key path: 1-based line})."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None, {}
            lines: Lines = {}
            _index(node, (), lines, path)
            data = loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{path.name}:{mark.line + 1}:{mark.column + 1}" if mark else path.name
        problem = exc.problem or exc.context or "invalid YAML"
        raise ConfigError(f"{where}: YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        col = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        raise ConfigError(f"{path.name}:{line}:{col}: YAML error: unacceptable character #x{exc.character:04x}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path.name}: YAML error: {' '.join(str(exc).split())}") from None
    return data, lines


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
