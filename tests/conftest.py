"""Suite-wide fixtures: a clean environment so no test sees the developer's RunPod settings."""

from __future__ import annotations

pytest_plugins = ["runpod_sim.pytest_plugin"]

import os

import pytest


@pytest.fixture(autouse=True)
def _clean_runpod_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    """No RUNPOD_* or RUNPOD_DEPLOY_* variable leaks in from the developer's shell."""
    for key in list(os.environ):
        if key.startswith("RUNPOD_"):
            monkeypatch.delenv(key, raising=False)
