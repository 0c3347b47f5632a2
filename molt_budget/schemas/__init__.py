"""JSON Schemas for every file molt-budget reads or writes, kept in one place."""

from __future__ import annotations

import hashlib
import json
import os
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any


@cache
def schema_text(name: str) -> str:
    return resources.files(__name__).joinpath(f"{name}.schema.json").read_text(encoding="utf-8")


@cache
def load_schema(name: str) -> dict[str, Any]:
    """Load `<name>.schema.json` shipped in this package."""
    return json.loads(schema_text(name))


def validator(name: str) -> Any:
    """A jsonschema validator; imported lazily so `--help` stays fast."""
    import jsonschema

    schema = load_schema(name)
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


@cache
def _compiled(name: str) -> Any:
    """The schema as fastjsonschema's generated function, without detailed exceptions: every
    caller asks only yes or no (jsonschema words the error), and the detail, a repr of the
    schema in every `raise`, tripled the code Python compiles on a cold cache (budgets: 62 ms
    to compile, 20 ms without; a fresh CI runner pays it on every check)."""
    import fastjsonschema

    return fastjsonschema.compile(_const_as_enum(load_schema(name)), detailed_exceptions=False)


# Keywords whose value maps names to schemas, and keywords whose value is data, not a schema.
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


def _const_as_enum(node: Any, names: bool = False) -> Any:
    """`node` with each `"const": v` as `"enum": [v]`, which JSON Schema defines to mean the
    same. fastjsonschema (2.22) cannot compile `const` without detailed exceptions: its message
    names a key the short form does not pass (KeyError: 'definition_rule')."""
    if isinstance(node, list):
        return [_const_as_enum(item) for item in node]
    if not isinstance(node, dict):
        return node
    if names:
        return {key: _const_as_enum(schema) for key, schema in node.items()}
    out = {key: value if key in _DATA_KEYWORDS else _const_as_enum(value, key in _SCHEMA_MAPS) for key, value in node.items()}
    if "const" in out:
        only = {"enum": [out.pop("const")]}
        if "enum" in out:
            out["allOf"] = [*out.get("allOf", []), only]
        else:
            out.update(only)
    return out


def is_valid(name: str, doc: Any) -> bool:
    """The compiled check alone (see first_error): for a reader that words errors itself."""
    import fastjsonschema

    try:
        _compiled(name)(doc)
        return True
    except fastjsonschema.JsonSchemaException:
        return False


def first_error(name: str, doc: Any) -> Any:
    """The first schema error of `doc` (a jsonschema ValidationError), or None when it is valid.

    Why two validators: a pull validates every record of the data branch (100k of them), and
    jsonschema takes ~10 ms a record where the compiled fastjsonschema takes ~0.4 ms. Valid
    documents, the common case, pass the compiled check alone; an invalid one is checked again
    by jsonschema for the path and message users see. (Our schemas use no 2020-12-only keyword,
    so both agree; tests/test_schemas_fast.py holds them to it.)
    """
    import fastjsonschema

    try:
        _compiled(name)(doc)
        return None
    except fastjsonschema.JsonSchemaException:
        pass
    return next(iter(validator(name).iter_errors(doc)), None)


def _valid_marker(name: str, doc: Any) -> Path | None:
    """Where a document known to be valid is remembered: the user's cache folder, keyed by
    the schema's and the document's content. None when the document has no canonical JSON."""
    try:
        canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        return None
    # the schema's file text, not its dict: compiling a validator may annotate the dict
    digest = hashlib.sha256(schema_text(name).encode() + b"\0" + canonical.encode()).hexdigest()
    folder = checked_before_dir("valid")
    return folder / f"{name}-{digest[:40]}" if folder is not None else None


def checked_before_dir(kind: str) -> Path | None:
    """Where molt-budget remembers, by content, what it checked before (validated documents,
    parsed budgets files): the user's cache folder, `$XDG_CACHE_HOME` when it is an absolute
    path. A relative one is ignored, as the XDG spec says (it made a cache folder inside the
    project being checked); None, no remembering, when there is no home to fall back on."""
    from molt_budget.bounded import NAME_MAX, unnameable

    xdg = os.environ.get("XDG_CACHE_HOME", "")
    try:
        folder = Path(xdg) / "molt-budget" / kind if os.path.isabs(xdg) else Path.home() / ".cache" / "molt-budget" / kind
    except RuntimeError:                # no HOME and no passwd entry (an arbitrary container uid)
        return None
    # a cache folder no file system can name (a 5 kB $XDG_CACHE_HOME) is no cache, not an error
    return None if unnameable(folder, room=NAME_MAX + 1) else folder


def known_valid(name: str, doc: Any) -> bool:
    """Whether this exact document passed this exact schema before (a budgets file is checked
    on every `check`, and jsonschema's import alone costs more than the rest of the load)."""
    marker = _valid_marker(name, doc)
    return marker is not None and marker.is_file()


def remember_valid(name: str, doc: Any) -> None:
    """Best effort: a cache folder that cannot be written only costs the next check a validation."""
    marker = _valid_marker(name, doc)
    if marker is None:
        return
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    except OSError:
        pass
