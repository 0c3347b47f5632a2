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

__all__ = ["Struct", "asdict", "field", "fields", "msgspec", "replace"]

