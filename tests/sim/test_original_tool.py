"""The proof of faithfulness: runpod-deploy 0.8.4, written against the real RunPod by someone
else, runs its hello example end to end on the simulator with system ssh and rsync."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runpod_sim.testing import Simulator

ORIGINAL_VENV = Path(__file__).resolve().parents[2] / ".cache" / "orig-venv"

HELLO = """\
schema_version: 2
name: hello
run_id_prefix: hello
state_file: {state}
local:
  project_root: {project}
pod:
  image: runpod/pytorch:2.4.0-py3.13-cuda12.4.1-devel-ubuntu22.04
  datacenters: [EU-RO-1]
  gpu_order:
    - NVIDIA RTX A4000
storage:
  mode: ephemeral
  volume_gb: 20
ssh:
  key_path: {key}
run:
  script_path: /workspace/hello.sh
  log_path: /workspace/hello.log
  success_marker: "[hello] DONE"
  body: |
    set -euo pipefail
    echo "[hello] hello from $(hostname) at $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "[hello] DONE"
lifecycle:
  on_success: delete
  on_failure: stop
"""


def _original_tool() -> Path:
    tool = ORIGINAL_VENV / "bin" / "runpod-deploy"
    if tool.exists():
        return tool
    subprocess.run([sys.executable, "-m", "venv", str(ORIGINAL_VENV)], check=True)
    install = subprocess.run([str(ORIGINAL_VENV / "bin" / "pip"), "install", "-q",
                              "--ignore-requires-python", "runpod-deploy==0.8.4"],
                             check=False, capture_output=True, text=True, timeout=300)
    if install.returncode != 0:
        pytest.skip(f"cannot install runpod-deploy 0.8.4 from PyPI: {install.stderr[-500:]}")
    return tool


@pytest.mark.slow
def test_original_runpod_deploy_runs_hello_end_to_end(
        runpod_sim: Simulator, sim_ssh_key: Path, tmp_path: Path) -> None:
    tool = _original_tool()
    project = tmp_path / "project"
    project.mkdir()
    home = tmp_path / "home"
    home.mkdir()
    config = tmp_path / "hello.yaml"
    config.write_text(HELLO.format(state=tmp_path / "state", project=project, key=sim_ssh_key))
    env = {**runpod_sim.env, "HOME": str(home)}  # a fresh known_hosts for accept-new
    done = subprocess.run([str(tool), "run", "--config", str(config)], env=env,
                          check=False, capture_output=True, text=True, timeout=240)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    assert "runpodctl pod create" in output and "[hello] DONE" in output
    assert "runpodctl pod delete" in output
    logs = list(project.glob("artifacts/runpod/*/hello.log"))
    assert len(logs) == 1 and "[hello] DONE" in logs[0].read_text()
    pods = runpod_sim.pods()
    assert pods == []
    billed = runpod_sim.billing()
    assert len(billed["pods"]) == 1 and billed["total_usd"] > 0
    assert os.environ.get("RUNPOD_API_KEY") is None
