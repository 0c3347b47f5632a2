"""The base of every typed record between the stages: a msgspec Struct, not a dataclass.

Why: a dataclass writes and exec()s its __init__, __repr__ and __eq__ (frozen ones also
__setattr__, __delattr__ and __hash__) when its class statement runs, about 1 ms a class
on CPython 3.10-3.12; the ~70 records a `check` imports cost it 60-80 ms before it did any
work, more than anything else it does per run. A Struct's class is built in C (~0.02 ms),
its instances are smaller and faster to make, and mypy reads it as a dataclass
(dataclass_transform).

What differs from a dataclass, and how this package lives with it:
- instances take no attributes beyond their fields (slots): a record is its fields;
- `replace` and `__post_init__` behave as dataclasses' do (the new instance is initialised
  again); `asdict` is shallow, which every record's own `to_dict` already was;
- no per-field repr/compare flags: a field kept out of equality is declared so by the class
  (see config.model.Config).
"""

from __future__ import annotations

import sys


def _import_msgspec() -> None:
    """Import msgspec without typing_extensions: msgspec takes its `get_type_hints` and
    `Required` from there when it is installed (mypy installs it), for TypedDicts written with
    typing_extensions; no record here is one, and msgspec falls back to `typing`'s own. The
    import (it brings `inspect`, `ast`, `dis`, `tokenize`) cost every command ~18 ms, half of
    msgspec's. Blocked only while msgspec is first imported: later importers get it as usual."""
    if "msgspec" in sys.modules or "typing_extensions" in sys.modules:
        return
    sys.modules["typing_extensions"] = None  # type: ignore[assignment]   # an ImportError to importers
    try:
        import msgspec  # noqa: F401
    finally:
        del sys.modules["typing_extensions"]


_import_msgspec()

import msgspec  # noqa: E402   (this module is where the package imports msgspec: see above)
from msgspec import Struct, field  # noqa: E402
from msgspec.structs import asdict, fields, replace  # noqa: E402

__all__ = ["Struct", "asdict", "encoded_before", "field", "fields", "msgspec", "remember_encoding", "replace"]


# Shared read-only values whose JSON is known, by identity (each entry holds its value, so an
# id is never reused while it is here): a build's module_reasons table is decoded once for
# every lane whose payload holds the same bytes, and is then written into each lane's detail.
_ENCODED: dict[int, tuple[object, msgspec.Raw]] = {}
_ENCODED_KEPT = 8


def remember_encoding(value: object) -> None:
    """Encode `value` (a table nobody mutates) once, for every document it is written into."""
    if len(_ENCODED) >= _ENCODED_KEPT:
        _ENCODED.clear()              # a value no longer here is encoded again: slower, never wrong
    _ENCODED[id(value)] = (value, msgspec.Raw(msgspec.json.encode(value)))


def encoded_before(value: object) -> msgspec.Raw | None:
    """`value`'s JSON when remember_encoding was told of this very object, else None."""
    entry = _ENCODED.get(id(value))
    return entry[1] if entry is not None and entry[0] is value else None

