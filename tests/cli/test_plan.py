"""`plan` through CliRunner (no runpodctl on PATH: an incomplete observation) and a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.plan import Plan
from reconciler.state import PodRecord, StackState
from runpod_deploy.api import load_stack
from runpod_deploy.cli import app
from runtime.statestore import StateStore

ROOT = Path(__file__).resolve().parents[2]
HELLO = str(ROOT / "stacks/hello.yaml")
runner = CliRunner()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("RUNPOD_DEPLOY_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PATH", "/usr/bin:/bin")  # no runpodctl
    return tmp_path


def test_plan_text_and_detailed_exitcode() -> None:
    result = runner.invoke(app, ["plan", "--config", HELLO])
    assert result.exit_code == 0, result.output
    assert "+ create   hello--" in result.stdout and "Plan: 1 to create." in result.stdout
    assert "runpodctl was not found on PATH" in result.stdout
    assert runner.invoke(app, ["plan", "--config", HELLO, "--detailed-exitcode"]).exit_code == 2


def test_plan_json_and_out(tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = runner.invoke(app, ["plan", "--config", HELLO, "--json", "--out", str(out)])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["format_version"] == 1 and data["steps"][0]["kind"] == "create"
    assert Plan.from_json(out.read_text()) == Plan.from_json(result.stdout)


def test_blind_plan_over_recorded_pod_fails() -> None:
    stack = load_stack(HELLO)
    StateStore(stack.state_path, stack.identity).write(
        StackState(identity=stack.identity, pod=PodRecord(pod_id="p1")))
    result = runner.invoke(app, ["plan", "--config", HELLO, "--detailed-exitcode"])
    assert result.exit_code == 1
    assert "no provider could be asked" in result.stderr


def test_plan_placement_error_is_located(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(Path(HELLO).read_text().replace("NVIDIA RTX A4000", "RTX A4000"))
    result = runner.invoke(app, ["plan", "--config", str(bad)])
    assert result.exit_code == 1
    assert f"{bad}:" in result.stderr and "did you mean 'NVIDIA RTX A4000'" in result.stderr


def test_subprocess_plan(_isolated: Path) -> None:
    exe = Path(sys.executable).parent / "runpod-deploy"
    env = {**os.environ, "RUNPOD_DEPLOY_STATE_DIR": str(_isolated / "s"), "PATH": "/usr/bin:/bin"}
    done = subprocess.run([str(exe), "plan", "--config", "stacks/hello.yaml",
                           "--detailed-exitcode"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert "Plan: 1 to create." in done.stdout
