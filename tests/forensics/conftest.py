"""The golden-file fixture of the run-dir and forensics tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.forensics.forensics_data import GOLDEN
from tests.golden_files import golden_in


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text with `golden/<name>`; `RUNPOD_DEPLOY_ACCEPT=1` rewrites the file instead."""
    return golden_in(GOLDEN)
