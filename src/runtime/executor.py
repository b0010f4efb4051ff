"""Apply: carry out a plan's steps, run the job on the pod, bring the results back.

    lock the stack -> re-read state, re-observe, re-plan (a saved plan must still match)
    -> run dir -> provisioning steps, each journaled in the state before its provider call
    -> wait for the pod (container up, SSH published, banner, login) and pin its host key
    -> setup, secrets, stage, preflight, launch (+ on-pod watchdog), monitor, pull
    -> lifecycle action (journaled) -> state -> manifest -> unlock

The executor dispatches on `StepKind` only; reasons are for people. It never prints: it calls
the `Reporter`. Every failure after a pod exists ends in the stack's `on_failure` action and a
manifest; a Ctrl-C or SIGTERM is a failure like any other, so no pod is left unrecorded.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import posixpath
import signal
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any, Generic, TypeVar

from reconciler.desired import PodRequest
from reconciler.diagnostics import RunpodDeployError
from reconciler.fallback import effective_fallback, with_fallback
from reconciler.observed import Catalog, CloudType, ObservedPod, PodStatus
from reconciler.plan import NetworkVolumeMount, Plan, StepKind
from reconciler.spec import JobSpec, StorageMode
from reconciler.state import LastRun, PendingKind, PendingOperation, PodRecord, StackState
from runtime import phases, telemetry
from runtime.clock import Clock
from runtime.errors import (
    BudgetExceededError,
    FailoverExhaustedError,
    HostFullError,
    JobError,
    JobFailedError,
    PodKilledError,
    PodNotFoundError,
    ProviderError,
    RemoteCommandError,
    RuntimeExceededError,
    StalePlanError,
    TransportError,
)
from runtime.failpoints import crash_point
from runtime.gitmeta import capture_deploy_metadata
from runtime.hostkeys import HostKeyPins
from runtime.provision import Candidate, FailoverResult, create_with_failover, terminate, wait_until_published
from runtime.providers.protocol import PodProvider
from runtime.reporter import Reporter
from runtime.rundir import (
    ArtifactPull,
    ArtifactStatus,
    DeployMetadata,
    EventLog,
    EventName,
    MetricsLog,
    PlanSummary,
    ProvisioningAttempt,
    RunManifest,
    RunOutcome,
    create_run_dir,
    estimate_cost_usd,
    write_manifest,
)
from runtime.rundir import LifecycleAction as RecordedAction
from runtime.statestore import StateStore

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

VOLUME_USD_PER_GB_MONTH_STOPPED = 0.20


class Interrupted(BaseException):
    """SIGTERM (or a second Ctrl-C path): unwind like KeyboardInterrupt, through `on_failure`."""


@dataclass(frozen=True)
class ApplyOptions:
    """Flags of `apply` that are not part of the stack (the budget overrides are applied to
    the spec before planning, so the plan shows them)."""

    gpu_id: str | None = None
    datacenter_id: str | None = None
    max_gpu_price: float | None = None
    ssh_ready_timeout_sec: int | None = None
    ssh_key: str | None = None
    """Overrides the stack's `ssh.key_path` (`--ssh-key`, and `--local`'s simulator key)."""
    fallback_cloud_type: CloudType | None = None
    """`--fallback-cloud-type`: after every pair stocks out on the stack's type, the same pairs
    on this one (`reconciler.fallback`)."""
    on_run_dir: Callable[[Path], None] | None = None
    """Called as soon as the run dir exists (the CLI prints `RUN_DIR=<path>`)."""
    job_status_every_sec: float = 1.0


@dataclass(frozen=True)
class ApplyResult:
    outcome: RunOutcome
    detail: str
    run_dir: Path | None
    manifest_path: Path | None
    pod_id: str | None
    state: StackState
    lifecycle_action: RecordedAction | None = None
    attempts: tuple[ProvisioningAttempt, ...] = ()

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    @property
    def ok(self) -> bool:
        return self.outcome is RunOutcome.SUCCEEDED


class StateJournal:
    """The state file as the journal of provider calls (see `runtime.provision.Journal`)."""

    def __init__(self, store: StateStore, state: StackState, clock: Clock, spec: JobSpec) -> None:
        self._store = store
        self.state = state
        self._clock = clock
        self._spec = spec

    def _write(self, state: StackState) -> None:
        self.state = self._store.write(state)

    def begin(self, kind: str, *, pod_name: str, pod_id: str | None = None) -> None:
        self._write(
            self.state.evolve(
                pending=PendingOperation(
                    kind=PendingKind(kind),
                    pod_name=pod_name,
                    pod_id=pod_id,
                    started_at=self._clock.now().isoformat(timespec="seconds"),
                )
            )
        )

    def recorded(self, pod: ObservedPod, request: PodRequest | None) -> None:
        previous = self.state.pod if self.state.pod and self.state.pod.pod_id == pod.pod_id else None
        record = PodRecord(
            pod_id=pod.pod_id,
            name=pod.name or (request.name if request else ""),
            gpu_type_id=(request.gpu_type_id if request else None) or pod.gpu_type_id,
            datacenter_id=(request.datacenter_id if request else None) or pod.datacenter_id,
            cloud_type=(request.cloud_type if request else None) or pod.cloud_type,
            image=(request.image if request else None) or pod.image,
            gpu_count=(request.gpu_count if request else None) or pod.gpu_count,
            volume_gb=(request.volume_gb if request else None) or pod.volume_gb,
            storage_mode=(self._spec.storage.mode.value if request
                          else previous.storage_mode if previous else None),
            network_volume_id=(request.network_volume_id if request else None) or pod.network_volume_id,
            created_at=previous.created_at if previous else self._clock.now().isoformat(timespec="seconds"),
            spec_fingerprint=previous.spec_fingerprint if previous else None,
            host_key_pins=previous.host_key_pins if previous else (),
        )
        self._write(self.state.evolve(pod=record, pending=None))

    def confirmed(self) -> None:
        """A pending start/stop went through; the record stays."""
        self._write(self.state.evolve(pending=None))

    def released(self, pod_id: str) -> None:
        keep = self.state.pod if self.state.pod and self.state.pod.pod_id != pod_id else None
        self._write(self.state.evolve(pod=keep, pending=None))

    def cancel_pending(self) -> None:
        self._write(self.state.evolve(pending=None))

    def pin(self, pin_id: str) -> None:
        if self.state.pod is not None and pin_id not in self.state.pod.host_key_pins:
            record = self.state.pod.model_copy(update={"host_key_pins": (*self.state.pod.host_key_pins, pin_id)})
            self._write(self.state.evolve(pod=record))

    def finished(self, last_run: LastRun, spec_fingerprint: str | None) -> None:
        pod = self.state.pod
        if pod is not None and spec_fingerprint:
            pod = pod.model_copy(update={"spec_fingerprint": spec_fingerprint})
        self._write(self.state.evolve(pod=pod, last_run=last_run))


class PodShell:
    """`SshSession` as the `phases.RemoteShell` the phases and telemetry talk to."""

    def __init__(self, session: Any) -> None:
        self.session = session

    def run(self, command: str, *, timeout: float, check: bool = True, sensitive: bool = False) -> Any:
        return self.session.run(command, timeout_sec=timeout, check=check, sensitive=sensitive)

    def put_text(self, remote_path: str, text: str, *, mode: int) -> None:
        self.session.put_text(remote_path, text, mode=mode)

    def follow(
        self,
        remote_path: str,
        *,
        start_offset: int,
        on_line: Callable[[str], None],
        should_stop: Callable[[], bool],
        writer_pid: int | None = None,
    ) -> int:
        result = self.session.follow(
            remote_path, on_line=on_line, should_stop=should_stop, start_offset=start_offset, writer_pid=writer_pid
        )
        return int(result.offset)


class _PodWatch:
    """The monitor's view of the pod at the provider; a failing provider is not a dead pod."""

    def __init__(self, provider: PodProvider, pod_id: str) -> None:
        self._provider, self._pod_id = provider, pod_id

    def pod_status(self) -> str:
        try:
            pod = self._provider.get_pod(self._pod_id)
        except ProviderError:
            return PodStatus.RUNNING.value
        return (pod.status if pod is not None else PodStatus.MISSING).value


@dataclass
class _Run:
    """What the apply learned as it went, for the lifecycle step and the manifest."""

    pod: ObservedPod | None = None
    candidate: Candidate | None = None
    network_volume: NetworkVolumeMount | None = None
    """The network volume the plan resolved; every create of this run mounts it."""
    resumed: bool = False
    attempts: tuple[ProvisioningAttempt, ...] = ()
    hourly_usd: float | None = None
    price_source: str | None = None
    billing_started: float | None = None
    run_started: bool = False
    artifacts: tuple[ArtifactPull, ...] = ()
    telemetry_files: list[str] = field(default_factory=list)
    final_state: str | None = None


class Executor:
    def __init__(
        self,
        *,
        spec: JobSpec,
        project_root: Path,
        config_path: Path,
        store: StateStore,
        provider: PodProvider,
        clock: Clock,
        reporter: Reporter,
        options: ApplyOptions,
        make_pod_name: Callable[[], str],
        hostkeys_path: Path,
        env: Mapping[str, str],
        secrets_to_redact: Sequence[str] = (),
        catalog: Catalog | None = None,
    ) -> None:
        """`catalog`: the one the plan was made with, read a moment ago under the same lock;
        failover starts from it instead of asking again (a stale entry only costs a refused
        create, which fails over like any stock-out)."""
        self.catalog = catalog
        self.spec = spec
        self.project_root = project_root
        self.config_path = config_path
        self.store = store
        self.provider = provider
        self.clock = clock
        self.reporter = reporter
        self.options = options
        self.make_pod_name = make_pod_name
        self.hostkeys = HostKeyPins(hostkeys_path, clock=clock)
        self.env = env
        self.secrets_to_redact = tuple(s for s in secrets_to_redact if s)

    # -- the whole apply ------------------------------------------------------------------------

    def apply(self, plan: Plan, state: StackState, *, run_dir: Path, events: EventLog) -> ApplyResult:
        """Carry out `plan` from `state` (both made under the lock the caller holds)."""
        if plan.state_lineage not in (None, state.lineage) or plan.state_serial != state.serial:
            raise StalePlanError(
                f"the plan was made against state serial {plan.state_serial}, the state is now at "
                f"{state.serial}: make a new plan"
            )
        # paramiko takes ~0.15 s to import: do it while the provider calls run.
        _Background(lambda: importlib.import_module("runtime.ssh"))
        journal = StateJournal(self.store, state, self.clock, self.spec)
        run = _Run(network_volume=plan.network_volume)
        started = self.clock.monotonic()
        outcome, detail = RunOutcome.SUCCEEDED, "success marker seen"
        events.emit(EventName.RUN_STARTED, job_name=self.spec.name, steps=[s.kind.value for s in plan.steps])
        with _signals_as_interrupts():
            try:
                self._provision(plan, journal, run, events)
                self._job(run, journal, run_dir, events)
            except (KeyboardInterrupt, Interrupted):
                outcome, detail = RunOutcome.INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)"
                self._after_interrupt(journal, run, events)
            except BaseException as error:  # noqa: BLE001 - classified, then the lifecycle runs
                outcome, detail = _classify(error)
                if not isinstance(error, RunpodDeployError):
                    detail = f"{type(error).__name__}: {error}"
                    self.reporter.warning(f"unexpected error: {detail}")
            action = self._lifecycle(journal, run, outcome, events)
        wall = self.clock.monotonic() - started
        crash_point("before_manifest")
        manifest_path = self._manifest(plan, run, run_dir, outcome, action, wall)
        journal.finished(
            LastRun(run_id=run_dir.name, run_dir=str(run_dir), outcome=outcome.value),
            plan.spec_fingerprint if outcome is RunOutcome.SUCCEEDED else None,
        )
        events.emit(EventName.RUN_FINISHED, outcome=outcome.value, detail=detail[:500], wall_time_sec=round(wall, 3))
        events.sync()
        return ApplyResult(
            outcome=outcome,
            detail=detail,
            run_dir=run_dir,
            manifest_path=manifest_path,
            pod_id=run.pod.pod_id if run.pod else None,
            state=journal.state,
            lifecycle_action=action,
            attempts=run.attempts,
        )

    # -- provisioning ---------------------------------------------------------------------------

    def _provision(self, plan: Plan, journal: StateJournal, run: _Run, events: EventLog) -> None:
        self.reporter.phase_started("provision", ", ".join(f"{s.kind.symbol} {s.kind.value}" for s in plan.steps))
        began = self.clock.monotonic()
        for step in plan.steps:
            if step.kind is StepKind.FORGET:
                journal.released(step.pod_id or "")
            elif step.kind is StepKind.DELETE:
                terminate(self.provider, step.pod_id or "", journal=journal, events=events)
            elif step.kind is StepKind.REPLACE:
                terminate(self.provider, step.pod_id or "", journal=journal, events=events)
                self._create(journal, run, events)
            elif step.kind is StepKind.CREATE:
                self._create(journal, run, events)
            elif step.kind is StepKind.RESUME:
                self._resume(step.pod_id or "", journal, run, events)
            elif step.kind in (StepKind.ADOPT, StepKind.NOOP):
                self._reuse(step.pod_id or "", journal, run, events, adopt=step.kind is StepKind.ADOPT)
        if run.pod is None:
            raise JobFailedError("the plan leaves the stack without a pod to run the job on")
        self.reporter.phase_finished("provision", self.clock.monotonic() - began)

    def _ready_deadline(self) -> float:
        timeout = self.options.ssh_ready_timeout_sec or self.spec.budget.ssh_ready_timeout_sec
        return float(timeout)

    def _create(self, journal: StateJournal, run: _Run, events: EventLog) -> None:
        spec = self.spec
        volume = run.network_volume
        if spec.uses_network_volume and volume is None:
            raise StalePlanError(
                f"the plan did not resolve network volume '{spec.storage.volume_name}' to an id; "
                "make a new plan with a provider that can list the account's volumes"
            )
        candidates = self._candidates(events, volume)

        def make_request(candidate: Candidate) -> PodRequest:
            if candidate.cloud_type is not None:
                self.reporter.info(f"stock-out on {spec.pod.cloud_type.value}; retrying with "
                                   f"cloud_type={candidate.cloud_type.value}")
                events.emit(EventName.CLOUD_TYPE_FALLBACK, from_cloud_type=spec.pod.cloud_type.value,
                            to_cloud_type=candidate.cloud_type.value)
            return PodRequest(
                name=self.make_pod_name(),
                image=spec.pod.image,
                gpu_type_id=candidate.gpu_type_id,
                datacenter_id=candidate.datacenter_id,
                cloud_type=candidate.cloud_type or CloudType(spec.pod.cloud_type.value),
                gpu_count=spec.pod.gpu_count,
                interruptible=spec.pod.spot,
                container_disk_gb=spec.pod.container_disk_gb,
                volume_gb=(spec.storage.volume_gb or 0) if spec.storage.mode is StorageMode.EPHEMERAL else 0,
                volume_mount_path=spec.storage.volume_mount,
                network_volume_id=volume.id if volume is not None else None,
                ports=tuple(spec.pod.ports),
                min_vcpu_count=spec.pod.min_vcpu_count,
                min_memory_gb=spec.pod.min_memory_gb,
            )

        pins: dict[str, str] = {}

        def ready(pod: ObservedPod) -> ObservedPod:
            pins[pod.pod_id] = self._connect(pod, journal, new_boot=True, events=events)
            return pod

        try:
            result: FailoverResult = create_with_failover(
                provider=self.provider,
                candidates=candidates,
                make_request=make_request,
                journal=journal,
                events=events,
                reporter=self.reporter,
                clock=self.clock,
                ready_timeout_sec=self._ready_deadline(),
                max_gpu_price=self.options.max_gpu_price,
                ready=ready,
            )
        except FailoverExhaustedError as error:
            run.attempts = tuple(_attempt_record(a) for a in error.attempts)
            raise
        run.pod, run.candidate = result.pod, result.candidate
        run.attempts = tuple(_attempt_record(a) for a in result.attempts)
        run.billing_started = self.clock.monotonic() - (result.attempts[-1].seconds if result.attempts else 0.0)
        journal.pin(pins[result.pod.pod_id])
        self._price(run)
        events.emit(
            EventName.GPU_SELECTED, gpu_id=result.candidate.gpu_type_id, datacenter_id=result.candidate.datacenter_id
        )

    def _resume(self, pod_id: str, journal: StateJournal, run: _Run, events: EventLog) -> None:
        record = journal.state.pod
        gpu_count = (record.gpu_count if record and record.gpu_count else None) or self.spec.pod.gpu_count
        journal.begin("start", pod_name=record.name if record else "", pod_id=pod_id)
        started = self.clock.monotonic()
        try:
            resumed = self.provider.start_pod(pod_id, gpu_count=gpu_count)
        except (HostFullError, PodNotFoundError) as error:
            journal.cancel_pending()
            self._replace_unresumable(pod_id, str(error), journal, run, events)
            return
        journal.confirmed()
        if resumed.gpu_count == 0:
            # RunPod resumes a pod whose host gave its GPUs away with gpuCount 0, and bills it.
            self._replace_unresumable(pod_id, f"it came back with 0 GPUs (asked for {gpu_count})", journal, run, events)
            return
        pod = wait_until_published(
            self.provider,
            pod_id,
            deadline_mono=started + self._ready_deadline(),
            clock=self.clock,
            reporter=self.reporter,
        )
        if pod.gpu_count == 0:
            self._replace_unresumable(pod_id, f"it came back with 0 GPUs (asked for {gpu_count})", journal, run, events)
            return
        journal.pin(self._connect(pod, journal, new_boot=True, events=events))
        run.pod, run.resumed, run.billing_started = pod, True, started
        run.candidate = Candidate(pod.gpu_type_id or (record.gpu_type_id if record else "") or "", pod.datacenter_id or "")
        self._price(run)
        events.emit(EventName.POD_RESUMED, pod_id=pod_id, resumed=True)

    def _replace_unresumable(self, pod_id: str, why: str, journal: StateJournal, run: _Run, events: EventLog) -> None:
        """A stopped pod that cannot serve the run (host full, gone, zero GPUs): delete, create."""
        self.reporter.warning(f"cannot resume pod {pod_id} ({why}); replacing it with a new pod")
        events.emit(EventName.POD_RESUMED, pod_id=pod_id, resumed=False, reason=why[:300])
        terminate(self.provider, pod_id, journal=journal, events=events)
        self._create(journal, run, events)

    def _reuse(self, pod_id: str, journal: StateJournal, run: _Run, events: EventLog, *, adopt: bool) -> None:
        pod = self.provider.get_pod(pod_id)
        if pod is None or pod.status is not PodStatus.RUNNING:
            raise StalePlanError(f"pod {pod_id} changed since the plan was made; make a new plan")
        if adopt:
            journal.recorded(pod, None)
        pod = wait_until_published(
            self.provider,
            pod_id,
            deadline_mono=self.clock.monotonic() + self._ready_deadline(),
            clock=self.clock,
            reporter=self.reporter,
        )
        record = journal.state.pod
        known = record.host_key_pins if record else ()
        journal.pin(self._connect(pod, journal, new_boot=not known, events=events))
        run.pod, run.billing_started = pod, self.clock.monotonic()
        run.candidate = Candidate(pod.gpu_type_id or "", pod.datacenter_id or "")
        self._price(run)

    def _candidates(self, events: EventLog, volume: NetworkVolumeMount | None = None) -> list[Candidate]:
        """GPU x datacenter in the original's order (datacenters outer, GPUs inner), or the one
        pinned pair; pairs the catalog says are out of stock or over `--max-gpu-price` are
        skipped here, without a create call, and recorded as failover events. A network volume
        leaves one datacenter, its own: a pod elsewhere could not mount it."""
        spec, options = self.spec, self.options
        datacenters = list(spec.pod.datacenters)
        if volume is not None and volume.datacenter_id:
            datacenters = [volume.datacenter_id]
        if options.gpu_id and options.datacenter_id:
            if volume is not None and volume.datacenter_id not in (None, options.datacenter_id):
                raise FailoverExhaustedError(
                    f"--datacenter-id {options.datacenter_id} cannot mount network volume "
                    f"'{volume.name}', which is in {volume.datacenter_id}"
                )
            pinned = [Candidate(options.gpu_id, options.datacenter_id, self._planned_price(options.gpu_id))]
            fallback = effective_fallback(spec, options.fallback_cloud_type)
            if fallback.warning:
                self.reporter.warning(fallback.warning)
            if fallback.cloud_type is not None:
                pinned.append(Candidate(options.gpu_id, options.datacenter_id, pinned[0].planned_hourly_usd,
                                        fallback.cloud_type))
            return pinned
        catalog = self.catalog
        if catalog is None:
            with contextlib.suppress(ProviderError):
                catalog = self.provider.catalog(cloud_type=CloudType(spec.pod.cloud_type.value))
        chosen: list[Candidate] = []
        for datacenter in datacenters:
            for gpu in spec.pod.gpu_order:
                price = self._planned_price(gpu, catalog)
                if catalog is not None:
                    stock = catalog.stock(gpu, datacenter)
                    if stock is not None and not stock.available:
                        events.emit(
                            EventName.DATACENTER_FAILOVER,
                            **{"from": f"{gpu}@{datacenter}", "to": None, "reason": "catalog: out of stock"},
                        )
                        continue
                per_gpu = price / spec.pod.gpu_count if price is not None else None
                if options.max_gpu_price is not None and per_gpu is not None and per_gpu > options.max_gpu_price:
                    events.emit(
                        EventName.DATACENTER_FAILOVER,
                        **{
                            "from": f"{gpu}@{datacenter}",
                            "to": None,
                            "reason": f"'{gpu}' price ${per_gpu:.3f}/hr > ${options.max_gpu_price:.3f}/hr cap",
                        },
                    )
                    continue
                chosen.append(Candidate(gpu, datacenter, price))
        fallback = effective_fallback(spec, options.fallback_cloud_type)
        if fallback.warning:
            self.reporter.warning(fallback.warning)
        if fallback.cloud_type is not None:  # the other type is not in the catalog read: no skips
            pairs = [(gpu, dc) for dc in datacenters for gpu in spec.pod.gpu_order]
            chosen += [Candidate(c.gpu_type_id, c.datacenter_id, self._planned_price(c.gpu_type_id, catalog),
                                 c.cloud_type) for c in with_fallback(pairs, fallback.cloud_type)
                       if c.cloud_type is not None]
        if not chosen:
            raise FailoverExhaustedError(
                f"no configured GPU is in stock (or under the price cap) in {datacenters} "
                f"for gpu_order {list(spec.pod.gpu_order)}"
            )
        return chosen

    def _planned_price(self, gpu: str, catalog: Any = None) -> float | None:
        if catalog is None:
            return None
        price = catalog.price(gpu)
        if price is None:
            return None
        per_gpu = price.price_for(CloudType(self.spec.pod.cloud_type.value), spot=self.spec.pod.spot)
        return per_gpu * self.spec.pod.gpu_count if per_gpu is not None else None

    def _price(self, run: _Run) -> None:
        """The $/hr the spend guard and the manifest use: the pod's real price when reported."""
        if run.pod is not None and run.pod.cost_per_hr:
            run.hourly_usd, run.price_source = run.pod.cost_per_hr, "pod_describe"
        else:
            run.hourly_usd, run.price_source = self.spec.budget.assumed_hourly_rate_usd, "assumed_rate"
            self.reporter.warning(
                f"the provider reported no price for the pod; assuming ${run.hourly_usd:.2f}/hr for the spend guard"
            )

    # -- SSH --------------------------------------------------------------------------------------

    def _connect(self, pod: ObservedPod, journal: StateJournal, *, new_boot: bool, events: EventLog) -> str:
        """Open the session, waiting for the banner and a login; returns the host-key pin id.

        A create or resume we asked for is a new boot (RunPod containers get fresh host keys on
        every start): its first key is pinned. Otherwise the last pin must match."""
        from runtime.ssh import SshSession

        assert pod.ssh is not None
        record = journal.state.pod
        known = record.host_key_pins if record and record.pod_id == pod.pod_id else ()
        pin_id = f"{pod.pod_id}#{len(known) + 1}" if new_boot or not known else known[-1]
        key_path = Path(os.path.expanduser(self.options.ssh_key or self.spec.ssh.key_path))
        self._check_key(key_path)
        session = SshSession(
            pod.ssh, key_path=key_path, pins=self.hostkeys, pin_id=pin_id, allow_new_host_key=new_boot, clock=self.clock
        )
        began = self.clock.monotonic()
        self.reporter.phase_started("wait_ssh", f"{pod.ssh.host}:{pod.ssh.port}")
        last_beat = [began]

        def heartbeat(attempt: Any) -> None:
            now = self.clock.monotonic()
            if now - last_beat[0] >= 30:
                last_beat[0] = now
                self.reporter.waiting("SSH", now - began, f"{attempt.stage}: {attempt.detail}")

        try:
            crash_point("ssh_wait")
            session.wait_until_ready(timeout_sec=self._ready_deadline(), on_attempt=heartbeat)
        except BaseException:
            session.close()
            raise
        self.reporter.phase_finished("wait_ssh", self.clock.monotonic() - began)
        events.emit(EventName.SSH_READY, pod_id=pod.pod_id, seconds=round(self.clock.monotonic() - began, 3))
        old = getattr(self, "_session", None)
        if old is not None:
            old.close()
        self._session = session
        return pin_id

    def _check_key(self, key_path: Path) -> None:
        try:
            mode = key_path.stat().st_mode
        except OSError:
            return  # SshSession reports a missing key clearly
        if mode & 0o077:
            self.reporter.warning(f"private key {key_path} is readable by others (mode {oct(mode & 0o777)}); chmod 600 it")

    # -- the job ----------------------------------------------------------------------------------

    def _job(self, run: _Run, journal: StateJournal, run_dir: Path, events: EventLog) -> None:
        from runtime.rsync import Rsync

        assert run.pod is not None
        session = self._session
        shell = PodShell(session)
        events.emit(EventName.POD_READY, pod_id=run.pod.pod_id, resumed=run.resumed)
        spend = phases.SpendGuard(
            cap_usd=self.spec.budget.cost_cap_usd,
            hourly_usd=run.hourly_usd or self.spec.budget.assumed_hourly_rate_usd,
            billing_started_mono=run.billing_started if run.billing_started is not None else self.clock.monotonic(),
            max_runtime_sec=self.spec.budget.max_runtime_minutes * 60 if self.spec.budget.max_runtime_minutes else None,
            check_interval_sec=float(min(max(self.spec.budget.poll_interval_sec, 1), 15)),
        )
        control_dir = posixpath.join("/root/.runpod-deploy", run_dir.name)
        with Rsync(session.system_ssh_target(), clock=self.clock) as transfer:
            ctx = phases.JobContext(
                spec=self.spec,
                shell=shell,
                transfer=transfer,
                events=events,
                reporter=self.reporter,
                clock=self.clock,
                run_dir=run_dir,
                project_root=self.project_root,
                control_dir=control_dir,
                budget=spend,
                pod_watch=_PodWatch(self.provider, run.pod.pod_id),
                env=dict(self.env),
            )
            self._job_phases(ctx, run, run_dir)

    def _job_phases(self, ctx: phases.JobContext, run: _Run, run_dir: Path) -> None:
        spec, tel = self.spec, self.spec.telemetry
        warn = self.reporter.warning
        run.telemetry_files.extend(
            telemetry.capture_snapshots(
                ctx.shell, run_dir, phase="start", telemetry_spec=tel, pod=run.pod,
                secrets_to_redact=self.secrets_to_redact, warn=warn,
            )
        )
        sampler: telemetry.MetricsSampler | None = None
        result: phases.MonitorResult | None = None
        try:
            phases.run_commands(ctx, "setup", spec.setup)
            phases.stage_secrets(ctx)
            phases.push_staging(ctx)
            phases.run_commands(ctx, "preflight", _preflight(spec))
            # From here the job may be running: an interrupt that lands inside the launch must
            # still stop it and pull its log (stopping a job that never started is harmless).
            run.run_started = True
            phases.launch(ctx)
            if tel.enabled:
                metrics = MetricsLog(run_dir / "metrics.jsonl", now=self.clock.now)
                sampler = telemetry.MetricsSampler(
                    ctx.shell, metrics, interval_sec=tel.sample_interval_sec, clock=self.clock,
                    workspace_path=spec.storage.volume_mount, capture_gpu=tel.capture_nvidia_smi, warn=warn,
                )
                sampler.start()
            result = phases.monitor(ctx, job_status_every_sec=self.options.job_status_every_sec)
        finally:
            if sampler is not None:
                sampler.request_stop()  # a sample in flight ends while the pulls run
            if result is None or result.outcome is not phases.JobOutcome.SUCCEEDED:
                if run.run_started:
                    with contextlib.suppress(RunpodDeployError):
                        ctx.shell.run(_stop_job(ctx.control_dir), timeout=60, check=False)
            if run.run_started:
                ok = result is not None and result.outcome is phases.JobOutcome.SUCCEEDED
                with contextlib.suppress(RunpodDeployError, OSError):
                    # The end snapshot (pip freeze is most of it) runs over the command
                    # connection while rsync pulls over its own: neither waits for the other.
                    end_snapshot = _Background(lambda: telemetry.capture_snapshots(
                        ctx.shell, run_dir, phase="end", telemetry_spec=tel, pod=run.pod,
                        secrets_to_redact=self.secrets_to_redact, warn=warn,
                    ))
                    run.artifacts = phases.pull_artifacts(ctx, best_effort=True)
                    run.telemetry_files.extend(end_snapshot.result())
                missing = [a.label for a in run.artifacts if a.required and a.status is ArtifactStatus.FAILED]
                if ok and missing:
                    raise _ArtifactsMissing(f"required artifacts could not be pulled: {missing}")
            elif result is None:
                self.reporter.warning("skipping artifact pulls: the run script never started")
            if sampler is not None:
                sampler.stop()
                run.telemetry_files.append("metrics.jsonl")
        assert result is not None
        phases.raise_for(result)

    # -- after --------------------------------------------------------------------------------

    def _after_interrupt(self, journal: StateJournal, run: _Run, events: EventLog) -> None:
        """A create in flight when interrupted may have made a pod: find it by name, record it,
        so that `on_failure` (below) deals with it instead of leaving it unrecorded."""
        pending = journal.state.pending
        if pending is None or pending.kind is not PendingKind.CREATE or not pending.pod_name:
            return
        with contextlib.suppress(ProviderError):
            for pod in self.provider.list_pods(name_prefix=pending.pod_name):
                if pod.name == pending.pod_name and pod.status.exists:
                    journal.recorded(pod, None)
                    run.pod = pod
                    return
            journal.cancel_pending()

    def _lifecycle(self, journal: StateJournal, run: _Run, outcome: RunOutcome, events: EventLog) -> RecordedAction | None:
        record = journal.state.pod
        if record is None:
            return None
        policy = self.spec.lifecycle.on_success if outcome is RunOutcome.SUCCEEDED else self.spec.lifecycle.on_failure
        action = RecordedAction(policy.value)
        pod_id = record.pod_id
        began = self.clock.monotonic()
        self.reporter.phase_started("lifecycle", f"{action.value} pod {pod_id}")
        session = getattr(self, "_session", None)
        if session is not None:
            session.close()
        try:
            if action is RecordedAction.DELETE:
                terminate(
                    self.provider, pod_id, journal=journal, events=events,
                    crash_points=("before_lifecycle_call", "after_lifecycle_call"),
                )
                run.final_state = PodStatus.TERMINATED.value
            elif action in (RecordedAction.STOP, RecordedAction.RECYCLE):
                journal.begin("stop", pod_name=record.name, pod_id=pod_id)
                crash_point("before_lifecycle_call")
                self.provider.stop_pod(pod_id)
                crash_point("after_lifecycle_call")
                journal.confirmed()
                run.final_state = PodStatus.EXITED.value
                events.emit(EventName.LIFECYCLE_APPLIED, action=action.value, pod_id=pod_id)
                if action is RecordedAction.STOP:
                    self._nudge(pod_id, record.volume_gb)
            else:
                run.final_state = PodStatus.RUNNING.value
                events.emit(EventName.LIFECYCLE_APPLIED, action=action.value, pod_id=pod_id)
                self.reporter.warning(
                    f"pod {pod_id} is preserved and keeps billing; release it with: "
                    f"runpod-deploy cleanup --state-file {self.store.path} --mode delete"
                )
        except ProviderError as error:
            self.reporter.warning(
                f"lifecycle '{action.value}' of pod {pod_id} failed: {error}; the state still records the pod "
                f"and the next plan shows it (or run: runpod-deploy cleanup --state-file {self.store.path})"
            )
            return action
        self.reporter.phase_finished("lifecycle", self.clock.monotonic() - began)
        return action

    def _nudge(self, pod_id: str, volume_gb: int | None) -> None:
        if volume_gb:
            per_day = volume_gb * VOLUME_USD_PER_GB_MONTH_STOPPED / 30
            cost = f"volume disk ({volume_gb} GB) keeps billing at ~${per_day:.2f}/day (~${per_day * 30:.2f}/mo)"
        else:
            cost = "its volume disk keeps billing while it exists"
        self.reporter.warning(
            f"pod {pod_id} stopped for forensics; {cost}. Release it with: "
            f"runpod-deploy cleanup --state-file {self.store.path} --mode delete (or audit: runpod-deploy ls-stale)"
        )

    def _manifest(
        self, plan: Plan, run: _Run, run_dir: Path, outcome: RunOutcome, action: RecordedAction | None, wall: float
    ) -> Path | None:
        tel = self.spec.telemetry
        metadata = capture_deploy_metadata(
            self.project_root, capture_git=tel.capture_local_git, capture_lockfile=tel.capture_payload_lockfile
        )
        candidate = run.candidate
        manifest = RunManifest(
            pulled_at_utc=self.clock.now(),
            failed=outcome is not RunOutcome.SUCCEEDED,
            job_name=self.spec.name,
            run_id=run_dir.name,
            config_path=str(self.config_path),
            storage_mode=self.spec.storage.mode.value,
            datacenter_id=(candidate.datacenter_id if candidate else None) or self.spec.pod.datacenters[0],
            gpu_id=candidate.gpu_type_id if candidate else None,
            gpu_price_per_hour_usd=run.hourly_usd,
            gpu_price_source=run.price_source,
            pod_id=run.pod.pod_id if run.pod else None,
            pod_final_state=run.final_state,
            pod_resumed=run.resumed,
            image=self.spec.pod.image,
            cost_cap_usd=self.spec.budget.cost_cap_usd,
            wall_time_sec=round(wall, 3),
            estimated_cost_usd=estimate_cost_usd(wall, run.hourly_usd),
            volume_mount=self.spec.storage.volume_mount,
            volume_name=self.spec.storage.volume_name,
            volume_gb=self.spec.storage.volume_gb,
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
        )
        try:
            return write_manifest(run_dir, manifest)
        except RunpodDeployError as error:
            self.reporter.warning(f"could not write the manifest: {error}")
            return None


class _ArtifactsMissing(JobError):
    pass


T = TypeVar("T")


class _Background(Generic[T]):
    """Run `work` on a daemon thread; `result()` waits for it and re-raises what it raised.
    A daemon, so that an interrupt while the caller does something else is never held up by
    it: the caller that leaves early simply does not ask for the result."""

    def __init__(self, work: Callable[[], T]) -> None:
        self._work = work
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="runpod-deploy-background", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._work()
        except BaseException as error:  # handed to the caller in result()
            self._error = error

    def result(self) -> T:
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error was raised


def _preflight(spec: JobSpec) -> tuple[Any, ...]:
    """The stack's preflight, with the `python_version` pin first when the stack asks for one."""
    if not spec.pod.python_version:
        return tuple(spec.preflight)
    from reconciler.spec import Command

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


def _stop_job(control_dir: str) -> str:
    from runtime.jobscripts import stop_command

    return stop_command(control_dir=control_dir)


def _attempt_record(attempt: Any) -> ProvisioningAttempt:
    return ProvisioningAttempt(
        gpu_id=attempt.gpu_type_id,
        datacenter_id=attempt.datacenter_id,
        outcome=attempt.outcome,
        seconds=attempt.seconds,
        usd=attempt.usd,
        pod_id=attempt.pod_id,
        detail=attempt.detail or None,
    )


def _classify(error: BaseException) -> tuple[RunOutcome, str]:
    """Which `RunOutcome` an exception means, with its message."""
    table: tuple[tuple[type[BaseException], RunOutcome], ...] = (
        (BudgetExceededError, RunOutcome.BUDGET_EXCEEDED),
        (RuntimeExceededError, RunOutcome.RUNTIME_EXCEEDED),
        (PodKilledError, RunOutcome.POD_KILLED),
        (_ArtifactsMissing, RunOutcome.ARTIFACT_PULL_FAILED),
        (RemoteCommandError, RunOutcome.REMOTE_COMMAND_FAILED),
        (JobFailedError, RunOutcome.JOB_FAILED),
        (FailoverExhaustedError, RunOutcome.PROVISIONING_FAILED),
        (ProviderError, RunOutcome.PROVISIONING_FAILED),
        (TransportError, RunOutcome.JOB_FAILED),
    )
    for kind, outcome in table:
        if isinstance(error, kind):
            return outcome, str(error)
    return RunOutcome.JOB_FAILED, str(error)


@contextlib.contextmanager
def _signals_as_interrupts() -> Iterator[None]:
    """SIGTERM raises `Interrupted` in the main thread, so it unwinds through `on_failure`."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise Interrupted()

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def hostkeys_path_for(state_path: Path) -> Path:
    """Host-key pins live beside the state file, one file per stack."""
    return state_path.with_name(state_path.name + ".hostkeys.json")


def run_dir_for(project_root: Path, clock: Clock) -> Path:
    return create_run_dir(project_root, now=clock.now).path


__all__ = [
    "EXIT_CODES",
    "ApplyOptions",
    "ApplyResult",
    "Executor",
    "Interrupted",
    "hostkeys_path_for",
    "run_dir_for",
]

