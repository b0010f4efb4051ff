"""`state migrate`: 50 stacks, each with a pod on the simulator, moved file -> s3 -> file with
the real CLI; every plan stays a no-op, lineage and serial are kept, and the old copies are
marked migrated (an apply against them is refused, naming the new backend)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.render import render_json
from runpod_deploy.api import load_stack, make_plan, open_stack_store
from runpod_sim.testing import FAST_KNOBS, Simulator
from tests.e2e.conftest import BASE_STACK, merge

from .conftest import S3, s3_url

pytestmark = [pytest.mark.sim, pytest.mark.slow, pytest.mark.timeout(900)]

CLI = str(Path(sys.executable).with_name("runpod-deploy"))
STACKS = 50
QUIET_TELEMETRY = {"enabled": False, "capture_nvidia_smi": False, "capture_dmesg": False,
                   "capture_pod_describe": False, "capture_remote_env": False}


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[Simulator]:
    started = Simulator.start(tmp_path / "sim", **FAST_KNOBS)
    try:
        yield started
    finally:
        started.stop()


def plans(configs: list[Path], env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """What each stack's plan decides: its steps (kind, pod), the state it was made against
    (lineage, serial) and the spec (fingerprint); not where the state lives, nor the pod's
    uptime, which move."""
    out = {}
    for config in configs:
        plan = json.loads(render_json(make_plan(load_stack(config, env=env), provider="api",
                                                env=env)))
        out[config.name] = {
            "steps": [(step["kind"], step.get("pod_id")) for step in plan["steps"]],
            "state": (plan["state_lineage"], plan["state_serial"]),
            "spec": plan["spec_fingerprint"], "stack": plan["stack"]["key"]}
    return out


def test_migrating_50_stacks_file_to_s3_and_back_keeps_every_plan_a_no_op(
        sim: Simulator, moto_s3: S3, bucket: str, aws_env: dict[str, str],
        tmp_path: Path) -> None:
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    sim.add_pubkey(key.with_suffix(".pub").read_text())
    for datacenter in BASE_STACK["pod"]["datacenters"]:
        sim.set_stock(datacenter, "NVIDIA RTX A4000", STACKS + 10)
    repo = tmp_path / "repo"
    (repo / ".git").mkdir(parents=True)
    file_url = f"file://{tmp_path / 'team-state'}"
    s3 = s3_url(moto_s3.endpoint, bucket)
    configs = []
    for i in range(STACKS):
        data = merge(BASE_STACK, {"name": f"sweep-{i:02d}", "ssh": {"key_path": str(key)},
                                  "telemetry": QUIET_TELEMETRY,
                                  "lifecycle": {"on_success": "preserve",
                                                "on_failure": "delete"}})
        path = repo / f"sweep-{i:02d}.yaml"
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        configs.append(path)
    env = {**sim.env, **aws_env, "HOME": str(tmp_path / "home"),
           "RUNPOD_DEPLOY_STATE_DIR": str(tmp_path / "home" / "state")}

    def apply(config: Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run([CLI, "apply", "--config", str(config), "--backend", file_url,
                               "--yes", "--provider", "api", "--plain"], env=env, cwd=repo,
                              capture_output=True, text=True, timeout=300, check=False)

    with ThreadPoolExecutor(max_workers=4) as pool:
        for done in pool.map(apply, configs):
            assert done.returncode == 0, done.stderr[-2000:]
    on_file = {**env, "RUNPOD_DEPLOY_BACKEND": file_url}
    on_s3 = {**env, "RUNPOD_DEPLOY_BACKEND": s3}
    before = plans(configs, on_file)
    assert all(kind == "noop" for p in before.values() for kind, _ in p["steps"])
    assert all(pod_id for p in before.values() for _, pod_id in p["steps"])
    states = {c.name: open_stack_store(load_stack(c, env=on_file), on_file).read()
              for c in configs}

    there = subprocess.run([CLI, "state", "migrate", "--backend", file_url, "--to", s3],
                           env=env, capture_output=True, text=True, check=False)
    assert there.returncode == 0, there.stderr
    assert f"migrated {STACKS} stack states" in there.stdout
    assert plans(configs, on_s3) == before
    refused = subprocess.run([CLI, "plan", "--config", str(configs[0]), "--provider", "api"],
                             env=on_file, capture_output=True, text=True, check=False)
    assert refused.returncode == 1 and "was migrated to s3://" in refused.stderr

    back = subprocess.run([CLI, "state", "migrate", "--backend", s3, "--to", file_url],
                          env=env, capture_output=True, text=True, check=False)
    assert back.returncode == 0, back.stderr
    assert plans(configs, on_file) == before
    for config in configs:
        after = open_stack_store(load_stack(config, env=on_file), on_file).read()
        kept = states[config.name]
        assert (after.lineage, after.serial, after.pod) == (kept.lineage, kept.serial, kept.pod)
    listed = subprocess.run([CLI, "state", "list", "--backend", s3, "--json"], env=env,
                            capture_output=True, text=True, check=False)
    assert listed.returncode == 0
    rows = json.loads(listed.stdout)["stacks"]
    assert len(rows) == STACKS and all(r["status"].startswith("migrated to file://")
                                       for r in rows)
    exit_codes = {subprocess.run([CLI, "plan", "--config", str(c), "--provider", "api",
                                  "--detailed-exitcode"], env=on_file, capture_output=True,
                                 text=True, check=False).returncode for c in configs[:3]}
    assert exit_codes == {0}
