"""A small world on the simulator for the drift tests (fixtures re-exported by conftest): stack files in tmp, pods made through
the API provider (as an apply would), state files written through the StateStore.

Goldens live in `golden/`; after an intended change to an output, rerun with
`RUNPOD_DEPLOY_ACCEPT=1` and review the diff.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from reconciler.desired import PodRequest
from reconciler.observed import CloudType, ObservedPod
from reconciler.state import PendingKind, PendingOperation, PodRecord, StackState
from runpod_deploy.api import Stack, load_stack
from runpod_sim.testing import Simulator
from runtime.providers.api import ApiProvider, ApiSettings
from runtime.statestore import StateStore
from tests.golden_files import golden_in

GOLDEN = Path(__file__).parent / "golden"
GPU = "NVIDIA RTX A4000"
DC = "EU-RO-1"
IMAGE_A = "runpod/pytorch:2.4.0-py3.11-cuda12.4.1-devel-ubuntu22.04"
IMAGE_B = "runpod/pytorch:2.5.1-py3.11-cuda12.4.1-devel-ubuntu22.04"

STACK_TEMPLATE = """\
schema_version: 2
name: {name}
pod:
  image: {image}
  datacenters: [{dc}]
  gpu_order: [{gpu}]
  container_disk_gb: 10
storage:
  mode: ephemeral
  volume_gb: 5
budget:
  cost_cap_usd: 1.0
  max_runtime_minutes: 10
  assumed_hourly_rate_usd: 0.5
run:
  script_path: /workspace/job.sh
  log_path: /workspace/job.log
  success_marker: DONE
  body: echo DONE
lifecycle:
  on_success: recycle
  on_failure: stop
"""


@dataclass
class World:
    """The simulator, an API provider on it, and helpers that set up each kind of drift."""

    sim: Simulator
    provider: ApiProvider
    root: Path
    env: dict[str, str]

    def stack(self, name: str, image: str = IMAGE_A) -> Stack:
        path = self.root / "stacks" / f"{name}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(STACK_TEMPLATE.format(name=name, image=image, dc=DC, gpu=GPU))
        return load_stack(path, env=self.env)

    def pod(self, name: str, image: str = IMAGE_A) -> ObservedPod:
        return self.provider.create_pod(PodRequest(
            name=name, image=image, gpu_type_id=GPU, datacenter_id=DC,
            cloud_type=CloudType.SECURE, container_disk_gb=10, volume_gb=5))

    def record(self, stack: Stack, pod: ObservedPod | None = None,
               pending: PendingOperation | None = None) -> None:
        record = None if pod is None else PodRecord(
            pod_id=pod.pod_id, name=pod.name, image=pod.image, gpu_type_id=GPU,
            datacenter_id=DC, cloud_type=CloudType.SECURE, volume_gb=5)
        StateStore(stack.state_path, stack.identity).write(
            StackState(identity=stack.identity, pod=record, pending=pending))

    # -- the scenarios of issue 5 --------------------------------------------------------------

    def in_sync(self, name: str = "steady") -> Stack:
        """A recycled pod that matches its stack, stopped and waiting to be resumed."""
        stack = self.stack(name)
        pod = self.pod(stack.pod_prefix + "a1")
        self.provider.stop_pod(pod.pod_id)
        self.record(stack, pod)
        return stack

    def image_changed(self) -> Stack:
        """The recycled pod runs image A; the stack now says B."""
        stack = self.stack("recycled")
        pod = self.pod(stack.pod_prefix + "b1", image=IMAGE_A)
        self.provider.stop_pod(pod.pod_id)
        self.record(stack, pod)
        return self.stack("recycled", image=IMAGE_B)

    def deleted_behind_our_back(self) -> Stack:
        stack = self.stack("vanished")
        pod = self.pod(stack.pod_prefix + "c1")
        self.record(stack, pod)
        self.provider.terminate_pod(pod.pod_id)
        return stack

    def killed_apply(self) -> Stack:
        """The state holds a pending create whose named pod exists (apply died after it)."""
        stack = self.stack("interrupted")
        name = stack.pod_prefix + "d1"
        self.pod(name)
        self.record(stack, pending=PendingOperation(
            kind=PendingKind.CREATE, pod_name=name, started_at="2026-11-23T09:00:00+00:00",
            gpu_type_id=GPU, datacenter_id=DC))
        return stack

    def started_by_hand(self) -> tuple[Stack, ObservedPod]:
        """Someone ran a pod with the stack's prefix; no state records it."""
        stack = self.stack("handmade")
        return stack, self.pod(stack.pod_prefix + "manual")


@pytest.fixture
def world(runpod_sim: Simulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The CLI reads os.environ: point it (and the API provider) at this simulator."""
    for key, value in runpod_sim.env.items():
        if key.startswith("RUNPOD_") or key == "PATH":
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("RUNPOD_DEPLOY_STATE_DIR", str(tmp_path / "state"))
    env = dict(os.environ)
    yield World(sim=runpod_sim, provider=ApiProvider(ApiSettings.from_env(env)), root=tmp_path,
                env=env)


def normalise(text: str, world: World) -> str:
    """Pod ids (numbered in order of first appearance), stack keys, the tmp dir and the
    observation time become placeholders, so goldens hold on every run."""
    text = text.replace(str(world.root), "<TMP>")
    text = re.sub(r"--[0-9a-f]{6}--", "--<key>--", text)
    text = re.sub(r"-[0-9a-f]{8}\.json", "-<hash>.json", text)
    text = re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", "<TIME>", text)
    every_id = "|".join(re.escape(pod_id) for pod_id in world.sim.billing()["pods"])
    if not every_id:
        return text
    numbered: dict[str, str] = {}
    return re.sub(every_id, lambda m: numbered.setdefault(m.group(0),
                                                          f"<pod{len(numbered) + 1}>"), text)


@pytest.fixture
def golden() -> Callable[[str, str], None]:
    """Compare text with `golden/<name>`; `RUNPOD_DEPLOY_ACCEPT=1` rewrites the file instead."""
    return golden_in(GOLDEN)
