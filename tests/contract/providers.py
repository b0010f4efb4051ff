"""Helpers of the provider contract suite: build a provider the way the CLI does
(`make_provider(kind, env)`), a create request, and waits on the pods it makes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from reconciler.desired import PodRequest
from reconciler.observed import CloudType, ObservedPod
from runpod_sim.testing import Simulator
from runtime.providers import make_provider
from runtime.providers.api import ApiProvider
from runtime.providers.protocol import PodProvider
from runtime.providers.runpodctl import RunpodctlProvider

A40 = "NVIDIA A40"
DATACENTER = "EU-RO-1"
T = TypeVar("T")
Provider = RunpodctlProvider | ApiProvider
"""The concrete kinds: both also count their round trips in `calls` (the benchmarks read it)."""


def build(kind: str, sim: Simulator, **env_changes: str) -> Provider:
    provider = make_provider(kind, {**sim.env, **env_changes})
    assert isinstance(provider, (RunpodctlProvider, ApiProvider)), f"{kind} was not built"
    return provider


def pod_request(name: str, **changes: object) -> PodRequest:
    """A create request whose every field differs from runpodctl's defaults, so a flag that is
    not passed shows up as a mismatch."""
    fields: dict[str, object] = {
        "name": name, "image": "runpod/base:0.6.2-sim", "gpu_type_id": A40,
        "datacenter_id": DATACENTER, "cloud_type": CloudType.SECURE, "container_disk_gb": 15,
        "volume_gb": 10, "volume_mount_path": "/data", "ports": ("22/tcp", "8888/http"),
    }
    return PodRequest(**{**fields, **changes})  # type: ignore[arg-type]


def wait_until(probe: Callable[[], T | None], *, timeout: float = 15.0) -> T:
    """Poll `probe` until it returns something truthy (pods boot in a fraction of a second)."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.1)


def ready(provider: PodProvider, pod_id: str) -> ObservedPod:
    """The pod once its container is up and port 22 is published."""
    def probe() -> ObservedPod | None:
        pod = provider.get_pod(pod_id)
        return pod if pod is not None and pod.container_up and pod.ssh is not None else None

    return wait_until(probe)

