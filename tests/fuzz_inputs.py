"""Hostile-input generators for the fuzz tests: text mutations and structure-aware ones.

Seeded (random.Random) so a failure names its case and reproduces; each generator yields
(label, bytes). Structure-aware mutations parse the seed, change one value deep inside
(huge numbers, wrong types, deep nesting, aliases and tags for YAML) and serialize it
again; text mutations cut, flip, insert and re-encode bytes.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Iterator
from typing import Any

HUGE = ["1" + "0" * 400, "1e400", "-1e400", "1" + "0" * 5001, "NaN", "Infinity", "-Infinity", "-1", "1e-400",
        "123456789012345678901234567890", "0.1e309", "-0", "1.5", "4294967296", "9007199254740993"]
ODD_VALUES: list[Any] = [None, True, "text", "", [], {}, [1, 2], {"a": 1}, -1, 1.5, "\udcff", "\x00", "\u202e", 10 ** 30]
JUNK = [b"\x00", b"\xff\xfe", b"\xc3\x28", b"\xed\xa0\x80", b"\r", b"\n\n", b"\\u0000", b'"', b"]", b"}", b",", b"\t"]


def _paths(node: Any, here: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [here]
    if isinstance(node, dict):
        for key, value in node.items():
            out += _paths(value, here + (key,))
    elif isinstance(node, list):
        for i, value in enumerate(node[:6]):
            out += _paths(value, here + (i,))
    return out


def _set(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    parent = node
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return node


# A structure mutation serializes its whole seed again with a marker where the hostile value
# goes, and a seed has only so many paths: the same (seed, path) gives the same text, so it is
# serialized once (the cases are byte for byte what serializing every time gives; the pure-Python
# YAML emitter and json's indented encoder were most of a sweep's time).
@functools.lru_cache(maxsize=64)
def _paths_of(src: str) -> list[tuple[Any, ...]]:
    return _paths(json.loads(src))


@functools.lru_cache(maxsize=4096)
def _dumped_with(src: str, path: tuple[Any, ...], marker: str, form: str) -> str:
    doc = _set(json.loads(src), path, marker)
    if form == "yaml":
        import yaml

        # libyaml's emitter where present: the same text as yaml.safe_dump on every (seed, path) here, ~15x faster
        dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)
        return yaml.dump(doc, Dumper=dumper, sort_keys=False, allow_unicode=True, width=10_000)
    return json.dumps(doc, indent=1) if form == "json-indent" else json.dumps(doc)


def text_mutation(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    op = rng.choice(["cut", "flip", "insert", "drop", "dup", "junk", "utf16", "latin1", "bom", "crlf"])
    i = rng.randrange(max(1, len(data)))
    if op == "cut":
        return op, data[:i]
    if op == "flip":
        return op, data[:i] + bytes([data[i] ^ rng.randrange(1, 256)]) + data[i + 1:] if data else b"\xff"
    if op == "insert":
        return op, data[:i] + bytes(rng.randrange(256) for _ in range(rng.randrange(1, 9))) + data[i:]
    if op == "drop":
        return op, data[:i] + data[i + rng.randrange(1, 200):]
    if op == "dup":
        j = min(len(data), i + rng.randrange(1, 300))
        return op, data[:j] + data[i:j] + data[j:]
    if op == "junk":
        return op, data[:i] + rng.choice(JUNK) + data[i:]
    if op == "utf16":
        return op, data.decode("utf-8", "replace").encode("utf-16")
    if op == "latin1":
        return op, data.replace(b"e", b"\xe9", rng.randrange(1, 5))
    if op == "bom":
        return op, b"\xef\xbb\xbf" + data
    return op, data.replace(b"\n", b"\r\n")


def json_structure_mutation(doc: Any, rng: random.Random) -> tuple[str, bytes]:
    """One value deep in the document replaced by something absurd, then serialized again."""
    src = json.dumps(doc)
    doc = json.loads(src)
    path = rng.choice(_paths_of(src))
    op = rng.choice(["huge", "huge", "odd", "deep", "wide", "dupkey", "drop"])
    if op == "huge":
        marker = "__HUGE__"
        text = _dumped_with(src, path, marker, "json-indent")
        return op, text.replace(json.dumps(marker), rng.choice(HUGE), 1).encode()
    if op == "odd":
        return op, json.dumps(_set(doc, path, rng.choice(ODD_VALUES)), indent=1).encode("utf-8", "surrogatepass")
    if op == "deep":
        depth = rng.choice([50, 200, 5_000, 200_000])
        marker = "__DEEP__"
        text = _dumped_with(src, path, marker, "json")
        return op, text.replace(json.dumps(marker), "[" * depth + "]" * depth, 1).encode()
    if op == "wide":
        return op, json.dumps(_set(doc, path, list(range(rng.choice([1000, 100_000]))))).encode()
    if op == "dupkey" and isinstance(doc, dict) and doc:
        key = rng.choice(list(doc))
        text = json.dumps(doc)
        return op, (text[:-1] + f", {json.dumps(key)}: {rng.choice(HUGE)}}}").encode()
    if path:
        parent = doc
        for key in path[:-1]:
            parent = parent[key]
        del parent[path[-1]]
    return "drop-key", json.dumps(doc).encode()


def json_cases(seeds: list[bytes], n: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """n hostile variants of JSON seeds: half text mutations, half structure-aware."""
    rng = random.Random(seed)
    docs = [json.loads(s) for s in seeds]
    for i in range(n):
        k = rng.randrange(len(seeds))
        if i % 2:
            label, data = text_mutation(seeds[k], rng)
            if rng.random() < 0.3:
                label2, data = text_mutation(data, rng)
                label += "+" + label2
        else:
            label, data = json_structure_mutation(docs[k], rng)
        yield f"case {i} (seed {seed}, source {k}, {label})", data


# -- budgets files (YAML) --------------------------------------------------------------------------

YAML_HOSTILE = [
    "1" + "0" * 400, "1" + "0" * 5001, "1.0e+400", "-1.0e+400", ".nan", ".inf", "-.inf", "!!float x", "!!int 1.5",
    "!!int 0x", "!!bool maybe", "!!binary '%%%'", "!!timestamp 2027-13-45", "!!python/object:os.system 'true'",
    "!!set {a, b}", "!!omap [a: 1]", '"a\\0b"', '"\\udcff"', '"\\u202e"', "&x [*x]", "*undefined",
    "[" * 300 + "]" * 300, "{a: " * 80 + "1" + "}" * 80, "0o777", "+12_000", "190:20:30", "~", "''", "[]", "{}",
    "-1", "0", "1e3", "2027-01-31", "yes", "no", "null", "true",
]


def alias_bomb(levels: int = 9) -> str:
    lines = ["bomb0: &b0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"bomb{i}: &b{i} [" + ", ".join([f"*b{i - 1}"] * 10) + "]" for i in range(1, levels)]
    return "\n".join(lines) + "\n"


def yaml_line_mutation(text: str, rng: random.Random) -> tuple[str, str]:
    lines = text.splitlines()
    op = rng.choice(["drop", "dup", "garble", "indent", "value", "cut", "tab"])
    i = rng.randrange(len(lines))
    if op == "drop":
        del lines[i]
    elif op == "dup":
        lines.insert(i, lines[i])
    elif op == "garble":
        lines[i] = "".join(rng.choice(":-[]{}&*!|>'\"#%@` \tab1") for _ in range(rng.randrange(1, 20)))
    elif op == "indent":
        lines[i] = " " * rng.randrange(1, 5) + lines[i]
    elif op == "value" and ":" in lines[i]:
        lines[i] = lines[i].split(":", 1)[0] + ": " + rng.choice(YAML_HOSTILE)
    elif op == "cut":
        return op, text[: rng.randrange(len(text))]
    elif op == "tab":
        lines[i] = "\t" + lines[i]
    return op, "\n".join(lines) + "\n"


def yaml_structure_mutation(doc: Any, rng: random.Random) -> tuple[str, str]:
    """A value deep in a parsed budgets file replaced by hostile YAML (numbers, tags, aliases, nesting)."""
    src = json.dumps(doc, default=str)
    path = rng.choice([p for p in _paths_of(src) if p])
    marker = "__HOSTILE_VALUE__"
    text = _dumped_with(src, path, marker, "yaml")
    op = rng.choice(["value", "value", "bomb", "merge"])
    if op == "bomb":
        return op, alias_bomb(rng.choice([3, 6, 9])) + text.replace(marker, f"*b{rng.randrange(3)}", 1)
    if op == "merge":
        return op, "anchors: &defaults {timeout_s: 5, repeats: 2}\n" + text.replace(marker, "{<<: *defaults, x: 1}", 1)
    hostile = rng.choice(YAML_HOSTILE)
    return f"value {hostile[:20]!r}", text.replace(marker, hostile, 1)


def yaml_cases(seeds: list[str], n: int, seed: int) -> Iterator[tuple[str, bytes]]:
    """n hostile budgets files: line mutations, structure-aware values, and byte-level encodings."""
    import yaml

    rng = random.Random(seed)
    docs = [yaml.load(s, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) for s in seeds]   # libyaml: the same data, faster
    for i in range(n):
        k = rng.randrange(len(seeds))
        kind = i % 4
        if kind == 0:
            label, text = yaml_line_mutation(seeds[k], rng)
            data = text.encode("utf-8", "surrogatepass")
        elif kind in (1, 2):
            label, text = yaml_structure_mutation(docs[k], rng)
            data = text.encode("utf-8", "surrogatepass")
        else:
            label, data = text_mutation(seeds[k].encode(), rng)
        yield f"case {i} (seed {seed}, source {k}, {label})", data
