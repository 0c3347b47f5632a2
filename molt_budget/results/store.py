"""Results files: written atomically after every sample so a crash loses nothing."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from molt_budget.errors import ConfigError
from molt_budget.results.model import SCHEMA_VERSION, RunResults


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8"))


def write_bytes_atomic(path: Path, data: bytes, mode: int | None = None) -> None:
    """tmp file in the same folder + fsync + rename: readers see the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode if mode is not None else 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def save_results(path: Path, results: RunResults) -> None:
    write_json_atomic(path, results.to_dict())


def _umask() -> int:
    """mkstemp creates 0600 files; results are meant to be read like any other file."""
    current = os.umask(0)
    os.umask(current)
    return current


def read_json_file(path: Path, what: str) -> Any:
    """A JSON document the user handed us; any problem is one ConfigError naming the file (exit 2)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such {what}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}:{exc.lineno}:{exc.colno}: not valid JSON: {exc.msg}") from None


def load_results(path: Path) -> RunResults:
    """Read and schema-check a results file; errors name the file (exit 2: bad input)."""
    data = read_json_file(path, "results file")
    if not isinstance(data, dict) or "schema_version" not in data:
        raise ConfigError(f"{path}: not a molt-budget results file (no schema_version)")
    if data["schema_version"] != SCHEMA_VERSION:
        raise ConfigError(f"{path}: results schema_version {data['schema_version']!r} is not supported (expected {SCHEMA_VERSION})")
    from molt_budget.schemas import validator

    error = next(iter(validator("results").iter_errors(data)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        raise ConfigError(f"{path}: invalid results file at {where}: {error.message}")
    return RunResults.from_dict(data)
