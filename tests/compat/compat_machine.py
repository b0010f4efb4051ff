"""The conformance suite's world: one simulator per test module, and per test a user's machine
(a HOME with the key the simulator registered, a project dir) where the original's command lines
run as written, through bash, with `runpod-deploy` and the simulator's `runpodctl` on PATH.

Nothing in a command line is changed: only the environment points at the simulator.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from runpod_sim.testing import FAST_KNOBS, Simulator

TOOL_BIN = Path(sys.executable).parent
"""Where this venv installed the `runpod-deploy` console script."""


@pytest.fixture(scope="module")
def shared_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """One simulator for a module's tests: each test has its own HOME, project and stack names,
    so they share it safely (and the suite starts one server, not one per test)."""
    sim = Simulator.start(tmp_path_factory.mktemp("compat-sim") / "sim", **FAST_KNOBS)
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="module")
def shared_key(shared_sim: Simulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    key = tmp_path_factory.mktemp("compat-key") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "compat", "-f", str(key)],
                   check=True)
    shared_sim.add_pubkey(key.with_suffix(".pub").read_text())
    return key


@dataclass
class UserMachine:
    """A user's shell: HOME (with ~/.ssh/id_ed25519), a project dir, the simulator's env."""

    home: Path
    project: Path
    sim: Simulator
    env: dict[str, str]

    def write(self, relative: str, text: str) -> Path:
        path = self.project / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
        return path

    def sh(self, script: str, *, timeout: float = 300, stdin: str | None = None,
           extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a shell script (the command lines as written) in the project dir."""
        return subprocess.run(["bash", "-c", textwrap.dedent(script)], cwd=self.project,
                              env={**self.env, **(extra_env or {})}, input=stdin,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def ok(self, script: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
        done = self.sh(script, **kwargs)
        assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        return done

    def pods_named(self, fragment: str) -> list[dict[str, Any]]:
        return [p for p in self.sim.pods() if fragment in p["name"]]

    def live_pods_named(self, fragment: str) -> list[dict[str, Any]]:
        return [p for p in self.pods_named(fragment) if p["desiredStatus"] != "TERMINATED"]


@pytest.fixture
def machine(shared_sim: Simulator, shared_key: Path, tmp_path: Path) -> UserMachine:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(shared_key, home / ".ssh" / "id_ed25519")
    os.chmod(home / ".ssh" / "id_ed25519", 0o600)
    project = tmp_path / "project"
    project.mkdir()
    env = {**shared_sim.env, "HOME": str(home)}
    env["PATH"] = f"{TOOL_BIN}{os.pathsep}{env['PATH']}"
    for key in [k for k in env if k.startswith("RUNPOD_DEPLOY_")]:
        del env[key]
    env["RUNPOD_DEPLOY_REGISTRY_URL"] = "http://127.0.0.1:9"  # never Docker Hub from a test
    return UserMachine(home=home, project=project, sim=shared_sim, env=env)
