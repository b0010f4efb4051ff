"""A real OpenSSH server on loopback for the transport tests, and the faults they need.

`SshServer` runs `/usr/sbin/sshd -D -e` with its own config, host key and authorized_keys
under a temp dir. The "remote" filesystem is this machine's, so a test can create and inspect
remote files directly. Faults: `kill_sessions()` ends every live SSH connection the way a
network drop or a proxy restart does (the listener stays up); `restart(new_host_key=True)`
comes back on the same port with a fresh host key, as a RunPod pod does after a stop/start.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

from reconciler.observed import SshEndpoint

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def keygen(path: Path, key_type: str = "ed25519") -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", key_type, "-N", "", "-C", "transport-test", "-f", str(path)],
        check=True,
    )


def _children(pid: int) -> list[int]:
    """Direct children, from /proc/<pid>/task/*/children (a scan of /proc is slow on a busy host)."""
    found: list[int] = []
    try:
        tasks = list((Path("/proc") / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def _comm(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "comm").read_text().strip()
    except OSError:
        return ""


def wait_for_banner(port: int, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                if sock.recv(64).startswith(b"SSH-"):
                    return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"sshd on port {port} did not answer within {timeout}s")


class SshServer:
    """One sshd on 127.0.0.1; start, stop, drop its sessions, restart with a new host key."""

    def __init__(self, root: Path, client_public_key: Path, port: int | None = None) -> None:
        self.root = root
        self.port = port or free_port()
        self.host_key = root / "ssh_host_ed25519_key"
        self._process: subprocess.Popen[bytes] | None = None
        root.mkdir(parents=True, exist_ok=True)
        (root / "authorized_keys").write_bytes(client_public_key.read_bytes())
        keygen(self.host_key)
        (root / "sshd_config").write_text(
            f"ListenAddress 127.0.0.1:{self.port}\n"
            f"HostKey {self.host_key}\n"
            f"AuthorizedKeysFile {root / 'authorized_keys'}\n"
            "PermitRootLogin prohibit-password\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "StrictModes no\n"
            "PidFile none\n"
            "Subsystem sftp internal-sftp\n"
            "MaxSessions 64\n"
            "MaxStartups 64\n"
            "LogLevel ERROR\n"
        )

    @property
    def endpoint(self) -> SshEndpoint:
        return SshEndpoint(host="127.0.0.1", port=self.port)

    @property
    def host_public_key(self) -> str:
        """`type base64` of the current host key, as a known_hosts entry carries it."""
        return " ".join(self.host_key.with_suffix(".pub").read_text().split()[:2])

    def start(self) -> None:
        log = (self.root / "sshd.log").open("ab")
        self._process = subprocess.Popen(
            [SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")], stdout=log, stderr=log
        )
        log.close()
        wait_for_banner(self.port)

    def kill_sessions(self) -> int:
        """SIGKILL every per-connection sshd (not the listener): clients see the link drop."""
        assert self._process is not None
        victims: list[int] = []
        frontier = [self._process.pid]
        while frontier:
            for child in _children(frontier.pop()):
                if _comm(child) == "sshd":
                    victims.append(child)
                    frontier.append(child)
        for pid in victims:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(victims)

    def connection_count(self) -> int:
        """Live SSH connections: one per-connection sshd child of the listener each."""
        assert self._process is not None
        return sum(1 for child in _children(self._process.pid) if _comm(child) == "sshd")

    def stop(self) -> None:
        if self._process is None:
            return
        self.kill_sessions()
        self._process.terminate()
        self._process.wait(timeout=5)
        self._process = None

    def restart(self, *, new_host_key: bool) -> None:
        self.stop()
        if new_host_key:
            self.host_key.unlink()
            self.host_key.with_suffix(".pub").unlink()
            keygen(self.host_key)
        self.start()
