"""Getting the run its pod: the plan's steps, in order, against the provider.

Create walks the plan's failover order (`Plan.placement`, from `reconciler.placement`) with the
plan's pod request (`Plan.pod_request`), each attempt journaled (`runtime.provision`); resume
falls back to a fresh pod when the host cannot give the GPUs back; adopt and no-op reuse the
running pod. Every path ends with the pod published and the run's SSH session open
(`runtime.podaccess`). The provider and the connector are injected.
"""

from __future__ import annotations

from collections.abc import Callable

from reconciler.desired import PodRequest, pod_template, request_for
from reconciler.observed import CloudType, ObservedPod, PodStatus
from reconciler.plan import Placement, Plan, StepKind
from reconciler.spec import JobSpec
from runtime.clock import Clock
from runtime.errors import (
    FailoverExhaustedError,
    HostFullError,
    JobFailedError,
    PodNotFoundError,
    StalePlanError,
)
from runtime.journal import StateJournal
from runtime.outcome import PlacedOn, RunProgress, attempt_record
from runtime.podaccess import PodConnector
from runtime.providers.protocol import PodProvider
from runtime.provision import (
    Candidate,
    FailoverResult,
    create_with_failover,
    terminate,
    wait_until_published,
)
from runtime.reporter import PodSelected, Reporter
from runtime.rundir import EventLog, EventName

__all__ = ["Provisioner"]


class Provisioner:
    """Interprets the plan's provisioning steps (dispatching on `StepKind` only)."""

    def __init__(
        self,
        *,
        spec: JobSpec,
        provider: PodProvider,
        connector: PodConnector,
        placement: Placement,
        clock: Clock,
        reporter: Reporter,
        make_pod_name: Callable[[], str],
        max_gpu_price: float | None = None,
    ) -> None:
        self.spec = spec
        self.provider = provider
        self.connector = connector
        self.placement = placement
        self.clock = clock
        self.reporter = reporter
        self.make_pod_name = make_pod_name
        self.max_gpu_price = max_gpu_price

    def provision(self, plan: Plan, journal: StateJournal, run: RunProgress, events: EventLog) -> None:
        """Carry out the plan's steps in order; the run has a pod (connected) afterwards."""
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
                # Attaching to a run only needs the pod's disks: zero GPUs will do.
                self._resume(step.pod_id or "", journal, run, events, zero_gpu_ok=plan.attach is not None)
            elif step.kind in (StepKind.ADOPT, StepKind.NOOP):
                self._reuse(step.pod_id or "", journal, run, events, adopt=step.kind is StepKind.ADOPT)
        if run.pod is None:
            raise JobFailedError("the plan leaves the stack without a pod to run the job on")
        self.reporter.phase_finished("provision", self.clock.monotonic() - began)

    def relaunch(self, journal: StateJournal, run: RunProgress, events: EventLog) -> None:
        """A pod for the job's next attempt (`run.restart`): the same pod if it came back
        RUNNING, else a fresh one through the placement walk (a network volume pins the
        datacenter), the killed one deleted first (its disks went with the reclaim)."""
        assert run.pod is not None
        old = run.pod.pod_id
        pod = self.provider.get_pod(old)
        run.resumed = False
        if pod is not None and pod.status is PodStatus.RUNNING:
            self._reuse(old, journal, run, events, adopt=False)
            return
        terminate(self.provider, old, journal=journal, events=events)
        run.pod = None
        self._create(journal, run, events)

    def _ready_deadline(self) -> float:
        return self.connector.ready_timeout_sec

    def _create(self, journal: StateJournal, run: RunProgress, events: EventLog) -> None:
        spec = self.spec
        volume = run.network_volume
        if spec.uses_network_volume and volume is None:
            raise StalePlanError(
                f"the plan did not resolve network volume '{spec.storage.volume_name}' to an id; "
                "make a new plan with a provider that can list the account's volumes"
            )
        candidates = self._candidates(events)
        template = run.pod_request or pod_template(spec, volume.id if volume is not None else None)

        def make_request(candidate: Candidate) -> PodRequest:
            if candidate.cloud_type is not None:
                self.reporter.info(f"stock-out on {spec.pod.cloud_type.value}; retrying with "
                                   f"cloud_type={candidate.cloud_type.value}")
                events.emit(EventName.CLOUD_TYPE_FALLBACK, from_cloud_type=spec.pod.cloud_type.value,
                            to_cloud_type=candidate.cloud_type.value)
            return request_for(
                template,
                name=self.make_pod_name(),
                gpu_type_id=candidate.gpu_type_id,
                datacenter_id=candidate.datacenter_id,
                cloud_type=candidate.cloud_type,
            )

        pins: dict[str, str] = {}

        def ready(pod: ObservedPod) -> ObservedPod:
            pins[pod.pod_id] = self.connector.connect(pod, journal, new_boot=True, events=events)
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
                max_gpu_price=self.max_gpu_price,
                ready=ready,
            )
        except FailoverExhaustedError as error:
            run.attempts = tuple(attempt_record(a) for a in error.attempts)
            raise
        run.pod = result.pod
        run.placed_on = PlacedOn(result.candidate.gpu_type_id, result.candidate.datacenter_id)
        run.attempts = tuple(attempt_record(a) for a in result.attempts)
        run.billing_started = self.clock.monotonic() - (result.attempts[-1].seconds if result.attempts else 0.0)
        journal.pin(pins[result.pod.pod_id])
        self._price(run)
        events.emit(
            EventName.GPU_SELECTED, gpu_id=result.candidate.gpu_type_id, datacenter_id=result.candidate.datacenter_id
        )

    def _resume(
        self, pod_id: str, journal: StateJournal, run: RunProgress, events: EventLog, *, zero_gpu_ok: bool = False
    ) -> None:
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
        if resumed.gpu_count == 0 and not zero_gpu_ok:
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
        if pod.gpu_count == 0 and not zero_gpu_ok:
            self._replace_unresumable(pod_id, f"it came back with 0 GPUs (asked for {gpu_count})", journal, run, events)
            return
        journal.pin(self.connector.connect(pod, journal, new_boot=True, events=events))
        run.pod, run.resumed, run.billing_started = pod, True, started
        run.placed_on = PlacedOn(pod.gpu_type_id or (record.gpu_type_id if record else "") or "", pod.datacenter_id or "")
        self._price(run)
        events.emit(EventName.POD_RESUMED, pod_id=pod_id, resumed=True)
        self.reporter.pod_selected(PodSelected(pod_id, pod.gpu_type_id, pod.datacenter_id, "resumed"))

    def _replace_unresumable(self, pod_id: str, why: str, journal: StateJournal, run: RunProgress, events: EventLog) -> None:
        """A stopped pod that cannot serve the run (host full, gone, zero GPUs): delete, create."""
        self.reporter.warning(f"cannot resume pod {pod_id} ({why}); replacing it with a new pod")
        events.emit(EventName.POD_RESUMED, pod_id=pod_id, resumed=False, reason=why[:300])
        terminate(self.provider, pod_id, journal=journal, events=events)
        self._create(journal, run, events)

    def _reuse(self, pod_id: str, journal: StateJournal, run: RunProgress, events: EventLog, *, adopt: bool) -> None:
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
        journal.pin(self.connector.connect(pod, journal, new_boot=not known, events=events))
        run.pod, run.billing_started = pod, self.clock.monotonic()
        run.placed_on = PlacedOn(pod.gpu_type_id or "", pod.datacenter_id or "")
        self._price(run)
        self.reporter.pod_selected(PodSelected(pod_id, pod.gpu_type_id, pod.datacenter_id, "reused"))

    def _candidates(self, events: EventLog) -> list[Candidate]:
        """The plan's failover order (`reconciler.placement`): its skipped pairs are recorded as
        failover events, without a create call; its error (nothing left) stops the create."""
        placement = self.placement
        for entry in placement.skipped:
            reason = entry.skipped or ""
            events.emit(
                EventName.DATACENTER_FAILOVER,
                **{
                    "from": f"{entry.gpu_type_id}@{entry.datacenter_id}",
                    "to": None,
                    "reason": reason if reason.startswith("price") else f"catalog: {reason}",
                },
            )
        if placement.error is not None:
            raise FailoverExhaustedError(placement.error)
        if placement.note:
            self.reporter.warning(placement.note)
        return [Candidate(e.gpu_type_id, e.datacenter_id, e.hourly_usd,
                          CloudType(e.cloud_type) if e.cloud_type else None)
                for e in placement.candidates]

    def _price(self, run: RunProgress) -> None:
        """The $/hr the spend guard and the manifest use: the pod's real price when reported."""
        if run.pod is not None and run.pod.cost_per_hr:
            run.hourly_usd, run.price_source = run.pod.cost_per_hr, "pod_describe"
        else:
            run.hourly_usd, run.price_source = self.spec.budget.assumed_hourly_rate_usd, "assumed_rate"
            self.reporter.warning(
                f"the provider reported no price for the pod; assuming ${run.hourly_usd:.2f}/hr for the spend guard"
            )
