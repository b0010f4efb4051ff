"""What a provider reported about pods, GPUs and network volumes, as plain frozen values.

The shell builds these from runpodctl JSON or API responses (`runtime.providers`) and hands
them to the planner, which never calls a provider itself. The time of the observation is passed
in as a value, so the core never reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class PodStatus(StrEnum):
    """A pod's status as RunPod reports it (`desiredStatus`), plus MISSING for "not there".

    RunPod reports RUNNING the moment a create is accepted, long before the container is up;
    whether it is really up is `ObservedPod.container_up`, and whether SSH is published is
    `ObservedPod.ssh`.
    """

    RUNNING = "RUNNING"
    EXITED = "EXITED"
    TERMINATED = "TERMINATED"
    CREATED = "CREATED"
    RESTARTING = "RESTARTING"
    PAUSED = "PAUSED"
    DEAD = "DEAD"
    MISSING = "MISSING"
    UNKNOWN = "UNKNOWN"

    @classmethod
    def parse(cls, raw: object) -> PodStatus:
        """Map a provider's status string (any case) to the enum; unknown words are UNKNOWN."""
        if not isinstance(raw, str):
            return cls.UNKNOWN
        try:
            return cls(raw.strip().upper())
        except ValueError:
            return cls.UNKNOWN

    @property
    def exists(self) -> bool:
        """True while the pod still exists at the provider (and may bill)."""
        return self not in (PodStatus.MISSING, PodStatus.TERMINATED)


class CloudType(StrEnum):
    """RunPod's two clouds. A network volume needs SECURE."""

    SECURE = "SECURE"
    COMMUNITY = "COMMUNITY"


class StockStatus(StrEnum):
    """RunPod's stock levels for a GPU type in a datacenter."""

    HIGH = "High"
    MEDIUM = "Medium"
    LOW = "Low"
    NONE = "None"

    @classmethod
    def parse(cls, raw: object) -> StockStatus:
        """Map RunPod's stock word (any case; null, empty, 'unavailable', 'out') to the enum."""
        if isinstance(raw, str):
            for member in cls:
                if raw.strip().lower() == member.value.lower():
                    return member
        return cls.NONE

    @property
    def available(self) -> bool:
        return self is not StockStatus.NONE


@dataclass(frozen=True, slots=True)
class SshEndpoint:
    """Where a pod's sshd is published (public IP and the port mapped to 22)."""

    host: str
    port: int


@dataclass(frozen=True, slots=True)
class ObservedPod:
    """One pod as the provider reported it. Optional fields are None when not reported."""

    pod_id: str
    name: str
    status: PodStatus
    image: str | None = None
    gpu_type_id: str | None = None
    gpu_count: int | None = None
    datacenter_id: str | None = None
    cloud_type: CloudType | None = None
    interruptible: bool | None = None
    cost_per_hr: float | None = None
    container_disk_gb: int | None = None
    volume_gb: int | None = None
    volume_mount_path: str | None = None
    network_volume_id: str | None = None
    ports: tuple[str, ...] = ()
    container_up: bool = False
    """RunPod's `runtime` is non-null: the container has started (not yet: sshd answers)."""
    uptime_sec: float | None = None
    ssh: SshEndpoint | None = None
    created_at: str | None = None
    """As the provider spelled it; RunPod's live format is not ISO 8601, so it stays text."""


@dataclass(frozen=True, slots=True)
class GpuAvailability:
    """Stock of one GPU type in one datacenter."""

    gpu_type_id: str
    datacenter_id: str
    stock: StockStatus


@dataclass(frozen=True, slots=True)
class GpuPrice:
    """On-demand and spot $/GPU/hr of one GPU type; None where RunPod gives no price."""

    gpu_type_id: str
    display_name: str | None = None
    memory_gb: int | None = None
    secure_price: float | None = None
    community_price: float | None = None
    secure_spot_price: float | None = None
    community_spot_price: float | None = None

    def price_for(self, cloud_type: CloudType, *, spot: bool) -> float | None:
        """The price the pod would be billed per GPU in that cloud, on-demand or spot."""
        if cloud_type is CloudType.SECURE:
            return self.secure_spot_price if spot else self.secure_price
        return self.community_spot_price if spot else self.community_price


@dataclass(frozen=True, slots=True)
class Catalog:
    """Live stock per datacenter and prices per GPU type, as one observation."""

    availability: tuple[GpuAvailability, ...] = ()
    prices: tuple[GpuPrice, ...] = ()
    datacenter_ids: tuple[str, ...] = ()

    def stock(self, gpu_type_id: str, datacenter_id: str) -> StockStatus | None:
        """Stock of the GPU in the DC; None when the DC does not list that GPU at all."""
        for entry in self.availability:
            if entry.gpu_type_id == gpu_type_id and entry.datacenter_id == datacenter_id:
                return entry.stock
        return None

    def price(self, gpu_type_id: str) -> GpuPrice | None:
        for entry in self.prices:
            if entry.gpu_type_id == gpu_type_id:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class NetworkVolume:
    """A network volume of the account. It lives in one datacenter and outlives every pod that
    mounts it, so a stack names it (`storage.volume_name`) and the plan resolves the id."""

    id: str
    name: str
    datacenter_id: str | None = None
    size_gb: int | None = None


@dataclass(frozen=True, slots=True)
class Observation:
    """Everything the shell observed for one stack, at one moment, for the planner.

    `pods` holds every pod whose name carries the stack's prefix plus the pod the state names
    (looked up by id); a pod the state names that the provider does not know is absent here,
    which the planner reads as gone. `complete` is False when no provider could be asked (an
    offline plan): the planner then says what it cannot know instead of guessing.
    `network_volumes` is None when they were not listed (only a stack that mounts one costs
    that extra call), and a tuple, perhaps empty, when they were.
    """

    observed_at: datetime
    pods: tuple[ObservedPod, ...] = ()
    catalog: Catalog | None = None
    network_volumes: tuple[NetworkVolume, ...] | None = None
    complete: bool = True
    provider: str = "none"
    notes: tuple[str, ...] = field(default=())

    def pod(self, pod_id: str) -> ObservedPod | None:
        for pod in self.pods:
            if pod.pod_id == pod_id:
                return pod
        return None

    def pods_named(self, name: str) -> tuple[ObservedPod, ...]:
        return tuple(pod for pod in self.pods if pod.name == name and pod.status.exists)
