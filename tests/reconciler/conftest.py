"""Fixtures of the pure core: a fixed time, a rendered stack, states and observations."""

from __future__ import annotations

import subprocess
import sys
import tarfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


@pytest.fixture(scope="session")
def original_sdist() -> Path:
    """The original 0.8.4 sdist, downloaded once into .cache/ (skips if PyPI is unreachable)."""
    target = CACHE / "orig-sdist"
    unpacked = target / "runpod_deploy-0.8.4"
    if unpacked.is_dir():
        return unpacked
    target.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps",
                           "--no-binary=:all:", "--ignore-requires-python", "runpod-deploy==0.8.4", "-d", str(target),
                           "-q"], capture_output=True, text=True, timeout=120, check=False)
    archives = list(target.glob("runpod_deploy-0.8.4.tar.gz"))
    if done.returncode != 0 or not archives:
        pytest.skip(f"PyPI unreachable, cannot fetch runpod-deploy 0.8.4: {done.stderr[-200:]}")
    with tarfile.open(archives[0]) as tar:
        tar.extractall(target, filter="data")
    return unpacked
