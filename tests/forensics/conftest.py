"""The golden-file fixture of the run-dir and forensics tests."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from forensics_data import GOLDEN

# Read at import: the suite's autouse fixture removes every RUNPOD_* variable before each test.
_ACCEPT = os.environ.get("RUNPOD_DEPLOY_ACCEPT") == "1"


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text with `golden/<name>`; `RUNPOD_DEPLOY_ACCEPT=1` rewrites the file instead."""

    def check(name: str, actual: str) -> None:
        path = GOLDEN / name
        if _ACCEPT:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, encoding="utf-8")
            return
        assert path.exists(), (
            f"missing golden {path}; run with RUNPOD_DEPLOY_ACCEPT=1 and review it"
        )
        assert actual == path.read_text(encoding="utf-8"), f"output differs from golden {name}"

    return check
