"""`drift` over stacks that mount a network volume: the account's volumes are listed once (only
because such a stack is there), and a recorded pod on another volume than the one the stack
names is drifted."""

from __future__ import annotations

from functools import partial

import pytest

from reconciler.desired import PodRequest
from reconciler.observed import CloudType
from reconciler.state import PodRecord, StackState
from runpod_deploy.api import Stack, load_stack
from runtime.drift_report import check_drift
from runtime.statestore import StateStore
from tests.drift.drift_world import DC, GPU, IMAGE_A, STACK_TEMPLATE, World

pytestmark = pytest.mark.sim  # every test here starts the simulator


def volume_stack(world: World, name: str, volume_name: str) -> Stack:
    path = world.root / "stacks" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = STACK_TEMPLATE.format(name=name, image=IMAGE_A, dc=DC, gpu=GPU).replace(
        "  mode: ephemeral\n  volume_gb: 5\n",
        f"  mode: network_volume\n  volume_name: {volume_name}\n")
    path.write_text(text)
    return load_stack(path, env=world.env)


def stopped_pod_on(world: World, stack: Stack, volume_id: str, suffix: str) -> None:
    """What a recycling apply leaves: a stopped pod on the volume, recorded in the state."""
    pod = world.provider.create_pod(PodRequest(
        name=stack.pod_prefix + suffix, image=IMAGE_A, gpu_type_id=GPU, datacenter_id=DC,
        cloud_type=CloudType.SECURE, container_disk_gb=10, network_volume_id=volume_id))
    world.provider.stop_pod(pod.pod_id)
    StateStore(stack.state_path, stack.identity).write(StackState(
        identity=stack.identity, pod=PodRecord(
            pod_id=pod.pod_id, name=pod.name, image=IMAGE_A, gpu_type_id=GPU, datacenter_id=DC,
            cloud_type=CloudType.SECURE, volume_gb=0, network_volume_id=volume_id)))


def test_volumes_are_listed_once_and_a_pod_on_another_volume_is_drifted(world: World) -> None:
    kept = world.sim.create_network_volume("dv-kept", DC)
    old = world.sim.create_network_volume("dv-old", DC)
    new = world.sim.create_network_volume("dv-new", DC)
    stopped_pod_on(world, volume_stack(world, "on-volume", "dv-kept"), kept["id"], "a1")
    stopped_pod_on(world, volume_stack(world, "moved", "dv-new"), old["id"], "b1")
    world.in_sync("plain")

    before = world.provider.calls
    report = check_drift([world.root / "stacks"], load=partial(load_stack, env=world.env),
                         provider=world.provider)
    assert world.provider.calls - before == 1  # pods, catalog and network volumes in one request
    by_name = {s.name: s for s in report.stacks}
    assert by_name["on-volume"].verdict.value == "in_sync"
    assert by_name["plain"].verdict.value == "in_sync"
    moved = by_name["moved"]
    assert moved.verdict.value == "drifted"
    assert [(c.path, c.before, c.after) for c in moved.changes] == [
        ("storage.network_volume_id", old["id"], new["id"])]
