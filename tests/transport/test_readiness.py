"""Waiting for a pod's SSH: a closed port, then a listener that never greets, then sshd."""

from __future__ import annotations

import itertools
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.errors import SshError
from runtime.hostkeys import HostKeyPins
from runtime.ssh import ReadinessAttempt, ReadinessStage, SshSession
from tests.transport.transport_sshd import SshServer, free_port, keygen


class SilentListener:
    """Accepts TCP connections and says nothing, like RunPod's port mapping before sshd runs."""

    def __init__(self, port: int) -> None:
        self._server = socket.create_server(("127.0.0.1", port), reuse_port=False)
        self._accepted: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            self._accepted.append(conn)

    def close(self) -> None:
        self._server.close()
        self._thread.join(timeout=2)
        for conn in self._accepted:
            conn.close()


@pytest.fixture
def unstarted_sshd(tmp_path: Path, client_key: Path) -> Iterator[SshServer]:
    server = SshServer(tmp_path / "sshd", client_key.with_suffix(".pub"), port=free_port())
    yield server
    server.stop()


def _session(server: SshServer, key: Path, pins: HostKeyPins) -> SshSession:
    return SshSession(
        server.endpoint, key_path=key, pins=pins, pin_id="pod@1", connect_timeout_sec=2
    )


def test_waits_through_closed_port_and_silent_listener_until_login_works(
    unstarted_sshd: SshServer, client_key: Path, pins: HostKeyPins
) -> None:
    seen: list[ReadinessAttempt] = []

    def boot() -> None:  # port closed 0.6 s, a mute listener 1 s, then sshd
        time.sleep(0.6)
        listener = SilentListener(unstarted_sshd.port)
        time.sleep(1.0)
        listener.close()
        unstarted_sshd.start()

    booting = threading.Thread(target=boot)
    booting.start()
    with _session(unstarted_sshd, client_key, pins) as session:
        ready = session.wait_until_ready(
            timeout_sec=15, on_attempt=seen.append, banner_timeout_sec=0.3, max_poll_sec=0.2
        )
        assert session.is_connected and session.connections_opened == 1
    booting.join()

    details = [attempt.detail for attempt in seen]
    first_refused = next(i for i, d in enumerate(details) if "connection refused" in d)
    first_mute = next(i for i, d in enumerate(details) if "no SSH banner" in d)
    banner_ok = next(i for i, a in enumerate(seen) if a.stage is ReadinessStage.BANNER and a.ok)
    assert first_refused < first_mute < banner_ok
    assert seen[-1].stage is ReadinessStage.LOGIN and seen[-1].ok
    assert ready.banner.startswith("SSH-2.0-OpenSSH")
    assert 1.4 < ready.banner_after_sec <= ready.ready_after_sec < 10
    assert ready.attempts == len(seen)
    assert [a.attempt for a in seen] == list(range(1, len(seen) + 1))


def test_gives_up_at_the_deadline_naming_what_was_seen_last(
    unstarted_sshd: SshServer, client_key: Path, pins: HostKeyPins
) -> None:
    seen: list[ReadinessAttempt] = []
    started = time.monotonic()
    with (
        _session(unstarted_sshd, client_key, pins) as session,
        pytest.raises(SshError) as timed_out,
    ):
        session.wait_until_ready(
            timeout_sec=1.0, on_attempt=seen.append, first_poll_sec=0.05, max_poll_sec=0.4
        )
    assert 1.0 <= time.monotonic() - started < 2.0
    assert "waiting for banner" in str(timed_out.value)
    assert "connection refused" in str(timed_out.value)
    delays = [b.elapsed_sec - a.elapsed_sec for a, b in itertools.pairwise(seen)]
    assert delays[0] < 0.1 and max(delays) > 0.3  # short polls first, then backing off
    assert not any(a.ok for a in seen)


def test_a_refused_key_ends_the_wait_at_once(
    sshd: SshServer, tmp_path: Path, pins: HostKeyPins
) -> None:
    stranger = tmp_path / "stranger_key"
    keygen(stranger)
    started = time.monotonic()
    with _session(sshd, stranger, pins) as session, pytest.raises(SshError, match="refused key"):
        session.wait_until_ready(timeout_sec=30)
    assert time.monotonic() - started < 5
