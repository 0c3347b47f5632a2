"""YAML loading that keeps line numbers and refuses duplicate keys.

Errors must say `budgets.yaml:LINE:COL: ...`; PyYAML knows the marks, this keeps them.

One pass, in C when libyaml is there: `CSafeLoader` composes the node tree (every node
carries its marks), one walk over it records the line of every key path and refuses
duplicate keys and non-finite numbers, and the values are constructed from the same
nodes. The pure-Python loader runs only to word a syntax error libyaml found, so the
message reads the same whether or not PyYAML was built with libyaml.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import yaml

from molt_budget.bounded import MAX_DEPTH, deep_line
from molt_budget.config.model import Lines
from molt_budget.errors import ConfigError

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


MAX_NODES = 20_000      # values after expanding aliases: a budgets file has a few hundred
MAX_DIGITS = 18         # an integer in a budgets file is a count, a size or seconds: 10^18 is absurd already
INT_TAG, FLOAT_TAG, STR_TAG = "tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:str"


def load_yaml_with_lines(path: Path, text: str) -> tuple[Any, Lines]:
    """Parse one YAML document; return (data, {key path: 1-based line}).

    Hostile files are refused with file:line before they cost anything: nesting past
    MAX_DEPTH (found by a scan, before the recursive composer sees it), aliases that
    expand past MAX_NODES values ("billion laughs") or refer to themselves, numbers that
    are not finite or not in range, NUL in a string, and a tag its value cannot be
    constructed as (`!!int 1.5`).
    """
    deep = deep_line(text, MAX_DEPTH)
    if deep is not None:
        raise ConfigError(f"{path.name}:{deep}: nested deeper than {MAX_DEPTH} levels")
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
        _check_graph(node, path)
        lines: Lines = {}
        _index(node, (), lines, path, set())
        try:
            return loader.construct_document(node), lines
        except (ValueError, TypeError, KeyError, OverflowError, yaml.constructor.ConstructorError) as exc:
            raise _construct_error(path, node, exc) from None
    finally:
        loader.dispose()


def _check_graph(root: yaml.Node, path: Path) -> None:
    """Refuse aliases that refer to themselves or expand past MAX_NODES values, before
    anything walks the expanded document (PyYAML shares aliased nodes, so a 10-level
    alias bomb is tiny as nodes and 10^10 values as data)."""
    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    while stack:
        node, done = stack.pop()
        key = id(node)
        children = _children(node)
        if done:
            on_path.discard(key)
            sizes[key] = 1 + sum(sizes[id(c)] for c in children)
            if sizes[key] > MAX_NODES:
                where = f"{path.name}:{node.start_mark.line + 1}"
                if len(sizes) > MAX_NODES:   # that many values are written out: not an expansion
                    raise ConfigError(f"{where}: this value holds more than {MAX_NODES:,} values; a budgets file has "
                                      "a few hundred (is it generated? keep the KPIs that gate)")
                raise ConfigError(f"{where}: aliases expand this value to more than "
                                  f"{MAX_NODES:,} values (a YAML alias bomb?): write it out, or use fewer aliases")
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ConfigError(f"{path.name}:{node.start_mark.line + 1}: an alias refers to the value that contains it "
                              "(a recursive structure cannot be a budget)")
        on_path.add(key)
        stack.append((node, True))
        for child in children:
            if id(child) in on_path:
                raise ConfigError(f"{path.name}:{child.start_mark.line + 1}: an alias refers to the value that contains it "
                                  "(a recursive structure cannot be a budget)")
            if id(child) not in sizes:
                stack.append((child, False))


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _construct_error(path: Path, root: yaml.Node, exc: BaseException) -> ConfigError:
    """The first scalar that cannot be built as its tag says (`!!int 1.5`, `!!float x`), with its line."""
    constructor = yaml.constructor.SafeConstructor()
    stack, seen = [root], set()
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, yaml.ScalarNode) and node.tag != STR_TAG:
            try:
                constructor.construct_object(node, deep=True)
            except (ValueError, TypeError, KeyError, OverflowError, yaml.YAMLError):
                tag = node.tag.rsplit(":", 1)[-1]
                return ConfigError(f"{path.name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}: "
                                   f"{node.value[:40]!r} is not a valid {tag}")
        stack.extend(reversed(_children(node)))
    return ConfigError(f"{path.name}: a value cannot be read: {' '.join(str(exc).split())[:200]}")


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


def _index(node: yaml.Node, prefix: tuple[str, ...], lines: Lines, path: Path, indexed: set[int]) -> None:
    lines.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.ScalarNode):
        _check_scalar(node, prefix, path)
    if id(node) in indexed:
        return              # an aliased node: its own keys were checked where it was defined
    indexed.add(id(node))
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
            _index(value_node, prefix + (key,), lines, path, indexed)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (str(i),)] = item.start_mark.line + 1
            _index(item, prefix + (str(i),), lines, path, indexed)


def _check_scalar(node: yaml.ScalarNode, prefix: tuple[str, ...], path: Path) -> None:
    """Numbers finite and in range, no NUL in a string: each with its file:line:col."""
    where = f"{path.name}:{node.start_mark.line + 1}:{node.start_mark.column + 1}: {'.'.join(prefix) or '(value)'}"
    value = str(node.value)
    if node.tag == FLOAT_TAG:
        if value.lower() in NON_FINITE:
            raise ConfigError(f"{where}: {value} is not a finite number")
        try:
            number = float(value.replace("_", ""))
        except ValueError:
            return                  # sexagesimal and other YAML 1.1 spellings: range-checked where used
        if not math.isfinite(number) or abs(number) > 1e300:
            raise ConfigError(f"{where}: {value[:40]} is out of range")
    elif node.tag == INT_TAG and sum(ch.isdigit() for ch in value) > MAX_DIGITS:
        raise ConfigError(f"{where}: an integer of {sum(ch.isdigit() for ch in value)} digits is out of range")
    elif "\0" in value:
        raise ConfigError(f"{where}: contains a NUL character (no command, path or name can)")
