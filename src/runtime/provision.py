"""Getting a pod: create with GPU x datacenter failover, resume, and waiting until it is up.

The money rule lives here: before any call that can make a pod, the attempt's pod name is
journaled in the stack's state (`Journal.begin`), and after the call the pod is recorded
(`Journal.recorded`). A create that fails with anything but a clean "no capacity" is
reconciled by looking for that name before anything else happens, because RunPod can answer
5xx after the pod exists and bills. A pod we give up on (boot timeout, restart loop, price far
above the plan) is terminated and the termination journaled the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from reconciler.desired import PodRequest
from reconciler.observed import CloudType, ObservedPod, PodStatus
from runtime.clock import Clock
from runtime.errors import (
    CapacityError,
    FailoverExhaustedError,
    ProviderError,
    ProviderUnavailableError,
    TransportError,
)
from runtime.failpoints import crash_point
from runtime.providers.protocol import PodProvider
from runtime.reporter import PodSelected, Reporter
from runtime.rundir import AttemptOutcome, EventLog, EventName


class Journal(Protocol):
    """Where provisioning records what it is about to do and what it did (the state file)."""

    def begin(self, kind: str, *, pod_name: str, pod_id: str | None = None) -> None:
        """Write a pending operation before the provider call."""
        ...

    def recorded(self, pod: ObservedPod, request: PodRequest | None) -> None:
        """The pod exists and is ours: record it, clear the pending operation."""
        ...

    def released(self, pod_id: str) -> None:
        """The pod is gone: forget its record, clear the pending operation."""
        ...

    def cancel_pending(self) -> None:
        """The pending operation made nothing (a clean refusal): clear it."""
        ...


@dataclass(frozen=True, slots=True)
class Candidate:
    """One GPU type in one datacenter, in the failover order, with the price we planned on."""

    gpu_type_id: str
    datacenter_id: str
    planned_hourly_usd: float | None = None
    cloud_type: CloudType | None = None
    """None: the stack's `pod.cloud_type`; set for a `--fallback-cloud-type` retry."""


@dataclass(frozen=True, slots=True)
class Attempt:
    """What happened to one candidate, with its cost, for events and the manifest."""

    gpu_type_id: str
    datacenter_id: str
    outcome: AttemptOutcome
    seconds: float
    usd: float
    detail: str = ""
    pod_id: str | None = None


class PodNotReadyError(ProviderError):
    """The pod did not come up (container and SSH published) within its deadline."""

    def __init__(self, message: str, *, restart_loop: bool = False) -> None:
        self.restart_loop = restart_loop
        super().__init__(message, operation="wait")


def wait_until_published(
    provider: PodProvider,
    pod_id: str,
    *,
    deadline_mono: float,
    clock: Clock,
    reporter: Reporter,
    heartbeat_sec: float = 30.0,
    restart_limit: int = 3,
) -> ObservedPod:
    """Poll the provider until the container is up and port 22 is published.

    RunPod reports RUNNING the moment a create is accepted, minutes before the container runs;
    so the phases are: scheduled (the pod is listed), container up (`runtime` non-null), SSH
    published (a public mapping for port 22). Polling starts fast and backs off to 5 s. A
    container whose uptime goes back to zero `restart_limit` times is in a restart loop
    (a bad image or start command) and is reported as such rather than waited on forever.
    """
    started = clock.monotonic()
    delay, last_beat, restarts, last_uptime = 0.25, started, 0, None
    last_seen: ObservedPod | None = None
    # Right after a create or resume the pod is never published yet: a poll now is a wasted call.
    clock.sleep(0.1)
    while True:
        pod = provider.get_pod(pod_id)
        now = clock.monotonic()
        if pod is not None:
            last_seen = pod
            if pod.status in (PodStatus.EXITED, PodStatus.TERMINATED, PodStatus.DEAD):
                raise PodNotReadyError(f"pod {pod_id} went {pod.status.value} while booting")
            if pod.uptime_sec is not None:
                if last_uptime is not None and pod.uptime_sec + 0.5 < last_uptime:
                    restarts += 1
                    if restarts >= restart_limit:
                        raise PodNotReadyError(
                            f"pod {pod_id} is in a restart loop (container restarted {restarts} times)",
                            restart_loop=True,
                        )
                last_uptime = pod.uptime_sec
            if pod.status is PodStatus.RUNNING and pod.container_up and pod.ssh is not None:
                return pod
        if now >= deadline_mono:
            what = _readiness_phase(last_seen)
            raise PodNotReadyError(f"pod {pod_id} not ready before the deadline (last seen: {what})")
        if now - last_beat >= heartbeat_sec:
            last_beat = now
            reporter.waiting("the pod to boot", now - started, _readiness_phase(last_seen))
        clock.sleep(min(delay, max(0.0, deadline_mono - now)))
        delay = min(delay * 1.6, 5.0)


def _readiness_phase(pod: ObservedPod | None) -> str:
    if pod is None:
        return "not listed yet"
    if not pod.container_up:
        return f"{pod.status.value}, container not up (image pull / boot)"
    if pod.ssh is None:
        return "container up, port 22 not published"
    return "SSH published"


@dataclass
class FailoverResult:
    pod: ObservedPod
    candidate: Candidate
    request: PodRequest
    attempts: tuple[Attempt, ...]


def create_with_failover(
    *,
    provider: PodProvider,
    candidates: Sequence[Candidate],
    make_request: Callable[[Candidate], PodRequest],
    journal: Journal,
    events: EventLog,
    reporter: Reporter,
    clock: Clock,
    ready_timeout_sec: float,
    max_gpu_price: float | None = None,
    price_tolerance: float = 1.25,
    ready: Callable[[ObservedPod], ObservedPod] | None = None,
) -> FailoverResult:
    """Try each candidate in order until one pod is created, priced as planned and up.

    `make_request` gives each attempt a fresh pod name. `ready` (when given) runs after the pod
    is published, e.g. the SSH banner and login wait; a failure there counts as a boot failure
    of this candidate. Every attempt is an event and part of the result.
    """
    attempts: list[Attempt] = []
    for index, candidate in enumerate(candidates):
        request = make_request(candidate)
        started = clock.monotonic()
        journal.begin("create", pod_name=request.name)
        crash_point("before_create_call")
        try:
            pod = provider.create_pod(request)
        except CapacityError as error:
            journal.cancel_pending()
            attempts.append(_attempt(candidate, AttemptOutcome.STOCK_OUT, clock, started, 0.0, str(error)))
            _failover_event(events, reporter, candidates, index, f"stock-out: {error}")
            continue
        except ProviderError as error:
            # The pod may exist although the call failed: look for the attempt's name.
            found = _find_by_name(provider, request.name)
            if found is None:
                journal.cancel_pending()
                attempts.append(_attempt(candidate, AttemptOutcome.CREATE_FAILED, clock, started, 0.0, str(error)))
                _failover_event(events, reporter, candidates, index, f"create failed: {error}")
                if isinstance(error, ProviderUnavailableError) or type(error) is ProviderError:
                    continue
                raise
            reporter.warning(f"create answered '{error}' but pod {found.pod_id} exists: adopting it")
            pod = found
        crash_point("after_create_call")
        journal.recorded(pod, request)
        events.emit(
            EventName.POD_CREATED,
            pod_id=pod.pod_id,
            name=request.name,
            gpu_id=candidate.gpu_type_id,
            datacenter_id=candidate.datacenter_id,
        )
        reporter.pod_selected(PodSelected(pod.pod_id, candidate.gpu_type_id, candidate.datacenter_id, "created"))
        try:
            pod = wait_until_published(
                provider, pod.pod_id, deadline_mono=started + ready_timeout_sec, clock=clock, reporter=reporter
            )
            over = _over_price(pod, candidate, max_gpu_price, price_tolerance)
            if over:
                raise _OverPrice(over)
            if ready is not None:
                pod = ready(pod)
        except (PodNotReadyError, _OverPrice, ProviderError, TransportError) as error:
            usd = _spent(pod, clock.monotonic() - started)
            outcome = (
                AttemptOutcome.OVER_PRICE
                if isinstance(error, _OverPrice)
                else AttemptOutcome.RESTART_LOOP
                if isinstance(error, PodNotReadyError) and error.restart_loop
                else AttemptOutcome.BOOT_TIMEOUT
            )
            reporter.warning(f"giving up on pod {pod.pod_id}: {error}; deleting it")
            terminate(provider, pod.pod_id, journal=journal, events=events)
            attempts.append(_attempt(candidate, outcome, clock, started, usd, str(error), pod.pod_id))
            _failover_event(events, reporter, candidates, index, f"{outcome.value}: {error}")
            continue
        attempts.append(_attempt(candidate, AttemptOutcome.CREATED, clock, started, 0.0, "", pod.pod_id))
        for attempt in attempts:
            events.emit(EventName.PROVISIONING_ATTEMPT, **_attempt_fields(attempt))
        return FailoverResult(pod=pod, candidate=candidate, request=request, attempts=tuple(attempts))
    for attempt in attempts:
        events.emit(EventName.PROVISIONING_ATTEMPT, **_attempt_fields(attempt))
    tried = ", ".join(f"{a.gpu_type_id}@{a.datacenter_id}: {a.outcome.value}" for a in attempts) or "none"
    raise FailoverExhaustedError(f"no candidate could be provisioned ({tried})", attempts=tuple(attempts))


class _OverPrice(Exception):
    pass


def _over_price(pod: ObservedPod, candidate: Candidate, cap: float | None, tolerance: float) -> str | None:
    """Why the pod's real $/hr is unacceptable, or None. Checked before any job runs."""
    real = pod.cost_per_hr
    if real is None:
        return None
    if cap is not None and real > cap * max(1, pod.gpu_count or 1) + 1e-9:
        return f"pod costs ${real:.3f}/hr, above --max-gpu-price ${cap:.3f}/hr per GPU"
    planned = candidate.planned_hourly_usd
    if planned is not None and planned > 0 and real > planned * tolerance + 1e-9:
        return f"pod costs ${real:.3f}/hr, far above the planned ${planned:.3f}/hr"
    return None


def terminate(
    provider: PodProvider, pod_id: str, *, journal: Journal, events: EventLog, crash_points: tuple[str, str] = ("", "")
) -> None:
    """Delete a pod, journaled: a kill between the two writes leaves a pending delete to redo.
    `crash_points` names the failpoints before and after the call (the lifecycle's delete)."""
    journal.begin("delete", pod_name="", pod_id=pod_id)
    crash_point(crash_points[0])
    provider.terminate_pod(pod_id)
    crash_point(crash_points[1])
    journal.released(pod_id)
    events.emit(EventName.LIFECYCLE_APPLIED, action="delete", pod_id=pod_id)


def _find_by_name(provider: PodProvider, name: str) -> ObservedPod | None:
    try:
        matches = [pod for pod in provider.list_pods(name_prefix=name) if pod.name == name and pod.status.exists]
    except ProviderError:
        return None
    return matches[0] if matches else None


def _spent(pod: ObservedPod, seconds: float) -> float:
    return round((pod.cost_per_hr or 0.0) * seconds / 3600.0, 6)


def _attempt(
    candidate: Candidate,
    outcome: AttemptOutcome,
    clock: Clock,
    started: float,
    usd: float,
    detail: str,
    pod_id: str | None = None,
) -> Attempt:
    return Attempt(
        gpu_type_id=candidate.gpu_type_id,
        datacenter_id=candidate.datacenter_id,
        outcome=outcome,
        seconds=round(clock.monotonic() - started, 3),
        usd=usd,
        detail=detail[:300],
        pod_id=pod_id,
    )


def _attempt_fields(attempt: Attempt) -> dict[str, object]:
    return {
        "gpu_id": attempt.gpu_type_id,
        "datacenter_id": attempt.datacenter_id,
        "outcome": attempt.outcome.value,
        "seconds": attempt.seconds,
        "usd": attempt.usd,
        "detail": attempt.detail,
        "pod_id": attempt.pod_id,
    }


def _failover_event(
    events: EventLog, reporter: Reporter, candidates: Sequence[Candidate], index: int, reason: str
) -> None:
    here = candidates[index]
    following = candidates[index + 1] if index + 1 < len(candidates) else None
    events.emit(
        EventName.DATACENTER_FAILOVER,
        **{
            "from": f"{here.gpu_type_id}@{here.datacenter_id}",
            "to": f"{following.gpu_type_id}@{following.datacenter_id}" if following else None,
            "reason": reason[:300],
        },
    )
    target = f"{following.gpu_type_id}@{following.datacenter_id}" if following else "nothing left"
    reporter.warning(f"[failover] {here.gpu_type_id}@{here.datacenter_id} -> {target}: {reason[:200]}")
