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

from msgspec import Struct, field
from msgspec.structs import asdict, fields, replace

__all__ = ["Struct", "asdict", "field", "fields", "replace"]

