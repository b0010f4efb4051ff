"""How an apply ends: what it learned as it went, the outcome and exit code, the manifest.

`RunProgress` is filled in by the parts of the apply (the provisioner, the job runner, the
lifecycle step); `classify` turns the exception that ended the run into a `RunOutcome`;
`write_run_manifest` assembles and writes the manifest from the plan and the progress.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.observed import ObservedPod
from reconciler.plan import NetworkVolumeMount, Plan, PodTemplate
from reconciler.redaction import Redactor
from reconciler.spec import JobSpec
from reconciler.state import StackState
from runtime.clock import Clock
from runtime.errors import (
    BudgetExceededError,
    FailoverExhaustedError,
    JobError,
    JobFailedError,
    PodKilledError,
    ProviderError,
    RemoteCommandError,
    RuntimeExceededError,
    TransportError,
)
from runtime.gitmeta import capture_deploy_metadata
from runtime.rundir import (
    ArtifactPull,
    DeployMetadata,
    JobAttempt,
    PlanSummary,
    ProvisioningAttempt,
    RunManifest,
    RunOutcome,
    estimate_cost_usd,
    write_manifest,
)
from runtime.rundir import LifecycleAction as RecordedAction

__all__ = [
    "EXIT_CODES",
    "ApplyResult",
    "ArtifactsMissingError",
    "PlacedOn",
    "RunProgress",
    "attempt_record",
    "classify",
    "write_run_manifest",
]

EXIT_CODES: dict[RunOutcome, int] = {
    RunOutcome.SUCCEEDED: 0,
    RunOutcome.JOB_FAILED: 1,
    RunOutcome.REMOTE_COMMAND_FAILED: 1,
    RunOutcome.ARTIFACT_PULL_FAILED: 1,
    RunOutcome.PROVISIONING_FAILED: 3,
    RunOutcome.BUDGET_EXCEEDED: 4,
    RunOutcome.RUNTIME_EXCEEDED: 5,
    RunOutcome.POD_KILLED: 6,
    RunOutcome.INTERRUPTED: 130,
}
"""Exit codes of `apply`, one per way a run can end (documented in docs/lifecycle.md)."""


@dataclass(frozen=True)
class ApplyResult:
    outcome: RunOutcome
    detail: str
    run_dir: Path
    manifest_path: Path | None
    pod_id: str | None
    state: StackState
    lifecycle_action: RecordedAction | None = None
    attempts: tuple[ProvisioningAttempt, ...] = ()
    detached: bool = False
    """`apply --detach`: the job was launched and runs on; nothing was pulled yet."""

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def ok(self) -> bool:
        return self.outcome is RunOutcome.SUCCEEDED


@dataclass(frozen=True, slots=True)
class PlacedOn:
    """The GPU type and datacenter the run's pod is on."""

    gpu_type_id: str
    datacenter_id: str


@dataclass
class RunProgress:
    """What the apply learned as it went, for the lifecycle step and the manifest."""

    pod: ObservedPod | None = None
    placed_on: PlacedOn | None = None
    network_volume: NetworkVolumeMount | None = None
    """The network volume the plan resolved; every create of this run mounts it."""
    pod_request: PodTemplate | None = None
    """The plan's pod request; each create attempt fills in its name and candidate."""
    resumed: bool = False
    attempts: tuple[ProvisioningAttempt, ...] = ()
    hourly_usd: float | None = None
    price_source: str | None = None
    billing_started: float | None = None
    run_started: bool = False
    artifacts: tuple[ArtifactPull, ...] = ()
    telemetry_files: list[str] = field(default_factory=list)
    final_state: str | None = None
    attempt: int = 1
    """The job's attempt (`run.restart`): the job sees it as RUNPOD_DEPLOY_ATTEMPT."""
    job_attempts: list[JobAttempt] = field(default_factory=list)
    """The attempts that ended before this one (their pod, outcome, cost)."""
    keep_pod: bool = False
    """The teardown rule failed (artifacts missing or not matching): stop the pod, never delete."""
    prior_spend_usd: float = 0.0
    prior_runtime_sec: float = 0.0
    """What the earlier attempts spent and ran: the cost cap and max runtime count them all."""


class ArtifactsMissingError(JobError):
    """The job succeeded but a required artifact could not be pulled."""


def attempt_record(attempt: Any) -> ProvisioningAttempt:
    return ProvisioningAttempt(
        gpu_id=attempt.gpu_type_id,
        datacenter_id=attempt.datacenter_id,
        outcome=attempt.outcome,
        seconds=attempt.seconds,
        usd=attempt.usd,
        pod_id=attempt.pod_id,
        detail=attempt.detail or None,
    )


_CLASSES: tuple[tuple[type[BaseException], RunOutcome], ...] = (
    (BudgetExceededError, RunOutcome.BUDGET_EXCEEDED),
    (RuntimeExceededError, RunOutcome.RUNTIME_EXCEEDED),
    (PodKilledError, RunOutcome.POD_KILLED),
    (ArtifactsMissingError, RunOutcome.ARTIFACT_PULL_FAILED),
    (RemoteCommandError, RunOutcome.REMOTE_COMMAND_FAILED),
    (JobFailedError, RunOutcome.JOB_FAILED),
    (FailoverExhaustedError, RunOutcome.PROVISIONING_FAILED),
    (ProviderError, RunOutcome.PROVISIONING_FAILED),
    (TransportError, RunOutcome.JOB_FAILED),
)


def classify(error: BaseException) -> tuple[RunOutcome, str]:
    """Which `RunOutcome` an exception means, with its message (first match in `_CLASSES`)."""
    for kind, outcome in _CLASSES:
        if isinstance(error, kind):
            return outcome, str(error)
    return RunOutcome.JOB_FAILED, str(error)


def write_run_manifest(
    *,
    spec: JobSpec,
    plan: Plan,
    run: RunProgress,
    run_dir: Path,
    config_path: Path,
    project_root: Path,
    outcome: RunOutcome,
    action: RecordedAction | None,
    wall: float,
    clock: Clock,
    redactor: Redactor,
) -> Path:
    """Assemble the run's manifest and write it (redacted). Raises `rundir.RunDirError`."""
    tel = spec.telemetry
    metadata = capture_deploy_metadata(
        project_root, capture_git=tel.capture_local_git, capture_lockfile=tel.capture_payload_lockfile
    )
    placed = run.placed_on
    manifest = RunManifest(
        pulled_at_utc=clock.now(),
        failed=outcome is not RunOutcome.SUCCEEDED,
        job_name=spec.name,
        run_id=run_dir.name,
        config_path=str(config_path),
        storage_mode=spec.storage.mode.value,
        datacenter_id=(placed.datacenter_id if placed else None) or spec.pod.datacenters[0],
        gpu_id=placed.gpu_type_id if placed else None,
        gpu_price_per_hour_usd=run.hourly_usd,
        gpu_price_source=run.price_source,
        pod_id=run.pod.pod_id if run.pod else None,
        pod_final_state=run.final_state,
        pod_resumed=run.resumed,
        image=spec.pod.image,
        cost_cap_usd=spec.budget.cost_cap_usd,
        wall_time_sec=round(wall, 3),
        estimated_cost_usd=estimate_cost_usd(wall, run.hourly_usd),
        volume_mount=spec.storage.volume_mount,
        volume_name=spec.storage.volume_name,
        volume_gb=spec.storage.volume_gb,
        deploy_metadata=metadata if isinstance(metadata, DeployMetadata) else DeployMetadata(),
        artifacts=run.artifacts,
        telemetry_files=tuple(dict.fromkeys(run.telemetry_files)),
        outcome=outcome,
        lifecycle_action=action,
        plan_summary=PlanSummary(
            steps=tuple(f"{s.kind.value} {s.pod_id or s.target}" for s in plan.steps),
            reasons=tuple(r.title for s in plan.steps for r in s.reasons),
            worst_case_cost_usd=plan.cost.worst_case_usd,
            inputs_fingerprint=plan.inputs_fingerprint,
        ),
        provisioning_attempts=run.attempts,
        job_attempts=tuple(run.job_attempts),
    )
    return write_manifest(run_dir, manifest, redactor)

