"""A plan is a value: what will happen to the stack's pod, why, what the job will run, what it
may cost and which guards will be armed. Frozen, serialisable, round-trip tested; `apply` reads
nothing else. The JSON form is documented in docs/plan-json.md (`format_version` 1).

Closed vocabularies are enums with one table: a `StepKind` knows its symbol, past tense and
whether it destroys; a `Reason` knows its title. Reasons explain, kinds decide: an executor
dispatches on `StepKind` only.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, model_validator

__all__ = [
    "PLAN_FORMAT_VERSION",
    "AttachRun",
    "CostEstimate",
    "FieldChange",
    "GpuCost",
    "Guard",
    "JobPhase",
    "LifecycleOutcome",
    "NetworkVolumeMount",
    "ObservationSummary",
    "OrphanPod",
    "PhaseEntry",
    "Plan",
    "PlanOptions",
    "PlanStack",
    "Reason",
    "Step",
    "StepKind",
    "StepReason",
]

PLAN_FORMAT_VERSION = 1


class StepKind(StrEnum):
    """What a step does to a pod. The executor's only dispatch key."""

    CREATE = "create"
    RESUME = "resume"
    REPLACE = "replace"
    ADOPT = "adopt"
    DELETE = "delete"
    FORGET = "forget"
    NOOP = "noop"

    @property
    def symbol(self) -> str:
        return _KIND_TABLE[self][0]

    @property
    def past_tense(self) -> str:
        return _KIND_TABLE[self][1]

    @property
    def is_destructive(self) -> bool:
        return _KIND_TABLE[self][2]

    @property
    def needs_pod_id(self) -> bool:
        return self in (StepKind.RESUME, StepKind.REPLACE, StepKind.ADOPT, StepKind.DELETE,
                        StepKind.FORGET, StepKind.NOOP)


_KIND_TABLE: dict[StepKind, tuple[str, str, bool]] = {
    StepKind.CREATE: ("+", "created", False),
    StepKind.RESUME: (">", "resumed", False),
    StepKind.REPLACE: ("-/+", "replaced", True),
    StepKind.ADOPT: ("=", "adopted", False),
    StepKind.DELETE: ("-", "deleted", True),
    StepKind.FORGET: (".", "forgotten", False),
    StepKind.NOOP: (" ", "kept", False),
}


class Reason(StrEnum):
    """Why a step is in the plan. For people (text, JSON, drift report), never for dispatch."""

    NO_POD = "no_pod"
    POD_GONE = "pod_gone"
    POD_STOPPED = "pod_stopped"
    POD_RUNNING = "pod_running"
    IMAGE_DRIFT = "image_drift"
    GPU_DRIFT = "gpu_drift"
    DATACENTER_DRIFT = "datacenter_drift"
    CLOUD_TYPE_DRIFT = "cloud_type_drift"
    STORAGE_DRIFT = "storage_drift"
    ZERO_GPU = "zero_gpu"
    POD_UNHEALTHY = "pod_unhealthy"
    FORCE_FRESH = "force_fresh"
    PENDING_CREATE_FOUND = "pending_create_found"
    PENDING_CREATE_MISMATCH = "pending_create_mismatch"
    PENDING_CREATE_LOST = "pending_create_lost"
    PENDING_DELETE = "pending_delete"
    ORPHAN_FOUND = "orphan_found"

    def title(self, **values: object) -> str:
        return TITLES[self].format(**values)


TITLES: dict[Reason, str] = {
    Reason.NO_POD: "no pod recorded for this stack",
    Reason.POD_GONE: "recorded pod {pod_id} no longer exists",
    Reason.POD_STOPPED: "pod {pod_id} is stopped and matches the stack",
    Reason.POD_RUNNING: "pod {pod_id} is running and matches the stack",
    Reason.IMAGE_DRIFT: "image drift: {before} -> {after}",
    Reason.GPU_DRIFT: "GPU drift: {before} -> {after}",
    Reason.DATACENTER_DRIFT: "datacenter drift: {before} -> {after}",
    Reason.CLOUD_TYPE_DRIFT: "cloud type drift: {before} -> {after}",
    Reason.STORAGE_DRIFT: "storage drift: {field} {before} -> {after}",
    Reason.ZERO_GPU: "pod {pod_id} would come back with 0 GPUs",
    Reason.POD_UNHEALTHY: "pod {pod_id} is {status}",
    Reason.FORCE_FRESH: "--force-fresh: pod {pod_id} is not reused",
    Reason.PENDING_CREATE_FOUND: "an unconfirmed create made pod {pod_id} ({name}); it matches",
    Reason.PENDING_CREATE_MISMATCH: "an unconfirmed create made pod {pod_id} ({name}); {why}",
    Reason.PENDING_CREATE_LOST: "an unconfirmed create of {name} left no pod",
    Reason.PENDING_DELETE: "an unconfirmed delete of pod {pod_id}",
    Reason.ORPHAN_FOUND: "pod {pod_id} ({name}) carries this stack's prefix but no state "
                         "records it",
}


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StepReason(_Value):
    reason: Reason
    title: str


class FieldChange(_Value):
    """One changed field: dotted path, before and after (plain JSON values)."""

    path: str
    before: Any = None
    after: Any = None
    forces_replace: bool = True


class Step(_Value):
    """One thing the executor will do to a pod. `target` is a pod name, or for a create the
    name prefix the executor completes with a fresh nonce per attempt."""

    kind: StepKind
    target: str
    pod_id: str | None = None
    reasons: tuple[StepReason, ...] = ()
    changes: tuple[FieldChange, ...] = ()

    @model_validator(mode="after")
    def _invariants(self) -> Step:
        if self.kind.needs_pod_id and not self.pod_id:
            raise ValueError(f"a {self.kind.value} step needs a pod_id")
        if self.kind is StepKind.CREATE and self.pod_id:
            raise ValueError("a create step has no pod_id yet")
        if self.kind is not StepKind.NOOP and not self.reasons:
            raise ValueError(f"a {self.kind.value} step needs at least one reason")
        return self


class JobPhase(StrEnum):
    SETUP = "setup"
    SECRETS = "secrets"
    STAGE = "stage"
    PREFLIGHT = "preflight"
    LAUNCH = "launch"
    MONITOR = "monitor"
    PULL = "pull"
    LIFECYCLE = "lifecycle"


class PhaseEntry(_Value):
    phase: JobPhase
    runs: bool
    detail: str


class LifecycleOutcome(_Value):
    on_success: str
    on_failure: str
    success_detail: str
    failure_detail: str


class GpuCost(_Value):
    gpu_type_id: str
    hourly_usd: float
    source: str


class CostEstimate(_Value):
    """$/hr per GPU candidate and the worst case: the dearest candidate for the whole deadline."""

    candidates: tuple[GpuCost, ...]
    gpu_count: int
    max_hourly_usd: float
    timeout_sec: int
    worst_case_usd: float
    cap_usd: float
    within_cap: bool


class Guard(_Value):
    name: str
    detail: str


class OrphanPod(_Value):
    pod_id: str
    name: str
    status: str
    cost_per_hr: float | None = None
    will_delete: bool = False


class NetworkVolumeMount(_Value):
    """The network volume a create will mount, resolved from `storage.volume_name` when the plan
    was made: the id the create passes, and the one datacenter the pod can be placed in."""

    id: str
    name: str
    datacenter_id: str | None = None
    size_gb: int | None = None
    mount_path: str = "/workspace"

    def describe(self) -> str:
        size = f", {self.size_gb} GB" if self.size_gb is not None else ""
        where = f" in {self.datacenter_id}" if self.datacenter_id else ""
        return f"network volume {self.name} ({self.id}{size}){where} at {self.mount_path}"


class ObservationSummary(_Value):
    provider: str
    complete: bool
    observed_at: str


class PlanStack(_Value):
    name: str
    key: str
    pod_prefix: str
    config_path: str = ""
    state_path: str = ""


class PlacementOptions(_Value):
    """The flags that steer where a new pod lands (`--gpu-id`/`--datacenter-id`, together,
    pin one pair; `--max-gpu-price` skips dearer GPUs)."""

    gpu_id: str | None = None
    datacenter_id: str | None = None
    max_gpu_price: float | None = None
    fallback_cloud_type: str | None = None
    """`--fallback-cloud-type`: once every pair stocks out on the stack's cloud type, the same
    pairs again on this one (`reconciler.fallback`)."""


class PlanOptions(_Value):
    """Flags only; no handles."""

    force_fresh: bool = False
    rerun: bool = False
    """`--rerun`: run the job again even when the state records an unfinished run to attach to."""
    delete_orphans: bool = False
    placement: PlacementOptions = PlacementOptions()


class PlacementEntry(_Value):
    """One GPU x datacenter pair of the failover walk: a candidate, or skipped and why."""

    gpu_type_id: str
    datacenter_id: str
    hourly_usd: float | None = None
    """The catalog's $/hr for the whole pod on this GPU type, when the catalog has a price."""
    stock: str | None = None
    """The catalog's stock word, or None when the datacenter does not list the GPU."""
    skipped: str | None = None
    cloud_type: str | None = None
    """None: the stack's `pod.cloud_type`; set on a `--fallback-cloud-type` retry."""


class Placement(_Value):
    """The failover walk of `reconciler.placement.place`: every pair in order, and the error
    when no pair is left (then a create cannot start)."""

    options: PlacementOptions = PlacementOptions()
    entries: tuple[PlacementEntry, ...] = ()
    error: str | None = None
    note: str | None = None
    """Why a requested `--fallback-cloud-type` does not apply to this stack."""

    @property
    def candidates(self) -> tuple[PlacementEntry, ...]:
        """The pairs apply will try, in order."""
        return tuple(e for e in self.entries if e.skipped is None)

    @property
    def skipped(self) -> tuple[PlacementEntry, ...]:
        return tuple(e for e in self.entries if e.skipped is not None)


class PodTemplate(_Value):
    """The concrete pod request of a create, less what each attempt fills in (its unique name,
    and the GPU type and datacenter of its candidate)."""

    image: str
    cloud_type: str
    gpu_count: int = 1
    interruptible: bool = False
    container_disk_gb: int = 20
    volume_gb: int = 0
    volume_mount_path: str = "/workspace"
    network_volume_id: str | None = None
    ports: tuple[str, ...] = ("22/tcp",)
    min_vcpu_count: int | None = None
    min_memory_gb: int | None = None


class PhaseCommands(_Value):
    """The rendered commands of one job phase, redacted (a plan is shown and saved)."""

    phase: JobPhase
    commands: tuple[str, ...]


class AttachRun(_Value):
    """An earlier run whose job no client finished: apply attaches to it (streams the rest of
    its log, waits for its end, pulls into its run dir, then the lifecycle) instead of running
    the job again. Built from the state (the planner is pure): `exit_code` is known only when a
    client saw the job end; otherwise the job is taken as running since `launched_at`."""

    run_id: str
    run_dir: str
    pod_id: str
    launched_at: str
    elapsed_sec: int
    exit_code: int | None = None
    attempt: int = 1

    def describe(self) -> str:
        """`attach to run X (running 3m12s)` or `finish run X (exited 0, not pulled)`."""
        if self.exit_code is not None:
            return f"finish run {self.run_id} (exited {self.exit_code}, not pulled)"
        minutes, seconds = divmod(max(0, self.elapsed_sec), 60)
        hours, minutes = divmod(minutes, 60)
        took = f"{hours}h{minutes:02d}m{seconds:02d}s" if hours else f"{minutes}m{seconds:02d}s"
        return f"attach to run {self.run_id} (running {took})"


class Plan(_Value):
    format_version: int = PLAN_FORMAT_VERSION
    stack: PlanStack
    steps: tuple[Step, ...]
    network_volume: NetworkVolumeMount | None = None
    """Set when the stack mounts a network volume and the volumes were listed."""
    orphans: tuple[OrphanPod, ...] = ()
    phases: tuple[PhaseEntry, ...] = ()
    lifecycle: LifecycleOutcome
    cost: CostEstimate
    guards: tuple[Guard, ...] = ()
    warnings: tuple[str, ...] = ()
    unchecked: tuple[str, ...] = ()
    observation: ObservationSummary
    options: PlanOptions = PlanOptions()
    pod_request: PodTemplate | None = None
    """What a create or replace step asks the provider for (None when no step creates)."""
    placement: Placement | None = None
    """Where a create may land, in the order apply tries (None when no step creates)."""
    commands: tuple[PhaseCommands, ...] = ()
    """The rendered phase commands, redacted for display."""
    attach: AttachRun | None = None
    """Set when the state records a run whose job no client finished, on the pod this plan
    keeps: apply attaches to it instead of launching the job (see `AttachRun`)."""
    source_fingerprint: str = ""
    """sha256 of the stack file (and vars file) bytes the plan was rendered from: apply stops
    when the file changed between the preview and the answer."""
    spec_fingerprint: str
    state_serial: int
    state_lineage: str | None
    inputs_fingerprint: str

    @property
    def has_changes(self) -> bool:
        """True when any step changes a pod or the state (everything but NOOP)."""
        return any(step.kind is not StepKind.NOOP for step in self.steps)

    @property
    def is_empty(self) -> bool:
        return not self.has_changes

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str) -> Plan:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format_version") != PLAN_FORMAT_VERSION:
            raise ValueError(f"not a plan of format_version {PLAN_FORMAT_VERSION}")
        return cls.model_validate(data)
