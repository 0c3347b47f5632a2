from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
SHARED = Path(os.environ.get("MOLT_BUDGET_SHARED", REPO.parent / "shared"))
MOLT = SHARED / "molt"
needs_shared = pytest.mark.skipif(
    not (MOLT / "real").is_dir(), reason=f"molt reference data not found at {MOLT} (set MOLT_BUDGET_SHARED)"
)


@pytest.fixture
def shared() -> Path:
    if not (SHARED / "molt").is_dir():
        pytest.skip(f"shared molt data not found at {SHARED} (set MOLT_BUDGET_SHARED)")
    return SHARED


def fake_build(*args: str) -> list[str]:
    """argv for the scriptable fake build."""
    return [sys.executable, str(FIXTURES / "fake_build.py"), *args]
