"""Network volumes end to end on the simulator: the stack names a volume, apply resolves it to
its id, pins the pod to the volume's datacenter and mounts it; what a job writes there outlives
the pod. A name the account does not have stops apply before anything exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runpod_deploy.api import ApplyRequest, load_stack, make_plan

from .conftest import Project, manifest_of

pytestmark = pytest.mark.sim

COUNTER_BODY = """set -euo pipefail
n=$(cat /workspace/data/counter 2>/dev/null || echo 0)
echo "volume_counter=$n"
mkdir -p /workspace/data
echo $((n + 1)) > /workspace/data/counter
echo '[job] DONE'
"""


def network_volume_stack(project: Project, volume_name: str, **lifecycle: str) -> Path:
    # US-IL-1 first: the volume lives in EU-RO-1, so that is where the pod must go anyway.
    return project.stack({
        "pod": {"datacenters": ["US-IL-1", "EU-RO-1"]},
        "storage": {"mode": "network_volume", "volume_name": volume_name,
                    "volume_mount": "/workspace", "volume_gb": None},
        "run": {"body": COUNTER_BODY},
        "lifecycle": {"on_success": "delete", **lifecycle},
    })


@pytest.mark.parametrize("provider", ["runpodctl", "api"])
def test_what_a_job_writes_on_the_volume_outlives_its_pod(project: Project, provider: str) -> None:
    made = project.sim.create_network_volume("e2e-data", "EU-RO-1", size_gb=10)
    config = network_volume_stack(project, "e2e-data")

    plan = make_plan(load_stack(config, env=project.env), provider=provider, env=project.env)
    assert plan.network_volume is not None
    assert (plan.network_volume.id, plan.network_volume.datacenter_id) == (made["id"], "EU-RO-1")
    assert any("only EU-RO-1, where it lives, is tried" in w for w in plan.warnings)

    first = project.apply(config, ApplyRequest(provider=provider))
    assert first.ok, first.detail + project.log.getvalue()[-2000:]
    assert "volume_counter=0" in (first.run_dir / "job.log").read_text()
    assert manifest_of(first.run_dir)["datacenter_id"] == "EU-RO-1"
    assert project.live_pods() == [], "on_success delete: the pod is gone, the volume is not"

    second = project.apply(config, ApplyRequest(provider=provider))
    assert second.ok, second.detail
    assert second.pod_id != first.pod_id, "a fresh pod"
    assert "volume_counter=1" in (second.run_dir / "job.log").read_text()
    assert (project.sim.home / "volumes" / made["id"] / "data" / "counter").read_text() == "2\n"
    assert project.state(config).pod is None
    project.assert_no_leak(config)


def test_a_stopped_pod_on_the_volume_is_resumed_with_it(project: Project) -> None:
    project.sim.create_network_volume("e2e-keep", "EU-RO-1")
    config = network_volume_stack(project, "e2e-keep", on_success="recycle")
    first = project.apply(config)
    assert first.ok, first.detail
    record = project.state(config).pod
    assert record is not None and record.network_volume_id is not None, "the state records it"

    second = project.apply(config)
    assert second.ok and second.pod_id == first.pod_id
    assert manifest_of(second.run_dir)["pod_resumed"] is True
    assert "volume_counter=1" in (second.run_dir / "job.log").read_text()
    project.assert_no_leak(config)


def test_a_recycled_stack_moved_onto_a_volume_gets_a_pod_that_mounts_it(project: Project) -> None:
    project.sim.create_network_volume("e2e-move", "EU-RO-1")
    ephemeral = project.stack({"run": {"body": COUNTER_BODY}, "lifecycle": {"on_success": "recycle"}})
    first = project.apply(ephemeral)
    assert first.ok, first.detail
    record = project.state(ephemeral).pod
    assert record is not None and record.storage_mode == "ephemeral"

    moved = network_volume_stack(project, "e2e-move", on_success="recycle")
    assert moved == ephemeral
    plan = make_plan(load_stack(moved, env=project.env), provider="api", env=project.env)
    assert [s.kind.value for s in plan.steps] == ["replace"]
    assert ("storage.mode", "ephemeral", "network_volume") in [
        (c.path, c.before, c.after) for c in plan.steps[0].changes]
    second = project.apply(moved)
    assert second.ok and second.pod_id != first.pod_id, second.detail
    assert "volume_counter=0" in (second.run_dir / "job.log").read_text(), "a fresh volume"
    project.assert_no_leak(moved)


def test_an_unknown_volume_name_is_a_located_error_and_creates_nothing(project: Project) -> None:
    config = network_volume_stack(project, "no-such-volume")
    line = next(i for i, text in enumerate(config.read_text().splitlines(), 1)
                if "volume_name:" in text)
    exe = Path(sys.executable).with_name("runpod-deploy")
    done = subprocess.run(
        [str(exe), "apply", "--config", str(config), "--yes", "--provider", "api"],
        env=project.env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode != 0
    assert f"{config.name}:{line}:" in done.stderr, done.stderr
    assert "storage.volume_name: no network volume named 'no-such-volume'" in done.stderr
    assert "sim-volume-ro (EU-RO-1)" in done.stderr, "it lists the volumes that do exist"
    assert project.live_pods() == []
    assert not (project.root / "artifacts").exists(), "no run dir either"
    assert project.state(config).is_empty


def test_a_pin_outside_the_volumes_datacenter_is_refused_before_anything_exists(
        project: Project) -> None:
    project.sim.create_network_volume("pinned-data", "EU-RO-1")
    config = network_volume_stack(project, "pinned-data")
    exe = Path(sys.executable).with_name("runpod-deploy")
    done = subprocess.run(
        [str(exe), "apply", "--config", str(config), "--yes", "--provider", "api",
         "--gpu-id", "NVIDIA RTX A4000", "--datacenter-id", "US-IL-1"],
        env=project.env, capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode != 0
    assert "--datacenter-id US-IL-1 cannot mount network volume 'pinned-data', which is in " \
           "EU-RO-1" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert project.live_pods() == []
    assert not (project.root / "artifacts").exists(), "no run dir either"
    assert project.state(config).is_empty
