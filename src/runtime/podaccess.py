"""Getting into a pod: the one SSH session of a run, opened once the pod is published.

The session comes from an injected factory (`SessionFactory`), so the coordinator and the
provisioner can be tested with a fake; the default one builds `runtime.ssh.SshSession`
(paramiko, imported only when a run gets that far). The connector owns the session: it closes
the previous one when a pod is replaced, and the coordinator closes it before the lifecycle.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from reconciler.observed import ObservedPod, SshEndpoint
from runtime.clock import Clock
from runtime.failpoints import crash_point
from runtime.hostkeys import HostKeyPins
from runtime.journal import StateJournal
from runtime.reporter import Reporter
from runtime.rundir import EventLog, EventName

__all__ = ["PodConnector", "PodSession", "SessionFactory", "ssh_session"]


class PodSession(Protocol):
    """What the apply needs of an SSH session (see `runtime.ssh.SshSession`)."""

    def wait_until_ready(self, *, timeout_sec: float, on_attempt: Callable[[Any], None]) -> Any: ...

    def close(self) -> None: ...


SessionFactory = Callable[..., Any]
"""`factory(endpoint, *, key_path, pins, pin_id, allow_new_host_key, clock)` -> a session."""


def ssh_session(
    endpoint: SshEndpoint, *, key_path: Path, pins: HostKeyPins, pin_id: str, allow_new_host_key: bool, clock: Clock
) -> Any:
    """The real session: paramiko, one connection reused for every command of the run."""
    from runtime.ssh import SshSession

    return SshSession(
        endpoint, key_path=key_path, pins=pins, pin_id=pin_id, allow_new_host_key=allow_new_host_key, clock=clock
    )


class PodConnector:
    """Opens the run's session to a pod, waiting for the banner and a login, pinning its key."""

    def __init__(
        self,
        *,
        session_factory: SessionFactory,
        hostkeys: HostKeyPins,
        key_path: Path,
        clock: Clock,
        reporter: Reporter,
        ready_timeout_sec: float,
    ) -> None:
        self._factory = session_factory
        self._hostkeys = hostkeys
        self._key_path = key_path
        self._clock = clock
        self._reporter = reporter
        self.ready_timeout_sec = ready_timeout_sec
        self.session: Any | None = None

    def connect(self, pod: ObservedPod, journal: StateJournal, *, new_boot: bool, events: EventLog) -> str:
        """Open the session; returns the host-key pin id.

        A create or resume we asked for is a new boot (RunPod containers get fresh host keys on
        every start): its first key is pinned. Otherwise the last pin must match."""
        assert pod.ssh is not None
        record = journal.state.pod
        known = record.host_key_pins if record and record.pod_id == pod.pod_id else ()
        pin_id = f"{pod.pod_id}#{len(known) + 1}" if new_boot or not known else known[-1]
        session = self._factory(
            pod.ssh, key_path=self._key_path, pins=self._hostkeys, pin_id=pin_id,
            allow_new_host_key=new_boot, clock=self._clock,
        )
        began = self._clock.monotonic()
        self._reporter.phase_started("wait_ssh", f"{pod.ssh.host}:{pod.ssh.port}")
        last_beat = [began]

        def heartbeat(attempt: Any) -> None:
            now = self._clock.monotonic()
            if now - last_beat[0] >= 30:
                last_beat[0] = now
                self._reporter.waiting("SSH", now - began, f"{attempt.stage}: {attempt.detail}")

        try:
            crash_point("ssh_wait")
            session.wait_until_ready(timeout_sec=self.ready_timeout_sec, on_attempt=heartbeat)
        except BaseException:
            session.close()
            raise
        self._reporter.phase_finished("wait_ssh", self._clock.monotonic() - began)
        events.emit(EventName.SSH_READY, pod_id=pod.pod_id, seconds=round(self._clock.monotonic() - began, 3))
        self.close()
        self.session = session
        return pin_id

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
            self.session = None
