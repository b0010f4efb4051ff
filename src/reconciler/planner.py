"""plan(spec, state, observation, options) -> Plan: one ordered decision cascade, pure.

The planner never calls a provider, reads a clock or touches a file: the shell observes first
and applies after. Each case of the cascade is commented; the first that matches decides the
pod's step and names its reasons.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import posixpath
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from reconciler.cost import estimate_cost
from reconciler.desired import DesiredPod, desired_pod, pod_template, preflight_commands
from reconciler.diagnostics import Diagnostic, PlanError, Severity, error, warning
from reconciler.known_ids import known_datacenter_ids, known_gpu_ids, suggest
from reconciler.naming import stack_pod_prefix
from reconciler.observed import CloudType, NetworkVolume, Observation, ObservedPod, PodStatus
from reconciler.placement import place
from reconciler.plan import (
    AttachRun,
    FieldChange,
    Guard,
    JobPhase,
    LifecycleOutcome,
    NetworkVolumeMount,
    ObservationSummary,
    OrphanPod,
    PhaseCommands,
    PhaseEntry,
    Plan,
    PlanOptions,
    PlanStack,
    Reason,
    Step,
    StepKind,
    StepReason,
)
from reconciler.spec import JobSpec, LifecycleAction
from reconciler.state import PendingKind, PodRecord, StackState
from reconciler.template import RenderedJob

__all__ = ["WATCHDOG_GRACE_SEC", "check_local_paths", "check_placement", "find_network_volume",
           "plan"]

WATCHDOG_GRACE_SEC = 30
"""The on-pod watchdog fires this long after the client-side deadline (the client goes first)."""

_UP = (PodStatus.RUNNING, PodStatus.CREATED, PodStatus.RESTARTING)


def _why(reason: Reason, **values: object) -> StepReason:
    return StepReason(reason=reason, title=reason.title(**values))


def plan(job: JobSpec | RenderedJob, state: StackState, observation: Observation,
         options: PlanOptions = PlanOptions(), *, config_path: str = "",
         state_path: str = "", source_fingerprint: str = "") -> Plan:
    """Decide what to do about the stack's pod. `job` is the rendered stack (a RenderedJob,
    whose secrets are then kept out of the fingerprint, or its spec); `state.identity` must be
    set. Raises PlanError for placement errors and for a blind plan over a recorded pod."""
    spec = job.spec if isinstance(job, RenderedJob) else job
    redact: Callable[[str], str] = job.redact if isinstance(job, RenderedJob) else (lambda s: s)
    if state.identity is None:
        raise ValueError("plan() needs a state with its stack identity")
    diagnostics = list(check_placement(spec, observation))
    if isinstance(job, RenderedJob) and job.variables.project_root:
        diagnostics.extend(check_local_paths(spec, job.variables.project_root))
    unchecked: list[str] = []
    if not observation.complete:
        if state.pod is not None or state.pending is not None:
            pod_id = (state.pod.pod_id if state.pod else
                      state.pending.pod_id or state.pending.pod_name if state.pending else "")
            diagnostics.append(error(
                f"the state names pod {pod_id} but no provider could be asked about it",
                detail="install runpodctl (or pass --provider) so the plan can see the pod; "
                "planning blind could leak or double a pod"))
        unchecked.extend([
            "pods carrying this stack's prefix (orphans) were not listed",
            "GPU and datacenter ids were checked against the static table only",
            "prices are the assumed hourly rate",
        ])
    if spec.uses_network_volume and observation.network_volumes is None:
        unchecked.append(f"network volume '{spec.storage.volume_name}' was not looked up: "
                         "whether it exists, its id and its datacenter are checked at apply")
    unchecked.extend(observation.notes)
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if errors:
        raise PlanError(diagnostics)

    desired = desired_pod(spec)
    volume = (find_network_volume(spec, observation.network_volumes)[0]
              if spec.uses_network_volume and observation.network_volumes is not None else None)
    placed = desired
    if volume is not None:
        # The pod must live where its volume does: that datacenter is the only candidate.
        placed = dataclasses.replace(
            desired, network_volume_id=volume.id,
            datacenter_ids=(volume.datacenter_id,) if volume.datacenter_id else
            desired.datacenter_ids)
    prefix = stack_pod_prefix(spec.effective_run_id_prefix, state.identity.key)
    steps, claimed = _decide(placed, prefix, state, observation, options)

    orphans = _orphans(prefix, state, observation, claimed)
    if options.delete_orphans:
        steps += [Step(kind=StepKind.DELETE, target=o.name, pod_id=o.pod_id,
                       reasons=(_why(Reason.ORPHAN_FOUND, pod_id=o.pod_id, name=o.name),))
                  for o in orphans]
    orphan_values = tuple(OrphanPod(pod_id=o.pod_id, name=o.name, status=o.status.value,
                                    cost_per_hr=o.cost_per_hr,
                                    will_delete=options.delete_orphans) for o in orphans)
    cost = estimate_cost(spec, observation.catalog)
    warnings = [d for d in diagnostics if d.severity is Severity.WARNING]
    if not cost.within_cap:
        warnings.append(warning(
            f"worst case ${cost.worst_case_usd:.2f} (the dearest candidate, "
            f"${cost.max_hourly_usd:.2f}/hr, for {cost.timeout_sec // 60} min) is over the cost "
            f"cap ${cost.cap_usd:.2f}", field_path="budget"))
    relevant = _relevant_pods(prefix, state, observation)
    fingerprint = _fingerprint(redact(spec.model_dump_json()), state, relevant, volume)
    mount = None if volume is None else NetworkVolumeMount(
        id=volume.id, name=volume.name, datacenter_id=volume.datacenter_id,
        size_gb=volume.size_gb, mount_path=spec.storage.volume_mount)
    creates = any(s.kind in (StepKind.CREATE, StepKind.REPLACE, StepKind.RESUME) for s in steps)
    attach = _attach(state, steps, observation, options)
    made = Plan(
        stack=PlanStack(name=spec.name, key=state.identity.key, pod_prefix=prefix,
                        config_path=config_path, state_path=state_path),
        steps=tuple(steps),
        network_volume=mount,
        orphans=orphan_values,
        phases=_phases(spec),
        lifecycle=_lifecycle(spec),
        cost=cost,
        guards=_guards(spec),
        warnings=tuple(redact(d.format()) for d in warnings),
        unchecked=tuple(unchecked),
        observation=ObservationSummary(provider=observation.provider,
                                       complete=observation.complete,
                                       observed_at=observation.observed_at.isoformat()),
        options=options,
        pod_request=pod_template(spec, volume.id if volume else None) if creates else None,
        placement=place(spec, observation.catalog, options.placement, mount) if creates else None,
        commands=_commands(spec, redact),
        attach=attach,
        source_fingerprint=source_fingerprint,
        spec_fingerprint=desired.fingerprint(),
        state_serial=state.serial,
        state_lineage=state.lineage,
        inputs_fingerprint=fingerprint,
    )
    redactor = job.redactor if isinstance(job, RenderedJob) else None
    if redactor:
        # A plan is shown and saved: no secret value in any of its fields (paths, details...).
        return Plan.model_validate(redactor.json(made.to_dict()))
    return made


def _attach(state: StackState, steps: list[Step], observation: Observation,
            options: PlanOptions) -> AttachRun | None:
    """The unfinished run to attach to: the state records one, its pod is kept (running, or
    stopped and resumed) and neither `--rerun` nor `--force-fresh` asks for a new run."""
    job = state.job
    if job is None or options.rerun or options.force_fresh:
        return None
    kept = any(s.kind in (StepKind.NOOP, StepKind.RESUME) and s.pod_id == job.pod_id for s in steps)
    if not kept:
        return None
    try:
        launched = datetime.fromisoformat(job.launched_at)
        if launched.tzinfo is None:
            launched = launched.replace(tzinfo=UTC)
        observed = observation.observed_at
        if observed.tzinfo is None:
            observed = observed.replace(tzinfo=UTC)
        elapsed = int((observed - launched).total_seconds())
    except ValueError:
        elapsed = 0
    return AttachRun(run_id=job.run_id, run_dir=job.run_dir, pod_id=job.pod_id,
                     launched_at=job.launched_at, elapsed_sec=max(0, elapsed),
                     exit_code=job.exit_code, attempt=job.attempt)


def _decide(desired: DesiredPod, prefix: str, state: StackState, observation: Observation,
            options: PlanOptions) -> tuple[list[Step], set[str]]:
    """The cascade. Returns the steps for the stack's own pod and the pod ids it accounts for."""
    create_target = f"{prefix}<nonce>"
    create = Step(kind=StepKind.CREATE, target=create_target,
                  reasons=(_why(Reason.NO_POD),))
    record, pending = state.pod, state.pending

    def live(pod_id: str | None) -> ObservedPod | None:
        pod = observation.pod(pod_id) if pod_id else None
        return pod if pod is not None and pod.status.exists else None

    def replace(pod: ObservedPod, *reasons: StepReason,
                changes: tuple[FieldChange, ...] = ()) -> Step:
        return Step(kind=StepKind.REPLACE, target=pod.name or pod.pod_id, pod_id=pod.pod_id,
                    reasons=reasons, changes=changes)

    def drift(pod: ObservedPod, rec: PodRecord | None) -> tuple[tuple[StepReason, ...],
                                                                tuple[FieldChange, ...]]:
        # Only a plan that finds a pod compares it: the drift module (and its report models)
        # is not imported by the plan of a stack with no pod.
        from reconciler.drift import actual_facts, desired_facts, field_changes, reason_for

        actual = actual_facts(pod, rec)
        changes = field_changes(actual, desired_facts(desired, actual))
        reasons = []
        for change in changes:
            reason, values = reason_for(change)
            reasons.append(_why(reason, **values))
        return tuple(reasons), changes

    # 1. A pending operation comes first: it is what an interrupted apply left behind.
    if pending is not None and pending.kind is PendingKind.CREATE:
        found = observation.pods_named(pending.pod_name)
        if not found:
            # 1a. The create never made a pod: create again.
            return [create.model_copy(update={"reasons": (
                _why(Reason.PENDING_CREATE_LOST, name=pending.pod_name),)})], set()
        found_pod = found[0]
        reasons, changes = drift(found_pod, None)
        unusable = ("--force-fresh" if options.force_fresh else
                    "it does not match the stack" if changes else
                    "it has 0 GPUs" if found_pod.gpu_count == 0 else
                    f"it is {found_pod.status.value}" if found_pod.status not in _UP else "")
        if unusable:
            # 1b. The create made a pod we cannot use: delete it and create again.
            first = _why(Reason.PENDING_CREATE_MISMATCH, pod_id=found_pod.pod_id,
                         name=found_pod.name, why=unusable)
            return [replace(found_pod, first, *reasons, changes=changes)], {found_pod.pod_id}
        # 1c. The create made a healthy, matching pod: adopt it into the state.
        return [Step(kind=StepKind.ADOPT, target=found_pod.name, pod_id=found_pod.pod_id,
                     reasons=(_why(Reason.PENDING_CREATE_FOUND, pod_id=found_pod.pod_id,
                                   name=found_pod.name),))], {found_pod.pod_id}
    if pending is not None and pending.kind is PendingKind.DELETE and pending.pod_id:
        deleting = live(pending.pod_id)
        why_delete = _why(Reason.PENDING_DELETE, pod_id=pending.pod_id)
        if deleting is not None:
            # 1d. A delete was begun and the pod is still there: finish it, then create.
            return [replace(deleting, why_delete)], {deleting.pod_id}
        # 1e. A delete was begun and the pod is gone: forget it, then create.
        return [Step(kind=StepKind.FORGET, target=pending.pod_name or pending.pod_id,
                     pod_id=pending.pod_id, reasons=(why_delete,)), create], {pending.pod_id}
    # (A pending start or stop falls through: the observation shows how it ended.)

    # 2. No pod recorded: create one.
    if record is None:
        return [create], set()
    pod = live(record.pod_id)
    # 3. The recorded pod is gone: forget it, then create.
    if pod is None:
        return [Step(kind=StepKind.FORGET, target=record.name or record.pod_id,
                     pod_id=record.pod_id,
                     reasons=(_why(Reason.POD_GONE, pod_id=record.pod_id),)), create], {
            record.pod_id}
    claimed = {pod.pod_id}
    # 4. --force-fresh: never reuse; delete and create.
    if options.force_fresh:
        return [replace(pod, _why(Reason.FORCE_FRESH, pod_id=pod.pod_id))], claimed
    # 5. Drift of a field that identifies the pod: replace it.
    reasons, changes = drift(pod, record)
    if changes:
        return [replace(pod, *reasons, changes=changes)], claimed
    # 6. A pod with zero GPUs (a stopped pod whose host gave its GPUs away) is useless.
    if pod.gpu_count == 0:
        return [replace(pod, _why(Reason.ZERO_GPU, pod_id=pod.pod_id))], claimed
    # 7. Stopped and matching: resume it.
    if pod.status is PodStatus.EXITED:
        return [Step(kind=StepKind.RESUME, target=pod.name or pod.pod_id, pod_id=pod.pod_id,
                     reasons=(_why(Reason.POD_STOPPED, pod_id=pod.pod_id),))], claimed
    # 8. Up and matching (kept by preserve, or a recycle that left it running): reuse it.
    if pod.status in _UP:
        return [Step(kind=StepKind.NOOP, target=pod.name or pod.pod_id, pod_id=pod.pod_id,
                     reasons=(_why(Reason.POD_RUNNING, pod_id=pod.pod_id),))], claimed
    # 9. Anything else (paused, dead, unknown) cannot run the job: replace it.
    return [replace(pod, _why(Reason.POD_UNHEALTHY, pod_id=pod.pod_id,
                              status=pod.status.value))], claimed


def _orphans(prefix: str, state: StackState, observation: Observation,
             claimed: set[str]) -> list[ObservedPod]:
    recorded = {state.pod.pod_id} if state.pod else set()
    return [p for p in observation.pods
            if p.name.startswith(prefix) and p.status.exists
            and p.pod_id not in claimed and p.pod_id not in recorded]


def _relevant_pods(prefix: str, state: StackState, observation: Observation) -> list[list[object]]:
    ids = {state.pod.pod_id} if state.pod else set()
    if state.pending and state.pending.pod_id:
        ids.add(state.pending.pod_id)
    names = {state.pending.pod_name} if state.pending else set()
    rows: list[list[object]] = [
        [p.pod_id, p.name, p.status.value, p.image, p.gpu_type_id, p.datacenter_id, p.gpu_count]
        for p in observation.pods
            if p.pod_id in ids or p.name.startswith(prefix) or p.name in names]
    return sorted(rows, key=lambda row: str(row[0]))


def _fingerprint(spec_json: str, state: StackState, pods: list[list[object]],
                 volume: NetworkVolume | None = None) -> str:
    inputs: dict[str, object] = {"spec": spec_json, "serial": state.serial,
                                 "lineage": state.lineage, "pods": pods}
    if volume is not None:
        # A volume made again under the same name has a new id: a saved plan is then stale.
        inputs["network_volume"] = [volume.id, volume.datacenter_id]
    blob = json.dumps(inputs, sort_keys=True, default=str)
    return "sha256:" + hashlib.sha256(blob.encode()).hexdigest()


def check_local_paths(spec: JobSpec, project_root: str) -> list[Diagnostic]:
    """Staging sources and artifact destinations must stay inside the project root.

    A relative path with `..` (or an absolute one) that leaves the project would push files
    from elsewhere on this machine to a rented pod, or let a pulled artifact land anywhere.
    Secret files are exempt: they usually live outside the project on purpose."""
    root = posixpath.normpath(project_root)
    out: list[Diagnostic] = []

    def inside(path: str) -> bool:
        full = posixpath.normpath(posixpath.join(root, path))
        return full == root or full.startswith(root.rstrip("/") + "/")

    for i, entry in enumerate(spec.staging):
        if not inside(entry.source):
            out.append(error(f"staging source '{entry.source}' is outside the project root {root}",
                             detail="expected a path inside the project (relative to local.project_root)",
                             field_path=f"staging[{i}].source"))
    for i, artifact in enumerate(spec.artifacts):
        if not inside(artifact.local_path):
            out.append(error(f"artifact local_path '{artifact.local_path}' is outside the project root {root}",
                             detail="expected a path inside the project, such as '{run_dir}/out'",
                             field_path=f"artifacts[{i}].local_path"))
    return out


def check_placement(spec: JobSpec, observation: Observation | None = None) -> list[Diagnostic]:
    """Placement and budget problems found before anything bills (errors and warnings)."""
    out: list[Diagnostic] = []
    catalog = observation.catalog if observation is not None else None
    source = "known RunPod ids" + (" and the live catalog" if catalog is not None else "")
    gpus = known_gpu_ids(catalog)
    for i, gpu in enumerate(spec.pod.gpu_order):
        if gpu not in gpus:
            hint = suggest(gpu, gpus)
            out.append(error(f"unknown GPU type id '{gpu}'",
                             detail=(f"did you mean '{hint}'? " if hint else "")
                             + f"expected an exact RunPod gpuTypeId ({source})",
                             field_path=f"pod.gpu_order[{i}]"))
    dcs = known_datacenter_ids(catalog)
    for i, dc in enumerate(spec.pod.datacenters):
        if dc not in dcs:
            hint = suggest(dc, dcs)
            out.append(error(f"unknown datacenter id '{dc}'",
                             detail=(f"did you mean '{hint}'? " if hint else "")
                             + "expected a RunPod datacenter id such as EU-RO-1",
                             field_path=f"pod.datacenters[{i}]"))
    if spec.uses_network_volume:
        if spec.pod.cloud_type is not CloudType.SECURE:
            out.append(error("a network volume needs Secure Cloud",
                             detail="expected pod.cloud_type: SECURE with storage.mode: "
                             "network_volume", field_path="pod.cloud_type"))
        volume = None
        if observation is not None and observation.network_volumes is not None:
            volume, problems = find_network_volume(spec, observation.network_volumes)
            out.extend(problems)
        if len(spec.pod.datacenters) > 1:
            only = (f"only {volume.datacenter_id}, where it lives, is tried"
                    if volume is not None and volume.datacenter_id else
                    "list only the volume's datacenter")
            out.append(warning("a network volume pins its datacenter",
                               detail="failover to another datacenter cannot mount "
                               f"'{spec.storage.volume_name}'; {only}",
                               field_path="pod.datacenters"))
    budget = spec.budget
    for name in ("cost_cap_usd", "assumed_hourly_rate_usd"):
        if not math.isfinite(getattr(budget, name)):
            out.append(error(f"budget.{name} is not a finite number",
                             detail="expected a dollar amount such as 5.0 (.inf or .nan caps nothing)",
                             field_path=f"budget.{name}"))
    if not all(math.isfinite(getattr(budget, n)) for n in ("cost_cap_usd", "assumed_hourly_rate_usd")):
        return out
    if budget.max_runtime_minutes is not None:
        assumed = budget.assumed_hourly_rate_usd * budget.timeout_sec / 3600
        if assumed > budget.cost_cap_usd + 1e-9:
            out.append(error(
                f"{budget.max_runtime_minutes} min at the assumed "
                f"${budget.assumed_hourly_rate_usd:.2f}/hr is ${assumed:.2f}, over the cost "
                f"cap ${budget.cost_cap_usd:.2f}",
                detail="expected max_runtime_minutes x assumed_hourly_rate_usd <= cost_cap_usd",
                field_path="budget.max_runtime_minutes"))
    return out


def find_network_volume(spec: JobSpec, volumes: Sequence[NetworkVolume]
                        ) -> tuple[NetworkVolume | None, list[Diagnostic]]:
    """The account's volume that `storage.volume_name` names, or the errors saying why there
    is none. A pod mounts a network volume only in the volume's datacenter, so the volume must
    be in one the stack lists. Names are not unique at RunPod: of several namesakes, the one in
    a listed datacenter is meant; two there cannot be told apart."""
    name = spec.storage.volume_name or ""
    namesakes = [v for v in volumes if v.name == name]
    if not namesakes:
        names = frozenset(v.name for v in volumes if v.name)
        hint = suggest(name, names)
        have = ", ".join(f"{v.name} ({v.datacenter_id or 'datacenter unknown'})"
                         for v in sorted(volumes, key=lambda v: (v.name, v.id)))
        return None, [error(
            f"no network volume named '{name}'",
            detail=(f"did you mean '{hint}'? " if hint else "")
            + (f"the account has: {have}" if have else "the account has no network volumes; "
               "create one (RunPod console, Storage) in the datacenter the pod should run in"),
            field_path="storage.volume_name")]
    listed = [v for v in namesakes
              if v.datacenter_id is None or v.datacenter_id in spec.pod.datacenters]
    if len(listed) > 1:
        ids = ", ".join(f"{v.id} ({v.datacenter_id or 'datacenter unknown'})" for v in listed)
        return None, [error(f"{len(listed)} network volumes are named '{name}'",
                            detail=f"cannot tell which to mount: {ids}; rename one",
                            field_path="storage.volume_name")]
    if listed:
        return listed[0], []
    homes = sorted({v.datacenter_id or "?" for v in namesakes})
    where = ", ".join(homes)
    return None, [error(
        f"network volume '{name}' is in {where}, which pod.datacenters does not list",
        detail="a pod can mount a network volume only in the volume's datacenter; expected "
        f"pod.datacenters to include {'one of ' if len(homes) > 1 else ''}{where}",
        field_path="pod.datacenters")]


def _commands(spec: JobSpec, redact: Callable[[str], str]) -> tuple[PhaseCommands, ...]:
    """What each phase will run, as rendered for this run, with its secrets redacted."""
    found = (
        (JobPhase.SETUP, tuple(c.command for c in spec.setup)),
        (JobPhase.PREFLIGHT, tuple(c.command for c in preflight_commands(spec))),
        (JobPhase.LAUNCH, (spec.run.body,)),
    )
    return tuple(PhaseCommands(phase=phase, commands=tuple(redact(c) for c in commands))
                 for phase, commands in found if commands)


def _phases(spec: JobSpec) -> tuple[PhaseEntry, ...]:
    n = len
    preflight = n(spec.preflight) + (1 if spec.pod.python_version else 0)
    pulls = n(spec.artifacts)
    return (
        PhaseEntry(phase=JobPhase.SETUP, runs=bool(spec.setup),
                   detail=f"{n(spec.setup)} command(s)"),
        PhaseEntry(phase=JobPhase.SECRETS, runs=bool(spec.secrets),
                   detail=", ".join(s.name for s in spec.secrets) or "none"),
        PhaseEntry(phase=JobPhase.STAGE, runs=bool(spec.staging),
                   detail=", ".join(s.label for s in spec.staging) or "nothing to push"),
        PhaseEntry(phase=JobPhase.PREFLIGHT, runs=preflight > 0,
                   detail=f"{preflight} command(s)"
                   + (f" incl. python {spec.pod.python_version} pin"
                      if spec.pod.python_version else "")),
        PhaseEntry(phase=JobPhase.LAUNCH, runs=True,
                   detail=f"{spec.run.script_path} (detached), log {spec.run.log_path}"),
        PhaseEntry(phase=JobPhase.MONITOR, runs=True,
                   detail=f"until '{spec.run.success_marker}' or a failure marker, polling "
                   f"every {spec.budget.poll_interval_sec}s"),
        PhaseEntry(phase=JobPhase.PULL, runs=True,
                   detail="run log" + (f" + {pulls} artifact(s): "
                                       + ", ".join(a.label for a in spec.artifacts)
                                       if pulls else "")),
        PhaseEntry(phase=JobPhase.LIFECYCLE, runs=True,
                   detail=f"on success {spec.lifecycle.on_success.value}, on failure "
                   f"{spec.lifecycle.on_failure.value}"),
    )


_OUTCOME = {
    LifecycleAction.DELETE: "pod deleted, volume released, state cleared",
    LifecycleAction.STOP: "pod stopped; its volume disk keeps billing; state kept",
    LifecycleAction.RECYCLE: "pod stopped and kept for the next run to resume",
    LifecycleAction.PRESERVE: "pod left running (compute keeps billing)",
}


_OUTCOME_ON_NETWORK_VOLUME = {
    **_OUTCOME,
    LifecycleAction.DELETE: "pod deleted, the network volume kept, state cleared",
    LifecycleAction.STOP: "pod stopped; the network volume bills on its own; state kept",
}
"""A network volume outlives the pod whatever happens to it, and is billed apart from it."""


def _lifecycle(spec: JobSpec) -> LifecycleOutcome:
    life = spec.lifecycle
    outcome = _OUTCOME_ON_NETWORK_VOLUME if spec.uses_network_volume else _OUTCOME
    return LifecycleOutcome(on_success=life.on_success.value, on_failure=life.on_failure.value,
                            success_detail=outcome[life.on_success],
                            failure_detail=outcome[life.on_failure])


def _guards(spec: JobSpec) -> tuple[Guard, ...]:
    b = spec.budget
    deadline = f"{b.timeout_sec // 60} min" if b.timeout_sec % 60 == 0 else f"{b.timeout_sec} s"
    basis = ("max_runtime_minutes" if b.max_runtime_minutes is not None else
             f"cost cap ${b.cost_cap_usd:.2f} at the assumed ${b.assumed_hourly_rate_usd:.2f}/hr")
    return (
        Guard(name="ssh_ready", detail=f"the pod must publish SSH within "
              f"{b.ssh_ready_timeout_sec}s, or it is deleted"),
        Guard(name="monitor", detail=f"client-side monitor streams the log, checks the pod every "
              f"{min(b.poll_interval_sec, 15)}s and stops the job at the deadline, {deadline} "
              f"({basis}), or when the spend at the pod's real $/hr reaches the cap"),
        Guard(name="watchdog", detail=f"on-pod watchdog ends the job {WATCHDOG_GRACE_SEC}s after "
              "the deadline even if this machine goes away (RunPod ignores stopAfter; the pod "
              "itself is stopped or deleted by apply's lifecycle step)"),
    )
