"""The pod a stack asks for, as values: what identifies it, and one concrete create attempt.

`PodRequest` is what the executor hands a provider for one GPU x datacenter candidate in the
failover order; providers translate it to runpodctl flags or an API body and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.observed import CloudType
from reconciler.plan import PodTemplate
from reconciler.spec import Command, JobSpec, StorageMode


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


@dataclass(frozen=True, slots=True)
class DesiredPod:
    """The fields of a stack that identify its pod: a change to one of them means another pod.

    GPU types and datacenters are ordered candidate lists; a pod matches when it runs on any
    of them. `fingerprint()` is stored in the state so that a later plan can tell what the
    pod was made from. `network_volume_id` is what the planner resolved the volume's name to
    (None for ephemeral storage, or when the volumes were not listed): it is observed, not
    written in the stack, so it stays out of `identity()`.
    """

    image: str
    gpu_type_ids: tuple[str, ...]
    datacenter_ids: tuple[str, ...]
    cloud_type: CloudType
    gpu_count: int = 1
    container_disk_gb: int = 20
    storage_mode: str = "ephemeral"
    volume_gb: int | None = None
    volume_mount_path: str = "/workspace"
    network_volume_name: str | None = None
    ports: tuple[str, ...] = ("22/tcp",)
    interruptible: bool = False
    network_volume_id: str | None = None

    def identity(self) -> dict[str, object]:
        return {
            "image": self.image, "gpu_type_ids": list(self.gpu_type_ids),
            "datacenter_ids": list(self.datacenter_ids), "cloud_type": self.cloud_type.value,
            "gpu_count": self.gpu_count, "container_disk_gb": self.container_disk_gb,
            "storage_mode": self.storage_mode, "volume_gb": self.volume_gb,
            "volume_mount_path": self.volume_mount_path,
            "network_volume_name": self.network_volume_name, "ports": list(self.ports),
            "interruptible": self.interruptible,
        }

    def fingerprint(self) -> str:
        import hashlib
        import json

        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()[:16]

    def requests(self, name: str) -> tuple[PodRequest, ...]:
        """The create attempts in failover order (GPU-major, then datacenter), all named `name`."""
        return tuple(
            PodRequest(name=name, image=self.image, gpu_type_id=gpu, datacenter_id=dc,
                       cloud_type=self.cloud_type, gpu_count=self.gpu_count,
                       interruptible=self.interruptible,
                       container_disk_gb=self.container_disk_gb,
                       volume_gb=self.volume_gb or 0, volume_mount_path=self.volume_mount_path,
                       network_volume_id=self.network_volume_id, ports=self.ports)
            for gpu in self.gpu_type_ids for dc in self.datacenter_ids)


def desired_pod(spec: JobSpec) -> DesiredPod:
    """The identifying part of a (rendered) stack."""
    return DesiredPod(
        image=spec.pod.image, gpu_type_ids=spec.pod.gpu_order,
        datacenter_ids=spec.pod.datacenters, cloud_type=spec.pod.cloud_type,
        gpu_count=spec.pod.gpu_count, container_disk_gb=spec.pod.container_disk_gb,
        storage_mode=spec.storage.mode.value,
        volume_gb=spec.storage.volume_gb if not spec.uses_network_volume else None,
        volume_mount_path=spec.storage.volume_mount,
        network_volume_name=spec.storage.volume_name if spec.uses_network_volume else None,
        ports=spec.pod.ports, interruptible=spec.pod.spot)


def preflight_commands(spec: JobSpec) -> tuple[Command, ...]:
    """The stack's preflight, with the `python_version` pin first when the stack asks for one
    (the plan shows it and the executor runs it: one definition for both)."""
    if not spec.pod.python_version:
        return tuple(spec.preflight)
    version = spec.pod.python_version
    where = spec.staging[0].destination if spec.staging else "$HOME"
    pin = Command(
        command=(
            f"uv python install {version} && cd {where} && uv python pin {version} && "
            f'echo "[runpod-deploy] pinned Python {version} at $(pwd)/.python-version"'
        ),
        timeout_sec=300,
    )
    return (pin, *spec.preflight)


def pod_template(spec: JobSpec, network_volume_id: str | None = None) -> PodTemplate:
    """The concrete request a create makes for `spec`, less the per-attempt name and pair."""
    return PodTemplate(
        image=spec.pod.image,
        cloud_type=spec.pod.cloud_type.value,
        gpu_count=spec.pod.gpu_count,
        interruptible=spec.pod.spot,
        container_disk_gb=spec.pod.container_disk_gb,
        volume_gb=(spec.storage.volume_gb or 0) if spec.storage.mode is StorageMode.EPHEMERAL else 0,
        volume_mount_path=spec.storage.volume_mount,
        network_volume_id=network_volume_id,
        ports=tuple(spec.pod.ports),
        min_vcpu_count=spec.pod.min_vcpu_count,
        min_memory_gb=spec.pod.min_memory_gb,
    )


def request_for(template: PodTemplate, *, name: str, gpu_type_id: str, datacenter_id: str,
                cloud_type: CloudType | None = None) -> PodRequest:
    """One create attempt of a planned pod on one candidate pair (on `cloud_type` for a
    `--fallback-cloud-type` retry, else the template's)."""
    return PodRequest(
        name=name,
        image=template.image,
        gpu_type_id=gpu_type_id,
        datacenter_id=datacenter_id,
        cloud_type=cloud_type or CloudType(template.cloud_type),
        gpu_count=template.gpu_count,
        interruptible=template.interruptible,
        container_disk_gb=template.container_disk_gb,
        volume_gb=template.volume_gb,
        volume_mount_path=template.volume_mount_path,
        network_volume_id=template.network_volume_id,
        ports=template.ports,
        min_vcpu_count=template.min_vcpu_count,
        min_memory_gb=template.min_memory_gb,
    )
