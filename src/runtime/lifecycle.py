"""The end of a run for its pod: `on_success` / `on_failure`, journaled like every provider call.

Also the one repair an interrupt needs first: a create in flight when Ctrl-C or SIGTERM landed
may have made a pod, which is found by its journaled name and recorded, so that `on_failure`
deals with it instead of leaving it unrecorded.
"""

from __future__ import annotations

import contextlib

from reconciler.observed import PodStatus
from reconciler.state import PendingKind
from runtime.clock import Clock
from runtime.errors import ProviderError
from runtime.failpoints import crash_point
from runtime.journal import StateJournal
from runtime.outcome import RunProgress
from runtime.providers.protocol import PodProvider
from runtime.provision import terminate
from runtime.reporter import Reporter
from runtime.rundir import EventLog, EventName, RunOutcome
from runtime.rundir import LifecycleAction as RecordedAction

__all__ = ["VOLUME_USD_PER_GB_MONTH_STOPPED", "Lifecycle"]

VOLUME_USD_PER_GB_MONTH_STOPPED = 0.20


class Lifecycle:
    """Applies the stack's lifecycle policy to the pod the state records."""

    def __init__(
        self,
        *,
        provider: PodProvider,
        policy_on_success: str,
        policy_on_failure: str,
        clock: Clock,
        reporter: Reporter,
        cleanup_command: str,
    ) -> None:
        self._provider = provider
        self._on_success, self._on_failure = policy_on_success, policy_on_failure
        self._clock = clock
        self._reporter = reporter
        self._cleanup = cleanup_command
        """`runpod-deploy cleanup ...` for this stack's state, wherever it lives."""

    def recover_interrupted_create(self, journal: StateJournal, run: RunProgress) -> None:
        """A create in flight when interrupted may have made a pod: find it by name, record it."""
        pending = journal.state.pending
        if pending is None or pending.kind is not PendingKind.CREATE or not pending.pod_name:
            return
        with contextlib.suppress(ProviderError):
            for pod in self._provider.list_pods(name_prefix=pending.pod_name):
                if pod.name == pending.pod_name and pod.status.exists:
                    journal.recorded(pod, None)
                    run.pod = pod
                    return
            journal.cancel_pending()

    def apply(
        self, journal: StateJournal, run: RunProgress, outcome: RunOutcome, events: EventLog
    ) -> RecordedAction | None:
        """Delete, stop, recycle or preserve the recorded pod; a provider failure is a warning
        (the state still records the pod, and the next plan shows it)."""
        record = journal.state.pod
        if record is None:
            return None
        action = RecordedAction(self._on_success if outcome is RunOutcome.SUCCEEDED else self._on_failure)
        pod_id = record.pod_id
        if action is RecordedAction.DELETE and run.keep_pod:
            # The teardown rule: the artifacts are not all here, so the pod's disks must stay.
            self._reporter.warning(f"not deleting pod {pod_id}: its artifacts are not all pulled; stopping it")
            action = RecordedAction.STOP
        began = self._clock.monotonic()
        self._reporter.phase_started("lifecycle", f"{action.value} pod {pod_id}")
        cleanup = self._cleanup
        try:
            if action is RecordedAction.DELETE:
                terminate(
                    self._provider, pod_id, journal=journal, events=events,
                    crash_points=("before_lifecycle_call", "after_lifecycle_call"),
                )
                run.final_state = PodStatus.TERMINATED.value
            elif action in (RecordedAction.STOP, RecordedAction.RECYCLE):
                journal.begin("stop", pod_name=record.name, pod_id=pod_id)
                crash_point("before_lifecycle_call")
                self._provider.stop_pod(pod_id)
                crash_point("after_lifecycle_call")
                journal.confirmed()
                run.final_state = PodStatus.EXITED.value
                events.emit(EventName.LIFECYCLE_APPLIED, action=action.value, pod_id=pod_id)
                if action is RecordedAction.STOP:
                    self._nudge(pod_id, record.volume_gb)
            else:
                run.final_state = PodStatus.RUNNING.value
                events.emit(EventName.LIFECYCLE_APPLIED, action=action.value, pod_id=pod_id)
                self._reporter.warning(
                    f"pod {pod_id} is preserved and keeps billing; release it with: {cleanup} --mode delete"
                )
        except ProviderError as error:
            self._reporter.warning(
                f"lifecycle '{action.value}' of pod {pod_id} failed: {error}; the state still records the pod "
                f"and the next plan shows it (or run: {cleanup})"
            )
            return action
        self._reporter.phase_finished("lifecycle", self._clock.monotonic() - began)
        return action

    def _nudge(self, pod_id: str, volume_gb: int | None) -> None:
        if volume_gb:
            per_day = volume_gb * VOLUME_USD_PER_GB_MONTH_STOPPED / 30
            cost = f"volume disk ({volume_gb} GB) keeps billing at ~${per_day:.2f}/day (~${per_day * 30:.2f}/mo)"
        else:
            cost = "its volume disk keeps billing while it exists"
        self._reporter.warning(
            f"pod {pod_id} stopped for forensics; {cost}. Release it with: "
            f"{self._cleanup} --mode delete (or audit: runpod-deploy ls-stale)"
        )
