"""The pod a stack asks for, as values: what identifies it, and one concrete create attempt.

`PodRequest` is what the executor hands a provider for one GPU x datacenter candidate in the
failover order; providers translate it to runpodctl flags or an API body and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.observed import CloudType


@dataclass(frozen=True, slots=True)
class PodRequest:
    """One create attempt: a single GPU type in a single datacenter, with a unique pod name.

    The name is unique per attempt because RunPod has no idempotency key: a create that fails
    with a 5xx may still have made the pod, and the executor finds it again by this name.
    """

    name: str
    image: str
    gpu_type_id: str
    datacenter_id: str
    cloud_type: CloudType
    gpu_count: int = 1
    interruptible: bool = False
    container_disk_gb: int = 20
    volume_gb: int = 0
    volume_mount_path: str = "/workspace"
    network_volume_id: str | None = None
    ports: tuple[str, ...] = ("22/tcp",)
    env: tuple[tuple[str, str], ...] = ()
    min_vcpu_count: int | None = None
    min_memory_gb: int | None = None
    bid_per_gpu: float | None = None
