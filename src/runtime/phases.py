"""The job phases on a ready pod: setup, secrets, stage, preflight, launch, monitor, pull.

Each phase is a function of a `JobContext` (the rendered spec, a remote shell, a file transfer,
the event log, the reporter, the clock). They talk to the pod only through the two small
protocols below, so the same code runs over paramiko + rsync against RunPod or the simulator.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from reconciler.planner import WATCHDOG_GRACE_SEC
from reconciler.template import remote_env_prefix
from runtime import jobscripts
from runtime.clock import Clock
from runtime.errors import (
    BudgetExceededError,
    JobFailedError,
    PodKilledError,
    RemoteCommandError,
    RuntimeExceededError,
    TransportError,
)
from runtime.failpoints import crash_point
from runtime.reporter import Reporter
from runtime.rundir import ArtifactPull, ArtifactStatus, EventLog, EventName

STEP_MARKER = re.compile(r"__RUNPOD_STEP_(START|DONE)__([\w.\-]+)__")


class RemoteShell(Protocol):
    """Commands on the pod over one kept-open connection."""

    def run(self, command: str, *, timeout: float, check: bool = True, sensitive: bool = False) -> Any:
        """Run `command`; the result has `exit_status`, `stdout`, `stderr`."""
        ...

    def put_text(self, remote_path: str, text: str, *, mode: int) -> None: ...

    def follow(
        self,
        remote_path: str,
        *,
        start_offset: int,
        on_line: Callable[[str], None],
        should_stop: Callable[[], bool],
    ) -> int:
        """Stream complete lines appended to the file until `should_stop()`; returns the offset."""
        ...


class FileTransfer(Protocol):
    """rsync over the same pinned SSH endpoint (`runtime.rsync.Rsync`)."""

    def push(
        self, local_src: Path, remote_dest: str, *, delete: bool, excludes: Sequence[str] = (), chmod: str | None = None
    ) -> Any:
        """Make the remote directory hold `local_src` (a directory's contents, or one file)."""
        ...

    def pull(self, remote_src: str, local_dest: Path, *, delete: bool, excludes: Sequence[str] = ()) -> Any:
        """Copy `remote_src` into the local directory (rsync's trailing-slash rule)."""
        ...


class PodWatch(Protocol):
    """What the monitor asks the provider while the job runs."""

    def pod_status(self) -> str:
        """RunPod's status word for the pod, or MISSING."""
        ...


class JobOutcome(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    BUDGET_EXCEEDED = "budget_exceeded"
    RUNTIME_EXCEEDED = "runtime_exceeded"
    POD_KILLED = "pod_killed"


@dataclass
class SpendGuard:
    """The client-side spend guard: RunPod's own stop/terminate-after are ignored by RunPod."""

    cap_usd: float
    hourly_usd: float
    billing_started_mono: float
    max_runtime_sec: float | None
    check_interval_sec: float = 5.0

    def spent(self, now_mono: float) -> float:
        return self.hourly_usd * max(0.0, now_mono - self.billing_started_mono) / 3600.0

    def seconds_left(self, now_mono: float) -> float:
        """Seconds until the projected spend reaches the cap."""
        if self.hourly_usd <= 0:
            return float("inf")
        return max(0.0, (self.cap_usd - self.spent(now_mono)) * 3600.0 / self.hourly_usd)


@dataclass
class JobContext:
    spec: Any
    """The rendered JobSpec (run_id and run_dir substituted)."""
    shell: RemoteShell
    transfer: FileTransfer
    events: EventLog
    reporter: Reporter
    clock: Clock
    run_dir: Path
    project_root: Path
    control_dir: str
    budget: SpendGuard
    pod_watch: PodWatch
    env: dict[str, str] = field(default_factory=dict)
    """The local environment, for `secrets: env:` values."""
    run_started: bool = False
    attempt: int = 1
    """Which attempt of the run this is: the job sees it as RUNPOD_DEPLOY_ATTEMPT."""
    before_launch: Callable[[], None] | None = None
    """Called right before the launch command (the runner journals the job's handle there)."""
    launched: Callable[[str], None] | None = None
    """Called with the job's pid once it runs."""
    job_ended: Callable[[int], None] | None = None
    """Called with the job's exit code once the monitor saw it (the plan of a client killed
    before the pull then says "finish run X (exited 0, not pulled)")."""

    @property
    def durable_exit_code_path(self) -> str:
        """Where the job's exit code outlives a pod stop: on the volume, per run."""
        return durable_exit_code_path(self.spec.storage.volume_mount, self.control_dir)


SELF_STOP_POLL_SEC = 5.0
"""How often the on-pod self-stop waiter looks for the job's end and the client's marker."""


def durable_exit_code_path(volume_mount: str, control_dir: str) -> str:
    """`<volume>/.runpod-deploy/<run id>/exit_code`: survives a stop, unlike the control dir."""
    return posixpath.join(volume_mount, ".runpod-deploy", posixpath.basename(control_dir.rstrip("/")), "exit_code")


def _timed(ctx: JobContext, phase: str) -> _Phase:
    return _Phase(ctx, phase)


class _Phase:
    """Context manager: reporter start/finish, a phase event, fsync of events at the edge."""

    def __init__(self, ctx: JobContext, name: str) -> None:
        self.ctx, self.name = ctx, name

    def __enter__(self) -> None:
        self.start = self.ctx.clock.monotonic()
        self.ctx.reporter.phase_started(self.name)
        self.ctx.events.emit(EventName.PHASE_STARTED, phase=self.name)

    def __exit__(self, kind: object, error: object, tb: object) -> None:
        seconds = self.ctx.clock.monotonic() - self.start
        ok = error is None
        self.ctx.reporter.phase_finished(self.name, seconds, ok)
        self.ctx.events.emit(
            EventName.PHASE_COMPLETED if ok else EventName.PHASE_FAILED,
            phase=self.name,
            duration_sec=round(seconds, 3),
            **({} if ok else {"error": str(error)[:500]}),
        )
        self.ctx.events.sync()


def run_commands(ctx: JobContext, phase: str, commands: Sequence[Any]) -> None:
    """setup or preflight: each command in order, aborting the run on the first failure."""
    if not commands:
        return
    prefix = remote_env_prefix(ctx.spec.remote_env)
    with _timed(ctx, phase):
        crash_point(phase)
        for command in commands:
            text = f"{prefix} {command.command}" if command.with_env and prefix else command.command
            ctx.reporter.info(f"[{phase}] {command.command[:120]}")
            result = ctx.shell.run(text, timeout=command.timeout_sec, check=False)
            for line in (result.stdout or "").splitlines()[-20:]:
                ctx.reporter.log_line(line)
            if result.exit_status != 0:
                raise RemoteCommandError(command.command, result.exit_status, (result.stdout + result.stderr)[-1000:])


def stage_secrets(ctx: JobContext) -> None:
    """Copy each secret to the pod with its mode; values never reach a log or event."""
    secrets = ctx.spec.secrets
    if not secrets:
        return
    with _timed(ctx, "secrets"):
        for secret in secrets:
            parent = os.path.dirname(secret.destination) or "/"
            ctx.shell.run(f"mkdir -p {shlex.quote(parent)}", timeout=30)
            mode = int(secret.mode, 8)
            if secret.env:
                missing = [key for key in secret.env if key not in ctx.env]
                if missing:
                    raise JobFailedError(f"secret {secret.name!r}: environment variables not set: {missing}")
                body = "".join(f"{key}={ctx.env[key]}\n" for key in secret.env)
                ctx.shell.put_text(secret.destination, body, mode=mode)
            else:
                source = Path(os.path.expanduser(secret.file))
                if not source.is_file():
                    raise JobFailedError(f"secret {secret.name!r}: file not found: {source}")
                _push_file(ctx, source, secret.destination, chmod=f"F{secret.mode[-3:]}")
            ctx.events.emit(EventName.SECRET_STAGED, name=secret.name, destination=secret.destination)


def effective_excludes(entry: Any) -> tuple[str, ...]:
    """The staging entry's excludes (`StagingPush.effective_excludes`, the one definition)."""
    return tuple(entry.effective_excludes)


def push_staging(ctx: JobContext) -> None:
    """Each staging entry with rsync, keeping the original's rsync semantics for the source:
    a trailing `/` pushes a directory's contents into `destination`, without it the directory
    itself lands inside `destination`; a single file lands at `destination` (or inside it when
    it ends in `/`)."""
    if not ctx.spec.staging:
        return
    with _timed(ctx, "stage"):
        for entry in ctx.spec.staging:
            source = _local_path(ctx, entry.source)
            if not source.exists():
                raise JobFailedError(f"staging {entry.label!r}: local source does not exist: {source}")
            if source.is_dir():
                dest = entry.destination if entry.source.endswith("/") else posixpath.join(entry.destination, source.name)
                result = ctx.transfer.push(source, dest, delete=entry.delete, excludes=effective_excludes(entry))
            else:
                result = _push_file(ctx, source, entry.destination)
            crash_point("stage")
            ctx.events.emit(
                EventName.STAGING_PUSHED,
                label=entry.label,
                bytes_sent=getattr(result, "bytes_sent", None),
                files=getattr(result, "files_transferred", None),
                duration_sec=round(getattr(result, "duration_sec", 0.0) or 0.0, 3),
            )


def _push_file(ctx: JobContext, source: Path, destination: str, *, chmod: str | None = None) -> Any:
    """One local file to a remote file path (or into a remote directory ending in `/`)."""
    if destination.endswith("/"):
        return ctx.transfer.push(source, destination, delete=False, chmod=chmod)
    parent, name = posixpath.split(destination)
    result = ctx.transfer.push(source, parent or "/", delete=False, chmod=chmod)
    if name != source.name:
        ctx.shell.run(
            f"mv -f {shlex.quote(posixpath.join(parent or '/', source.name))} {shlex.quote(destination)}", timeout=30
        )
    return result


def launch(ctx: JobContext) -> None:
    """Write the run script, start it detached, arm the on-pod watchdog at the deadline."""
    run = ctx.spec.run
    with _timed(ctx, "launch"):
        stop_earlier_jobs(ctx)
        ctx.shell.run(f"mkdir -p {shlex.quote(os.path.dirname(run.script_path) or '/')}", timeout=30)
        ctx.shell.put_text(run.script_path, run.body if run.body.endswith("\n") else run.body + "\n", mode=0o755)
        if ctx.before_launch is not None:
            ctx.before_launch()
        crash_point("launch")
        output = ctx.shell.run(
            jobscripts.launch_command(
                script_path=run.script_path, log_path=run.log_path, control_dir=ctx.control_dir,
                attempt=ctx.attempt, self_stop_after_sec=ctx.spec.lifecycle.self_stop_after_sec,
                self_stop_poll_sec=SELF_STOP_POLL_SEC, durable_exit_code_path=ctx.durable_exit_code_path,
            ),
            timeout=60,
        )
        pid = output.stdout.strip().splitlines()[-1] if output.stdout.strip() else "?"
        if ctx.launched is not None:
            ctx.launched(pid)
        deadline = _watchdog_deadline(ctx)
        ctx.shell.run(
            jobscripts.watchdog_command(control_dir=ctx.control_dir, log_path=run.log_path, deadline_sec=deadline),
            timeout=30,
        )
        ctx.run_started = True
        ctx.events.emit(EventName.JOB_LAUNCHED, pid=pid, watchdog_deadline_sec=deadline, log_path=run.log_path)


def stop_earlier_jobs(ctx: JobContext) -> list[str]:
    """End any job an earlier run left running on this pod (one job per pod).

    An apply killed while its job ran leaves the job running, detached, and the next apply
    reuses the pod. The old job appends to the same log path, so left alone its success marker
    would land in the new run's log and end the new run early, as a false success; and two
    copies of a job would share the GPU. Each run's control dir records its job's pid."""
    parent = posixpath.dirname(ctx.control_dir.rstrip("/"))
    # Every earlier run is over for its clients now: its self-stop waiter (running, or waiting
    # out its grace after the job's end) must stand down, or it stops the pod under this run.
    ctx.shell.run(
        f"for d in {shlex.quote(parent)}/*/; do d=${{d%/}}; [ \"$d\" = {shlex.quote(ctx.control_dir.rstrip('/'))} ] "
        f"|| touch \"$d/{jobscripts.FINISHED_MARKER}\"; done; true",
        timeout=30,
        check=False,
    )
    listing = ctx.shell.run(
        f"for d in {shlex.quote(parent)}/*/; do d=${{d%/}}; [ -e \"$d/exit_code\" ] && continue; "
        f'p=$(cat "$d/pid" 2>/dev/null) && kill -0 "$p" 2>/dev/null && echo "$d"; done; true',
        timeout=30,
        check=False,
    )
    stopped = []
    for control_dir in (listing.stdout or "").split("\n"):
        control_dir = control_dir.strip()
        if not control_dir or control_dir.rstrip("/") == ctx.control_dir.rstrip("/"):
            continue
        ctx.reporter.warning(
            f"a job of an earlier run ({posixpath.basename(control_dir)}) is still running on the pod; stopping it"
        )
        ctx.shell.run(jobscripts.stop_command(control_dir=control_dir), timeout=60, check=False)
        stopped.append(control_dir)
    return stopped


def _watchdog_deadline(ctx: JobContext) -> int:
    now = ctx.clock.monotonic()
    limits = [ctx.budget.seconds_left(now)]
    if ctx.budget.max_runtime_sec is not None:
        limits.append(ctx.budget.max_runtime_sec)
    # A little after the client's own guard, so the client acts first when it is there.
    return max(1, int(min(limits)) + WATCHDOG_GRACE_SEC)


@dataclass
class MonitorResult:
    outcome: JobOutcome
    detail: str
    exit_code: int | None = None
    lines_seen: int = 0


class LogWatcher:
    """Decides how a run ends from the log lines, the job's exit and the guards.

    Success marker wins, as in the original tool: a failure marker (say a handled Traceback)
    fails the run only if the job then ends, or `failure_grace_sec` passes, without the success
    marker. A job that exits without the success marker has failed at once (the original waited
    for the timeout). After the job exits, the follower gets `drain_sec` to deliver its last lines.
    """

    def __init__(
        self,
        *,
        success_marker: str,
        failure_markers: Sequence[str],
        clock: Clock,
        failure_grace_sec: float = 10.0,
        drain_sec: float = 1.0,
    ) -> None:
        self._success_marker = success_marker
        self._failure_markers = tuple(failure_markers)
        self._clock = clock
        self._failure_grace_sec = failure_grace_sec
        self._drain_sec = drain_sec
        self._lock = threading.Lock()
        self.lines_seen = 0
        self.success_seen = False
        self.failure: tuple[str, float] | None = None
        self.exit: tuple[int | None, float] | None = None
        self.verdict: MonitorResult | None = None

    def on_line(self, line: str) -> str | None:
        """Record a line; returns the failure marker it carries, if it is the first one."""
        with self._lock:
            self.lines_seen += 1
            if self._success_marker in line:
                self.success_seen = True
                return None
            if jobscripts.WATCHDOG_MARKER in line:
                self.decide(JobOutcome.RUNTIME_EXCEEDED, "the on-pod watchdog ended the job at its deadline")
                return None
            if self.failure is None:
                for marker in self._failure_markers:
                    if marker in line:
                        self.failure = (marker, self._clock.monotonic())
                        return marker
            return None

    def job_exited(self, exit_code: int | None) -> None:
        with self._lock:
            if self.exit is None:
                self.exit = (exit_code, self._clock.monotonic())

    def decide(self, outcome: JobOutcome, detail: str) -> None:
        """A guard's verdict (cost cap, max runtime, pod killed); the first verdict stands."""
        if self.verdict is None:
            self.verdict = MonitorResult(outcome, detail)

    def finished(self) -> bool:
        """True once the run's end is known: the follower may stop."""
        now = self._clock.monotonic()
        with self._lock:
            if self.verdict is not None:
                return True
            if self.success_seen:
                return True
            if self.exit is not None and now - self.exit[1] >= self._drain_sec:
                return True
            return self.failure is not None and now - self.failure[1] >= self._failure_grace_sec

    def result(self) -> MonitorResult:
        """The verdict; call after `finished()` (or after the stream ended)."""
        with self._lock:
            exit_code = self.exit[0] if self.exit else None
            if self.success_seen and (self.verdict is None or self.verdict.outcome is JobOutcome.FAILED):
                result = MonitorResult(JobOutcome.SUCCEEDED, "success marker seen", exit_code)
            elif self.verdict is not None:
                result = MonitorResult(self.verdict.outcome, self.verdict.detail, exit_code)
            elif self.failure is not None:
                result = MonitorResult(JobOutcome.FAILED, f"failure marker in the log: {self.failure[0]!r}", exit_code)
            elif self.exit is not None:
                result = MonitorResult(
                    JobOutcome.FAILED, f"job exited with code {exit_code} without the success marker", exit_code
                )
            else:
                result = MonitorResult(JobOutcome.FAILED, "the log stream ended before the job did")
            result.lines_seen = self.lines_seen
            return result


def monitor(
    ctx: JobContext, *, job_status_every_sec: float = 1.0, log_copy: Path | None = None
) -> MonitorResult:
    """Stream the job's log over the kept-open connection and decide how the run ends.

    While streaming it checks, at their own cadences: the job's exit (a cheap remote `cat`),
    the max runtime, the cost cap projected from the pod's real $/hr, and the pod's status at
    the provider (a pod that leaves RUNNING under the job is `pod_killed_unexpected`).
    """
    run = ctx.spec.run
    started = ctx.clock.monotonic()
    watcher = LogWatcher(success_marker=run.success_marker, failure_markers=run.failure_markers, clock=ctx.clock)
    steps_seen: set[tuple[str, str]] = set()
    next_check = {"job": started, "pod": started + ctx.budget.check_interval_sec}
    start_offset = 0
    copy = None
    if log_copy is not None:
        # Attaching: what the run dir's copy holds was seen by an earlier client; its markers
        # still count, and the stream goes on from where the copy ends.
        if log_copy.exists():
            seen = log_copy.read_bytes()
            start_offset = len(seen)
            for earlier in seen.decode("utf-8", "replace").splitlines():
                watcher.on_line(earlier)
        copy = log_copy.open("ab")

    def on_line(line: str) -> None:
        if copy is not None:
            copy.write(line.encode("utf-8", "surrogateescape") + b"\n")
            copy.flush()
        ctx.reporter.log_line(line)
        for kind, name in STEP_MARKER.findall(line):
            if (kind, name) not in steps_seen:
                steps_seen.add((kind, name))
                event = EventName.REMOTE_STEP_STARTED if kind == "START" else EventName.REMOTE_STEP_COMPLETED
                ctx.events.emit(event, name=name)
        crash_point("monitor")
        marker = watcher.on_line(line)
        if marker is not None:
            ctx.events.emit(EventName.FAILURE_MARKER_SEEN, marker=marker)

    def should_stop() -> bool:
        if watcher.finished():
            return True
        now = ctx.clock.monotonic()
        if ctx.budget.max_runtime_sec is not None and now - started >= ctx.budget.max_runtime_sec:
            watcher.decide(JobOutcome.RUNTIME_EXCEEDED, f"max runtime of {ctx.budget.max_runtime_sec / 60:.1f} min reached")
            return True
        spent = ctx.budget.spent(now)
        if spent + ctx.budget.hourly_usd * ctx.budget.check_interval_sec / 3600 >= ctx.budget.cap_usd:
            watcher.decide(JobOutcome.BUDGET_EXCEEDED, f"cost cap ${ctx.budget.cap_usd:.2f} reached (spent ${spent:.4f})")
            return True
        if watcher.exit is None and now >= next_check["job"]:
            next_check["job"] = now + job_status_every_sec
            try:
                output = ctx.shell.run(
                    jobscripts.status_command(
                        control_dir=ctx.control_dir, durable_exit_code_path=ctx.durable_exit_code_path
                    ),
                    timeout=30,
                    check=False,
                )
                state, code = jobscripts.parse_status(output.stdout)
                if state == "exited":
                    watcher.job_exited(code)
            except TransportError:
                pass  # the follower reconnects; the next check asks again
        if now >= next_check["pod"]:
            next_check["pod"] = now + ctx.budget.check_interval_sec
            ctx.reporter.cost(spent, ctx.budget.hourly_usd)
            status = ctx.pod_watch.pod_status()
            if status != "RUNNING":
                ctx.events.emit(EventName.POD_KILLED_UNEXPECTED, state=status, note="the pod left RUNNING while the job ran")
                watcher.decide(JobOutcome.POD_KILLED, f"the pod went {status} while the job ran")
                return True
        return watcher.finished()

    with _timed(ctx, "monitor"):
        try:
            ctx.shell.follow(run.log_path, start_offset=start_offset, on_line=on_line, should_stop=should_stop)
        except TransportError:
            # A stream that cannot reconnect is most often a pod that died under the job:
            # ask the provider before calling it a network failure.
            status = ctx.pod_watch.pod_status()
            if status == "RUNNING":
                raise
            ctx.events.emit(EventName.POD_KILLED_UNEXPECTED, state=status, note="the pod left RUNNING while the job ran")
            watcher.decide(JobOutcome.POD_KILLED, f"the pod went {status} while the job ran")
        finally:
            if copy is not None:
                copy.close()
    result = watcher.result()
    if result.outcome is JobOutcome.FAILED and (result.exit_code is None or result.exit_code >= 128):
        # Killed by a signal (a spot reclaim sends SIGTERM, then SIGKILL): if the pod went
        # with it, that is what ended the job, and what `run.restart` acts on.
        status = ctx.pod_watch.pod_status()
        if status != "RUNNING":
            ctx.events.emit(EventName.POD_KILLED_UNEXPECTED, state=status, note="the job was killed with its pod")
            result = MonitorResult(JobOutcome.POD_KILLED, f"the pod went {status} while the job ran",
                                   result.exit_code, result.lines_seen)
    if result.exit_code is not None and ctx.job_ended is not None:
        ctx.job_ended(result.exit_code)
    ctx.events.emit(EventName.JOB_FINISHED, outcome=result.outcome.value, detail=result.detail, exit_code=result.exit_code)
    return result


def raise_for(result: MonitorResult) -> None:
    """Turn a monitor result that is not a success into the matching typed error."""
    errors = {
        JobOutcome.FAILED: JobFailedError,
        JobOutcome.BUDGET_EXCEEDED: BudgetExceededError,
        JobOutcome.RUNTIME_EXCEEDED: RuntimeExceededError,
        JobOutcome.POD_KILLED: PodKilledError,
    }
    if result.outcome is not JobOutcome.SUCCEEDED:
        raise errors[result.outcome](result.detail)


def pull_artifacts(ctx: JobContext, *, best_effort: bool) -> tuple[ArtifactPull, ...]:
    """The run log always, then each artifact; on failure every pull is best effort."""
    run = ctx.spec.run
    pulls: list[ArtifactPull] = []
    crash_point("before_pull")
    with _timed(ctx, "pull"):
        try:
            ctx.transfer.pull(run.log_path, ctx.run_dir, delete=False)
        except TransportError as error:
            ctx.events.emit(EventName.REMOTE_LOG_PULL_FAILED, path=run.log_path, error=str(error)[:500])
            ctx.reporter.warning(f"could not pull the run log {run.log_path}: {error}")
        crash_point("pull")
        for artifact in ctx.spec.artifacts:
            local = _local_path(ctx, artifact.local_path)
            local.mkdir(parents=True, exist_ok=True)
            ctx.events.emit(EventName.ARTIFACT_PULL_STARTED, label=artifact.label)
            start = ctx.clock.monotonic()
            status, error_text, moved = ArtifactStatus.SUCCESS, None, None
            try:
                result = ctx.transfer.pull(artifact.remote_path, local, delete=artifact.delete, excludes=artifact.excludes)
                moved = getattr(result, "bytes_received", None)
            except TransportError as error:
                status, error_text = ArtifactStatus.FAILED, str(error)[:500]
            seconds = round(ctx.clock.monotonic() - start, 3)
            if status is ArtifactStatus.SUCCESS:
                ctx.events.emit(EventName.ARTIFACT_PULL_COMPLETED, label=artifact.label, duration_sec=seconds)
            else:
                ctx.events.emit(EventName.ARTIFACT_PULL_FAILED, label=artifact.label, duration_sec=seconds, error=error_text)
            pulls.append(
                ArtifactPull(
                    label=artifact.label,
                    remote_path=artifact.remote_path,
                    local_path=str(local),
                    required=artifact.required,
                    excludes=list(artifact.excludes),
                    delete=artifact.delete,
                    status=status,
                    bytes_transferred=moved,
                    duration_sec=seconds,
                    error=error_text,
                )
            )
    missing = [p.label for p in pulls if p.required and p.status is ArtifactStatus.FAILED]
    if missing and not best_effort:
        raise JobFailedError(f"required artifacts could not be pulled: {missing}")
    return tuple(pulls)


def _local_path(ctx: JobContext, path: str) -> Path:
    candidate = Path(os.path.expanduser(path))
    return candidate if candidate.is_absolute() else ctx.project_root / candidate


CHECKSUM_MAX_BYTES = 4 * 1024 * 1024
"""Files up to this size are compared by sha256 as well as by size before a delete."""


def _remote_listing_command(remote_path: str) -> str:
    """Prints `kind dir|file`, then `S<TAB>size<TAB>path` per file and `H<TAB>sha256<TAB>path`
    per file under `CHECKSUM_MAX_BYTES`, paths relative to the pulled tree's root."""
    q = shlex.quote(remote_path.rstrip("/") or "/")
    small = f"-size -{CHECKSUM_MAX_BYTES // 1024 + 1}k"
    return (
        f"if [ -d {q} ]; then echo 'kind dir'; cd {q} && "
        f"find . -type f -printf 'S\\t%s\\t%P\\n' && "
        f"find . -type f {small} -exec sha256sum {{}} + | sed 's|^\\([0-9a-f]*\\)  \\./|H\\t\\1\\t|'; "
        f"elif [ -f {q} ]; then echo 'kind file'; n=$(basename {q}); "
        f"printf 'S\\t%s\\t%s\\n' \"$(stat -c %s {q})\" \"$n\"; "
        f"[ $(stat -c %s {q}) -lt {CHECKSUM_MAX_BYTES} ] && printf 'H\\t%s\\t%s\\n' "
        f"\"$(sha256sum < {q} | cut -d' ' -f1)\" \"$n\"; true; "
        f"else echo 'kind missing'; fi"
    )


def verify_artifacts(ctx: JobContext, pulls: Sequence[ArtifactPull]) -> list[str]:
    """The teardown rule: every required artifact is here with the size the pod reports, and
    the same sha256 for files under `CHECKSUM_MAX_BYTES`. Returns what does not match."""
    import fnmatch
    import hashlib

    problems: list[str] = []
    for pull in pulls:
        remote, local_path = pull.remote_path, pull.local_path
        if not pull.required or pull.status is not ArtifactStatus.SUCCESS or not remote or not local_path:
            continue
        listing = ctx.shell.run(_remote_listing_command(remote), timeout=300, check=False)
        lines = (listing.stdout or "").splitlines()
        kind = lines[0].split()[-1] if lines and lines[0].startswith("kind ") else "missing"
        if kind == "missing":
            continue  # nothing on the pod to lose
        local = Path(local_path)
        if kind == "dir" and not remote.endswith("/"):
            local = local / posixpath.basename(remote.rstrip("/"))
        sizes: dict[str, int] = {}
        sums: dict[str, str] = {}
        for line in lines[1:]:
            parts = line.split("\t", 2)
            if len(parts) == 3 and parts[0] == "S" and parts[1].isdigit():
                sizes[parts[2]] = int(parts[1])
            elif len(parts) == 3 and parts[0] == "H":
                sums[parts[2]] = parts[1]
        for rel, size in sorted(sizes.items()):
            if any(fnmatch.fnmatch(rel, pattern) or fnmatch.fnmatch(posixpath.basename(rel), pattern)
                   or any(fnmatch.fnmatch(part, pattern.strip("/")) for part in rel.split("/")[:-1])
                   for pattern in pull.excludes):
                continue
            here = local / rel
            label = f"{pull.label}: {posixpath.join(remote, rel) if kind == 'dir' else remote}"
            if not here.is_file():
                problems.append(f"{label} (missing locally)")
            elif here.stat().st_size != size:
                problems.append(f"{label} ({here.stat().st_size} bytes here, {size} on the pod)")
            elif rel in sums and hashlib.sha256(here.read_bytes()).hexdigest() != sums[rel]:
                problems.append(f"{label} (sha256 differs)")
    return problems
