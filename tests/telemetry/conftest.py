"""Fixtures: a real local shell (`telemetry_shell.LocalShell`) with fake pod tools first on PATH."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.telemetry.telemetry_shell import FAKE_NVIDIA_SMI, FAKE_PYTHON3, FakeBin, LocalShell


@pytest.fixture
def fake_bin(tmp_path: Path) -> FakeBin:
    directory = tmp_path / "bin"
    directory.mkdir()
    bin_dir = FakeBin(directory)
    bin_dir.add("nvidia-smi", FAKE_NVIDIA_SMI)
    return bin_dir


@pytest.fixture
def make_shell(fake_bin: FakeBin) -> Callable[..., LocalShell]:
    """A LocalShell with the fake bin first on PATH and the given extra environment."""

    def build(**extra_env: str) -> LocalShell:
        env = {**os.environ, "PATH": f"{fake_bin.path}{os.pathsep}{os.environ['PATH']}"}
        return LocalShell(env={**env, **extra_env})

    return build


@pytest.fixture
def shell(make_shell: Callable[..., LocalShell]) -> LocalShell:
    return make_shell()


@pytest.fixture
def fast_python(fake_bin: FakeBin) -> None:
    """Shadow python3 with `FAKE_PYTHON3` for tests about something other than pip."""
    fake_bin.add("python3", FAKE_PYTHON3)
