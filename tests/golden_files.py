"""Golden files for every test that pins a command's output: compare, or with
`RUNPOD_DEPLOY_ACCEPT=1` rewrite the file (then review the diff before committing)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

# Read at import: the suite's autouse fixture removes every RUNPOD_* variable before each test.
ACCEPT = os.environ.get("RUNPOD_DEPLOY_ACCEPT") == "1"


def check_golden(path: Path, actual: str) -> None:
    """`actual` must equal the golden file at `path` (written instead when accepting)."""
    if ACCEPT:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual, encoding="utf-8")
        return
    assert path.exists(), f"missing golden {path}; run with RUNPOD_DEPLOY_ACCEPT=1 and review it"
    assert actual == path.read_text(encoding="utf-8"), (
        f"output differs from golden {path} (RUNPOD_DEPLOY_ACCEPT=1 to accept)")


def golden_in(folder: Path) -> Callable[[str, str], None]:
    """The `golden(name, actual)` checker of one folder of golden files."""
    return lambda name, actual: check_golden(folder / name, actual)
