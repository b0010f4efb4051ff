"""The `clients` fixture: the simulator's outside-world clients (`tests.sim.clients`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runpod_sim.testing import Simulator
from tests.sim.clients import Clients


@pytest.fixture
def clients(runpod_sim: Simulator, sim_ssh_key: Path) -> Clients:
    return Clients(runpod_sim, sim_ssh_key)
