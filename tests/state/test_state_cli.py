"""The backend choice and the `state` commands on a `file://` backend, as a user runs them;
boto3 stays out of every command that does not use an s3 backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from reconciler.state import LastRun
from runpod_deploy.api import load_stack, open_stack_store
from tests.e2e.conftest import BASE_STACK, merge

CLI = str(Path(sys.executable).with_name("runpod-deploy"))


def write_stack(root: Path, name: str = "train", **extra: object) -> Path:
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(merge(BASE_STACK, {"name": name, **extra}), sort_keys=False))
    return path


def run(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=60, check=False)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("RUNPOD_", "AWS_"))}
    return {**base, "HOME": str(tmp_path / "home"),
            "RUNPOD_DEPLOY_STATE_DIR": str(tmp_path / "home" / "state")}


def test_the_flag_beats_the_environment_which_beats_the_stack_file(tmp_path: Path) -> None:
    config = write_stack(tmp_path, backend="file:///from-stack")
    home = str(tmp_path / "home")
    assert load_stack(config, env={"HOME": home}).backend == "file:///from-stack"
    from_env = {"HOME": home, "RUNPOD_DEPLOY_BACKEND": "file:///from-env"}
    assert load_stack(config, env=from_env).backend == "file:///from-env"
    assert load_stack(config, env=from_env, backend="file:///flag").backend == "file:///flag"
    plain = write_stack(tmp_path, name="local")
    assert load_stack(plain, env={"HOME": home}).backend is None


def test_checkouts_of_one_repository_share_a_stacks_identity_only_with_a_backend(
        tmp_path: Path) -> None:
    one, two = tmp_path / "alice" / "repo", tmp_path / "ci" / "checkout"
    for root in (one, two):
        (root / ".git").mkdir(parents=True)
        (root / "stacks").mkdir()
        write_stack(root / "stacks")
    env = {"HOME": str(tmp_path)}
    shared = [load_stack(r / "stacks" / "train.yaml", env=env, backend="file:///team")
              for r in (one, two)]
    assert shared[0].identity == shared[1].identity
    assert shared[0].state_path.name == shared[1].state_path.name
    local = [load_stack(r / "stacks" / "train.yaml", env=env) for r in (one, two)]
    assert local[0].identity != local[1].identity  # unchanged without a backend


def test_a_bad_backend_url_is_a_clear_error_and_creates_nothing(tmp_path: Path,
                                                                env: dict[str, str]) -> None:
    config = write_stack(tmp_path)
    done = run("plan", "--config", str(config), "--backend", "ftp://team/state", env=env,
               cwd=tmp_path)
    assert done.returncode == 1
    assert "error: backend URL 'ftp://team/state': the scheme 'ftp' is not supported" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "home").exists()
    listed = run("state", "list", "--backend", "s3://b/p?lease=soon", env=env, cwd=tmp_path)
    assert listed.returncode == 1 and "lease='soon' is not a positive number" in listed.stderr


def test_state_commands_on_a_file_backend(tmp_path: Path, env: dict[str, str]) -> None:
    (tmp_path / ".git").mkdir()
    config = write_stack(tmp_path)
    url = f"file://{tmp_path / 'team'}"
    stack = load_stack(config, env=env, backend=url)
    store = open_stack_store(stack, env)
    with store.lock(command="test"):
        written = store.write(store.read().evolve(
            last_run=LastRun(run_id="20260101T000000Z", run_dir="/runs/x", outcome="succeeded")))
    label = stack.state_path.name.removesuffix(".json")
    listed = run("state", "list", "--backend", url, "--json", env=env, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)["stacks"]
    assert (row["stack"], row["name"], row["serial"], row["last_run"], row["lock"]) == \
        (label, "train", 1, "20260101T000000Z", None)
    shown = run("state", "show", "train", "--backend", url, env=env, cwd=tmp_path)
    assert shown.returncode == 0 and f"Serial  1 (lineage {written.lineage})" in shown.stdout
    pulled = run("state", "pull", str(config), "--backend", url, env=env, cwd=tmp_path)
    assert pulled.returncode == 0 and json.loads(pulled.stdout)["lineage"] == written.lineage
    edited = tmp_path / "edited.json"
    edited.write_text(pulled.stdout.replace('"outcome": "succeeded"', '"outcome": "failed"'))
    pushed = run("state", "push", label, str(edited), "--backend", url, env=env, cwd=tmp_path)
    assert pushed.returncode == 0 and "(serial 2)" in pushed.stdout, pushed.stderr
    assert store.read().last_run.outcome == "failed"  # type: ignore[union-attr]
    other = tmp_path / "other.json"
    other.write_text(pulled.stdout.replace(str(written.lineage), "another-lineage"))
    refused = run("state", "push", label, str(other), "--backend", url, env=env, cwd=tmp_path)
    assert refused.returncode == 1 and "lineage another-lineage" in refused.stderr
    missing = run("state", "show", "nope", "--backend", url, env=env, cwd=tmp_path)
    assert missing.returncode == 1 and "no stack 'nope'" in missing.stderr
    assert label in missing.stderr and "Traceback" not in missing.stderr


def test_boto3_is_imported_only_for_an_s3_backend(tmp_path: Path) -> None:
    config = write_stack(tmp_path)
    probe = (
        "import sys\n"
        "from runpod_deploy.api import load_stack, open_stack_store\n"
        f"stack = load_stack({str(config)!r}, backend='file://{tmp_path}/team')\n"
        "open_stack_store(stack).read()\n"
        "from runpod_deploy.cli import app\n"
        "print('boto3' in sys.modules)\n"
        "from runtime.backends import open_backend, parse_backend_url\n"
        "open_backend(parse_backend_url('s3://b/p?endpoint=http://127.0.0.1:9&region=r'))\n"
        "print('boto3' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=False, env={**os.environ, "HOME": str(tmp_path / "home")})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "True"]
