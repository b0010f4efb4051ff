"""`validate` and `schema` through CliRunner, and a real subprocess run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from runpod_deploy.cli import app

ROOT = Path(__file__).resolve().parents[2]
BAD = ROOT / "tests" / "data" / "bad_stacks"
runner = CliRunner()


def test_validate_ok() -> None:
    result = runner.invoke(app, ["validate", "--config", str(ROOT / "stacks/hello.yaml")])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"ok: {ROOT / 'stacks/hello.yaml'} schema_version=2 job=hello"


def test_validate_with_vars() -> None:
    result = runner.invoke(app, ["validate", "--config", str(ROOT / "stacks/sweep.yaml"),
                                 "--var", "seed=7"])
    assert result.exit_code == 0 and "job=sweep-s7" in result.stdout


def test_validate_error_is_located_without_traceback() -> None:
    path = BAD / "unknown_pod_key.yaml"
    result = runner.invoke(app, ["validate", "--config", str(path)])
    assert result.exit_code == 1
    assert f"{path}:7:3: error: pod.gpu_ordr: unknown key 'gpu_ordr'" in result.stderr
    assert "Traceback" not in result.output


def test_bad_var_and_missing_file() -> None:
    hello = str(ROOT / "stacks/hello.yaml")
    assert runner.invoke(app, ["validate", "--config", hello, "--var", "1x=2"]).exit_code == 1
    result = runner.invoke(app, ["validate", "--config", "/nonexistent.yaml"])
    assert result.exit_code == 1 and "cannot read the stack file" in result.stderr


def test_schema_is_json() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert "pod" in json.loads(result.stdout)["properties"]


def test_subprocess_validate() -> None:
    exe = Path(sys.executable).parent / "runpod-deploy"
    done = subprocess.run([str(exe), "validate", "--config", "stacks/hello.yaml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0 and done.stdout.startswith("ok: stacks/hello.yaml")
    done = subprocess.run([str(exe), "validate", "--config", str(BAD / "gpu_count_zero.yaml")],
                          cwd=ROOT, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 1 and "pod.gpu_count: expected a value > 0" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_var_nothing_uses_is_pointed_out_with_the_nearest_name() -> None:
    sweep = str(ROOT / "stacks/sweep.yaml")
    result = runner.invoke(app, ["validate", "--config", sweep, "--var", "sed=7"])
    assert result.exit_code == 0, result.output
    assert "warning: --var sed: variable 'sed' is set but nothing in the stack uses it" in result.stderr
    assert "did you mean 'seed'?" in result.stderr
    used = runner.invoke(app, ["validate", "--config", sweep, "--var", "seed=7"])
    assert "warning" not in used.stderr, used.stderr
