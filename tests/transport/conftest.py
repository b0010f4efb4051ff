"""Fixtures for the transport tests: a real sshd per test, a client key, a pin store."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from runtime.hostkeys import HostKeyPins
from runtime.ssh import SshSession
from tests.transport.transport_sshd import SshServer, keygen


@pytest.fixture(scope="session")
def client_key(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The client's private key (ed25519, mode 0600); its `.pub` is authorized on every server."""
    path = tmp_path_factory.mktemp("client") / "id_ed25519"
    keygen(path)
    return path


@pytest.fixture
def sshd(tmp_path: Path, client_key: Path) -> Iterator[SshServer]:
    server = SshServer(tmp_path / "sshd", client_key.with_suffix(".pub"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def pins(tmp_path: Path) -> HostKeyPins:
    return HostKeyPins(tmp_path / "state" / "host_keys.json")


@pytest.fixture
def open_session(
    sshd: SshServer, pins: HostKeyPins, client_key: Path
) -> Iterator[Callable[..., SshSession]]:
    """Build sessions to the `sshd` fixture (pin id `pod@1` unless told); all closed at the end."""
    sessions: list[SshSession] = []

    def build(pin_id: str = "pod@1", *, allow_new_host_key: bool = True) -> SshSession:
        session = SshSession(
            sshd.endpoint,
            key_path=client_key,
            pins=pins,
            pin_id=pin_id,
            allow_new_host_key=allow_new_host_key,
            connect_timeout_sec=5,
        )
        sessions.append(session)
        return session

    yield build
    for session in sessions:
        session.close()
