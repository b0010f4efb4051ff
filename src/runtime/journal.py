"""The state file as the journal of provider calls (see `runtime.provision.Journal`).

Every provider call that can make, start, stop or delete a pod is written down before it is
made and confirmed after, so an interruption anywhere leaves a state from which the next plan
sees what exists. The state leaves the process, so each write passes the run's `Redactor`.
"""

from __future__ import annotations

from reconciler.desired import PodRequest
from reconciler.observed import ObservedPod
from reconciler.redaction import Redactor
from reconciler.spec import JobSpec
from reconciler.state import LastRun, PendingKind, PendingOperation, PodRecord, RunJob, StackState
from runtime.clock import Clock
from runtime.statestore import StateStore

__all__ = ["StateJournal"]


class StateJournal:
    """The state file as the journal of provider calls (see `runtime.provision.Journal`)."""

    def __init__(
        self, store: StateStore, state: StackState, clock: Clock, spec: JobSpec, redactor: Redactor | None = None
    ) -> None:
        self._store = store
        self._redactor = redactor or Redactor()
        self.state = state
        self._clock = clock
        self._spec = spec

    def _write(self, state: StackState) -> None:
        if self._redactor:  # the state leaves the process too: nothing secret is written to it
            state = StackState.model_validate(self._redactor.json(state.model_dump(mode="json")))
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
        job = self.state.job if self.state.job and self.state.job.pod_id != pod_id else None
        self._write(self.state.evolve(pod=keep, pending=None, job=job))

    def job_launching(self, job: RunJob) -> None:
        """Written before the launch command: a client killed from here on leaves a job a
        later apply attaches to (or, if it never started, finds gone) instead of running again."""
        self._write(self.state.evolve(job=job))

    def job_updated(self, **changes: object) -> None:
        """The job's pid once it runs, its exit code once a client saw it end, ..."""
        if self.state.job is not None:
            self._write(self.state.evolve(job=self.state.job.model_copy(update=changes)))

    def job_forgotten(self) -> None:
        """The job's run is finished (pulled, marked on the pod): nothing left to attach to."""
        if self.state.job is not None:
            self._write(self.state.evolve(job=None))

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
        self._write(self.state.evolve(pod=pod, last_run=last_run, job=None))

    def finished_detached(self, last_run: LastRun) -> None:
        """A detached run: the job runs on; its record stays for `attach`."""
        self._write(self.state.evolve(last_run=last_run))
