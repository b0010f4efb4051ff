"""One SSH connection to a pod, reused for every command, with host-key pinning (paramiko).

Why one connection: a handshake to a RunPod pod costs several round trips through a proxy,
and a job run needs dozens of commands (setup, checks, status polls) plus a log stream. The
session opens one `paramiko.Transport` and runs each command on its own channel; it reconnects
lazily, before the next command, when the link is found dead. It never re-runs a command that
was already sent: if the link drops mid-command, `run` raises and the caller decides.

Commands are strings run as `bash --norc --noprofile -c '<command>'`: the result does not
depend on root's login shell, and profile scripts cannot print noise into stdout or cost
time. (sshd still starts root's own shell first, and bash sources ~/.bashrc when started by
sshd; the `exec` keeps that to one shell. On this machine a pyenv line there costs ~100 ms a
command.) The pod's own environment (RunPod writes it to /etc/rp_environment) is sourced by
the job script when it needs it, not here.

The log stream (`follow`) runs `tail -F` on one channel of the same connection and counts the
bytes of the complete lines it delivered; after a drop it reconnects (bounded backoff) and
resumes at that byte offset, so no line is lost or repeated.

Secrets: the text of a command run with `sensitive=True` is never logged nor put in an
exception, and `env` values are never logged (only their names). The private key is read
from its path and held in memory only; the system `ssh` used by rsync gets the path.
"""

from __future__ import annotations

import logging
import select
import shlex
import socket
import stat
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from types import TracebackType
from typing import Self

import paramiko

from reconciler.observed import SshEndpoint
from reconciler.redaction import MARKER
from runtime import jobscripts
from runtime.clock import Clock, SystemClock
from runtime.errors import RemoteCommandError, SshError
from runtime.hostkeys import HostKey, HostKeyPins

__all__ = [
    "CommandResult",
    "FollowResult",
    "Readiness",
    "ReadinessAttempt",
    "ReadinessStage",
    "SshSession",
    "SystemSshTarget",
    "load_private_key",
]

logger = logging.getLogger(__name__)

_REDACTED = MARKER
_OUTPUT_TAIL_CHARS = 2000
# Host key algorithms a pinned key type may be negotiated as (RSA signs with SHA-2 today).
_HOST_KEY_ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
}
# Errors that mean "the link is gone or never came up", as opposed to a refused key.
_LINK_ERRORS = (OSError, EOFError, paramiko.SSHException)


class _LinkDownError(SshError):
    """The pod could not be reached or the handshake broke: worth retrying, unlike a
    refused key or host key (plain `SshError`). Callers see it as an `SshError`."""


@dataclass(frozen=True, slots=True)
class CommandResult:
    """What a remote command did. `exit_status` is -1 when it died without one (a signal)."""

    exit_status: int
    stdout: str
    stderr: str
    duration_sec: float

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


class ReadinessStage(StrEnum):
    """The two things a pod must do before it is usable, in order.

    RunPod reports a pod RUNNING (and publishes its port) minutes before sshd answers, and
    its proxy may accept TCP connections with nothing behind them, hence a banner check.
    """

    BANNER = "banner"
    """TCP connect to the port and read an `SSH-2.0-...` banner."""
    LOGIN = "login"
    """Key exchange, host key pinned or matching the pin, key login, `true` runs."""


@dataclass(frozen=True, slots=True)
class ReadinessAttempt:
    """One probe while waiting, passed to the caller's heartbeat callback."""

    stage: ReadinessStage
    attempt: int
    elapsed_sec: float
    ok: bool
    detail: str


@dataclass(frozen=True, slots=True)
class Readiness:
    """How long it took: the banner first answered, then login worked."""

    banner: str
    banner_after_sec: float
    ready_after_sec: float
    attempts: int


@dataclass(frozen=True, slots=True)
class FollowResult:
    """Where a log stream stopped. `offset` is the byte after the last complete line delivered;
    pass it back as `start_offset` to continue later without repeats."""

    offset: int
    lines: int
    reconnects: int
    writer_finished: bool


@dataclass(frozen=True, slots=True)
class SystemSshTarget:
    """What the system `ssh` (under rsync) needs to reach the pod with the session's pin.

    A plain value: it stays valid after the session that made it is closed.
    """

    endpoint: SshEndpoint
    user: str
    key_path: Path
    host_key: HostKey
    connect_timeout_sec: float

    @property
    def login(self) -> str:
        return f"{self.user}@{self.endpoint.host}"

    def ssh_argv(self, known_hosts: Path) -> list[str]:
        """`ssh` and its options: only the pinned host key (written by the caller to
        `known_hosts`, see `hostkeys.write_known_hosts`), key auth only, never a prompt."""
        return [
            "ssh",
            "-p", str(self.endpoint.port),
            "-i", str(self.key_path),
            "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=yes",
            "-o", f"UserKnownHostsFile={known_hosts}",
            "-o", "GlobalKnownHostsFile=/dev/null",
            "-o", f"ConnectTimeout={max(1, round(self.connect_timeout_sec))}",
            "-o", "ServerAliveInterval=15",
            "-o", "ServerAliveCountMax=4",
            "-o", "LogLevel=ERROR",
        ]  # fmt: skip


def load_private_key(path: Path) -> paramiko.PKey:
    """Load an ed25519, ECDSA or RSA private key; warn when others may read it.

    OpenSSH (and so rsync) refuses a key file that group or others can read, so a loose
    mode is worth a loud warning even though paramiko would accept it.
    """
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise SshError(f"SSH private key {path} cannot be read: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        logger.warning(
            "SSH private key %s has permissions %o: others can read it, and the system ssh "
            "used by rsync will refuse it; run: chmod 600 %s",
            path, stat.S_IMODE(mode), path,
        )  # fmt: skip
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException as exc:
        raise SshError(
            f"SSH private key {path} is passphrase-protected; use a key without one"
        ) from exc
    except (OSError, ValueError, paramiko.SSHException) as exc:
        raise SshError(f"SSH private key {path} cannot be loaded: {exc}") from exc


class SshSession:
    """A reusable SSH connection to one pod boot. Thread-safe: `follow` may run in one thread
    while others call `run`; both share the same connection.

    `pin_id` names the pod boot whose host key this session trusts (see `runtime.hostkeys`);
    with `allow_new_host_key` the first key seen for an unpinned id is pinned (trust on first
    use), without it only an already pinned key is accepted.
    """

    def __init__(
        self,
        endpoint: SshEndpoint,
        *,
        key_path: Path,
        pins: HostKeyPins,
        pin_id: str,
        allow_new_host_key: bool = True,
        user: str = "root",
        connect_timeout_sec: float = 15.0,
        keepalive_sec: int = 15,
        clock: Clock | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._key_path = key_path
        self._key = load_private_key(key_path)
        self._pins = pins
        self._pin_id = pin_id
        self._allow_new = allow_new_host_key
        self._user = user
        self._connect_timeout = connect_timeout_sec
        self._keepalive = keepalive_sec
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._transport: paramiko.Transport | None = None
        self._connections_opened = 0
        self._commands_run = 0

    # -- connection ------------------------------------------------------------------------

    @property
    def endpoint(self) -> SshEndpoint:
        return self._endpoint

    @property
    def connections_opened(self) -> int:
        """SSH handshakes made so far (the first connect plus every reconnect)."""
        return self._connections_opened

    @property
    def commands_run(self) -> int:
        return self._commands_run

    @property
    def is_connected(self) -> bool:
        transport = self._transport
        return transport is not None and transport.is_active()

    def connect(self) -> None:
        """Open the connection now if it is not open; a no-op on a live one."""
        self._live_transport()

    def reconnect(self) -> None:
        """Drop the current connection (if any) and open a new one."""
        with self._lock:
            self._drop_transport()
            self._live_transport()

    def close(self) -> None:
        with self._lock:
            self._drop_transport()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def system_ssh_target(self) -> SystemSshTarget:
        """The same pod, pin and key for the system `ssh`; needs the host key pinned already."""
        host_key = self._pins.pinned(self._pin_id)
        if host_key is None:
            raise SshError(f"no host key is pinned for {self._pin_id!r}; connect with SSH first")
        return SystemSshTarget(
            endpoint=self._endpoint,
            user=self._user,
            key_path=self._key_path,
            host_key=host_key,
            connect_timeout_sec=self._connect_timeout,
        )

    def _live_transport(self) -> paramiko.Transport:
        with self._lock:
            if self._transport is not None and self._transport.is_active():
                return self._transport
            self._drop_transport()
            self._transport = self._open_transport(self._connect_timeout)
            return self._transport

    def _drop_transport(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None

    def _open_transport(self, timeout: float) -> paramiko.Transport:
        """Handshake, check the host key against the pin *before* authenticating, log in."""
        where = f"{self._endpoint.host}:{self._endpoint.port}"
        try:
            sock = socket.create_connection(
                (self._endpoint.host, self._endpoint.port), timeout=timeout
            )
        except OSError as exc:
            raise _LinkDownError(f"cannot connect to {where}: {exc}") from exc
        # Each command is a few small request/reply packets: without NODELAY, Nagle and
        # delayed ACKs add ~40 ms to every channel open.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        transport.banner_timeout = timeout
        transport.auth_timeout = timeout
        pinned = self._pins.pinned(self._pin_id)
        if pinned is not None:
            # Negotiate the pinned key's type, or a server with several keys could show another.
            options = transport.get_security_options()
            options.key_types = _HOST_KEY_ALGORITHMS.get(pinned.key_type, (pinned.key_type,))
        try:
            transport.start_client(timeout=timeout)
            server_key = transport.get_remote_server_key()
            presented = HostKey(key_type=server_key.get_name(), key_base64=server_key.get_base64())
            if self._pins.verify(
                self._pin_id, self._endpoint, presented, allow_new=self._allow_new
            ):
                logger.info(
                    "pinned host key %s for %s (%s)", presented.fingerprint, self._pin_id, where
                )
            transport.auth_publickey(self._user, self._key)
        except SshError:
            transport.close()
            raise
        except paramiko.AuthenticationException as exc:
            # paramiko reports a connection cut during auth ("transport shut down or saw EOF")
            # as an auth failure; a real refusal leaves the transport up.
            link_lost = not transport.is_active()
            transport.close()
            if link_lost:
                raise _LinkDownError(f"SSH connection to {where} lost during login: {exc}") from exc
            raise SshError(
                f"{where} refused key {self._key_path} for {self._user}: {exc} "
                "(is its public key in the pod's PUBLIC_KEY / authorized_keys?)"
            ) from exc
        except _LINK_ERRORS as exc:
            transport.close()
            raise _LinkDownError(
                f"SSH handshake with {where} failed: {exc or type(exc).__name__}"
            ) from exc
        transport.set_keepalive(self._keepalive)
        self._connections_opened += 1
        logger.debug("ssh connection %d to %s open", self._connections_opened, where)
        return transport

    # -- readiness -------------------------------------------------------------------------

    def wait_until_ready(
        self,
        *,
        timeout_sec: float,
        on_attempt: Callable[[ReadinessAttempt], None] | None = None,
        banner_timeout_sec: float = 5.0,
        first_poll_sec: float = 0.25,
        max_poll_sec: float = 5.0,
    ) -> Readiness:
        """Wait for the SSH banner, then for a working login; leaves the session connected.

        Polls start short and double up to `max_poll_sec`; every probe is reported to
        `on_attempt` (the caller's heartbeat). A changed host key or a refused private key
        ends the wait at once: time cannot fix them and the pod bills by the second. Raises
        `SshError` at the deadline, naming what was seen last.
        """
        start = self._clock.monotonic()
        deadline = start + timeout_sec
        stage = ReadinessStage.BANNER
        banner = ""
        banner_after = 0.0
        delay = first_poll_sec
        attempt = 0
        while True:
            attempt += 1
            per_probe = (
                banner_timeout_sec if stage is ReadinessStage.BANNER else self._connect_timeout
            )
            remaining = deadline - self._clock.monotonic()
            ok, detail = self._probe(stage, max(0.1, min(remaining, per_probe)))
            elapsed = self._clock.monotonic() - start
            if on_attempt is not None:
                on_attempt(ReadinessAttempt(stage, attempt, elapsed, ok, detail))
            if ok and stage is ReadinessStage.BANNER:
                stage, banner, banner_after = ReadinessStage.LOGIN, detail, elapsed
                delay = first_poll_sec
                continue
            if ok:
                return Readiness(
                    banner=banner,
                    banner_after_sec=banner_after,
                    ready_after_sec=elapsed,
                    attempts=attempt,
                )
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise SshError(
                    f"{self._endpoint.host}:{self._endpoint.port} not SSH-ready after "
                    f"{elapsed:.1f}s ({attempt} probes); waiting for {stage.value}, last seen: {detail}"
                )
            self._clock.sleep(min(delay, remaining))
            delay = min(delay * 2, max_poll_sec)

    def _probe(self, stage: ReadinessStage, timeout: float) -> tuple[bool, str]:
        if stage is ReadinessStage.BANNER:
            return _read_banner(self._endpoint, timeout)
        try:
            with self._lock:
                self._drop_transport()
                self._transport = self._open_transport(timeout)
            result = self.run("true", timeout_sec=max(timeout, 1.0), check=False)
        except _LinkDownError as exc:
            return False, str(exc)
        return result.ok, "login ok" if result.ok else f"`true` exited {result.exit_status}"

    # -- commands --------------------------------------------------------------------------

    def run(
        self,
        command: str,
        *,
        timeout_sec: float = 600.0,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        stdin: str | bytes | None = None,
        sensitive: bool = False,
    ) -> CommandResult:
        """Run `command` under `bash -c` (no rc files) on its own channel of the connection.

        `env` is exported in front of the command (sshd drops most `setenv` requests).
        `check` raises `RemoteCommandError` with the output tail on a non-zero exit. A link
        lost mid-command raises `SshError`; the command is not retried.
        """
        shown = _REDACTED if sensitive else command
        script = command
        if env:
            exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in env.items())
            script = f"export {exports}; {command}"
        logger.debug("ssh run: %s%s", shown, f" (env: {', '.join(env)})" if env else "")
        started = self._clock.monotonic()
        transport, channel = self._open_channel()
        with self._lock:
            self._commands_run += 1
        try:
            channel.exec_command(f"exec bash --norc --noprofile -c {shlex.quote(script)}")
            if stdin is not None:
                channel.sendall(stdin.encode() if isinstance(stdin, str) else stdin)
            channel.shutdown_write()
            stdout, stderr = self._collect(channel, started + timeout_sec, shown)
            exit_status = channel.recv_exit_status() if channel.exit_status_ready() else -1
        except _LINK_ERRORS as exc:
            raise _LinkDownError(f"connection lost while running: {shown}: {exc}") from exc
        finally:
            channel.close()
        if exit_status == -1 and not transport.is_active():
            raise _LinkDownError(f"connection lost while running: {shown}")
        result = CommandResult(
            exit_status=exit_status,
            stdout=stdout.decode("utf-8", "replace"),
            stderr=stderr.decode("utf-8", "replace"),
            duration_sec=self._clock.monotonic() - started,
        )
        if check and not result.ok:
            tail = (result.stdout + result.stderr)[-_OUTPUT_TAIL_CHARS:]
            raise RemoteCommandError(shown, result.exit_status, tail)
        return result

    def _open_channel(self) -> tuple[paramiko.Transport, paramiko.Channel]:
        """A new channel; a link found dead at this point (nothing sent yet) is reopened once.

        A drop is often noticed only here: the transport still looks active for a moment.
        """
        transport = self._live_transport()
        try:
            return transport, transport.open_session(timeout=self._connect_timeout)
        except _LINK_ERRORS:
            with self._lock:
                if self._transport is transport:
                    self._drop_transport()
        transport = self._live_transport()
        try:
            return transport, transport.open_session(timeout=self._connect_timeout)
        except _LINK_ERRORS as exc:
            where = f"{self._endpoint.host}:{self._endpoint.port}"
            raise _LinkDownError(f"cannot open a channel to {where}: {exc}") from exc

    def _collect(
        self, channel: paramiko.Channel, deadline: float, shown: str
    ) -> tuple[bytes, bytes]:
        """Read stdout and stderr until the channel closes, or raise at the deadline."""
        stdout, stderr = bytearray(), bytearray()
        while True:
            while channel.recv_ready():
                stdout += channel.recv(65536)
            while channel.recv_stderr_ready():
                stderr += channel.recv_stderr(65536)
            if channel.closed or (channel.eof_received and channel.exit_status_ready()):
                while channel.recv_ready():
                    stdout += channel.recv(65536)
                while channel.recv_stderr_ready():
                    stderr += channel.recv_stderr(65536)
                return bytes(stdout), bytes(stderr)
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise SshError(f"remote command timed out (it may still run on the pod): {shown}")
            if channel.eof_received:  # output closed, exit status still to come
                channel.status_event.wait(min(remaining, 0.5))
            else:
                select.select([channel], [], [], min(remaining, 0.5))

    def put_text(self, remote_path: str, text: str, *, mode: int = 0o600) -> None:
        """Write a file atomically (temp file in the same directory, chmod, `mv`).

        The content travels on stdin, never in the command line, so secrets are neither in
        `ps` on the pod nor in our logs; the temp file is private from its first byte.
        """
        quoted = shlex.quote(remote_path)
        command = (
            f'set -e; umask 077; mkdir -p "$(dirname {quoted})"; '
            f'tmp=$(mktemp "$(dirname {quoted})/.put.XXXXXX"); '
            f'cat > "$tmp"; chmod {mode:o} "$tmp"; mv -f "$tmp" {quoted}'
        )
        self.run(command, timeout_sec=60, stdin=text)

    def get_text(self, remote_path: str) -> str:
        """A remote file's content; `RemoteCommandError` when it cannot be read."""
        return self.run(f"cat -- {shlex.quote(remote_path)}", timeout_sec=60).stdout

    # -- jobs ------------------------------------------------------------------------------

    def launch_detached(
        self, script_path: str, log_path: str, *, control_dir: str, env_prefix: str = ""
    ) -> int:
        """Start `bash script_path` in its own session (setsid, nohup, stdin /dev/null, output
        appended to `log_path`), so that it outlives this connection; return its pid.

        The job's exit status lands in `control_dir/exit_code` (see `runtime.jobscripts`).
        `env_prefix` may hold secrets, so the command is not logged when it is set.
        """
        command = jobscripts.launch_command(
            script_path=script_path,
            log_path=log_path,
            control_dir=control_dir,
            env_prefix=env_prefix,
        )
        result = self.run(command, timeout_sec=60, sensitive=bool(env_prefix))
        try:
            return int(result.stdout.split()[-1])
        except (IndexError, ValueError) as exc:
            raise SshError(
                f"launch of {script_path} printed no pid: {result.stdout[-200:]!r}"
            ) from exc

    def is_alive(self, pid: int) -> bool:
        """True while process `pid` runs on the pod. A zombie counts as ended: where PID 1
        does not reap orphans, `kill -0` would call a finished job alive forever."""
        state = (
            f's=$(cat /proc/{int(pid)}/stat 2>/dev/null) && s=${{s##*) }} && [ "${{s%% *}}" != Z ]'
        )
        return self.run(state, timeout_sec=30, check=False).ok

    # -- log stream ------------------------------------------------------------------------

    def follow(
        self,
        path: str,
        *,
        on_line: Callable[[str], None],
        should_stop: Callable[[], bool],
        start_offset: int = 0,
        writer_pid: int | None = None,
        poll_sec: float = 0.1,
        idle_probe_sec: float = 15.0,
        max_reconnect_attempts: int = 6,
    ) -> FollowResult:
        """Stream the complete lines appended to `path`, from byte `start_offset`, to `on_line`.

        Returns when `should_stop()` turns true (checked every `poll_sec`) or, with
        `writer_pid`, once that process has ended (checked each second the log is quiet) and
        every byte it wrote was delivered, an unterminated last line included. Lines arrive
        as `tail -F` reads them (milliseconds), not on a poll. A dropped link is reconnected
        with backoff and the stream resumes at the byte after the last delivered line;
        `SshError` after `max_reconnect_attempts` failed tries in a row. A link that is
        silent for `idle_probe_sec` is probed, so a half-open connection is noticed too.
        """
        stream = _LogStream(path, on_line, start_offset, self._clock, self._connect_timeout)
        writer_alive = None if writer_pid is None else (lambda: self.is_alive(writer_pid))
        failures = 0
        while True:
            opens_before = stream.opens
            try:
                transport = self._live_transport()
                ended = stream.tail(transport, should_stop, writer_alive, poll_sec, idle_probe_sec)
                if ended is _StreamEnd.WRITER_DONE:
                    stream.drain(transport)
                return stream.result(writer_finished=ended is _StreamEnd.WRITER_DONE)
            except (_LinkDownError, *_LINK_ERRORS) as exc:
                # A stream that was up before it broke starts a fresh count of failed tries.
                failures = 1 if stream.opens > opens_before else failures + 1
                if failures > max_reconnect_attempts:
                    raise SshError(
                        f"log stream of {path} lost and {max_reconnect_attempts} reconnects "
                        f"failed; last error: {exc}"
                    ) from exc
                logger.info("log stream of %s interrupted (%s); reconnecting", path, exc)
            with self._lock:
                self._drop_transport()
            stream.reconnects += 1
            if failures > 1:
                self._clock.sleep(min(0.25 * 2 ** (failures - 2), 5.0))


class _StreamEnd(StrEnum):
    STOPPED = "stopped"
    WRITER_DONE = "writer_done"


class _LogStream:
    """The offset bookkeeping of `SshSession.follow`: bytes are counted only for lines handed
    to `on_line`, so a partial line at a drop is fetched again, whole, after the reconnect."""

    def __init__(
        self,
        path: str,
        on_line: Callable[[str], None],
        offset: int,
        clock: Clock,
        channel_timeout: float,
    ) -> None:
        self.path = path
        self.on_line = on_line
        self.offset = offset
        self.clock = clock
        self.channel_timeout = channel_timeout
        self.lines = 0
        self.opens = 0
        self.reconnects = 0

    def result(self, *, writer_finished: bool) -> FollowResult:
        return FollowResult(
            offset=self.offset,
            lines=self.lines,
            reconnects=self.reconnects,
            writer_finished=writer_finished,
        )

    def tail(
        self,
        transport: paramiko.Transport,
        should_stop: Callable[[], bool],
        writer_alive: Callable[[], bool] | None,
        poll_sec: float,
        idle_probe_sec: float,
    ) -> _StreamEnd:
        """One `tail -F` from the current offset until a stop, the writer's end, or a link
        error (raised). The writer is checked whenever the log has been quiet for a second."""
        quoted = shlex.quote(self.path)
        channel = transport.open_session(timeout=self.channel_timeout)
        stderr = bytearray()
        pending = b""
        try:
            # -s: a log that does not exist yet is polled (inotify needs the file) this often.
            channel.exec_command(f"exec tail -c +{self.offset + 1} -F -s {poll_sec} -- {quoted}")
            self.opens += 1
            last_data = last_writer_check = self.clock.monotonic()
            while True:
                if should_stop():
                    if channel.recv_ready():
                        self._deliver(pending + channel.recv(1 << 20))
                    return _StreamEnd.STOPPED
                readable, _, _ = select.select([channel], [], [], poll_sec)
                while channel.recv_stderr_ready():
                    stderr = (stderr + channel.recv_stderr(65536))[-2000:]
                if channel.recv_ready():
                    pending = self._deliver(pending + channel.recv(65536))
                    last_data = self.clock.monotonic()
                    continue
                if channel.eof_received or not transport.is_active():
                    if transport.is_active() and channel.exit_status_ready():
                        detail = stderr.decode("utf-8", "replace").strip()
                        raise SshError(
                            f"tail -F {self.path} exited {channel.recv_exit_status()}: {detail}"
                        )
                    raise _LinkDownError("connection lost")
                if readable:
                    continue
                now = self.clock.monotonic()
                if writer_alive is not None and now - max(last_data, last_writer_check) >= 1.0:
                    last_writer_check = now
                    if not writer_alive():
                        return _StreamEnd.WRITER_DONE
                if now - last_data > idle_probe_sec:
                    _probe_link(transport, self.channel_timeout)
                    last_data = now
        finally:
            channel.close()

    def drain(self, transport: paramiko.Transport) -> None:
        """After the writer ended: deliver the rest of the file, an unterminated last line too."""
        quoted = shlex.quote(self.path)
        channel = transport.open_session(timeout=self.channel_timeout)
        channel.settimeout(60.0)
        try:
            channel.exec_command(
                f"if [ -e {quoted} ]; then exec tail -c +{self.offset + 1} -- {quoted}; fi"
            )
            chunks = []
            while chunk := channel.recv(65536):
                chunks.append(chunk)
            if channel.recv_exit_status() != 0 or not transport.is_active():
                raise _LinkDownError(f"could not read the end of {self.path}")
        finally:
            channel.close()
        rest = self._deliver(b"".join(chunks))
        if rest:
            self._deliver(rest + b"\n")
            self.offset -= 1  # the newline was ours, not the file's

    def _deliver(self, data: bytes) -> bytes:
        """Hand every complete line to `on_line`; return the incomplete rest."""
        *complete, rest = data.split(b"\n")
        for raw in complete:
            self.offset += len(raw) + 1
            self.lines += 1
            self.on_line(raw.decode("utf-8", "replace"))
        return rest


def _probe_link(transport: paramiko.Transport, timeout: float) -> None:
    """Open and close a channel: a round trip that fails fast on a half-open connection."""
    try:
        transport.open_session(timeout=timeout).close()
    except _LINK_ERRORS as exc:
        raise _LinkDownError(f"connection silent and unresponsive: {exc}") from exc


def _read_banner(endpoint: SshEndpoint, timeout: float) -> tuple[bool, str]:
    """(True, banner) when an SSH server greets us on the port, else (False, what happened)."""
    try:
        sock = socket.create_connection((endpoint.host, endpoint.port), timeout=timeout)
    except ConnectionRefusedError:
        return False, "port closed (connection refused)"
    except TimeoutError:
        return False, f"no answer to TCP connect within {timeout:.1f}s"
    except OSError as exc:
        return False, f"cannot connect: {exc}"
    with sock:
        try:
            greeting = sock.recv(256)
        except TimeoutError:
            return False, f"port open but no SSH banner within {timeout:.1f}s"
        except OSError as exc:
            return False, f"port open but the connection failed: {exc}"
    if not greeting:
        return False, "port open but closed before an SSH banner"
    first_line = greeting.split(b"\n", 1)[0].strip().decode("ascii", "replace")
    if not first_line.startswith("SSH-"):
        return False, f"port open but not an SSH server: {first_line[:60]!r}"
    return True, first_line
