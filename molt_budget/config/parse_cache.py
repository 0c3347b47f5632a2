"""A budgets file parsed once per content, as Python keeps bytecode: a check reads the same
budgets.yaml run after run, and PyYAML's import and the line-tracking parse cost more than
the rest of loading it.

An entry is the parse (values and the line of every key) of a file that passed the schema,
in the user's cache folder beside the validated-once markers (molt_budget.schemas), keyed
by the file's text and everything that decides its parse: this loader's source, the
schema's text and the installed PyYAML. Only a parse that JSON gives back exactly is kept
(a YAML map with integer keys is not); an entry that cannot be read is a miss. Every
check on the values (references, ranges, the model) still runs on a hit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from molt_budget.config.model import Lines

_FORMAT = b"budgets-parse-1"


def load(text: str) -> tuple[Any, Lines] | None:
    """The cached parse of `text`, or None (parse it, then `store`)."""
    path = _entry(text)
    if path is None:
        return None
    try:
        doc = json.loads(path.read_bytes())
        data, lines = doc["data"], {tuple(key): int(line) for key, line in doc["lines"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return data, lines


def store(text: str, data: Any, lines: Lines) -> None:
    """Best effort, after the file passed every check: a cache that cannot be written costs
    the next check a parse, nothing else."""
    path = _entry(text)
    if path is None:
        return
    try:
        encoded = json.dumps({"data": data, "lines": [[list(key), line] for key, line in lines.items()]},
                             allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError):
        return
    if json.loads(encoded)["data"] != data:
        return                  # JSON would not give this parse back (integer keys, say)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(encoded, encoding="utf-8")
        os.replace(tmp, path)
        _prune(path.parent)
    except OSError:
        pass


KEEP = 256      # entries: every edit of a budgets file makes one, and a stale one is never read again


def _prune(folder: Path) -> None:
    """The oldest entries past KEEP go (a store is a miss, so this costs nothing on a hit)."""
    entries = [e for e in os.scandir(folder) if e.name.endswith(".json")]
    if len(entries) <= KEEP:
        return
    entries.sort(key=lambda e: e.stat().st_mtime_ns)
    for entry in entries[: len(entries) - KEEP // 2]:
        try:
            os.unlink(entry.path)
        except OSError:
            pass


def _entry(text: str) -> Path | None:
    identity = _parser_identity()
    if identity is None:
        return None
    from molt_budget.schemas import checked_before_dir

    digest = hashlib.sha256(identity + b"\0" + text.encode("utf-8", "surrogatepass")).hexdigest()
    folder = checked_before_dir("budgets")
    return folder / f"{digest[:40]}.json" if folder is not None else None


@cache
def _parser_identity() -> bytes | None:
    """What a parse depends on besides the text; None (no caching) when any of it is unknown."""
    from molt_budget.schemas import schema_text

    here = Path(__file__).parent
    spec = importlib.util.find_spec("yaml")
    try:
        sources = b"".join((here / name).read_bytes() for name in ("loader.py", "yaml_lines.py"))
        yaml_file = os.stat(spec.origin) if spec is not None and spec.origin else None
    except OSError:
        return None
    if yaml_file is None:
        return None
    pyyaml = f"{spec.origin if spec else ''}:{yaml_file.st_size}:{yaml_file.st_mtime_ns}".encode()
    return b"\0".join((_FORMAT, hashlib.sha256(sources).digest(), schema_text("budgets").encode(), pyyaml))
