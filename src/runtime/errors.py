"""The shell's exceptions. Every one is a `RunpodDeployError`, which the CLI reports as a
message and an exit code, never a traceback.

    RunpodDeployError                        (reconciler.diagnostics)
      SpecError(diagnostics)                 (reconciler.diagnostics) bad stack; nothing created
      StateError                             the state file cannot be used as it is
        StateLockedError(holder)             another apply holds the stack
        StateCorruptError(path)              unreadable or truncated; names the backup to use
        StateMismatchError(path)             the file belongs to another stack
        StalePlanError(reason)               a saved plan no longer matches the world
      ProviderError(provider, operation)     RunPod (or the simulator) said no
        ProviderAuthError                    no or bad API key
        ProviderUnavailableError             network, timeouts, 429/5xx after retries
        ProviderProtocolError(excerpt)       an answer we cannot parse
        PodNotFoundError(pod_id)             the pod does not exist (terminate treats it as done)
        CapacityError(gpu, datacenter)       stock-out for one candidate: failover continues
        HostFullError(pod_id)                a stopped pod cannot resume on its host
        FailoverExhaustedError(attempts)     every candidate failed
      TransportError                         SSH and rsync
        SshError, SshHostKeyMismatchError, RsyncError, RemoteCommandError
      JobError                               the job ran and did not succeed
        JobFailedError, BudgetExceededError, RuntimeExceededError, PodKilledError
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.diagnostics import RunpodDeployError


class StateError(RunpodDeployError):
    """The stack's state file cannot be used as it is."""


@dataclass(frozen=True, slots=True)
class LockHolder:
    """Who holds a stack's lock, for the message a second apply prints."""

    pid: int
    host: str
    since: str
    command: str = ""
    command_line: str = ""
    """The holder process's command line, as it was typed."""
    variables: tuple[tuple[str, str], ...] = ()
    """The variables of the stack instance it holds (a secret one masked)."""

    def describe(self) -> str:
        what = f" ({self.command})" if self.command else ""
        return f"pid {self.pid} on {self.host} since {self.since}{what}"


def locked_message(path: str, holder: LockHolder | None) -> str:
    """What a run that finds its stack instance locked is told: who holds it (command line and
    variables), that other variables would be an instance of their own, and that the same
    variables must wait or fail. The one place this message is composed."""
    if holder is None:
        who = "another process (it left no holder record)"
    else:
        who = holder.describe()
        if holder.command_line:
            who += f", command line: {holder.command_line}"
    values = ("with variables " + ", ".join(f"{k}={v}" for k, v in holder.variables)
              if holder is not None and holder.variables else "with no --var/--vars-file values")
    return (f"stack is locked by {who} ({values}): {path}. A run with other variables is an "
            "instance of its own (its own state, lock and pods) and is not blocked by this one; "
            "a run with the same variables is the same instance and must wait until that run "
            "ends (or fails now, as this one did). To run several values at once, give each "
            "its own --var values, or use `runpod-deploy sweep`.")


class StateLockedError(StateError):
    def __init__(self, path: str, holder: LockHolder | None, message: str | None = None) -> None:
        self.path = path
        self.holder = holder
        super().__init__(message or locked_message(path, holder))


class StateCorruptError(StateError):
    def __init__(self, path: str, detail: str, backup: str | None = None) -> None:
        self.path = path
        self.backup = backup
        hint = f"; the previous version is kept at {backup}" if backup else ""
        super().__init__(f"state file {path} is unreadable: {detail}{hint}")


class StateMismatchError(StateError):
    """The state file belongs to a different stack than the one being applied."""


class StalePlanError(StateError):
    """A saved plan was made against a state or world that has since changed."""


class ProviderError(RunpodDeployError):
    """A provider call failed; `provider` and `operation` say which and where."""

    def __init__(self, message: str, *, provider: str = "", operation: str = "") -> None:
        self.provider = provider
        self.operation = operation
        prefix = f"{provider} {operation}: " if provider or operation else ""
        super().__init__(f"{prefix}{message}")


class ProviderAuthError(ProviderError):
    """No API key, or RunPod refused it (HTTP 401/403)."""


class ProviderUnavailableError(ProviderError):
    """The provider could not be reached or kept failing (timeouts, 429, 5xx) after retries."""


class ProviderProtocolError(ProviderError):
    """The provider answered something we cannot parse; `excerpt` holds its start."""

    def __init__(self, message: str, *, excerpt: str = "", provider: str = "", operation: str = "") -> None:
        self.excerpt = excerpt[:300]
        super().__init__(message, provider=provider, operation=operation)


class PodNotFoundError(ProviderError):
    def __init__(self, pod_id: str, *, provider: str = "", operation: str = "") -> None:
        self.pod_id = pod_id
        super().__init__(f"pod {pod_id} not found", provider=provider, operation=operation)


class CapacityError(ProviderError):
    """No stock for this GPU type in this datacenter: a signal to try the next candidate."""

    def __init__(self, message: str, *, gpu_type_id: str = "", datacenter_id: str = "", provider: str = "") -> None:
        self.gpu_type_id = gpu_type_id
        self.datacenter_id = datacenter_id
        super().__init__(message, provider=provider, operation="create")


class HostFullError(ProviderError):
    """A stopped pod cannot resume: its host's GPUs were rented to someone else."""


class FailoverExhaustedError(ProviderError):
    """Every GPU x datacenter candidate was tried; `attempts` says what happened to each."""

    def __init__(self, message: str, *, attempts: tuple[object, ...] = ()) -> None:
        self.attempts = attempts
        super().__init__(message, operation="create")


class TransportError(RunpodDeployError):
    """SSH or rsync to a pod failed."""


class SshError(TransportError):
    pass


class SshHostKeyMismatchError(SshError):
    """The pod presented a different host key than the one pinned for it in this boot."""


class RsyncError(TransportError):
    pass


class RemoteCommandError(TransportError):
    def __init__(self, command: str, exit_status: int, output_tail: str) -> None:
        self.command = command
        self.exit_status = exit_status
        self.output_tail = output_tail
        super().__init__(f"remote command exited {exit_status}: {command[:120]}\n{output_tail}")


class JobError(RunpodDeployError):
    """The job ran on the pod and did not succeed; `exit_code` tells the reasons apart."""


class JobFailedError(JobError):
    exit_code = 1


class BudgetExceededError(JobError):
    exit_code = 4


class RuntimeExceededError(JobError):
    exit_code = 5


class PodKilledError(JobError):
    exit_code = 6
