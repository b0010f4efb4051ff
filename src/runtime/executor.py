"""Apply: interpret a plan. The coordinator of the parts, each with one job:

    journal      runtime.journal      the state file, written before and after each provider call
    provisioner  runtime.provisioner  the plan's steps: create (failover), resume, adopt, delete
    pod access   runtime.podaccess    the run's SSH session, host key pinned
    job          runtime.jobrun       setup, secrets, stage, preflight, launch, monitor, pulls
    lifecycle    runtime.lifecycle    on_success / on_failure, journaled
    outcome      runtime.outcome      outcome, exit code, manifest

The transports are injected (`Transports`: an SSH session factory and an rsync factory; the
provider is an argument), so the coordinator runs in unit tests on fakes. It dispatches on
`StepKind` only; reasons are for people. It never prints: it calls the `Reporter`. Every
failure after a pod exists ends in the stack's `on_failure` action and a manifest; a Ctrl-C or
SIGTERM is a failure like any other, so no pod is left unrecorded.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Protocol

from reconciler.diagnostics import RunpodDeployError
from reconciler.observed import Catalog
from reconciler.placement import place
from reconciler.plan import AttachRun, PlacementOptions, Plan
from reconciler.redaction import Redactor
from reconciler.spec import JobSpec, RestartOn
from reconciler.state import LastRun, StackState
from runtime.background import Background
from runtime.clock import Clock
from runtime.errors import PodKilledError, StalePlanError
from runtime.failpoints import crash_point
from runtime.hostkeys import HostKeyPins
from runtime.jobrun import JobRunner, RsyncFactory, rsync_transfer
from runtime.journal import StateJournal
from runtime.lifecycle import Lifecycle
from runtime.outcome import EXIT_CODES, ApplyResult, RunProgress, classify, write_run_manifest
from runtime.podaccess import PodConnector, SessionFactory, ssh_session
from runtime.providers.protocol import PodProvider
from runtime.provisioner import Provisioner
from runtime.reporter import Reporter
from runtime.rundir import EventLog, EventName, JobAttempt, RunOutcome, create_run_dir
from runtime.statestore import StateStore

__all__ = [
    "EXIT_CODES",
    "ApplyOptions",
    "ApplyResult",
    "Executor",
    "Interrupted",
    "JobRunnerLike",
    "Transports",
    "hostkeys_path_for",
    "run_dir_for",
]


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
    job_status_every_sec: float = 1.0


@dataclass(frozen=True)
class Transports:
    """How the parts reach a pod: the SSH session and the rsync transfer, as factories."""

    session_factory: SessionFactory = ssh_session
    rsync_factory: RsyncFactory = rsync_transfer


class JobRunnerLike(Protocol):
    """The job part as the coordinator sees it (`runtime.jobrun.JobRunner`, or a fake)."""

    def run(
        self,
        run: RunProgress,
        session: Any,
        run_dir: Path,
        events: EventLog,
        *,
        journal: StateJournal | None = None,
        attach: AttachRun | None = None,
        detach: bool = False,
    ) -> None: ...


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
        redactor: Redactor | None = None,
        catalog: Catalog | None = None,
        transports: Transports = Transports(),
        job_runner: JobRunnerLike | None = None,
    ) -> None:
        """`spec` is the rendered stack the plan was made from (rendered once, by the caller).
        `catalog`: the one the plan was made with, for a plan that carries no placement."""
        self.spec = spec
        self.project_root = project_root
        self.config_path = config_path
        self.store = store
        self.provider = provider
        self.clock = clock
        self.reporter = reporter
        self.options = options
        self.make_pod_name = make_pod_name
        self.redactor = redactor or Redactor()
        self.catalog = catalog
        self.connector = PodConnector(
            session_factory=transports.session_factory,
            hostkeys=HostKeyPins(hostkeys_path, clock=clock),
            key_path=Path(os.path.expanduser(options.ssh_key or spec.ssh.key_path)),
            clock=clock,
            reporter=reporter,
            ready_timeout_sec=float(options.ssh_ready_timeout_sec or spec.budget.ssh_ready_timeout_sec),
        )
        self.job_runner: JobRunnerLike = job_runner or JobRunner(
            spec=spec, project_root=project_root, provider=provider, clock=clock, reporter=reporter,
            redactor=self.redactor, env=env, rsync_factory=transports.rsync_factory,
            job_status_every_sec=options.job_status_every_sec,
        )
        self.lifecycle = Lifecycle(
            provider=provider, policy_on_success=spec.lifecycle.on_success.value,
            policy_on_failure=spec.lifecycle.on_failure.value, clock=clock, reporter=reporter,
            cleanup_command=store.cleanup_command(config_path),
        )
        self._warm_ssh = transports.session_factory is ssh_session

    def apply(
        self, plan: Plan, state: StackState, *, run_dir: Path, events: EventLog, detach: bool = False
    ) -> ApplyResult:
        """Carry out `plan` from `state` (both made under the lock the caller holds).

        A plan that attaches (`plan.attach`) runs in the earlier run's dir (`run_dir` is it):
        no job is launched, the rest of the earlier run is carried out. With `detach` the
        apply returns once the job runs: no lifecycle, no manifest; `attach` finishes it."""
        if plan.state_lineage not in (None, state.lineage) or plan.state_serial != state.serial:
            raise StalePlanError(
                f"the plan was made against state serial {plan.state_serial}, the state is now at "
                f"{state.serial}: make a new plan"
            )
        if self._warm_ssh:  # paramiko takes ~0.15 s to import: do it while the provider calls run.
            Background(lambda: importlib.import_module("runtime.ssh"))
        journal = StateJournal(self.store, state, self.clock, self.spec, self.redactor)
        run = RunProgress(network_volume=plan.network_volume, pod_request=plan.pod_request)
        provisioner = Provisioner(
            spec=self.spec, provider=self.provider, connector=self.connector,
            placement=plan.placement or place(self.spec, self.catalog, PlacementOptions(
                gpu_id=self.options.gpu_id, datacenter_id=self.options.datacenter_id,
                max_gpu_price=self.options.max_gpu_price), plan.network_volume),
            clock=self.clock, reporter=self.reporter, make_pod_name=self.make_pod_name,
            max_gpu_price=self.options.max_gpu_price,
        )
        started = last_attempt_started = self.clock.monotonic()
        outcome, detail = RunOutcome.SUCCEEDED, "success marker seen"
        if plan.attach is None:
            events.emit(EventName.RUN_STARTED, job_name=self.spec.name, steps=[s.kind.value for s in plan.steps])
        with _signals_as_interrupts():
            try:
                provisioner.provision(plan, journal, run, events)
                attach = plan.attach
                if attach is not None:
                    run.attempt = attach.attempt
                while True:
                    attempt_started = last_attempt_started = self.clock.monotonic()
                    try:
                        self.job_runner.run(run, self.connector.session, run_dir, events, journal=journal,
                                            attach=attach, detach=detach and plan.attach is None)
                        break
                    except PodKilledError as error:
                        if not self._restarts_after(RestartOn.POD_KILLED_UNEXPECTED, run.attempt):
                            raise
                        self._next_attempt(run, attempt_started, str(error), events)
                        attach = None
                        self.connector.close()
                        provisioner.relaunch(journal, run, events)
                if detach and plan.attach is None:
                    return self._detached(journal, run, run_dir, events)
            except (KeyboardInterrupt, Interrupted):
                outcome, detail = RunOutcome.INTERRUPTED, "interrupted (Ctrl-C or SIGTERM)"
                self.lifecycle.recover_interrupted_create(journal, run)
            except BaseException as error:  # noqa: BLE001 - classified, then the lifecycle runs
                outcome, detail = classify(error)
                if not isinstance(error, RunpodDeployError):
                    detail = f"{type(error).__name__}: {error}"
                    self.reporter.warning(f"unexpected error: {detail}")
            self.connector.close()
            action = self.lifecycle.apply(journal, run, outcome, events)
        wall = self.clock.monotonic() - started
        if run.job_attempts:  # restarted: the manifest lists the last attempt too
            self._record_attempt(run, last_attempt_started, outcome.value, detail)
        crash_point("before_manifest")
        try:
            manifest_path: Path | None = write_run_manifest(
                spec=self.spec, plan=plan, run=run, run_dir=run_dir, config_path=self.config_path,
                project_root=self.project_root, outcome=outcome, action=action, wall=wall,
                clock=self.clock, redactor=self.redactor,
            )
        except RunpodDeployError as error:
            self.reporter.warning(f"could not write the manifest: {error}")
            manifest_path = None
        journal.finished(
            LastRun(run_id=run_dir.name, run_dir=str(run_dir), outcome=outcome.value),
            plan.spec_fingerprint if outcome is RunOutcome.SUCCEEDED else None,
        )
        events.emit(EventName.RUN_FINISHED, outcome=outcome.value, detail=detail[:500], wall_time_sec=round(wall, 3))
        events.sync()
        return ApplyResult(
            outcome=outcome,
            detail=self.redactor.text(detail),
            run_dir=run_dir,
            manifest_path=manifest_path,
            pod_id=run.pod.pod_id if run.pod else None,
            state=journal.state,
            lifecycle_action=action,
            attempts=run.attempts,
        )

    def _restarts_after(self, why: RestartOn, attempt: int) -> bool:
        restart = self.spec.run.restart
        return why.value in restart.on and attempt < restart.max_attempts

    def _record_attempt(self, run: RunProgress, started: float, outcome: str, detail: str) -> tuple[float, float]:
        """Add the attempt that ended to the run's list; returns its (seconds, usd)."""
        seconds = self.clock.monotonic() - started
        hourly = run.hourly_usd or self.spec.budget.assumed_hourly_rate_usd
        since = run.billing_started if run.billing_started is not None else started
        usd = hourly * max(0.0, self.clock.monotonic() - since) / 3600
        run.job_attempts.append(JobAttempt(
            attempt=run.attempt, pod_id=run.pod.pod_id if run.pod else None,
            outcome=outcome, seconds=round(seconds, 3), usd=round(usd, 6),
            detail=self.redactor.text(detail)[:300],
        ))
        return seconds, usd

    def _next_attempt(self, run: RunProgress, started: float, detail: str, events: EventLog) -> None:
        """Record the attempt that ended (its pod, cost) and count it against the budget."""
        seconds, usd = self._record_attempt(run, started, RunOutcome.POD_KILLED.value, detail)
        run.prior_spend_usd += usd
        run.prior_runtime_sec += seconds
        run.attempt += 1
        run.run_started = False
        self.reporter.warning(f"{detail}; restarting the job (attempt {run.attempt} of "
                              f"{self.spec.run.restart.max_attempts})")
        events.emit(EventName.JOB_RESTARTED, attempt=run.attempt, after=RestartOn.POD_KILLED_UNEXPECTED.value,
                    previous_pod_id=run.pod.pod_id if run.pod else None, previous_usd=round(usd, 6))

    def _detached(self, journal: StateJournal, run: RunProgress, run_dir: Path, events: EventLog) -> ApplyResult:
        """The job runs on, watched by the pod's watchdog and self-stop; its record stays in
        the state for `attach` / the next `apply`."""
        self.connector.close()
        journal.finished_detached(LastRun(run_id=run_dir.name, run_dir=str(run_dir), outcome="detached"))
        events.sync()
        return ApplyResult(
            outcome=RunOutcome.SUCCEEDED,
            detail=f"detached: the job runs on pod {run.pod.pod_id if run.pod else '?'}; "
            "`runpod-deploy attach` finishes the run",
            run_dir=run_dir,
            manifest_path=None,
            pod_id=run.pod.pod_id if run.pod else None,
            state=journal.state,
            attempts=run.attempts,
            detached=True,
        )


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
