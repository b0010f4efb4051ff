"""pytest fixtures for the simulator (enable with `pytest_plugins = ["runpod_sim.pytest_plugin"]`).

    runpod_sim    a fresh simulator per test, in the test's tmp_path, with fast timings
    sim_ssh_key   a fresh ed25519 key pair registered as the account's pubKey; returns the
                  private key's path (the public key is beside it, `.pub`)
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from runpod_sim.testing import FAST_KNOBS, Simulator


@pytest.fixture
def runpod_sim(tmp_path: Path) -> Iterator[Simulator]:
    sim = Simulator.start(tmp_path / "runpod-sim", **FAST_KNOBS)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def sim_ssh_key(runpod_sim: Simulator, tmp_path: Path) -> Path:
    key = tmp_path / "ssh" / "id_ed25519"
    key.parent.mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "sim-test",
                    "-f", str(key)], check=True)
    runpod_sim.add_pubkey(key.with_suffix(".pub").read_text())
    return key
