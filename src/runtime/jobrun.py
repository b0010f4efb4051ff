"""The job on the pod: the phases in order over the run's session, then the pulls.

The session is the one `runtime.podaccess` opened; rsync comes from an injected factory
(`RsyncFactory`, default `runtime.rsync.Rsync`, imported when a job gets that far), so a test
can hand in a fake transfer. Telemetry (start/end snapshots, the metrics sampler) rides along
and never fails the job.
"""

from __future__ import annotations

import contextlib
import posixpath
import shlex
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from reconciler.desired import preflight_commands
from reconciler.diagnostics import RunpodDeployError
from reconciler.observed import PodStatus
from reconciler.plan import AttachRun
from reconciler.redaction import Redactor
from reconciler.spec import JobSpec
from reconciler.state import RunJob
from runtime import jobscripts, phases, telemetry
from runtime.background import Background
from runtime.clock import Clock
from runtime.errors import ProviderError
from runtime.jobscripts import stop_command
from runtime.journal import StateJournal
from runtime.outcome import ArtifactsMissingError, RunProgress
from runtime.providers.protocol import PodProvider
from runtime.reporter import Reporter
from runtime.rundir import ArtifactStatus, EventLog, EventName, MetricsLog

__all__ = ["JobRunner", "PodShell", "PodWatch", "RsyncFactory", "rsync_transfer"]

RsyncFactory = Callable[[Any, Clock], AbstractContextManager[Any]]
"""`factory(system_ssh_target, clock)` -> a context manager giving a `phases.FileTransfer`."""


def rsync_transfer(target: Any, clock: Clock) -> AbstractContextManager[Any]:
    """The real transfer: rsync over the session's endpoint (its own OpenSSH master)."""
    from runtime.rsync import Rsync

    return Rsync(target, clock=clock)


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


class PodWatch:
    """The monitor's view of the pod at the provider; a failing provider is not a dead pod."""

    def __init__(self, provider: PodProvider, pod_id: str) -> None:
        self._provider, self._pod_id = provider, pod_id

    def pod_status(self) -> str:
        try:
            pod = self._provider.get_pod(self._pod_id)
        except ProviderError:
            return PodStatus.RUNNING.value
        return (pod.status if pod is not None else PodStatus.MISSING).value



class JobRunner:
    """Runs the job's phases on a connected pod."""

    def __init__(
        self,
        *,
        spec: JobSpec,
        project_root: Path,
        provider: PodProvider,
        clock: Clock,
        reporter: Reporter,
        redactor: Redactor,
        env: Mapping[str, str],
        rsync_factory: RsyncFactory = rsync_transfer,
        job_status_every_sec: float = 1.0,
    ) -> None:
        self.spec = spec
        self.project_root = project_root
        self.provider = provider
        self.clock = clock
        self.reporter = reporter
        self.redactor = redactor
        self.env = env
        self.rsync_factory = rsync_factory
        self.job_status_every_sec = job_status_every_sec

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
    ) -> None:
        """setup, secrets, stage, preflight, launch, monitor, then the pulls and the end
        snapshot whatever happened; raises what ended the job (see `outcome.classify`).

        With `attach` (an earlier run's job, `run_dir` its run dir) nothing is set up or
        launched: the monitor picks the log up where the run dir's copy ends. With `detach`
        it returns right after the launch, the job running on under the pod's watchdog and
        self-stop. `journal` records the job's handle before the launch."""
        assert run.pod is not None
        shell = PodShell(session)
        events.emit(EventName.POD_READY, pod_id=run.pod.pod_id, resumed=run.resumed)
        max_runtime = self.spec.budget.max_runtime_minutes
        spend = phases.SpendGuard(
            # Earlier attempts (`run.restart`) count against the cap and the max runtime.
            cap_usd=max(0.0, self.spec.budget.cost_cap_usd - run.prior_spend_usd),
            hourly_usd=run.hourly_usd or self.spec.budget.assumed_hourly_rate_usd,
            billing_started_mono=run.billing_started if run.billing_started is not None else self.clock.monotonic(),
            max_runtime_sec=max(1.0, max_runtime * 60 - run.prior_runtime_sec) if max_runtime else None,
            check_interval_sec=float(min(max(self.spec.budget.poll_interval_sec, 1), 15)),
        )
        control_dir = posixpath.join("/root/.runpod-deploy", run_dir.name)
        with self.rsync_factory(session.system_ssh_target(), self.clock) as transfer:
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
                pod_watch=PodWatch(self.provider, run.pod.pod_id),
                env=dict(self.env),
                attempt=attach.attempt if attach is not None else run.attempt,
            )
            pod_id, hourly = run.pod.pod_id, run.hourly_usd
            if attach is not None and attach.exit_code is None and not self._job_exists(ctx):
                # Journaled, then the client died before the launch went through: the job never
                # started, so it starts now, in the run's own dir.
                self.reporter.warning(f"run {attach.run_id}'s job never started; launching it")
                attach = None
            if journal is not None and attach is None:
                ctx.before_launch = lambda: journal.job_launching(RunJob(
                    run_id=run_dir.name, run_dir=str(run_dir), pod_id=pod_id, control_dir=control_dir,
                    log_path=self.spec.run.log_path, durable_exit_code_path=ctx.durable_exit_code_path,
                    launched_at=self.clock.now().isoformat(timespec="seconds"), attempt=ctx.attempt,
                    hourly_usd=hourly, detached=detach,
                ))
                ctx.launched = lambda pid: journal.job_updated(pid=pid)
            if journal is not None:
                ctx.job_ended = lambda code: journal.job_updated(exit_code=code)
            if attach is not None:
                ctx.run_started = run.run_started = True
                events.emit(EventName.RUN_ATTACHED, run_id=attach.run_id, pod_id=pod_id,
                            elapsed_sec=attach.elapsed_sec, resumed=run.resumed)
                self.reporter.info(f"attached to run {attach.run_id} on pod {pod_id}")
            self._job_phases(ctx, run, run_dir, attach=attach is not None, detach=detach)

    def _verify(self, ctx: phases.JobContext, run: RunProgress) -> None:
        """The teardown rule: nothing is deleted until every required artifact is here, whole."""
        try:
            problems = phases.verify_artifacts(ctx, run.artifacts)
        except RunpodDeployError as error:
            problems = [f"the pod could not list the artifacts: {error}"]
        if not problems:
            return
        run.keep_pod = True
        pod_id = run.pod.pod_id if run.pod else "?"
        shown = "; ".join(problems[:10]) + (f"; and {len(problems) - 10} more" if len(problems) > 10 else "")
        raise ArtifactsMissingError(
            f"pulled artifacts do not match the pod's: {shown}. The pod {pod_id} is stopped, not deleted: "
            f"start it (runpodctl pod start {pod_id}) and pull the files again (rsync/scp from the "
            "paths above), then release it with `runpod-deploy cleanup --mode delete`"
        )

    @staticmethod
    def _any_on_pod(ctx: phases.JobContext, paths: list[str | None]) -> bool:
        """True when any of `paths` exists on the pod (or the pod cannot say)."""
        test = " || ".join(f"[ -e {shlex.quote(p)} ]" for p in paths if p)
        if not test:
            return False
        try:
            return int(ctx.shell.run(test, timeout=30, check=False).exit_status) == 0
        except RunpodDeployError:
            return True

    @staticmethod
    def _job_exists(ctx: phases.JobContext) -> bool:
        """True when the control dir (or the volume) knows the job: running or exited."""
        output = ctx.shell.run(
            jobscripts.status_command(control_dir=ctx.control_dir, durable_exit_code_path=ctx.durable_exit_code_path),
            timeout=30, check=False,
        )
        return jobscripts.parse_status(output.stdout)[0] != "unknown"

    def _job_phases(
        self, ctx: phases.JobContext, run: RunProgress, run_dir: Path, *, attach: bool = False, detach: bool = False
    ) -> None:
        spec, tel = self.spec, self.spec.telemetry
        warn = self.reporter.warning
        if not attach:
            run.telemetry_files.extend(
                telemetry.capture_snapshots(
                    ctx.shell, run_dir, phase="start", telemetry_spec=tel, pod=run.pod,
                    redactor=self.redactor, warn=warn,
                )
            )
        sampler: telemetry.MetricsSampler | None = None
        result: phases.MonitorResult | None = None
        detached = False
        try:
            if not attach:
                phases.run_commands(ctx, "setup", spec.setup)
                phases.stage_secrets(ctx)
                phases.push_staging(ctx)
                phases.run_commands(ctx, "preflight", preflight_commands(spec))
                # From here the job may be running: an interrupt that lands inside the launch must
                # still stop it and pull its log (stopping a job that never started is harmless).
                run.run_started = True
                phases.launch(ctx)
                if detach:
                    detached = True
                    ctx.events.emit(EventName.RUN_DETACHED, control_dir=ctx.control_dir)
                    return
            if tel.enabled:
                metrics = MetricsLog(run_dir / "metrics.jsonl", now=self.clock.now, redactor=self.redactor)
                sampler = telemetry.MetricsSampler(
                    ctx.shell, metrics, interval_sec=tel.sample_interval_sec, clock=self.clock,
                    workspace_path=spec.storage.volume_mount, capture_gpu=tel.capture_nvidia_smi, warn=warn,
                )
                sampler.start()
            result = phases.monitor(
                ctx, job_status_every_sec=self.job_status_every_sec,
                log_copy=run_dir / posixpath.basename(spec.run.log_path),
            )
        finally:
            if sampler is not None:
                sampler.request_stop()  # a sample in flight ends while the pulls run
            if detached:
                pass  # the job runs on; `attach` finishes the run
            elif run.run_started and (result is None or result.outcome is not phases.JobOutcome.SUCCEEDED):
                with contextlib.suppress(RunpodDeployError):
                    ctx.shell.run(stop_command(control_dir=ctx.control_dir), timeout=60, check=False)
            if run.run_started and not detached:
                ok = result is not None and result.outcome is phases.JobOutcome.SUCCEEDED
                with contextlib.suppress(RunpodDeployError, OSError):
                    # The end snapshot (pip freeze is most of it) runs over the command
                    # connection while rsync pulls over its own: neither waits for the other.
                    end_snapshot = Background(lambda: telemetry.capture_snapshots(
                        ctx.shell, run_dir, phase="end", telemetry_spec=tel, pod=run.pod,
                        redactor=self.redactor, warn=warn,
                    ))
                    run.artifacts = phases.pull_artifacts(ctx, best_effort=True)
                    run.telemetry_files.extend(end_snapshot.result())
                    # The client has the results and stays in charge: the pod's self-stop
                    # waiter stands down (the lifecycle decides what becomes of the pod).
                    ctx.shell.run(jobscripts.mark_finished_command(control_dir=ctx.control_dir), timeout=30, check=False)
                missing = [a.label for a in run.artifacts if a.required and a.status is ArtifactStatus.FAILED]
                if ok and missing:
                    # What is on the pod and not here keeps the pod (stopped, never deleted).
                    run.keep_pod = self._any_on_pod(ctx, [a.remote_path for a in run.artifacts
                                                          if a.required and a.status is ArtifactStatus.FAILED])
                    raise ArtifactsMissingError(f"required artifacts could not be pulled: {missing}")
                if ok:
                    self._verify(ctx, run)
            elif result is None and not detached:
                self.reporter.warning("skipping artifact pulls: the run script never started")
            if sampler is not None:
                sampler.stop()
                run.telemetry_files.append("metrics.jsonl")
        if detached:
            return
        assert result is not None
        phases.raise_for(result)
