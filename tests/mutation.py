"""Byte-level mutations for property tests of the file readers."""

from __future__ import annotations


def mutate(data: bytes, edits: list[tuple[int, int, int]]) -> bytes:
    out = bytearray(data)
    for op, pos, value in edits:
        pos %= len(out) + 1
        if op == 0 and pos < len(out):
            out[pos] = value
        elif op == 1:
            out[pos:pos] = bytes([value])
        else:
            del out[pos : pos + value % 8]
    return bytes(out)


